"""A subnet as a sequence of *units*: the stem, each layer's mixer and ffn (with their residual
adds), the downsamplings and the head; torch-free (what the latency models, the size metrics and
the dashboard need of a subnet's shape). ``nas.supernet.units`` builds a unit's module.

A unit's cost depends only on its op, widths and token grid, not on where it sits, so the
latency models measure units once and sum them, and metrics compose over them.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import ClassVar

from nas.errors import NasError
from nas.space._arch import Arch, NetArch
from nas.space._net import NetSpace


@dataclass(frozen=True)
class Unit:
    kind: str  # stem, down, mixer, ffn, head
    op: str  # mixer or ffn token (conv5, moe4k2, ...); "" for stem, down and head
    width: int  # output width
    in_width: int  # input width (differs from width only for down)
    grid: tuple[int, ...]  # the token grid the unit reads (the input image grid for stem)
    stage: int  # where to find its weights in the supernet

    @property
    def key(self) -> str:
        grid = "x".join(map(str, self.grid))
        if self.kind == "down":
            return f"down/{self.in_width}>{self.width}/{grid}"
        if self.kind in ("stem", "head"):
            return f"{self.kind}/{self.width}/{grid}"
        return f"{self.kind}/{self.op}/{self.width}/{grid}"

    @property
    def tokens(self) -> int:
        return math.prod(self.grid)


def arch_units(space: NetSpace, arch: NetArch, input_shape: tuple[int, ...] | None = None) -> list[Unit]:
    """The units of ``arch`` in execution order, for inputs of ``input_shape`` (the task's by default)."""
    shape = tuple(input_shape or space.task.input_shape)
    grids = space.stage_grids(shape)
    units = [Unit("stem", "", arch.stages[0].width, shape[0], tuple(shape[1:]), 0)]
    for i, stage in enumerate(arch.stages):
        grid = grids[i]
        if i > 0 and space.stages[i].downsample:
            units.append(Unit("down", "", stage.width, arch.stages[i - 1].width, grids[i - 1], i))
        for layer in stage.layers:
            units.append(Unit("mixer", layer.mixer.token, stage.width, stage.width, grid, i))
            units.append(Unit("ffn", layer.ffn.token, stage.width, stage.width, grid, i))
    units.append(Unit("head", "", arch.stages[-1].width, arch.stages[-1].width, grid, len(arch.stages) - 1))
    return units


class UnitCache:
    """Arch -> its units, for one space and input shape, kept as they are asked for.

    Every latency predictor and metrics model of a space shares one (:meth:`of`), so a
    search that predicts several targets and the size metrics of a new arch works out its
    units once, not once per model."""

    _shared: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    limit = 200_000

    def __init__(self, space: NetSpace, input_shape: tuple[int, ...]) -> None:
        self.space, self.input_shape = space, input_shape
        self._cache: dict[NetArch, list[Unit]] = {}

    @classmethod
    def of(cls, space: NetSpace, input_shape: tuple[int, ...] | None = None) -> UnitCache:
        shape = tuple(input_shape or space.task.input_shape)
        per_space = cls._shared.setdefault(space, {})
        if shape not in per_space:
            per_space[shape] = cls(space, shape)
        return per_space[shape]

    def units(self, arch: Arch) -> list[Unit]:
        if not isinstance(arch, NetArch):
            raise NasError("unit-based models need network archs; use a table model for plain spaces")
        units = self._cache.get(arch)
        if units is None:
            units = arch_units(self.space, arch, self.input_shape)
            if len(self._cache) < self.limit:
                self._cache[arch] = units
        return units


def all_units(space: NetSpace, input_shape: tuple[int, ...] | None = None) -> list[Unit]:
    """Every distinct unit any subnet of ``space`` can contain (what a latency build measures)."""
    shape = tuple(input_shape or space.task.input_shape)
    grids = space.stage_grids(shape)
    units = [Unit("stem", "", w, shape[0], tuple(shape[1:]), 0) for w in space.stages[0].widths]
    for i, spec in enumerate(space.stages):
        grid = grids[i]
        if i > 0 and spec.downsample:
            units += [Unit("down", "", w, p, grids[i - 1], i) for p in space.stages[i - 1].widths for w in spec.widths]
        for w in spec.widths:
            units += [Unit("mixer", m.token, w, w, grid, i) for m in spec.mixers]
            units += [Unit("ffn", f.token, w, w, grid, i) for f in spec.ffns]
    last = len(space.stages) - 1
    units += [Unit("head", "", w, w, grid, last) for w in space.stages[last].widths]
    seen: dict[str, Unit] = {}
    for u in units:
        seen.setdefault(u.key, u)
    return list(seen.values())

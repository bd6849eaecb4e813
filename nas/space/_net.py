"""Network spaces: a task, a stem and stages of layers that each choose a mixer and an ffn."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from nas.errors import NasError
from nas.space._arch import (
    Arch,
    Ffn,
    Layer,
    Mixer,
    NetArch,
    Stage,
)
from nas.space._base import Param, SearchSpace, allowed, check_in
from nas.space._kinds import block_kind, kind_names


@dataclass(frozen=True)
class Task:
    """What the network solves: ``image`` (C, H, W) or ``sequence`` (C, L) classification, or
    ``text`` (CONTEXT,): next-byte prediction at every position of a window (a causal language
    model; ``num_classes`` is 256, the vocabulary's upper bound)."""

    kind: str
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True)
class BlockSettings:
    """Fixed (non-searched) sizes shared by all layers of a space."""

    attention_head_dim: int = 16
    ssm_head_dim: int = 8
    ssm_conv: int = 4
    moe_ratio: int = 2
    moe_capacity: float = 1.25
    stem_channels: int = 16
    stem_strides: tuple[int, ...] = (2, 2)
    causal: bool = False  # a text space's blocks see only earlier tokens (set from the task kind)


@dataclass(frozen=True)
class StageSpec:
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    mixers: tuple[Mixer, ...]
    ffns: tuple[Ffn, ...]
    downsample: bool

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def max_width(self) -> int:
        return max(self.widths)

    def mixer_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in kind_names("mixer") if any(m.kind == k for m in self.mixers))

    def ffn_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in kind_names("ffn") if any(f.kind == k for f in self.ffns))


def downsampled(grid: tuple[int, ...], stride: int) -> tuple[int, ...]:
    """The grid after a k3/p1 conv of this stride (ceil division)."""
    return tuple(-(-g // stride) for g in grid)


def stage_grids(grid: tuple[int, ...], stem_strides: tuple[int, ...], downsample: tuple[bool, ...]) -> list[tuple[int, ...]]:
    """The token grid each stage runs on, for an input of spatial shape ``grid``: after the stem's
    strides, and halved again (ceil) at every stage that downsamples. Plain ints, so exported
    graphs have fixed shapes."""
    for stride in stem_strides:
        grid = downsampled(grid, stride)
    out = []
    for i, down in enumerate(downsample):
        if i > 0 and down:
            grid = downsampled(grid, 2)
        out.append(tuple(int(g) for g in grid))
    return out


def layer_cost(layer: Layer, width: int, settings: BlockSettings) -> float:
    """Active multiply-accumulates per token of a layer, ignoring sequence-length terms (each
    kind's ``cost`` in the table). Used only to order options (the "largest" and "smallest"
    subnets), never as a metric."""
    return sum(block_kind(op.kind).cost(op, width, settings) for op in (layer.mixer, layer.ffn))


class NetSpace(SearchSpace):
    """A space of subnets of one weight-sharing supernet."""

    kind = "net"

    def __init__(
        self,
        name: str,
        task: Task,
        stages: tuple[StageSpec, ...],
        settings: BlockSettings,
        description: str = "",
        source_text: str = "",
        recipe: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.recipe = dict(recipe or {})  # the space's defaults for ``nas supernet train``
        self.task = task
        self.stages = stages
        self.settings = settings
        self.description = description
        self.source_text = source_text

    def stage_grids(self, input_shape: tuple[int, ...] | None = None) -> list[tuple[int, ...]]:
        """The token grid of each stage for inputs of ``input_shape`` (the task's by default)."""
        shape = tuple(input_shape or self.task.input_shape)
        return stage_grids(shape if self.task.kind == "text" else shape[1:], self.settings.stem_strides, tuple(s.downsample for s in self.stages))

    # -- validation -----------------------------------------------------------------------
    def validate(self, arch: Arch) -> NetArch:
        if not isinstance(arch, NetArch):
            raise NasError(f"space {self.name!r} takes network archs (WIDTH:MIXER+FFN,...), got a plain arch")
        if len(arch.stages) != len(self.stages):
            raise NasError(
                f"arch has {len(arch.stages)} stages but space {self.name!r} has {len(self.stages)}"
            )
        for i, (stage, spec) in enumerate(zip(arch.stages, self.stages, strict=True)):
            check_in(f"arch stage {i} width", stage.width, spec.widths)
            check_in(f"arch stage {i} depth", stage.depth, spec.depths)
            for j, layer in enumerate(stage.layers):
                if layer.mixer not in spec.mixers:
                    raise NasError(
                        f"arch stage {i} layer {j} mixer: {layer.mixer.token!r} is not allowed "
                        f"(allowed: {allowed([m.token for m in spec.mixers])})"
                    )
                if layer.ffn not in spec.ffns:
                    raise NasError(
                        f"arch stage {i} layer {j} ffn: {layer.ffn.token!r} is not allowed "
                        f"(allowed: {allowed([f.token for f in spec.ffns])})"
                    )
        return arch

    # -- sampling -------------------------------------------------------------------------
    def _random_layer(self, spec: StageSpec, rng: random.Random) -> Layer:
        # Pick the kind first, then an option of that kind, so that every block type is drawn
        # equally often however many elastic options it has.
        mk = rng.choice(spec.mixer_kinds())
        fk = rng.choice(spec.ffn_kinds())
        mixer = rng.choice([m for m in spec.mixers if m.kind == mk])
        ffn = rng.choice([f for f in spec.ffns if f.kind == fk])
        return Layer(mixer, ffn)

    def sample(self, rng: random.Random) -> NetArch:
        stages = []
        for spec in self.stages:
            depth = rng.choice(spec.depths)
            stages.append(
                Stage(rng.choice(spec.widths), tuple(self._random_layer(spec, rng) for _ in range(depth)))
            )
        return NetArch(tuple(stages))

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.3) -> NetArch:
        arch = self.validate(arch)
        for _ in range(100):
            stages = []
            for stage, spec in zip(arch.stages, self.stages, strict=True):
                width, layers = stage.width, list(stage.layers)
                if rng.random() < prob and len(spec.widths) > 1:
                    width = rng.choice([w for w in spec.widths if w != width])
                if rng.random() < prob and len(spec.depths) > 1:
                    depth = rng.choice([d for d in spec.depths if d != len(layers)])
                    layers = layers[:depth] + [
                        self._random_layer(spec, rng) for _ in range(depth - len(layers))
                    ]
                for j in range(len(layers)):
                    if rng.random() < prob:
                        fresh = self._random_layer(spec, rng)
                        # Change the mixer or the ffn, not always both.
                        layers[j] = (
                            Layer(fresh.mixer, layers[j].ffn)
                            if rng.random() < 0.5
                            else Layer(layers[j].mixer, fresh.ffn)
                        )
                stages.append(Stage(width, tuple(layers)))
            child = NetArch(tuple(stages))
            if child != arch:
                return child
        return self.sample(rng)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> NetArch:
        a, b = self.validate(a), self.validate(b)
        stages = []
        for sa, sb in zip(a.stages, b.stages, strict=True):
            width = rng.choice((sa.width, sb.width))
            depth = rng.choice((sa.depth, sb.depth))
            layers = []
            for j in range(depth):
                options = [s.layers[j] for s in (sa, sb) if j < s.depth]
                layers.append(rng.choice(options))
            stages.append(Stage(width, tuple(layers)))
        return NetArch(tuple(stages))

    def size(self) -> int:
        total = 1
        for spec in self.stages:
            per_layer = len(spec.mixers) * len(spec.ffns)
            total *= sum(len(spec.widths) * per_layer**d for d in spec.depths)
        return total

    # -- named extremes ---------------------------------------------------------------------
    def _extreme(self, pick: Any) -> NetArch:
        stages = []
        for spec in self.stages:
            width = pick(spec.widths)
            depth = pick(spec.depths)
            best = pick(
                [Layer(m, f) for m in spec.mixers for f in spec.ffns],
                key=lambda la, w=width: layer_cost(la, w, self.settings),
            )
            stages.append(Stage(width, (best,) * depth))
        return NetArch(tuple(stages))

    def extremes(self) -> list[Arch]:
        return [self.largest(), self.smallest()]

    def largest(self) -> NetArch:
        """Every width and depth at its maximum, every layer the costliest option."""
        return self._extreme(max)

    def smallest(self) -> NetArch:
        """Every width and depth at its minimum, every layer the cheapest option."""
        return self._extreme(min)

    def uniform(self, mixer_kind: str, ffn_kind: str, largest: bool) -> NetArch:
        """The largest (or smallest) subnet whose layers all use one mixer kind and ffn kind."""
        pick = max if largest else min
        stages = []
        for spec in self.stages:
            width, depth = pick(spec.widths), pick(spec.depths)
            options = [
                Layer(m, f)
                for m in spec.mixers
                for f in spec.ffns
                if m.kind == mixer_kind and f.kind == ffn_kind
            ]
            if not options:
                options = [Layer(m, f) for m in spec.mixers for f in spec.ffns]
            best = pick(options, key=lambda la, w=width: layer_cost(la, w, self.settings))
            stages.append(Stage(width, (best,) * depth))
        return NetArch(tuple(stages))

    # -- flat view for samplers -------------------------------------------------------------
    def params(self) -> list[Param]:
        out: list[Param] = []
        for i, spec in enumerate(self.stages):
            out.append(Param.of(f"s{i}.depth", spec.depths))
            out.append(Param.of(f"s{i}.width", spec.widths))
            for j in range(spec.max_depth):
                out.append(Param.of(f"s{i}.l{j}.mixer", tuple(m.token for m in spec.mixers)))
                out.append(Param.of(f"s{i}.l{j}.ffn", tuple(f.token for f in spec.ffns)))
        return out

    def encode(self, arch: Arch) -> dict[str, Any]:
        arch = self.validate(arch)
        values: dict[str, Any] = {}
        for i, (stage, spec) in enumerate(zip(arch.stages, self.stages, strict=True)):
            values[f"s{i}.depth"] = stage.depth
            values[f"s{i}.width"] = stage.width
            for j in range(spec.max_depth):
                # Layers past the depth are unused; give them a fixed filler so that one arch
                # always encodes the same way.
                layer = stage.layers[j] if j < stage.depth else Layer(spec.mixers[0], spec.ffns[0])
                values[f"s{i}.l{j}.mixer"] = layer.mixer.token
                values[f"s{i}.l{j}.ffn"] = layer.ffn.token
        return values

    def decode(self, values: dict[str, Any]) -> NetArch:
        stages = []
        for i, spec in enumerate(self.stages):
            try:
                depth = int(values[f"s{i}.depth"])
                width = int(values[f"s{i}.width"])
                mixers = {m.token: m for m in spec.mixers}
                ffns = {f.token: f for f in spec.ffns}
                layers = tuple(
                    Layer(mixers[values[f"s{i}.l{j}.mixer"]], ffns[values[f"s{i}.l{j}.ffn"]])
                    for j in range(depth)
                )
            except KeyError as exc:
                raise NasError(f"space {self.name!r}: parameter values lack or mistype {exc}") from None
            stages.append(Stage(width, layers))
        return self.validate(NetArch(tuple(stages)))

    def describe(self) -> list[tuple[str, str]]:
        t = self.task
        if t.kind == "text":
            rows = [("task", f"causal byte-level language model, context {t.input_shape[0]} bytes, "
                             f"default dataset {t.dataset}"),
                    ("embedding", "bytes embedded at the first stage's width, shared with the output head")]
        else:
            rows = [
                ("task", f"{t.kind} classification, input {'x'.join(map(str, t.input_shape))}, "
                         f"{t.num_classes} classes, default dataset {t.dataset}"),
                ("stem", f"{self.settings.stem_channels} channels, strides {list(self.settings.stem_strides)}"),
            ]
        for i, spec in enumerate(self.stages):
            rows.append((f"stage {i} depth", allowed(spec.depths)))
            rows.append((f"stage {i} width", allowed(spec.widths)))
            rows.append((f"stage {i} mixers", allowed([m.token for m in spec.mixers])))
            rows.append((f"stage {i} ffns", allowed([f.token for f in spec.ffns])))
        s = self.settings
        rows.append(("fixed", f"attention head dim {s.attention_head_dim}, ssm head dim {s.ssm_head_dim}, "
                              f"ssm conv {s.ssm_conv}, moe ratio {s.moe_ratio}, moe capacity factor {s.moe_capacity}"))
        if self.recipe:
            rows.append(("training defaults", ", ".join(f"{k} {v}" for k, v in self.recipe.items())))
        n = self.size()
        rows.append(("subnets", f"{n:,}" if n < 10**12 else f"{n:.3e} (about 10^{int(math.log10(n))})"))
        return rows

"""Per-arch metrics: parameters, MACs, peak int8 activation memory and int8 flash.

:func:`subnet_metrics` analyses one extracted subnet's whole ONNX graph.
:class:`MetricsModel` computes the same numbers by analysing each distinct unit once and
composing: parameters, MACs and flash add up; peak memory is the largest unit peak, because
between units only the one tensor that flows on is alive. Tests check the two agree.

Flash counts every parameter tensor of two or more dimensions at one byte per element (int8)
and every 1-D one at four bytes (int32 biases, norm parameters); see :mod:`nas.graph`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from nas.graph import analyze
from nas.space import NetArch, NetSpace
from nas.supernet.model import Subnet, Supernet
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import Unit, UnitCache, unit_module


@dataclass(frozen=True)
class ArchMetrics:
    params: int
    macs: int
    peak_sram_kb: float
    flash_kb: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def flash_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * (1 if p.dim() >= 2 else 4) for p in module.parameters())


def subnet_metrics(subnet: Subnet, x: np.ndarray | None = None) -> ArchMetrics:
    """Metrics of one extracted subnet from its whole exported graph."""
    example = torch.zeros(1, *subnet.input_shape)
    stats = analyze(to_onnx(subnet, example), x)
    return ArchMetrics(subnet.num_params(), stats.macs, round(stats.peak_sram_kb, 3), round(flash_bytes(subnet) / 1024, 3))


@dataclass(frozen=True)
class UnitStats:
    params: int
    macs: int
    peak_bytes: int
    flash_bytes: int


class MetricsModel:
    """Metrics for many archs of one supernet, from cached per-unit analyses."""

    def __init__(self, net: Supernet, space: NetSpace, input_shape: tuple[int, ...] | None = None) -> None:
        self.net, self.space = net, space
        self.input_shape = tuple(input_shape or space.task.input_shape)
        self.cache: dict[str, UnitStats] = {}
        self._params: dict[str, int] = {}
        self._units = UnitCache.of(space, self.input_shape)

    def params(self, arch: NetArch) -> int:
        """The parameter count alone, without the ONNX analysis the other metrics need (the same
        count as ``self(arch).params``)."""
        total = 0
        for unit in self._units.units(arch):
            count = self.cache[unit.key].params if unit.key in self.cache else self._params.get(unit.key)
            if count is None:
                count = self._params[unit.key] = sum(p.numel() for p in unit_module(self.net, unit)[0].parameters())
            total += count
        return total

    def unit(self, unit: Unit) -> UnitStats:
        if unit.key not in self.cache:
            module, shape = unit_module(self.net, unit)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            stats = analyze(to_onnx(module, torch.from_numpy(x)), x)
            params = sum(p.numel() for p in module.parameters())
            self.cache[unit.key] = UnitStats(params, stats.macs, stats.peak_activation_bytes, flash_bytes(module))
        return self.cache[unit.key]

    def __call__(self, arch: NetArch) -> ArchMetrics:
        stats = [self.unit(u) for u in self._units.units(arch)]
        return ArchMetrics(
            params=sum(s.params for s in stats),
            macs=sum(s.macs for s in stats),
            peak_sram_kb=round(max(s.peak_bytes for s in stats) / 1024, 3),
            flash_kb=round(sum(s.flash_bytes for s in stats) / 1024, 3),
        )

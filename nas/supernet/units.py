"""Each unit of a subnet (:mod:`nas.space._units`: the stem, each layer's mixer and ffn with
their residual adds, the downsamplings and the head) as a module of its own, exported to ONNX
from the same code the subnet runs (:func:`unit_module`)."""

from __future__ import annotations

import torch
from torch import nn

from nas.space import Unit, UnitCache, all_units, arch_units, parse_ffn_or_mixer  # noqa: F401 (re-exported)
from nas.supernet.model import Supernet


class _Residual(nn.Module):
    """``x + block(x)`` at a fixed grid, width and option: one layer's mixer or ffn half."""

    def __init__(self, block: nn.Module, grid: tuple[int, ...], width: int, option) -> None:
        super().__init__()
        self.block, self.grid, self.width, self.option = block, grid, width, option

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x, self.grid, self.width, self.option)


class _Call(nn.Module):
    def __init__(self, block: nn.Module, *args) -> None:
        super().__init__()
        self.block, self.args = block, args

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, *self.args)


def unit_module(net: Supernet, unit: Unit) -> tuple[nn.Module, tuple[int, ...]]:
    """A standalone module for ``unit`` with weights from ``net`` (on its device), and its input shape (batch 1)."""
    with torch.device(next(net.parameters()).device):
        return _unit_module(net, unit)


def _unit_module(net: Supernet, unit: Unit) -> tuple[nn.Module, tuple[int, ...]]:
    tokens_shape = (1, unit.tokens, unit.in_width)
    if unit.kind == "stem":
        return _Call(net.stem.extract(unit.width), unit.width), (1, unit.in_width, *unit.grid)
    if unit.kind == "down":
        block = net.downsamples[unit.stage - 1].extract(unit.in_width, unit.width)
        return _Call(block, unit.grid, unit.in_width, unit.width), tokens_shape
    if unit.kind == "head":
        return _Call(net.head.extract(unit.width), unit.width), tokens_shape
    option = parse_ffn_or_mixer(unit.op)
    layer = net.stages[unit.stage][0]
    table = layer.mixers if unit.kind == "mixer" else layer.ffns
    block = table[option.kind].extract(unit.width, option)
    return _Residual(block, unit.grid, unit.width, option), tokens_shape

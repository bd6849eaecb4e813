"""The block registry: which module class runs each block kind of :mod:`nas.space._kinds`.

A block class is registered with ``@register_block("kind")`` in its own file and offers

- ``build(op, max_width, settings, spatial_dims)``: the supernet's module for the kind, sized
  for ``op`` (the largest value of every field among the space's options) and ``max_width``;
- ``forward(x, grid, width, op)`` for a mixer, ``forward(x, grid, width, op, aux)`` for an ffn
  (``aux`` receives auxiliary losses), on tokens (batch, length, channels);
- ``extract(width, op)``: a standalone copy at exactly these sizes whose output is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from nas.errors import NasError
from nas.space import BlockSettings, Op, block_kind


@dataclass
class Aux:
    """What a forward pass collects besides its output: the ffns' auxiliary losses (MoE load
    balancing, added to the training loss) and, when ``margins`` is a list, each MoE layer's
    per-sample routing margin (how close a token came to being routed another way; the ONNX
    parity check leaves out samples on a tie)."""

    losses: list[torch.Tensor] = field(default_factory=list)
    margins: list[torch.Tensor] | None = None


_BLOCKS: dict[str, type] = {}


def register_block(kind: str):
    """Class decorator: the module class of block kind ``kind`` (which must be in the table)."""

    def decorate(cls: type) -> type:
        block_kind(kind)
        if kind in _BLOCKS and _BLOCKS[kind] is not cls:
            raise NasError(f"block kind {kind!r} already has a module ({_BLOCKS[kind].__name__})")
        _BLOCKS[kind] = cls
        return cls

    return decorate


def unregister_block(kind: str) -> None:
    _BLOCKS.pop(kind, None)


@contextmanager
def registered_block(kind: str, cls: type) -> Iterator[type]:
    register_block(kind)(cls)
    try:
        yield cls
    finally:
        unregister_block(kind)


def block_class(kind: str) -> type:
    cls = _BLOCKS.get(kind)
    if cls is None:
        raise NasError(f"no block module is registered for kind {kind!r} (registered: {', '.join(_BLOCKS)})")
    return cls


def build_block(op: Op, max_width: int, settings: BlockSettings, spatial_dims: int) -> nn.Module:
    """The supernet module for kind ``op.kind``, holding every option up to ``op`` and ``max_width``."""
    return block_class(op.kind).build(op, max_width, settings, spatial_dims)

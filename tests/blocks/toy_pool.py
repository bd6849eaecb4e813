"""A toy block kind for the test that a kind is one table entry and one block file: average
pooling over a window of tokens (PoolFormer's token mixer), then a pointwise linear."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._slice import ElasticLayerNorm, ElasticLinear
from nas.space import BlockKind, BlockSettings, Mixer

POOL_KIND = BlockKind(
    "pool", "mixer", token="pool{size}", fields=("size",), odd=("size",), colour="#9467bd",
    cost=lambda op, width, settings: op.size * width + width * width,
    description="average pooling over SIZE tokens, then a pointwise linear")


class PoolMixer(nn.Module):
    """Pre-norm average pooling along the token sequence (window ``size``, same length out)."""

    def __init__(self, max_width: int) -> None:
        super().__init__()
        self.norm = ElasticLayerNorm(max_width)
        self.pw = ElasticLinear(max_width, max_width)

    @classmethod
    def build(cls, op: Mixer, max_width: int, settings: BlockSettings, spatial_dims: int) -> PoolMixer:
        return cls(max_width)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], width: int, mixer: Mixer) -> torch.Tensor:
        h = self.norm(x, width).transpose(1, 2)  # (B, C, L)
        h = F.avg_pool1d(h, mixer.size, stride=1, padding=mixer.size // 2, count_include_pad=False)
        return self.pw(h.transpose(1, 2), width, width)

    def extract(self, width: int, mixer: Mixer) -> PoolMixer:
        new = PoolMixer(width)
        new.norm = self.norm.extract(width)
        new.pw = self.pw.extract(width, width)
        return new

"""Two-layer MLP channel ffn.

Elastic: the model width slices inputs and outputs; the hidden size is ``ratio x width`` and
uses the leading hidden units of the largest layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._registry import Aux, register_block
from nas.blocks._slice import ElasticLayerNorm, ElasticLinear
from nas.space import BlockSettings, Ffn


@register_block("mlp")
class MlpFfn(nn.Module):
    """Pre-norm Linear -> GELU -> Linear."""

    def __init__(self, max_width: int, max_ratio: int) -> None:
        super().__init__()
        self.norm = ElasticLayerNorm(max_width)
        self.fc1 = ElasticLinear(max_width, max_ratio * max_width)
        self.fc2 = ElasticLinear(max_ratio * max_width, max_width)

    @classmethod
    def build(cls, op: Ffn, max_width: int, settings: BlockSettings, spatial_dims: int) -> MlpFfn:
        return cls(max_width, op.ratio)

    def forward(
        self, x: torch.Tensor, grid: tuple[int, ...], width: int, ffn: Ffn, aux: Aux | None = None
    ) -> torch.Tensor:
        hidden = ffn.ratio * width
        return self.fc2(F.gelu(self.fc1(self.norm(x, width), width, hidden)), hidden, width)

    def extract(self, width: int, ffn: Ffn) -> MlpFfn:
        ratio = ffn.ratio
        new = MlpFfn(width, ratio)
        new.norm = self.norm.extract(width)
        new.fc1 = self.fc1.extract(width, ratio * width)
        new.fc2 = self.fc2.extract(ratio * width, width)
        return new

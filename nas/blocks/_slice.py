"""Weight slicing helpers: every elastic block shares the leading slice of its largest weights.

Slicing is skipped when the slice is the whole tensor, so an extracted block (built at its
exact size) traces to an ONNX graph without Slice nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lead(t: torch.Tensor, *sizes: int) -> torch.Tensor:
    """The leading ``sizes`` slice of ``t`` along its first dimensions (a view, never a copy)."""
    index = tuple(slice(None) if s == t.shape[i] else slice(0, s) for i, s in enumerate(sizes))
    if all(s == slice(None) for s in index):
        return t
    return t[index]


class ElasticLinear(nn.Module):
    """A linear layer of at most ``max_in`` -> ``max_out`` features; smaller ones use the leading slice."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, in_features: int, out_features: int) -> torch.Tensor:
        w = lead(self.weight, out_features, in_features)
        b = lead(self.bias, out_features) if self.bias is not None else None
        return F.linear(x, w, b)

    def extract(self, in_features: int, out_features: int) -> ElasticLinear:
        new = ElasticLinear(in_features, out_features, bias=self.bias is not None)
        with torch.no_grad():
            new.weight.copy_(self.weight[:out_features, :in_features])
            if self.bias is not None:
                new.bias.copy_(self.bias[:out_features])
        return new


class ElasticLayerNorm(nn.Module):
    """LayerNorm over the last dimension (at most ``max_dim``); smaller widths use the leading affine slice."""

    def __init__(self, max_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return F.layer_norm(x, (dim,), lead(self.weight, dim), lead(self.bias, dim), self.eps)

    def extract(self, dim: int) -> ElasticLayerNorm:
        new = ElasticLayerNorm(dim, self.eps)
        with torch.no_grad():
            new.weight.copy_(self.weight[:dim])
            new.bias.copy_(self.bias[:dim])
        return new

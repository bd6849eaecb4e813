"""Weight slicing helpers: every elastic block shares the leading slice of its largest weights.

Slicing is skipped when the slice is the whole tensor, so an extracted block (built at its
exact size) traces to an ONNX graph without Slice nodes.

Extraction has one idiom: a leaf (the elastic layers here) is built at its exact size and its
leading slice copied in; a container is :func:`assemble`-d from its parts' extractions, never
built at full size and then overwritten.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

M = TypeVar("M", bound=nn.Module)


def assemble(cls: type[M], **parts: Any) -> M:
    """An instance of the container module ``cls`` holding ``parts`` (extracted submodules and
    plain attributes) and nothing else: how every container extracts a subnet of itself."""
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    for name, value in parts.items():
        setattr(new, name, value)
    return new


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


class ElasticConv(nn.Module):
    """A dense conv (k3, padding 1) whose in and out channels are elastic leading slices."""

    def __init__(self, max_in: int, max_out: int, stride: int, spatial_dims: int) -> None:
        super().__init__()
        self.stride, self.spatial_dims = stride, spatial_dims
        self.weight = nn.Parameter(torch.empty((max_out, max_in) + (3,) * spatial_dims))
        self.bias = nn.Parameter(torch.zeros(max_out))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: torch.Tensor, in_channels: int, out_channels: int) -> torch.Tensor:
        conv = F.conv2d if self.spatial_dims == 2 else F.conv1d
        w = lead(self.weight, out_channels, in_channels)
        return conv(x, w, lead(self.bias, out_channels), stride=self.stride, padding=1)

    def extract(self, in_channels: int, out_channels: int) -> ElasticConv:
        new = ElasticConv(in_channels, out_channels, self.stride, self.spatial_dims)
        with torch.no_grad():
            new.weight.copy_(self.weight[:out_channels, :in_channels])
            new.bias.copy_(self.bias[:out_channels])
        return new

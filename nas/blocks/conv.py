"""Depthwise-conv token mixer.

Elastic: channels use the leading slice of every weight; a smaller kernel uses the centre
crop of the largest kernel (Once-for-All's choice, without its transform matrices). In a causal
(text) space the window ends at the current token, and a smaller kernel keeps the taps nearest to it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._registry import register_block
from nas.blocks._slice import ElasticLayerNorm, ElasticLinear, lead
from nas.blocks.ssm import conv_over_window, conv_window
from nas.space import BlockSettings, Mixer


def centre_crop(weight: torch.Tensor, kernel: int, causal: bool = False) -> torch.Tensor:
    """The centre ``kernel`` (x ``kernel``) window of a depthwise weight (C, 1, K[, K]); with
    ``causal`` (1-D only), the last ``kernel`` taps, those of the nearest tokens."""
    full = weight.shape[-1]
    if kernel == full:
        return weight
    if causal:
        return weight[..., full - kernel :]
    lo = (full - kernel) // 2
    window = slice(lo, lo + kernel)
    return weight[..., window, window] if weight.dim() == 4 else weight[..., window]


@register_block("conv")
class ConvMixer(nn.Module):
    """Pre-norm depthwise conv (k x k on images, k on sequences, k earlier tokens when causal),
    GELU, pointwise linear."""

    def __init__(self, max_width: int, max_kernel: int, spatial_dims: int, causal: bool = False) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.causal = causal
        self.norm = ElasticLayerNorm(max_width)
        shape = (max_width, 1) + (max_kernel,) * spatial_dims
        self.dw_weight = nn.Parameter(torch.empty(shape))
        self.dw_bias = nn.Parameter(torch.zeros(max_width))
        self.pw = ElasticLinear(max_width, max_width)
        nn.init.kaiming_uniform_(self.dw_weight, a=5**0.5)

    @classmethod
    def build(cls, op: Mixer, max_width: int, settings: BlockSettings, spatial_dims: int) -> ConvMixer:
        return cls(max_width, op.kernel, spatial_dims, settings.causal)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], width: int, mixer: Mixer) -> torch.Tensor:
        if self.causal:  # from the start of the sequence: a prefill whose state is not kept
            return self.forward_cached(x, width, mixer, None)[0]
        kernel, length = mixer.kernel, math.prod(grid)
        h = self.norm(x, width).transpose(1, 2).reshape(-1, width, *grid)
        w = centre_crop(lead(self.dw_weight, width), kernel)
        conv = F.conv2d if self.spatial_dims == 2 else F.conv1d
        h = conv(h, w, lead(self.dw_bias, width), padding=kernel // 2, groups=width)
        h = F.gelu(h.reshape(-1, width, length).transpose(1, 2))
        return self.pw(h, width, width)

    def forward_cached(self, x: torch.Tensor, width: int, mixer: Mixer,
                       cache: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Causal only: the output for tokens ``x`` after the ``kernel - 1`` normalised inputs a
        decode state ``cache`` holds (B, width, kernel - 1), and the state after them."""
        kernel, length = mixer.kernel, x.shape[1]
        h = self.norm(x, width).transpose(1, 2)  # (B, width, L)
        window = conv_window(h, kernel, None if cache is None else cache[0])
        w = centre_crop(lead(self.dw_weight, width), kernel, causal=True)
        h = conv_over_window(window, w, lead(self.dw_bias, width))
        return self.pw(F.gelu(h.transpose(1, 2)), width, width), (window[..., length:],)

    def extract(self, width: int, mixer: Mixer) -> ConvMixer:
        kernel = mixer.kernel
        new = ConvMixer(width, kernel, self.spatial_dims, self.causal)
        with torch.no_grad():
            new.norm = self.norm.extract(width)
            new.dw_weight.copy_(centre_crop(self.dw_weight[:width], kernel, self.causal))
            new.dw_bias.copy_(self.dw_bias[:width])
            new.pw = self.pw.extract(width, width)
        return new

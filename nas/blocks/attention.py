"""Multi-head self-attention token mixer.

Elastic: the model width slices the input and output features; fewer heads use the leading
heads of the fused q/k/v weight (the head dimension is fixed by the space).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._registry import register_block
from nas.blocks._slice import ElasticLayerNorm, ElasticLinear, lead
from nas.space import BlockSettings, Mixer


@register_block("attention")
class AttentionMixer(nn.Module):
    """Pre-norm multi-head attention through ``scaled_dot_product_attention`` (exports with a dynamic length)."""

    def __init__(self, max_width: int, max_heads: int, head_dim: int, causal: bool = False) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.causal = causal  # each token attends to itself and the tokens before it (text spaces)
        self.norm = ElasticLayerNorm(max_width)
        self.qkv_weight = nn.Parameter(torch.empty(3, max_heads, head_dim, max_width))
        self.qkv_bias = nn.Parameter(torch.zeros(3, max_heads, head_dim))
        self.proj = ElasticLinear(max_heads * head_dim, max_width)
        nn.init.trunc_normal_(self.qkv_weight, std=0.02)

    @classmethod
    def build(cls, op: Mixer, max_width: int, settings: BlockSettings, spatial_dims: int) -> AttentionMixer:
        return cls(max_width, op.heads, settings.attention_head_dim, settings.causal)

    def _qkv(self, x: torch.Tensor, width: int, heads: int, length: int) -> torch.Tensor:
        """Queries, keys and values (3, B, heads, length, head_dim) of the normalised tokens."""
        hd = self.head_dim
        w = lead(self.qkv_weight, 3, heads, hd, width).reshape(3 * heads * hd, width)
        b = lead(self.qkv_bias, 3, heads, hd).reshape(3 * heads * hd)
        return F.linear(self.norm(x, width), w, b).reshape(-1, length, 3, heads, hd).permute(2, 0, 3, 1, 4)

    def _out(self, out: torch.Tensor, width: int, heads: int, length: int) -> torch.Tensor:
        inner = heads * self.head_dim
        return self.proj(out.transpose(1, 2).reshape(-1, length, inner), inner, width)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], width: int, mixer: Mixer) -> torch.Tensor:
        heads, length = mixer.heads, math.prod(grid)
        qkv = self._qkv(x, width, heads, length)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=self.causal)
        return self._out(out, width, heads, length)

    def forward_cached(self, x: torch.Tensor, width: int, mixer: Mixer,
                       cache: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Causal only: the output for tokens ``x`` after those whose keys and values ``cache``
        holds ((B, heads, S, head_dim) each: the KV cache, which grows by one a token), and the
        cache with them. ``cache`` None: a prefill of any length; else one token."""
        heads, length = mixer.heads, x.shape[1]
        q, k, v = self._qkv(x, width, heads, length)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # one new token sees every cached one: no mask
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            out = F.scaled_dot_product_attention(q, k, v)
        return self._out(out, width, heads, length), (k, v)

    def extract(self, width: int, mixer: Mixer) -> AttentionMixer:
        heads = mixer.heads
        new = AttentionMixer(width, heads, self.head_dim, self.causal)
        with torch.no_grad():
            new.norm = self.norm.extract(width)
            new.qkv_weight.copy_(self.qkv_weight[:, :heads, :, :width])
            new.qkv_bias.copy_(self.qkv_bias[:, :heads])
            new.proj = self.proj.extract(heads * self.head_dim, width)
        return new

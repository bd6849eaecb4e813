"""Top-k routed mixture-of-experts channel ffn with a fixed expert capacity.

Each token goes to its ``top_k`` highest-scoring experts (softmax router; gates are the
router probabilities, as in Switch/GShard). Each expert processes a fixed number of token
slots per sample, its *capacity* ``ceil(capacity_factor * L * top_k / experts)`` (at most
``L``): it gathers the tokens routed to it with the highest gates, runs on them, and
scatters the gated results back. Tokens beyond an expert's capacity are dropped from it
(their residual connection carries them), as in Switch Transformer. Compute therefore grows
with ``top_k``, not with the number of experts, and every shape is static, which is what
static-memory runtimes (microcontrollers) need and what keeps memory planning exact.

Routing is a discrete choice, so two runtimes whose arithmetic differs in the last bits can
route a token differently when its gates are that close, and then legitimately disagree on
that sample's output. Given an :class:`~nas.blocks.Aux` with ``margins``, a forward pass
records per sample the smallest such gap (between the last expert a token took and the first
it left out, and between the last token an expert kept within its capacity and the first it
dropped); exactly equal gates are not counted, position breaks those ties the same way in
every runtime.

In a causal (text) space no token is dropped: an expert's capacity is the whole sequence, since
which tokens a capacity keeps depends on later tokens, which a causal model must not see (and a
decode step of one token would route differently from the prefill). Compute then grows with the
number of experts in this dense form, except on one token (a decode step): then only the
``top_k`` chosen experts' weights are gathered and run, which computes the same sum.

Elastic: the model width slices every weight; fewer experts use the leading experts and the
leading router rows; the expert hidden size is ``moe_ratio x width`` (leading units).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._registry import Aux, register_block
from nas.blocks._slice import ElasticLayerNorm, ElasticLinear
from nas.space import BlockSettings, Ffn


def _gap(values: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Per row, the gap between the k-th and (k+1)-th largest along ``dim`` (inf when there is no (k+1)-th)."""
    if values.shape[dim] <= k:
        return torch.full(values.shape[:dim], math.inf, device=values.device)
    top = values.topk(k + 1, dim=dim).values
    return top.select(dim, k - 1) - top.select(dim, k)


def _drop_margin(score: torch.Tensor, key: torch.Tensor, cap: int) -> torch.Tensor:
    """Per sample (and expert, for any trailing dims), the gap between the gates of the last token
    an expert keeps within ``cap`` and the first it drops, tokens along dim 1 ordered by ``key``.
    Equal gates are safe (position decides), gates a rounding apart are not, and only a drop
    between routed tokens matters: inf where the gap is 0 or the expert drops no routed token."""
    edge = score.gather(1, key.topk(cap + 1, dim=1).indices[:, cap - 1 :])  # (B, 2, ...)
    gap = (edge[:, 0] - edge[:, 1]).abs()
    risky = ((score > 0).sum(1) > cap) & (gap > 0)
    return torch.where(risky, gap, torch.full_like(gap, math.inf))


@register_block("moe")
class MoeFfn(nn.Module):
    """Pre-norm top-k MoE; ``aux`` (a list, when given) receives the load-balancing loss."""

    def __init__(self, max_width: int, max_experts: int, ratio: int, capacity_factor: float = 1.25,
                 causal: bool = False) -> None:
        super().__init__()
        self.ratio = ratio
        self.capacity_factor = capacity_factor
        self.causal = causal
        hidden = ratio * max_width
        self.norm = ElasticLayerNorm(max_width)
        self.router = ElasticLinear(max_width, max_experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(max_experts, hidden, max_width))
        self.b1 = nn.Parameter(torch.zeros(max_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(max_experts, max_width, hidden))
        self.b2 = nn.Parameter(torch.zeros(max_experts, max_width))
        nn.init.trunc_normal_(self.w1, std=0.02)
        nn.init.trunc_normal_(self.w2, std=0.02)

    @classmethod
    def build(cls, op: Ffn, max_width: int, settings: BlockSettings, spatial_dims: int) -> MoeFfn:
        return cls(max_width, op.experts, settings.moe_ratio, settings.moe_capacity, settings.causal)

    @staticmethod
    def _tie_break(length: int, like: torch.Tensor) -> torch.Tensor:
        # 4 ulps of a gate near 1 per position, on the gates' device (a CPU tensor here stopped CUDA runs)
        return torch.arange(length, dtype=like.dtype, device=like.device) * 2.0**-21

    def capacity(self, length: int, experts: int, top_k: int) -> int:
        if self.causal:
            return length
        return min(length, math.ceil(self.capacity_factor * length * top_k / experts))

    def forward(
        self, x: torch.Tensor, grid: tuple[int, ...], width: int, ffn: Ffn, aux: Aux | None = None
    ) -> torch.Tensor:
        experts, top_k = ffn.experts, ffn.top_k
        cap = self.capacity(math.prod(grid), experts, top_k)
        h = self.norm(x, width)  # (B, L, C)
        probs = F.softmax(self.router(h, width, experts), dim=-1)  # (B, L, E)
        gate, choice = probs.topk(top_k, dim=-1)
        margins = aux.margins if aux is not None else None
        if margins is not None:
            margins.append(_gap(probs, top_k, -1).amin(-1))  # (B,): closest expert choice
        # One set of batched ops for every expert in PyTorch (no Python loop, a few kernel launches
        # on a GPU); one expert after another in an ONNX export, where only one expert's hidden
        # activations are live at a time (a microcontroller's peak memory) and the graph is the one
        # the latency profiles were measured on. Both compute the same thing (tests/blocks/test_elastic.py).
        if self.causal and h.shape[1] == 1:  # a decode step: the chosen experts only
            out = self._chosen_experts(h, gate, choice, width, ffn)
        else:
            route = self._experts_in_turn if torch.onnx.is_in_onnx_export() else self._experts_at_once
            out = route(h, gate, choice, width, ffn, cap, margins)
        if aux is not None:
            # Switch-Transformer balance loss: experts * sum_e (share routed to e) * (mean prob of e).
            share = F.one_hot(choice, experts).float().sum(-2).mean((0, 1)) / top_k
            aux.losses.append(experts * (share * probs.mean((0, 1))).sum())
        return out

    def _expert_weights(self, width: int, ffn: Ffn) -> tuple[torch.Tensor, ...]:
        """The leading ``experts`` experts' weights at ``width``: (E, H, C), (E, H), (E, C, H), (E, C)."""
        experts, hidden = ffn.experts, self.ratio * width
        return (self.w1[:experts, :hidden, :width], self.b1[:experts, :hidden],
                self.w2[:experts, :width, :hidden], self.b2[:experts, :width])

    def _experts_at_once(self, h: torch.Tensor, gate: torch.Tensor, choice: torch.Tensor, width: int, ffn: Ffn,
                         cap: int, margins: list[torch.Tensor] | None) -> torch.Tensor:
        batch, length = h.shape[:2]
        experts = ffn.experts
        score = torch.zeros(batch, length, experts, dtype=gate.dtype, device=gate.device).scatter(-1, choice, gate)
        key = score - self._tie_break(length, score).unsqueeze(-1)  # (B, L, E), as in _experts_in_turn
        slots = key.topk(cap, dim=1).indices  # (B, cap, E)
        weight = score.gather(1, slots)
        if margins is not None and length > cap:
            margins.append(_drop_margin(score, key, cap).amin(-1))
        # Rows of the (B x L, C) tokens each expert takes, expert-major: (E x B x cap,), so that every
        # expert's slots of every sample go through one bmm per layer and come back in one index_add.
        rows = (slots + length * torch.arange(batch, device=slots.device).view(-1, 1, 1)).permute(2, 0, 1).reshape(-1)
        tokens = h.reshape(-1, width).index_select(0, rows).view(experts, -1, width)
        w1, b1, w2, b2 = self._expert_weights(width, ffn)
        y = torch.baddbmm(b1.unsqueeze(1), tokens, w1.transpose(1, 2)).view(experts, batch, cap, -1)  # (E, B, cap, H)
        # GELU sees samples first, (B, E, cap, H), as every block's activations do (NASWOT reads
        # each sample's pattern from them); a view of the same memory, no copy either way.
        y = F.gelu(y.transpose(0, 1)).transpose(0, 1).reshape(experts, batch * cap, -1)
        y = torch.baddbmm(b2.unsqueeze(1), y, w2.transpose(1, 2)) * weight.permute(2, 0, 1).reshape(experts, -1, 1)
        out = torch.zeros_like(h).reshape(-1, width)  # under autocast y may be of lower precision than h
        return out.index_add(0, rows, y.reshape(-1, width).to(out.dtype)).view_as(h)

    def _chosen_experts(self, h: torch.Tensor, gate: torch.Tensor, choice: torch.Tensor, width: int,
                        ffn: Ffn) -> torch.Tensor:
        """One token per sample, (B, 1, C): the weights of its ``top_k`` experts gathered, (B, k, H, C),
        and run as a batched matrix-vector product; the same sum as the dense form, whose other
        experts are gated by 0."""
        w1, b1, w2, b2 = self._expert_weights(width, ffn)
        c = choice[:, 0]  # (B, k)
        t = h[:, 0, :, None].unsqueeze(1)  # (B, 1, C, 1)
        y = F.gelu(torch.matmul(w1[c], t).squeeze(-1) + b1[c])  # (B, k, H)
        y = torch.matmul(w2[c], y.unsqueeze(-1)).squeeze(-1) + b2[c]  # (B, k, C)
        return (y * gate[:, 0, :, None]).sum(1, keepdim=True)

    def _experts_in_turn(self, h: torch.Tensor, gate: torch.Tensor, choice: torch.Tensor, width: int, ffn: Ffn,
                         cap: int, margins: list[torch.Tensor] | None) -> torch.Tensor:
        out = torch.zeros_like(h)
        w1, b1, w2, b2 = self._expert_weights(width, ffn)
        for e in range(ffn.experts):
            score = (gate * (choice == e)).sum(-1)  # the gate where routed to e, else 0
            # (B, cap): e's tokens with the highest gates. Equal gates (identical tokens, such as an
            # image's background) go to the earlier token: torch.topk promises no order among
            # equal values and onnxruntime broke them differently, so a few ulps per position
            # make the order explicit, the same in every runtime. The gates themselves are exact.
            key = score - self._tie_break(score.shape[1], score)
            slots = key.topk(cap, dim=1).indices
            weight = score.gather(1, slots)
            if margins is not None and score.shape[1] > cap:
                margins.append(_drop_margin(score, key, cap))
            index = slots.unsqueeze(-1).expand(-1, -1, width)
            tokens = h.gather(1, index)
            y = F.gelu(F.linear(tokens, w1[e], b1[e]))
            y = F.linear(y, w2[e], b2[e])
            out = out.scatter_add(1, index, y * weight.unsqueeze(-1))
        return out

    def extract(self, width: int, ffn: Ffn) -> MoeFfn:
        experts = ffn.experts
        hidden = self.ratio * width
        new = MoeFfn(width, experts, self.ratio, self.capacity_factor, self.causal)
        new.norm = self.norm.extract(width)
        new.router = self.router.extract(width, experts)
        with torch.no_grad():
            new.w1.copy_(self.w1[:experts, :hidden, :width])
            new.b1.copy_(self.b1[:experts, :hidden])
            new.w2.copy_(self.w2[:experts, :width, :hidden])
            new.b2.copy_(self.b2[:experts, :width])
        return new

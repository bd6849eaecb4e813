"""Selective state-space (Mamba-2 style) token mixer, in plain PyTorch.

The recurrence, per head with a scalar decay: ``h_t = exp(dt_t * a) h_{t-1} + dt_t x_t B_t^T``
and ``y_t = h_t C_t + D x_t``, where ``dt``, ``B`` and ``C`` depend on the input (selective).
:func:`selective_scan_ref` is the readable loop; :func:`selective_scan_quadratic` is the same
map as one masked quadratic form, and :func:`selective_scan` (the one blocks use) splits the
sequence into chunks, quadratic inside and recurrent across (Mamba-2's SSD algorithm). All
three export to ONNX with plain ops; tests compare every form with the loop.

Elastic: the model width slices every projection; the expansion picks the leading inner
channels (and so the leading heads); the state size picks the leading rows of the B and C
projections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks._registry import register_block
from nas.blocks._slice import ElasticLayerNorm, ElasticLinear, lead
from nas.space import BlockSettings, Mixer


def selective_scan_ref(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Reference scan. x (B, L, H, P), dt (B, L, H), a (H,), b and c (B, L, N) -> y (B, L, H, P)."""
    batch, length, heads, p = x.shape
    h = x.new_zeros(batch, heads, p, b.shape[-1])
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * a)[..., None, None]  # (B, H, 1, 1)
        inject = (dt[:, t, :, None] * x[:, t])[..., None] * b[:, t, None, None, :]  # (B, H, P, N)
        h = decay * h + inject
        ys.append((h * c[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, dim=1)


def segment_sums(a: torch.Tensor) -> torch.Tensor:
    """``out[..., t, s] = a[..., s+1] + ... + a[..., t]`` for s <= t, and -inf above the diagonal.

    Summing only the needed terms (not differences of one long cumsum) keeps it exact for
    long sequences.
    """
    length = a.shape[-1]
    rep = a.unsqueeze(-1).expand(*a.shape, length)  # rep[..., r, s] = a[..., r]
    strictly_lower = torch.ones(length, length, dtype=torch.bool, device=a.device).tril(-1)
    sums = rep.masked_fill(~strictly_lower, 0.0).cumsum(dim=-2)
    lower = torch.ones(length, length, dtype=torch.bool, device=a.device).tril(0)
    return sums.masked_fill(~lower, float("-inf"))


def selective_scan_quadratic(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """The same outputs as :func:`selective_scan_ref`, as one masked quadratic form (O(L^2))."""
    decay = torch.exp(segment_sums((dt * a).transpose(1, 2)))  # (B, H, L, L)
    scores = c @ b.transpose(1, 2)  # (B, L, L): C_t . B_s
    u = (x * dt.unsqueeze(-1)).transpose(1, 2)  # (B, H, L, P)
    return ((decay * scores.unsqueeze(1)) @ u).transpose(1, 2)


def chunk_size(length: int) -> int:
    """A chunk length for :func:`selective_scan`: a divisor of ``length`` near 8, else 8 (with padding)."""
    if length <= 16:
        return length
    divisors = [t for t in range(4, 17) if length % t == 0]
    return min(divisors, key=lambda t: abs(t - 8)) if divisors else 8


def selective_scan(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """The same outputs as :func:`selective_scan_ref`, computed chunk by chunk (Mamba-2's SSD).

    Within a chunk of ``T`` tokens the scan is a masked quadratic form; a chunk's final state
    is carried to the next ones through a short recurrence over chunks. Work is O(L T), and
    every exponent is a sum over one chunk, so it stays exact for long sequences.
    """
    batch, length, heads, p = x.shape
    n = b.shape[-1]
    chunk = chunk or chunk_size(length)
    pad = (-length) % chunk
    if pad:  # padding at the end never changes earlier (causal) outputs
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        b, c = F.pad(b, (0, 0, 0, pad)), F.pad(c, (0, 0, 0, pad))
    nc = (length + pad) // chunk
    u = (x * dt.unsqueeze(-1)).reshape(batch, nc, chunk, heads, p).permute(0, 3, 1, 2, 4)  # (B, H, nc, T, P)
    da = (dt * a).reshape(batch, nc, chunk, heads).permute(0, 3, 1, 2)  # (B, H, nc, T)
    bc, cc = b.reshape(batch, nc, chunk, n), c.reshape(batch, nc, chunk, n)
    cs = da.cumsum(-1)
    # 1. inside each chunk
    decay = torch.exp(segment_sums(da))  # (B, H, nc, T, T)
    y = (decay * (cc @ bc.transpose(-1, -2)).unsqueeze(1)) @ u  # (B, H, nc, T, P)
    if nc > 1:
        # 2. each chunk's own contribution to the state at its end
        to_end = torch.exp(cs[..., -1:] - cs)
        states = (u * to_end.unsqueeze(-1)).transpose(-1, -2) @ bc.unsqueeze(1)  # (B, H, nc, P, N)
        # 3. the state entering each chunk, carried across chunks
        chunk_decay = torch.exp(segment_sums(F.pad(cs[..., -1], (1, 0))))  # (B, H, nc+1, nc+1)
        states = torch.cat([torch.zeros_like(states[:, :, :1]), states], dim=2)
        entering = (chunk_decay @ states.flatten(-2)).unflatten(-1, (p, n))[:, :, :-1]
        # 4. what the entering state adds inside the chunk
        y = y + (cc.unsqueeze(1) @ entering.transpose(-1, -2)) * torch.exp(cs).unsqueeze(-1)
    y = y.permute(0, 2, 3, 1, 4).reshape(batch, nc * chunk, heads, p)
    return y[:, :length] if pad else y


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          past: torch.Tensor | None = None) -> torch.Tensor:
    """Causal depthwise conv1d of x (B, C, L) with weight (C, 1, K), as K shifted multiply-adds.

    Equal to ``F.conv1d(F.pad(x, (K - 1, 0)), weight, bias, groups=C)``, and several times faster
    to train on a CPU for the short kernels an SSM uses. ``past`` (B, C, K - 1), the inputs before
    ``x`` (a decode's conv state), replaces the zero padding.
    """
    return conv_over_window(conv_window(x, weight.shape[-1], past), weight, bias)


def conv_over_window(window: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The causal depthwise conv of the last ``L`` inputs of ``window`` (B, C, K - 1 + L), whose first
    ``K - 1`` columns are the inputs before them (:func:`conv_window`)."""
    kernel = weight.shape[-1]
    length = window.shape[-1] - (kernel - 1)
    out = bias.unsqueeze(-1) + weight[:, :, 0] * window[..., :length]
    for j in range(1, kernel):
        out = out + weight[:, :, j] * window[..., j : j + length]
    return out


def conv_window(x: torch.Tensor, kernel: int, past: torch.Tensor | None) -> torch.Tensor:
    """``x`` (B, C, L) after the ``kernel - 1`` inputs before it: ``past``, or zeros at the start.
    Its last ``kernel - 1`` columns are the conv state a decode carries on."""
    return F.pad(x, (kernel - 1, 0)) if past is None else torch.cat([past, x], dim=-1)


def scan_final_state(x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The state (B, H, P, N) :func:`selective_scan_ref` holds after the last token: each token's
    input decayed by the steps after it, ``sum_s exp(sum_{r>s} dt_r a) dt_s x_s B_s^T``."""
    cs = torch.cumsum(dt * a, dim=1)  # (B, L, H)
    weight = torch.exp(cs[:, -1:] - cs) * dt
    return torch.einsum("blh,blhp,bln->bhpn", weight, x, b)


def scan_step(h: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
              c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the recurrence: state h (B, H, P, N), x (B, H, P), dt (B, H), b and c (B, N)
    -> (y (B, H, P), the new state)."""
    h = torch.exp(dt * a)[..., None, None] * h + (dt[..., None] * x)[..., None] * b[:, None, None, :]
    return (h * c[:, None, None, :]).sum(-1), h


@register_block("ssm")
class SsmMixer(nn.Module):
    """Pre-norm selective SSM: in-projections, causal depthwise conv, selective scan, gate, out-projection."""

    def __init__(self, max_width: int, max_state: int, max_expand: int, head_dim: int, conv_kernel: int) -> None:
        super().__init__()
        inner, heads = max_expand * max_width, max_expand * max_width // head_dim
        self.head_dim = head_dim
        self.norm = ElasticLayerNorm(max_width)
        self.in_x = ElasticLinear(max_width, inner)
        self.in_z = ElasticLinear(max_width, inner)
        self.in_b = ElasticLinear(max_width, max_state, bias=False)
        self.in_c = ElasticLinear(max_width, max_state, bias=False)
        self.in_dt = ElasticLinear(max_width, heads, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(inner, 1, conv_kernel))
        self.conv_bias = nn.Parameter(torch.zeros(inner))
        # As in Mamba: dt starts log-uniform in [1e-3, 1e-1], decay rates a in [1, 16].
        dt = torch.exp(torch.rand(heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.a_log = nn.Parameter(torch.log(torch.empty(heads).uniform_(1, 16)))
        self.d = nn.Parameter(torch.ones(heads))
        self.out = ElasticLinear(inner, max_width)
        nn.init.kaiming_uniform_(self.conv_weight, a=5**0.5)

    @classmethod
    def build(cls, op: Mixer, max_width: int, settings: BlockSettings, spatial_dims: int) -> SsmMixer:
        return cls(max_width, op.state, op.expand, settings.ssm_head_dim, settings.ssm_conv)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], width: int, mixer: Mixer) -> torch.Tensor:
        return self._mix(x, width, mixer, None, keep_state=False)[0]

    def forward_cached(self, x: torch.Tensor, width: int, mixer: Mixer,
                       cache: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The output for tokens ``x`` after those a decode state ``cache`` (conv inputs (B, inner,
        K - 1), scan state (B, H, P, N)) has seen, and the state after them. ``cache`` None: a
        prefill of any length; else one token."""
        return self._mix(x, width, mixer, cache, keep_state=True)

    def _mix(self, x: torch.Tensor, width: int, mixer: Mixer, cache: tuple[torch.Tensor, ...] | None,
             keep_state: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        state, length, inner = mixer.state, x.shape[1], mixer.expand * width
        heads, p = inner // self.head_dim, self.head_dim
        h = self.norm(x, width)
        xs = self.in_x(h, width, inner).transpose(1, 2)  # (B, inner, L)
        conv_w = lead(self.conv_weight, inner)
        window = conv_window(xs, conv_w.shape[-1], None if cache is None else cache[0])
        conv_state = window[..., length:]  # the last kernel - 1 inputs: what a decode carries on
        xs = F.silu(conv_over_window(window, conv_w, lead(self.conv_bias, inner)))
        xs = xs.transpose(1, 2)  # (B, L, inner)
        dt = F.softplus(self.in_dt(h, width, heads) + lead(self.dt_bias, heads))  # (B, L, H)
        a = -torch.exp(lead(self.a_log, heads))
        xh = xs.reshape(-1, length, heads, p)
        b, c = self.in_b(h, width, state), self.in_c(h, width, state)
        new_state: tuple[torch.Tensor, ...] = ()
        if cache is None:
            y = selective_scan(xh, dt, a, b, c)
            if keep_state:
                new_state = (conv_state, scan_final_state(xh, dt, a, b))
        else:
            y, scan = scan_step(cache[1], xh[:, 0], dt[:, 0], a, b[:, 0], c[:, 0])
            y = y.unsqueeze(1)
            new_state = (conv_state, scan)
        y = y + xh * lead(self.d, heads).unsqueeze(-1)
        y = y.reshape(-1, length, inner) * F.silu(self.in_z(h, width, inner))
        return self.out(y, inner, width), new_state

    def extract(self, width: int, mixer: Mixer) -> SsmMixer:
        state, expand = mixer.state, mixer.expand
        inner = expand * width
        heads = inner // self.head_dim
        new = SsmMixer(width, state, expand, self.head_dim, self.conv_weight.shape[-1])
        new.norm = self.norm.extract(width)
        new.in_x = self.in_x.extract(width, inner)
        new.in_z = self.in_z.extract(width, inner)
        new.in_b = self.in_b.extract(width, state)
        new.in_c = self.in_c.extract(width, state)
        new.in_dt = self.in_dt.extract(width, heads)
        new.out = self.out.extract(inner, width)
        with torch.no_grad():
            new.conv_weight.copy_(self.conv_weight[:inner])
            new.conv_bias.copy_(self.conv_bias[:inner])
            new.dt_bias.copy_(self.dt_bias[:heads])
            new.a_log.copy_(self.a_log[:heads])
            new.d.copy_(self.d[:heads])
        return new

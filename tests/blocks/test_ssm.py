"""The selective scan: every fast form against the readable reference loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.blocks.ssm import (
    causal_depthwise_conv,
    chunk_size,
    selective_scan,
    selective_scan_quadratic,
    selective_scan_ref,
)


def _inputs(length: int, dt_scale: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch, heads, p, n = 2, 3, 4, 5
    x = torch.randn(batch, length, heads, p, generator=g)
    dt = torch.rand(batch, length, heads, generator=g) * dt_scale
    a = -torch.rand(heads, generator=g) * 8
    b = torch.randn(batch, length, n, generator=g)
    c = torch.randn(batch, length, n, generator=g)
    return x, dt, a, b, c


@pytest.mark.parametrize("length", [1, 5, 16, 17, 49, 75, 150])
@pytest.mark.parametrize("dt_scale", [0.05, 1.0, 20.0])
def test_chunked_and_quadratic_scans_equal_the_reference(length, dt_scale):
    args = _inputs(length, dt_scale)
    ref = selective_scan_ref(*args)
    scale = ref.abs().max().item() + 1e-6
    assert (selective_scan(*args) - ref).abs().max().item() / scale < 1e-5
    assert (selective_scan_quadratic(*args) - ref).abs().max().item() / scale < 1e-5


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 8, 16, 64])
def test_any_chunk_length_gives_the_same_result(chunk):
    args = _inputs(49, 1.0)
    ref = selective_scan_ref(*args)
    assert torch.allclose(selective_scan(*args, chunk=chunk), ref, atol=1e-4, rtol=1e-5)


def test_scan_is_causal():
    x, dt, a, b, c = _inputs(30, 1.0)
    y = selective_scan(x, dt, a, b, c)
    x2 = x.clone()
    x2[:, 20:] += 5.0
    y2 = selective_scan(x2, dt, a, b, c)
    assert torch.equal(y[:, :20], y2[:, :20])
    assert not torch.allclose(y[:, 20:], y2[:, 20:])


def test_gradients_agree_with_the_reference():
    args = [t.clone().requires_grad_(t.dtype.is_floating_point) for t in _inputs(21, 1.0)]
    selective_scan(*args).square().sum().backward()
    fast = [t.grad.clone() for t in args]
    for t in args:
        t.grad = None
    selective_scan_ref(*args).square().sum().backward()
    for g_fast, t in zip(fast, args, strict=True):
        assert torch.allclose(g_fast, t.grad, rtol=1e-4, atol=1e-4)


def test_chunk_size_prefers_divisors_near_eight():
    assert chunk_size(49) == 7
    assert chunk_size(16) == 16
    assert chunk_size(4) == 4
    assert chunk_size(64) == 8
    assert chunk_size(38) == 8  # no divisor in 4..16: pad to 40


def test_causal_depthwise_conv_equals_conv1d():
    x, w, b = torch.randn(3, 6, 25), torch.randn(6, 1, 4), torch.randn(6)
    want = F.conv1d(F.pad(x, (3, 0)), w, b, groups=6)
    assert torch.allclose(causal_depthwise_conv(x, w, b), want, atol=1e-6)

"""Elastic blocks: weight sharing is by leading slices, and extraction copies exactly those."""

from __future__ import annotations

import pytest
import torch

from nas.blocks import AttentionMixer, Aux, ConvMixer, MlpFfn, MoeFfn, SsmMixer
from nas.blocks._slice import lead
from nas.blocks.conv import centre_crop
from nas.space import Ffn, Mixer

CASES = [
    (lambda: ConvMixer(32, 7, 2), Mixer("conv", kernel=5)),
    (lambda: ConvMixer(32, 9, 1), Mixer("conv", kernel=3)),
    (lambda: AttentionMixer(32, 4, 8), Mixer("attention", heads=2)),
    (lambda: SsmMixer(32, 16, 2, 8, 4), Mixer("ssm", state=8, expand=1)),
    (lambda: MlpFfn(32, 4), Ffn("mlp", ratio=2)),
    (lambda: MoeFfn(32, 4, 2), Ffn("moe", experts=2, top_k=1)),
    (lambda: MoeFfn(32, 4, 2), Ffn("moe", experts=4, top_k=2)),
]


@pytest.mark.parametrize("make, option", CASES)
@pytest.mark.parametrize("width", [16, 32])
def test_extracted_block_equals_the_elastic_one(make, option, width):
    torch.manual_seed(0)
    block = make().eval()
    grid = (5, 5) if getattr(block, "spatial_dims", 2) == 2 else (25,)
    x = torch.randn(3, 25, width)
    small = block.extract(width, option).eval()
    with torch.no_grad():
        assert torch.equal(block(x, grid, width, option), small(x, grid, width, option))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in block.parameters()) or width == 32


def test_lead_is_a_view_of_the_same_storage():
    w = torch.randn(48, 48)
    assert lead(w, 32, 32).data_ptr() == w.data_ptr()
    assert lead(w, 48, 48) is w


def test_two_widths_read_the_same_leading_slice_of_one_parameter():
    """Weight sharing is real: narrower subnets train exactly the leading slice of the widest weights."""
    from nas.space import load
    from nas.supernet import Supernet, SupernetConfig

    space = load("hybrid-vision")
    net = Supernet(SupernetConfig.from_space(space))
    narrow = space.parse("32:conv3+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    wide = space.parse("48:conv3+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    weight = net.stages[0][0].ffns["mlp"].fc1.weight  # (4 * 48, 48)
    x = torch.randn(2, 1, 28, 28)

    seen = []
    hook = weight.register_hook(lambda g: seen.append(g.clone()))
    net(x, narrow).sum().backward()
    net.zero_grad()
    net(x, wide).sum().backward()
    hook.remove()
    g_narrow, g_wide = seen
    # The narrow subnet touches only rows [:2*32] and columns [:32] of the one shared tensor ...
    assert g_narrow[: 2 * 32, :32].abs().sum() > 0
    assert g_narrow[2 * 32 :].abs().sum() == 0 and g_narrow[:, 32:].abs().sum() == 0
    # ... which the wide subnet reads too, as part of its larger leading slice.
    assert g_wide[: 2 * 32, :32].abs().sum() > 0 and g_wide[: 2 * 48, 32:48].abs().sum() > 0
    # Extraction copies exactly that slice.
    sub = net.extract(narrow, (1, 28, 28))
    assert torch.equal(sub.net.stages[0][0].ffns["mlp"].fc1.weight, weight[: 2 * 32, :32])


def test_smaller_kernel_is_the_centre_of_the_largest():
    w = torch.arange(49.0).reshape(1, 1, 7, 7)
    assert torch.equal(centre_crop(w, 3), w[..., 2:5, 2:5])
    assert torch.equal(centre_crop(torch.arange(9.0).reshape(1, 1, 9), 5), torch.arange(2.0, 7.0).reshape(1, 1, 5))


@pytest.fixture
def one_expert_at_a_time(monkeypatch):
    """MoE's experts one after another, as in an ONNX export (PyTorch batches them otherwise)."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)


@pytest.mark.parametrize("width", [8, 6])
@pytest.mark.parametrize("experts, top_k", [(4, 1), (4, 2), (2, 1), (2, 2)])
def test_moe_batched_experts_compute_what_experts_in_turn_do(experts, top_k, width, monkeypatch):
    torch.manual_seed(experts * 10 + top_k + width)
    moe = MoeFfn(8, 4, 2)
    option = Ffn("moe", experts=experts, top_k=top_k)
    same = torch.randn(1, 1, width).expand(1, 10, width)  # identical tokens: capacity drops by position
    x = torch.cat([same, torch.randn(3, 10, width)]).requires_grad_()
    results = []
    for in_turn in (False, True):
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda in_turn=in_turn: in_turn)
        aux = Aux(margins=[])
        out = moe(x, (10,), width, option, aux)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, width)).sum() + aux.losses[0],
                                    [x, moe.w1, moe.b1, moe.w2, moe.b2, moe.router.weight])
        results.append((out.detach(), torch.stack(aux.margins).amin(0), grads))
    (out, margin, grads), (out_in_turn, margin_in_turn, grads_in_turn) = results
    assert torch.allclose(out, out_in_turn, atol=1e-6) and out.abs().sum() > 0
    assert torch.equal(margin, margin_in_turn)
    for g, g_in_turn in zip(grads, grads_in_turn, strict=True):
        assert torch.allclose(g, g_in_turn, atol=1e-6)


@pytest.mark.parametrize("experts, top_k", [(4, 1), (4, 2), (2, 2)])
def test_a_causal_moe_decode_step_runs_its_chosen_experts_only_and_computes_the_dense_sum(experts, top_k, monkeypatch):
    """One token (a decode step): the top-k experts' weights are gathered (no expert loop), and the
    result is what the dense causal form gives on the same token, in PyTorch and in an export."""
    torch.manual_seed(experts + top_k)
    moe = MoeFfn(8, 4, 2, causal=True).eval()
    option = Ffn("moe", experts=experts, top_k=top_k)
    x = torch.randn(5, 1, 6)
    calls = []
    monkeypatch.setattr(MoeFfn, "_experts_at_once", lambda *a: calls.append(1))
    step = moe(x, (1,), 6, option)
    assert not calls  # the dense routes were not taken
    monkeypatch.undo()
    dense = moe._experts_at_once(*_routed(moe, x, 6, option), 6, option, 1, None)
    assert torch.allclose(step, dense, atol=1e-6) and step.abs().sum() > 0


def _routed(moe, x, width, option):
    import torch.nn.functional as F

    h = moe.norm(x, width)
    gate, choice = F.softmax(moe.router(h, width, option.experts), dim=-1).topk(option.top_k, dim=-1)
    return h, gate, choice


def test_moe_experts_run_on_their_capacity_only(one_expert_at_a_time, monkeypatch):
    torch.manual_seed(0)
    moe = MoeFfn(8, 4, 2).eval()
    rows = []
    original = torch.nn.functional.linear

    def counting(x, w, b=None):
        rows.append(x.shape[-2])
        return original(x, w, b)

    monkeypatch.setattr(torch.nn.functional, "linear", counting)
    moe(torch.randn(1, 10, 8), (10,), 8, Ffn("moe", experts=4, top_k=1))
    # The router sees 10 tokens; each of the 4 experts' two layers sees ceil(1.25 * 10 * 1 / 4) = 4 slots.
    assert moe.capacity(10, 4, 1) == 4
    assert rows[0] == 10 and rows[1:] == [4] * 8
    # Batched, every expert's slots of every sample go through one bmm per layer.
    shapes = []
    baddbmm = torch.baddbmm
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: False)
    monkeypatch.setattr(torch, "baddbmm", lambda b, x, w: shapes.append(tuple(x.shape)) or baddbmm(b, x, w))
    moe(torch.randn(2, 10, 8), (10,), 8, Ffn("moe", experts=4, top_k=1))
    assert shapes == [(4, 2 * 4, 8), (4, 2 * 4, 16)]  # (experts, samples x capacity, width or hidden)


def test_moe_is_per_sample_and_drops_only_beyond_capacity():
    torch.manual_seed(0)
    moe = MoeFfn(8, 4, 2).eval()
    option = Ffn("moe", experts=2, top_k=2)  # capacity = all tokens: nothing is dropped
    x = torch.randn(3, 6, 8)
    with torch.no_grad():
        together = moe(x, (6,), 8, option)
        alone = torch.cat([moe(x[i : i + 1], (6,), 8, option) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    # With every token going to both experts, the output is the dense gated sum.
    with torch.no_grad():
        h = moe.norm(x, 8)
        probs = torch.softmax(moe.router(h, 8, 2), -1)
        dense = sum(
            probs[..., e : e + 1]
            * torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(h, moe.w1[e, :16, :8], moe.b1[e, :16])),
                                         moe.w2[e, :8, :16], moe.b2[e, :8])
            for e in range(2)
        )
    assert torch.allclose(together, dense, atol=1e-5)


def test_moe_balance_loss_is_reported():
    moe = MoeFfn(8, 4, 2)
    aux = Aux()
    moe(torch.randn(2, 6, 8), (6,), 8, Ffn("moe", experts=4, top_k=2), aux)
    assert len(aux.losses) == 1 and aux.losses[0].item() > 0 and aux.margins is None


@pytest.mark.parametrize("in_turn", [False, True])
def test_routing_margins_and_ties_between_identical_tokens(in_turn, monkeypatch):
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: in_turn)
    torch.manual_seed(0)
    moe = MoeFfn(8, 4, 2).eval()
    option = Ffn("moe", experts=2, top_k=1)  # capacity ceil(1.25 * 8 / 2) = 5 of 8 tokens
    same = torch.randn(1, 1, 8).expand(1, 8, 8)  # identical tokens: all route alike, 3 dropped
    varied = torch.randn(1, 8, 8)
    aux = Aux(margins=[])
    with torch.no_grad():
        out = moe(torch.cat([same, varied]), (8,), 8, option, aux)
    margins = aux.margins
    per_sample = torch.stack(margins).amin(0)
    assert per_sample.shape == (2,) and torch.all(per_sample > 0)
    # Equal gates go to the earlier tokens, so which tokens an expert drops is defined: the last 3.
    assert torch.all(out[0, :5].abs().sum(-1) > 0) and torch.all(out[0, 5:] == 0)
    with torch.no_grad():
        moe(varied, (8,), 8, option)  # recorded only when asked for
    assert len(margins) == (3 if in_turn else 2)  # the router's choice, then each expert's capacity (or all at once)


def test_moe_runs_under_bf16_autocast():
    # Under autocast the experts' output is bf16 while the block's output buffer is not.
    moe = MoeFfn(16, 4, 2)
    x = torch.randn(3, 10, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        aux = Aux()
        out = moe(x, (10,), 16, Ffn("moe", experts=4, top_k=2), aux)
    (out.float().sum() + aux.losses[0]).backward()
    assert out.shape == x.shape and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

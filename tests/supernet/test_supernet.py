"""The supernet: any subnet runs, extraction is exact, ONNX export matches onnxruntime."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nas.space import Layer, NetArch, NetSpace, Stage, load
from nas.supernet import Supernet, SupernetConfig
from nas.supernet.to_onnx import check_parity, to_onnx


def covering_archs(space: NetSpace, n: int, seed: int = 0) -> list[NetArch]:
    """``n`` random archs whose first layers cycle through every mixer and ffn option of each stage."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        arch = space.sample(rng)
        stages = []
        for stage, spec in zip(arch.stages, space.stages, strict=True):
            first = Layer(spec.mixers[k % len(spec.mixers)], spec.ffns[k % len(spec.ffns)])
            stages.append(Stage(stage.width, (first,) + stage.layers[1:]))
        out.append(space.validate(NetArch(tuple(stages))))
    return out


def test_covering_archs_cover_every_option():
    space = load("hybrid-vision")
    archs = covering_archs(space, 20)
    for i, spec in enumerate(space.stages):
        mixers = {la.mixer for a in archs for la in a.stages[i].layers}
        ffns = {la.ffn for a in archs for la in a.stages[i].layers}
        assert mixers == set(spec.mixers) and ffns == set(spec.ffns)


@pytest.mark.parametrize("space_name, n", [("hybrid-vision", 12), ("hybrid-seq", 12), ("mcu-vision", 12)])
def test_extracted_subnets_equal_the_supernet_and_onnxruntime(space_name, n):
    torch.manual_seed(0)
    space = load(space_name)
    shape = space.task.input_shape
    net = Supernet(SupernetConfig.from_space(space)).eval()
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    worst_extract, worst_onnx = 0.0, 0.0
    for arch in covering_archs(space, n):
        sub = net.extract(arch, shape).eval()
        with torch.no_grad():
            diff = (net(torch.from_numpy(x), arch) - sub(torch.from_numpy(x))).abs().max().item()
        worst_extract = max(worst_extract, diff)
        onnx_error = check_parity(sub, to_onnx(sub, torch.from_numpy(x[:1])), x)
        worst_onnx = max(worst_onnx, onnx_error)
    assert worst_extract <= 1e-5
    assert worst_onnx <= 1e-4


def test_trained_checkpoint_exports_within_tolerance(digits_ckpt, digits):
    from nas.supernet import checkpoint

    net, info = checkpoint.load(digits_ckpt)
    for arch in covering_archs(info.space, 8, seed=1):
        sub = net.extract(arch, info.input_shape)
        assert check_parity(sub, to_onnx(sub, torch.from_numpy(digits.x_test[:1])), digits.x_test[:32]) <= 1e-4


def test_elastic_depth_uses_the_first_layers():
    torch.manual_seed(0)
    space = load("hybrid-vision")
    net = Supernet(SupernetConfig.from_space(space)).eval()
    arch = space.parse("16:conv3+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    sub = net.extract(arch, (1, 28, 28))
    assert len(sub.net.stages[0]) == 1
    assert torch.equal(sub.net.stages[0][0].mixers["conv"].pw.weight, net.stages[0][0].mixers["conv"].pw.weight[:16, :16])


def test_subnet_holds_only_chosen_ops():
    space = load("hybrid-vision")
    net = Supernet(SupernetConfig.from_space(space))
    arch = space.parse("16:attn2+moe2k1/48:conv3+mlp2/64:ssm8x1+mlp2")
    sub = net.extract(arch, (1, 28, 28))
    assert list(sub.net.stages[0][0].mixers) == ["attention"] and list(sub.net.stages[0][0].ffns) == ["moe"]
    assert list(sub.net.stages[2][0].mixers) == ["ssm"]
    assert sub.num_params() < sum(p.numel() for p in net.parameters()) / 5


def test_supernet_accepts_other_input_sizes():
    space = load("hybrid-vision")
    net = Supernet(SupernetConfig.from_space(space)).eval()
    for size in (8, 28, 32):
        assert net(torch.randn(2, 1, size, size), space.largest()).shape == (2, 10)

"""Params, MACs, peak int8 activation memory and flash, checked against hand counts."""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nas.blocks import MlpFfn
from nas.graph import analyze
from nas.space import Ffn, load
from nas.supernet import Supernet, SupernetConfig
from nas.supernet.metrics import MetricsModel, subnet_metrics


def _tiny_graph() -> onnx.ModelProto:
    """X(1,1,4,4) -> Conv 3x3 (2 ch, pad 1) -> Relu -> Flatten -> Gemm (32 -> 3)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((3, 32)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_counted_graph():
    stats = analyze(_tiny_graph())
    # params: conv 2*1*3*3 + 2 bias, dense 3*32 + 3 bias
    assert stats.params == 18 + 2 + 96 + 3
    # MACs: conv 32 outputs x 9 taps; dense 3 outputs x 32 inputs
    assert stats.macs == 32 * 9 + 3 * 32
    # flash: int8 weights (18 + 96 bytes) + int32 biases (5 x 4 bytes)
    assert stats.flash_bytes == 18 + 96 + 5 * 4
    # peak: Relu (and Flatten) hold their 32-byte input and 32-byte output at once
    assert stats.peak_activation_bytes == 64
    assert [op.kind for op in stats.ops] == ["conv", "elementwise", "move", "dense"]


def test_hand_counted_mlp_unit():
    """An MLP ffn unit (width 4, ratio 2) on 3 tokens, exported from our own block."""
    from nas.supernet.metrics import flash_bytes
    from nas.supernet.to_onnx import to_onnx
    from nas.supernet.units import _Residual

    block = MlpFfn(4, 2)
    module = _Residual(block, (3,), 4, Ffn("mlp", ratio=2))
    stats = analyze(to_onnx(module, torch.randn(1, 3, 4)))
    assert stats.macs == 3 * 4 * 8 + 3 * 8 * 4
    assert sum(p.numel() for p in module.parameters()) == (4 + 4) + (4 * 8 + 8) + (8 * 4 + 4)
    assert flash_bytes(module) == (4 * 8 + 8 * 4) + 4 * (4 + 4 + 8 + 4)


@pytest.mark.parametrize("space_name", ["hybrid-vision", "mcu-vision", "hybrid-seq"])
def test_composed_metrics_equal_whole_graph_metrics(space_name):
    torch.manual_seed(0)
    space = load(space_name)
    net = Supernet(SupernetConfig.from_space(space)).eval()
    model = MetricsModel(net, space)
    rng = random.Random(0)
    for arch in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(6)]:
        assert model(arch) == subnet_metrics(net.extract(arch, space.task.input_shape))


def test_every_mcu_vision_subnet_fits_the_board():
    space = load("mcu-vision")
    net = Supernet(SupernetConfig.from_space(space)).eval()
    model = MetricsModel(net, space)
    rng = random.Random(0)
    archs = [space.largest()] + [space.sample(rng) for _ in range(150)]
    peak = max(model(a).peak_sram_kb for a in archs)
    flash = max(model(a).flash_kb for a in archs)
    assert peak <= 320 and flash <= 1024


def test_metrics_grow_with_the_arch():
    space = load("hybrid-vision")
    net = Supernet(SupernetConfig.from_space(space)).eval()
    model = MetricsModel(net, space)
    small, large = model(space.smallest()), model(space.largest())
    assert large.params > 10 * small.params and large.macs > 5 * small.macs
    assert large.flash_kb > small.flash_kb and large.peak_sram_kb > small.peak_sram_kb


def test_the_parameter_count_alone_equals_the_full_metrics_and_the_extracted_subnets():
    space = load("mcu-vision")
    net = Supernet(SupernetConfig.from_space(space))
    metrics = MetricsModel(net, space)
    for arch in space.sample_unique(random.Random(2), 4):
        extracted = sum(p.numel() for p in net.extract(arch, space.task.input_shape).parameters())
        assert metrics.params(arch) == metrics(arch).params == extracted

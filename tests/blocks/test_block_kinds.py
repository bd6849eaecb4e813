"""A new block kind is one entry in the kind table (nas.space) and one block file (nas.blocks):
the space parser, the supernet, the latency units and predictors, and the dashboard accept it."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from nas.blocks import registered_block
from nas.errors import NasError
from nas.space import Arch, loads, registered
from tests.blocks.toy_pool import POOL_KIND, PoolMixer

SPACE = """
name: pool-vision
task: {kind: image, dataset: digits, input_shape: [1, 8, 8], num_classes: 10}
stem: {channels: 8, strides: [2, 1]}
mixers: {conv: {kernel: [3]}, pool: {size: [3, 5]}}
ffns: {mlp: {ratio: [2]}, moe: {experts: [2], top_k: [1]}}
stages:
  - {depth: [1, 2], width: [8, 16]}
  - {depth: [1], width: [16]}
"""


@pytest.fixture
def pool_kind():
    with registered(POOL_KIND), registered_block("pool", PoolMixer):
        yield loads(SPACE, "pool-vision.yaml")


def test_the_parser_reads_the_new_kind_from_yaml_and_arch_strings(pool_kind):
    space = pool_kind
    arch = space.parse("16:pool5+moe2k1,conv3+mlp2/16:pool3+mlp2")
    assert Arch.from_str(arch.to_str()) == arch and arch.stages[0].layers[0].mixer.size == 5
    assert {m.token for m in space.stages[0].mixers} == {"conv3", "pool3", "pool5"}
    assert arch.block_mix()["pool"] == pytest.approx(2 / 3)
    with pytest.raises(NasError, match="sizes must be odd"):
        loads(SPACE.replace("size: [3, 5]", "size: [4]"), "bad.yaml")
    with pytest.raises(NasError, match="'pool7' is not allowed"):
        space.parse("16:pool7+mlp2/16:pool3+mlp2")
    assert any(la.mixer.kind == "pool" for a in space.sample_unique(random.Random(0), 20) for _, _, la in a.layers())


def test_the_supernet_runs_and_extracts_the_new_kind(pool_kind):
    from nas.supernet import Supernet, SupernetConfig

    space = pool_kind
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.from_space(space)).eval()
    x = torch.randn(3, 1, 8, 8)
    for arch in [space.parse("16:pool5+mlp2,pool3+moe2k1/16:pool3+mlp2"), space.largest(), space.smallest()]:
        with torch.no_grad():
            assert torch.allclose(net(x, arch), net.extract(arch, (1, 8, 8))(x), atol=1e-5)
    loss = net(x, space.parse("8:pool3+mlp2/16:pool5+mlp2")).sum()
    loss.backward()
    assert net.stages[0][0].mixers["pool"].pw.weight.grad is not None


def test_latency_units_and_predictors_take_the_new_kind(pool_kind, tmp_path):
    from nas.latency import build_profile, predictor_for
    from nas.latency.build import random_supernet, unit_record
    from nas.latency.predictor import FamilyModel, unit_family
    from nas.supernet.to_onnx import to_onnx
    from nas.supernet.units import all_units, unit_module

    space = pool_kind
    pools = [u for u in all_units(space) if u.op.startswith("pool")]
    assert {u.op for u in pools} == {"pool3", "pool5"} and all(unit_family(u) == "pool" for u in pools)
    net = random_supernet(space)
    records = []
    for unit in pools:
        module, example = unit_module(net, unit)
        records.append(unit_record(unit, module, to_onnx(module, torch.zeros(example))))
    assert all(r["family"] == "pool" and r["macs"] > 0 for r in records)
    families = FamilyModel.fit([(r["family"], r, 0.01 + r["macs"] / 1e6) for r in records])
    assert families.predict("pool", records[0]) > 0

    profile = build_profile(space, "mcu-m7")
    predictor = predictor_for(profile, space)
    arch = space.parse("16:pool5+mlp2,pool3+mlp2/16:pool3+mlp2")
    metrics = predictor.predict_metrics([arch, space.smallest()])
    assert np.all(metrics["latency_ms"] > 0) and np.all(metrics["peak_sram_kb"] > 0)


def test_the_dashboard_colours_and_draws_the_new_kind(pool_kind):
    from dashboard import charts

    assert "pool share" in charts.colour_modes() and "pool" in charts.mixer_colours()
    arch = "16:pool5+mlp2,conv3+moe2k1/16:pool3+mlp2"
    assert 'label="pool5' in charts.arch_dot(arch)
    mix = pool_kind.parse(arch).block_mix()
    df = pd.DataFrame([{"arch": arch, "trial": 0, "accuracy": 0.9, "cpu_ms": 1.0,
                        **{f"mix_{k}": v for k, v in mix.items()}}])
    figure = charts.pareto_scatter(df, "cpu_ms", "accuracy", charts.colour_modes()[0], df, "t")
    assert len(figure.data) == 2  # the evaluations and the front


def test_the_kind_is_gone_once_unregistered():
    with pytest.raises(NasError, match="unknown mixer 'pool3'"):
        Arch.from_str("16:pool3+mlp2")
    with pytest.raises(NasError, match="unknown key"):
        loads(SPACE, "pool-vision.yaml")

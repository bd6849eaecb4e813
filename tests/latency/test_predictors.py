"""Contract tests every latency predictor must pass; add a predictor by adding a factory."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from nas.latency import build_profile, predictor_for
from nas.latency.measure import MeasureConfig
from nas.latency.predictor import TablePredictor
from nas.latency.profile import Profile, load_profile, save_profile
from nas.space import load
from tests.conftest import DATA

TINY = str(DATA / "tiny-vision.yaml")


@pytest.fixture(scope="module")
def tiny_cpu_profile(tmp_path_factory) -> Profile:
    return build_profile(load(TINY), "cpu", MeasureConfig(warmup=3, repeats=10, retries=0), n_archs=8)


def _unit(profile):
    return lambda: predictor_for(profile, load(TINY))


def _mcu():
    return predictor_for(build_profile(load(TINY), "mcu-m7"), load(TINY))


def _table():
    space = load("toy-choice")
    rng = random.Random(0)
    rows = [(a, 1.0 + a.as_dict()["layers"] * a.as_dict()["units"] / 64) for a in space.sample_unique(rng, 40)]
    return TablePredictor("toy-device", space, rows)


@pytest.fixture(params=["unit", "mcu", "table"])
def predictor_and_space(request, tiny_cpu_profile):
    if request.param == "unit":
        return _unit(tiny_cpu_profile)(), load(TINY)
    if request.param == "mcu":
        return _mcu(), load(TINY)
    return _table(), load("toy-choice")


def test_predictions_are_positive_finite_and_batched(predictor_and_space):
    predictor, space = predictor_and_space
    archs = space.sample_unique(random.Random(1), 20)
    batch = predictor.predict(archs)
    assert batch.shape == (20,) and np.all(np.isfinite(batch)) and np.all(batch > 0)
    one_by_one = np.array([predictor.predict([a])[0] for a in archs])
    assert np.allclose(batch, one_by_one)
    metrics = predictor.predict_metrics(archs)
    assert np.allclose(metrics["latency_ms"], batch)


def test_predictions_are_deterministic(predictor_and_space):
    predictor, space = predictor_and_space
    archs = space.sample_unique(random.Random(2), 10)
    assert np.array_equal(predictor.predict(archs), predictor.predict(archs))


def test_larger_archs_are_slower(predictor_and_space):
    predictor, space = predictor_and_space
    if space.kind != "net":
        pytest.skip("plain spaces have no largest")
    small, large = predictor.predict([space.smallest(), space.largest()])
    assert large > small


def test_profile_round_trips_through_its_files(tmp_path, tiny_cpu_profile):
    path = save_profile(tiny_cpu_profile, tmp_path)
    assert (tmp_path / "cpu" / "meta.json").is_file() and path.with_name("tiny-vision.blocks.csv").is_file()
    loaded, found = load_profile("cpu", load(TINY), [tmp_path])
    assert found == path
    archs = load(TINY).sample_unique(random.Random(3), 10)
    assert np.allclose(predictor_for(loaded, load(TINY)).predict(archs), predictor_for(tiny_cpu_profile, load(TINY)).predict(archs))
    meta = json.loads((tmp_path / "cpu" / "meta.json").read_text())
    assert {"device", "runtime", "versions", "date"} <= set(meta)


def test_mcu_predictor_reports_sram_and_flash_matching_whole_graphs():
    import torch

    from nas.graph import analyze
    from nas.latency import get_target
    from nas.latency.build import random_supernet
    from nas.supernet.metrics import flash_bytes
    from nas.supernet.to_onnx import to_onnx

    space = load(TINY)
    predictor = _mcu()
    net = random_supernet(space)
    model = get_target("mcu-m7").model()
    for arch in space.sample_unique(random.Random(4), 6):
        got = predictor.predict_metrics([arch])
        subnet = net.extract(arch, (1, 8, 8))
        whole = model.estimate(analyze(to_onnx(subnet, torch.zeros(1, 1, 8, 8))))
        assert got["latency_ms"][0] == pytest.approx(whole.latency_ms, rel=1e-6)
        assert got["peak_sram_kb"][0] == pytest.approx(whole.peak_sram_kb)
        # flash from parameters (the exporter merges identical untrained tensors, so not from the graph)
        assert got["flash_kb"][0] == pytest.approx(flash_bytes(subnet) / 1024)


def test_a_stale_profile_is_refused(tmp_path, tiny_cpu_profile):
    from nas.errors import NasError

    save_profile(tiny_cpu_profile, tmp_path)
    edited = load(TINY)
    edited.source_text += "\n# edited: widths changed\n"
    with pytest.raises(NasError, match="another version of space"):
        load_profile("cpu", edited, [tmp_path])


def test_the_overhead_model_learns_size_terms_given_enough_subnets(tiny_cpu_profile):
    """Whole networks pay for memory traffic that units timed alone do not: with at least 12
    subnets the fit has six terms and recovers a latency that grows with params, MACs and
    activations beyond the unit sum; with fewer it keeps the three-term model."""
    space = load(TINY)
    predictor = predictor_for(tiny_cpu_profile, space)
    archs = space.sample_unique(random.Random(7), 30)
    truth = np.array([1.2, -0.004, 0.01, 0.3, 0.002, 0.05])
    design = predictor.design(archs, terms=6)
    assert np.all(design[:, 3:] > 0)  # size statistics exist for every unit
    measured = design @ truth
    assert len(predictor.fit_overhead(archs[:20], measured[:20])) == 6
    np.testing.assert_allclose(predictor.predict(archs[20:]), measured[20:], rtol=1e-3)
    assert len(predictor.fit_overhead(archs[:8], measured[:8])) == 3
    assert predictor.predict(archs).shape == (30,)


def test_a_build_with_enough_subnets_fits_the_size_terms():
    profile = build_profile(load(TINY), "cpu", MeasureConfig(warmup=1, repeats=5, retries=0), n_archs=12)
    assert len(profile.model["overhead"]) == 6
    assert len(predictor_for(profile, load(TINY)).overhead) == 6

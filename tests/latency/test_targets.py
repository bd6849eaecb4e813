"""The contract every latency target keeps (measured cpu, measured gpu, the MCU cost models, an
imported device): add a target type by adding it to ``targets``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.latency import (
    BUILTIN_NAMES,
    CpuTarget,
    GpuTarget,
    ImportedTarget,
    McuTarget,
    MeasureConfig,
    Meter,
    Target,
    get_target,
    known_targets,
    load_profile,
    save_profile,
)
from nas.latency.build import random_supernet
from nas.space import load
from tests.conftest import DATA

TINY = str(DATA / "tiny-vision.yaml")
QUICK = MeasureConfig(warmup=2, repeats=6, retries=0, guard=False)
GPU = torch.cuda.is_available()


def targets() -> list[Target]:
    return [get_target(name) for name in BUILTIN_NAMES] + [ImportedTarget("my-board", {"device": "a board"})]


@pytest.fixture(params=targets(), ids=lambda t: t.name)
def target(request) -> Target:
    return request.param


def test_the_builtin_targets_are_types():
    assert isinstance(get_target("cpu"), CpuTarget) and isinstance(get_target("gpu"), GpuTarget)
    assert isinstance(get_target("mcu-m7"), McuTarget) and isinstance(get_target("mcu-m4"), McuTarget)
    assert set(BUILTIN_NAMES) <= set(known_targets())
    with pytest.raises(NasError, match="unknown target 'tpu'"):
        get_target("tpu")


def test_describe_names_the_device(target):
    assert target.describe(QUICK)["device"] if not target.status() else True
    assert target.description and target.kind in ("measured", "mcu", "imported")


def test_measure_gives_a_latency_or_says_why_not(target):
    space = load(TINY)
    module = random_supernet(space).extract(space.smallest(), (1, 8, 8))
    if target.kind == "measured" and not target.status():
        m = target.measure(module, (1, 1, 8, 8), Meter(QUICK))
        assert m.median_ms > 0 and m.runs >= QUICK.repeats
    else:
        with pytest.raises(NasError, match="cannot be measured|no GPU"):
            target.measure(module, (1, 1, 8, 8), Meter(QUICK))


def test_build_save_load_and_predict(target, tmp_path):
    space = load(TINY)
    if target.status() or target.kind == "imported":
        with pytest.raises(NasError):
            target.build(space, QUICK, n_archs=6, hint=TINY)
        return
    profile = target.build(space, QUICK, n_archs=6)
    assert profile.target == target.name and profile.kind == target.kind
    save_profile(profile, tmp_path)
    loaded, _ = load_profile(target.name, space, [tmp_path])
    archs = space.sample_unique(random.Random(0), 8)
    predicted = target.predictor(loaded, space).predict(archs)
    assert predicted.shape == (8,) and np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    assert target.summary(profile).startswith(target.name)


def test_the_prediction_path_does_not_go_through_the_build_module():
    import ast
    import inspect

    import nas.latency.predict as predict
    import nas.latency.predictor as predictor
    import nas.latency.profile as profile

    for module in (predict, predictor, profile):
        tree = ast.parse(inspect.getsource(module))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "nas.latency.build" not in imported, module.__name__

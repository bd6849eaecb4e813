"""``nas quickstart`` end to end, shortened: the demo a fresh clone runs must keep working."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nas.store import Store


@pytest.mark.slow
def test_quickstart_trains_measures_searches_and_exports(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NAS_PROFILES", None)  # it builds its own profile in its folder
    run = subprocess.run([sys.executable, "-m", "nas", "quickstart", "--out", str(out), "--steps", "10",
                          "--budget", "6", "--workers", "2",
                          "--latency-archs", "8", "--latency-repeats", "10"], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "where the time went" in run.stdout
    assert "Token authentication" not in run.stdout + run.stderr  # Ray's notice is not this product's to print
    store = Store(str(out / "nas.db"), readonly=True)
    experiment = store.experiment("quickstart")
    assert experiment.strategy == "surrogate" and experiment.evaluations == 6 and experiment.status == "finished"
    bound = float(experiment.constraints[0].split("<=")[1])
    assert all(r.metrics["cpu_ms"] <= bound for r in store.evaluations("quickstart") if r.feasible)
    assert (out / "best.onnx").stat().st_size > 0
    assert list((out / "latency_models").rglob("*.json"))

"""Every experiment runs end to end on tiny settings, so that one broken by a change elsewhere fails
the suite instead of rotting until someone reruns it (one did: latency_predictors called APIs that
had gone). Each runs as ``python -m experiments.NAME`` in its own process, writing to a scratch
folder ($NAS_EXPERIMENT_RESULTS) instead of experiments/results/; the ones that score a supernet
get a tiny one trained here on 256 Fashion-MNIST images. Experiments with a smoke mode of their
own are run by their own tests; the few that cannot be made small are listed with the reason."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import experiments
from tests.conftest import REPO

# name -> (arguments, what it needs: hv / mcu (a Fashion-MNIST checkpoint of that space), graph
# (the NAS-Bench-Graph package), browser (Debian's chromium), store (a finished search's store))
SMOKE = {
    "driver_throughput": (["--evaluations", "30", "--strategies", "random", "tpe"], None),
    "predictor_speed": (["-n", "50", "--space", "mcu-vision"], None),
    "latency_predictors": (["-n", "3", "--spaces", "mcu-vision", "--targets", "mcu-m7", "gpu"], None),
    "latency_transfer": (["--skip-fbnet", "-k", "5", "--held-out", "10", "--space", "mcu-vision"], None),
    "bench_graph_headroom": (["--datasets", "cora", "--sample", "30"], "graph"),
    "surrogate_settings": (["--set", "-", "--datasets", "cora", "--seeds", "1", "--processes", "1"], "graph"),
    "moe_batching": (["--repeats", "1", "--steps", "1", "--threads", "1"], None),
    "search_efficiency": (["--supernet", "{hv}", "--budget", "4", "--seeds", "1", "--strategies", "random",
                           "--throughput", "0", "--val-examples", "50"], "hv"),
    "multi_target": (["--supernet", "{hv}", "--budget", "4", "--workers", "0", "--val-examples", "50"], "hv"),
    "soak": (["--supernet", "{hv}", "--evaluations", "6", "--workers", "1", "--val-examples", "50",
              "--db", "sqlite:///{tmp}/soak.db"], "hv"),
    "lm_supernet": (["--smoke"], None),
    "calibration_transfer": (["--splits", "3"], None),
    "dashboard_render": (["--evaluations", "200"], "browser"),
    "dashboard_screenshot": (["--db", "{tmp}/synthetic.db", "--out", "{tmp}/results/explorer.png"], "browser"),
}
PRINTS_ONLY = {"surrogate_settings"}  # its figures are copied into surrogate_settings.md by hand
OWN_TESTS = {"bench_graph", "ranking_truth"}  # their --smoke runs in tests/experiments/test_experiments.py
# Each takes a minute or more even on tiny settings, which make test's 15 minutes cannot hold; each
# can still be run small by hand (the arguments say how), and its parts are tested where they live.
NOT_SMOKED = {
    "gpu_check": "its --smoke trains and times on the CPU for minutes; it is for a GPU machine",
    "supernet_ranking": "a minute or more even at --archs 5 --steps 2 --seeds 2 --concurrent 1 (Ray Tune, 15,000 images per "
                        "arch); its successor, ranking_truth, is smoke-run, and both train through nas.supernet.standalone",
    "int8_export": "a minute at --supernet CKPT --subnets 1 --test 100 --no-quickstart (seven int8 exports); "
                   "nas subnet export --int8 is tested in tests/evaluate/test_int8.py",
    "supernet_recipe": "a minute at --steps 3 (three trainings, each scored on 15,000 images 14 times)",
    "few_shot_ranking": "it scores 30 archs with four supernets on 15,000 images against the committed stand-alone runs",
}
SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_"))


def test_every_experiment_is_smoke_run_or_says_why_not():
    assert set(SCRIPTS) == set(SMOKE) | OWN_TESTS | set(NOT_SMOKED)


@pytest.fixture(scope="session")
def fmnist_ckpts(tmp_path_factory) -> dict[str, Path]:
    """hybrid-vision and mcu-vision trained one epoch on 256 Fashion-MNIST images (seconds each)."""
    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("fmnist")
    out = {}
    for key, name in (("hv", "hybrid-vision"), ("mcu", "mcu-vision")):
        space = load(name)
        out[key] = folder / f"{name}.ckpt"
        train(space, load_dataset("fashion-mnist", space.task.kind), TrainConfig(epochs=1, batch_size=64, limit=256),
              out[key])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_experiment_runs_end_to_end_on_tiny_settings(name, tmp_path, request):
    args, needs = SMOKE[name]
    if needs == "graph":
        pytest.importorskip("nas_bench_graph")
    if needs == "browser" and not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed")
    ckpts = request.getfixturevalue("fmnist_ckpts") if needs in ("hv", "mcu") else {}
    if name == "dashboard_screenshot":
        from nas.store.synthetic import synthetic_store

        synthetic_store(str(tmp_path / "synthetic.db"), 200)
    args = [a.format(tmp=tmp_path, **{k: str(v) for k, v in ckpts.items()}) for a in args]
    env = {**os.environ, "NAS_EXPERIMENT_RESULTS": str(tmp_path / "results"), "PYTHONUNBUFFERED": "1"}
    env.pop("NAS_PROFILES", None)  # the committed profiles, at the shipped spaces' input shapes
    done = subprocess.run([sys.executable, "-m", f"experiments.{name}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    written = sorted((tmp_path / "results").iterdir())
    assert written or name in PRINTS_ONLY, "it wrote nothing"
    for report in (p for p in written if p.suffix == ".md"):
        assert not any(cell.strip() == "nan" for cell in report.read_text().split("|")), f"a figure in {report.name} is NaN"

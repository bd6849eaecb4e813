"""Searches end to end on Ray: every strategy, two nodes, SIGKILL and resume, PostgreSQL, constraints, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nas.runner import SearchConfig, search
from nas.search import STRATEGIES
from nas.store import Store
from tests import _faults
from tests.conftest import REPO, SPACES, assert_one_line_error


def _config(tmp_path, ckpt, **kw) -> SearchConfig:
    base = {"strategy": "random", "budget": 6, "targets": ("mcu-m7",), "workers": 2, "db": str(tmp_path / "nas.db"),
            "supernet": str(ckpt), "val_examples": 100}
    base.update(kw)
    return SearchConfig(**base)


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "space"), [(s, SPACES[i % len(SPACES)]) for i, s in enumerate(STRATEGIES)])
def test_every_strategy_finishes_a_small_search(tmp_path, search_env, ray_local, space, strategy):
    """Each strategy on Ray once, the spaces taken in turn (every strategy meets every space in
    tests/search/test_strategies.py, in one process)."""
    result = search(_config(tmp_path, search_env[space], strategy=strategy, budget=6, experiment=f"{space}-{strategy}"))
    assert result.total == 6 and result.evaluated == 6 and result.failed == 0
    records = Store(str(tmp_path / "nas.db"), readonly=True).evaluations(f"{space}-{strategy}")
    assert len({r.arch for r in records}) == 6
    assert all(0 <= r.metrics["accuracy"] <= 1 and r.metrics["mcu-m7_ms"] > 0 for r in records)
    assert result.front and result.hypervolume > 0


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["nsga2", "surrogate"])
def test_constraints_hold_for_every_stored_pareto_point(tmp_path, search_env, ray_local, cli, strategy):
    ckpt = search_env["mcu-vision"]
    result = search(_config(tmp_path, ckpt, strategy=strategy, budget=8, experiment="c",
                            constraints=("mcu-m7_ms<=4", "sram_kb<=10", "flash_kb<=60")))
    assert result.total == 8
    if strategy == "surrogate":  # it knows the cheap metrics, so it never proposes an arch that breaks them
        assert result.screened == 0
    assert result.front
    for row in result.front:
        assert row["mcu-m7_ms"] <= 4 and row["sram_kb"] <= 10 and row["flash_kb"] <= 60
    out = cli("results", "c", "--db", tmp_path / "nas.db", "--format", "csv")
    header, *rows = out.out.strip().splitlines()
    assert header.startswith("pareto,trial,accuracy,mcu-m7_ms")
    assert all(row.startswith("1,") for row in rows)


@pytest.mark.slow
def test_cheap_metrics_asked_by_name_are_the_full_ones_filtered(search_env):
    import random

    from nas.evaluate import SupernetEvaluator

    evaluator = SupernetEvaluator.from_files(search_env["mcu-vision"], ["mcu-m7"], with_data=False)
    for arch in evaluator.space.sample_unique(random.Random(0), 20):
        full = evaluator.cheap(arch)
        assert {"mcu-m7_ms", "params", "macs", "sram_kb", "flash_kb"} <= set(full)
        for names in ({"mcu-m7_ms"}, {"accuracy", "mcu-m7_ms", "sram_kb"}, set()):
            assert evaluator.cheap_metrics(arch, names) == {k: v for k, v in full.items() if k in names}


@pytest.mark.slow
def test_results_list_a_front_that_exports(tmp_path, search_env, ray_local, cli):
    import json

    ckpt = search_env["hybrid-vision"]
    search(_config(tmp_path, ckpt, strategy="evolution", budget=6, experiment="e"))
    data = json.loads(cli("results", "e", "--db", tmp_path / "nas.db", "--format", "json").out)
    assert data["evaluations"] == 6 and data["rows"] and all(r["pareto"] for r in data["rows"])
    table = cli("results", "e", "--db", tmp_path / "nas.db")
    assert table.code == 0 and "Pareto front" in table.out and "nas subnet export" in table.out
    for row in data["rows"][:2]:
        out = cli("subnet", "export", ckpt, row["arch"], "-o", tmp_path / "front.onnx")
        assert out.code == 0, out


@pytest.mark.slow
@pytest.mark.postgres
def test_the_same_search_on_postgresql(pg_url, search_env, ray_local, tmp_path):
    ckpt = search_env["mcu-vision"]
    result = search(_config(tmp_path, ckpt, strategy="tpe", budget=6, experiment="pg", db=pg_url))
    assert result.total == 6
    reader = Store(pg_url, readonly=True)
    assert reader.experiment("pg").status == "finished" and len(reader.evaluations("pg")) == 6


@pytest.mark.slow
def test_two_node_cluster_runs_on_both_nodes(search_env, tmp_path):
    """A local two-node Ray cluster (one CPU each): the search's workers land on both nodes."""
    import ray
    from ray.cluster_utils import Cluster

    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                             "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        result = search(_config(tmp_path, search_env["mcu-vision"], budget=6, experiment="two",
                                address=cluster.address))
        assert result.total == 6
        assert len(set(result.nodes)) == 2
        workers = {r.worker.split("@")[1] for r in Store(str(tmp_path / "nas.db"), readonly=True).evaluations("two")}
        assert len(workers) == 2  # results came from both nodes
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_up:
            from nas.runner.ray_pool import start_ray

            start_ray(2, None)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["surrogate"])  # the default; evolution's kills: tests/system/test_reliability.py
def test_sigkill_and_resume_reach_exactly_the_budget(tmp_path, search_env, strategy):
    ckpt, db = search_env["mcu-vision"], tmp_path / "kill.db"
    args = [sys.executable, "-m", "nas", "search", "--supernet", str(ckpt), "--target", "mcu-m7", "--strategy", strategy,
            "--budget", "20", "--workers", "2", "--db", str(db), "--experiment", "k", "--val-examples", "100"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    assert _faults.kill_after(proc, str(db), 4) >= 4, "the search finished before it could be killed"
    before = Store(str(db), readonly=True).experiment("k")
    assert before.evaluations < 20 and before.status == "running"
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = Store(str(db), readonly=True).evaluations("k")
    assert len(records) == 20 and len({r.arch for r in records}) == 20
    assert Store(str(db), readonly=True).experiment("k").status == "finished"


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["--target", "tpu"], "unknown target 'tpu'"),
        (["--constraint", "mcu-m7_ms<<2"], "does not parse"),
        (["--constraint", "gpu_ms<=2"], "unknown metric 'gpu_ms'"),
        (["--budget", "0"], "--budget must be at least 1"),
        (["--workers", "-1"], "--workers must be 0"),
        (["--resume", "--experiment", "nope"], "no experiment 'nope'"),
        (["--db", "postgresql://postgres@127.0.0.1:5999/x"], "cannot reach the store"),
        (["--target", "cpu"], "no cpu latency profile for space 'mcu-vision' at input 1x8x8"),
        (["--supernet", "/nonexistent.ckpt"], "does not exist"),
        (["hybrid-vision"], "trained on space 'mcu-vision', not 'hybrid-vision'"),
        (["--reference", "accuracy=high"], "--reference accuracy='high': not a number"),
        (["--reference", "cpu_ms=2"], "--reference cpu_ms: not an objective of this search"),
        (["--reference", "accuracy"], "expected NAME=NUMBER"),
    ],
)
def test_bad_search_input_leaves_the_store_as_it_was(cli, tmp_path, search_env, extra, needle):
    db = tmp_path / "bad.db"
    store = Store(str(db))
    before = store.row_counts()
    args = ["search", "--supernet", str(search_env["mcu-vision"]), "--target", "mcu-m7", "--budget", "3", "--db", str(db)]
    # later options win: put the bad ones last (positional SPACE first)
    positional = [a for a in extra if not a.startswith("-") and extra.index(a) == 0]
    rest = [a for a in extra if a not in positional]
    assert_one_line_error(cli(*(args[:1] + positional + args[1:] + rest)), needle)
    assert Store(str(db)).row_counts() == before


def test_a_plain_space_search_never_imports_torch(tmp_path):
    """A user's own evaluator over a plain space (a table, a toy) searches, stores and reports
    without torch: the driver, the strategies and the store stay above the supernet's floor."""
    code = (f"import sys, tests._faults as f\nfrom nas.runner import SearchConfig, search\n"
            f"search(SearchConfig(strategy='surrogate', budget=25, targets=(), workers=0, db={str(tmp_path / 'p.db')!r}, "
            "experiment='p'), evaluator_factory=f.make_toy, objectives=f.OBJECTIVES)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout

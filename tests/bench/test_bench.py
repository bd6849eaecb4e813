"""Tabular benchmarks: NAS-Bench-Graph read safely, any CSV with a plain space, strategies scored
through the normal search path, bad input one line."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

from nas.errors import NasError
from tests.conftest import DATA, assert_one_line_error

pytest.importorskip("nas_bench_graph")


def test_nas_bench_graph_loads_every_dataset_with_isomorphic_archs_as_one():
    from nas.bench import GRAPH_DATASETS, load_benchmark

    bench = load_benchmark("graph:cora")
    assert len(bench.table) == bench.space.size() == 26206
    assert bench.true_hypervolume > 0 and len(bench.true_front) >= 5
    # node order the graph does not see: link L0000 takes every op from the input, any order is one arch
    a = bench.space.parse("link=L0000,op0=gcn,op1=gat,op2=sage,op3=fc")
    b = bench.space.parse("link=L0000,op0=fc,op1=sage,op2=gcn,op3=gat")
    assert a == b and bench.metrics(a) == bench.metrics(b)
    with pytest.raises(NasError, match="is not allowed"):
        bench.space.parse("link=L0000,op0=lstm,op1=gat,op2=sage,op3=fc")
    for dataset in GRAPH_DATASETS:
        other = load_benchmark(f"graph:{dataset}")
        assert len(other.table) >= 2000 and all(m["latency_ms"] > 0 for m in list(other.table.values())[:50])


def test_benchmark_files_are_read_without_running_code(tmp_path, monkeypatch):
    from nas.bench import tables

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "light").mkdir()
    (tmp_path / "light" / "cora.bench").write_bytes(pickle.dumps({0: Evil()}))
    monkeypatch.setattr(tables, "graph_folder", lambda: tmp_path / "light")
    with pytest.raises(NasError, match="is not allowed in a benchmark file"):
        tables.load_graph("cora")


def test_strategies_are_scored_by_the_share_of_the_true_front(tmp_path):
    from nas.bench import BenchConfig, load_benchmark, run_bench

    bench = load_benchmark("graph:proteins")
    result = run_bench(bench, BenchConfig(strategies=("random", "surrogate"), seeds=2, budget=40,
                                          checkpoints=(25, 40), db=str(tmp_path / "b.db")))
    assert len(result.runs) == 4
    for run in result.runs:
        assert run.curve.shape == (40,) and np.all(np.diff(run.curve) >= 0) and 0 < run.curve[-1] <= 1 + 1e-9
    assert result.header()[1:3] == ["after 25", "after 40"] and len(result.rows()) == 2


def _table(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerows(rows)
    return path


def test_any_csv_runs_the_same_way_and_bad_tables_are_one_line(cli, tmp_path):
    with open(DATA / "fbnet_sample.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    good = _table(tmp_path / "good.csv", [header] + body)
    space = str(DATA / "fbnet.yaml")
    result = cli("bench", good, "--space", space, "--objective", "pixel3_ms:min", "--objective", "raspi4_ms:max",
                 "--strategy", "random", "--seeds", "1", "--budget", "30", "--out", tmp_path / "out")
    assert result.code == 0, result
    assert (tmp_path / "out" / "table-good.md").is_file() and (tmp_path / "out" / "table-good.png").is_file()

    noarch = _table(tmp_path / "noarch.csv", [["name", *header[1:]]] + body)
    outside = _table(tmp_path / "outside.csv", [header, [body[0][0].replace("l0=", "l99="), *body[0][1:]]])
    nan = _table(tmp_path / "nan.csv", [header, body[0], [body[1][0], "nan", *body[1][2:]]])
    args = ["--space", space, "--objective", "pixel3_ms:min", "--objective", "raspi4_ms:min", "--seeds", "1", "--budget", "5"]
    assert_one_line_error(cli("bench", noarch, *args), "has no 'arch' column")
    assert_one_line_error(cli("bench", outside, *args), "outside.csv line 2")
    assert_one_line_error(cli("bench", nan, *args), "nan.csv line 3: pixel3_ms is 'nan'")
    assert_one_line_error(cli("bench", good, "--space", space, "--objective", "pixel3_ms:up"), "NAME:max or NAME:min")
    assert_one_line_error(cli("bench", "graph:mnist"), "unknown NAS-Bench-Graph dataset 'mnist'")
    assert_one_line_error(cli("bench", "nonsense"), "unknown benchmark 'nonsense'")
    assert_one_line_error(cli("bench", good, *args[:6], "--budget", "400"), "is more than the 300 archs")
    assert_one_line_error(cli("bench", good, *args, "--reference", "pixel3_ms"), "expected NAME=VALUE")
    assert_one_line_error(cli("bench", good, *args, "--reference", "pixel3_ms=p200"), "p0..p100")
    assert_one_line_error(cli("bench", good, *args, "--reference", "flops=2"), "not an objective")
    assert_one_line_error(cli("bench", good, *args, "--cheap", "flops"), "--cheap flops: not a metric")


@pytest.mark.slow
def test_a_space_half_of_useless_archs_draws_the_default_away_from_them(tmp_path):
    """graph-dead: every arch also cut at its output (chance accuracy, 5% of the latency), the
    fastest corner all useless. Latency known in advance, as a predictor gives it: a strategy that
    chases the fast corner (the old default: 58% of its budget below the accuracy users accept on a
    benchmark like this) finds only cut archs there."""
    from nas.bench import BenchConfig, load_benchmark, run_bench
    from nas.store import Store

    bench = load_benchmark("graph-dead:proteins")
    assert len(bench.table) == 2 * bench.notes["cut"] and bench.true_hypervolume > 0
    db = str(tmp_path / "dead.db")
    result = run_bench(bench, BenchConfig(strategies=("random", "surrogate"), seeds=3, budget=80, checkpoints=(80,),
                                          db=db, cheap=("latency_ms",)))
    store = Store(db, readonly=True)
    cut = {}
    for e in store.experiments():
        archs = [r.arch for r in store.evaluations(e.name)]
        cut.setdefault(e.strategy, []).append(np.mean(["output=cut" in a for a in archs]))
    assert np.mean(cut["random"]) > 0.35  # half the space
    assert np.mean(cut["surrogate"]) < 0.85 * np.mean(cut["random"]), cut
    assert result.fractions("surrogate", 80).mean() > result.fractions("random", 80).mean() + 0.05


"""The experiments stay runnable: every script imports as a module of the ``experiments`` package,
parses its own command line, and the ones with a smoke mode run it end to end."""

from __future__ import annotations

import importlib
import pkgutil
import random
import sys

import pytest

import experiments

SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_"))


def test_every_experiment_is_found():
    assert {"bench_graph", "search_efficiency", "gpu_check", "driver_throughput"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_experiment_imports_and_parses_its_command_line(name, monkeypatch, capsys):
    module = importlib.import_module(f"experiments.{name}")
    assert module.__doc__ and "python -m experiments." + name in module.__doc__, "its docstring says how to run it"
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_graph_smoke_runs_every_strategy_through_the_search_path(monkeypatch, capsys):
    pytest.importorskip("nas_bench_graph")
    from experiments import bench_graph

    monkeypatch.setattr(sys, "argv", ["bench_graph", "--smoke", "--scenarios", "table-cheap", "--jobs", "1"])
    bench_graph.main()
    out = capsys.readouterr().out
    assert "6 to go" in out and "proteins" in out and "'datasets': 2" in out


@pytest.mark.slow
def test_ranking_truth_smoke_trains_and_stores_each_trial(monkeypatch, capsys):
    from experiments import ranking_truth

    monkeypatch.setattr(sys, "argv", ["ranking_truth", "--smoke"])
    ranking_truth.main()
    out = capsys.readouterr().out
    assert "0 trials stored, 4 to train" in out and "4/4 trials" in out
    path = out.strip().splitlines()[-1].split(" in ")[-1]
    rows = ranking_truth.read_trials(ranking_truth.Path(path))
    assert len(rows) == 4 and all(0.0 <= r["acc"] <= 1.0 and r["nll"] > 0 for r in rows)


def test_ranking_truth_keeps_every_trial_a_torn_line_loses_none(tmp_path):
    from experiments.ranking_truth import append_trial, read_trials

    path = tmp_path / "t.csv"
    row = {"space": "s", "arch": "a", "steps": 5, "seed": 0, "acc": 0.5, "nll": 1.2, "seconds": 3.0, "device": "cpu"}
    append_trial(row, path)
    with path.open("a") as f:
        f.write("s,b,5,1,0.4")  # a kill in the middle of a write
    append_trial({**row, "seed": 2}, path)
    assert [(r["arch"], r["seed"]) for r in read_trials(path)] == [("a", 0), ("a", 2)]


def test_ranking_stats_say_what_a_search_needs_of_a_scorer():
    import numpy as np

    from experiments.ranking_truth import ceiling, compare, ranking_stats

    rng = np.random.default_rng(0)
    truth = rng.normal(size=30)
    latency = np.exp(rng.normal(size=30))
    assert ranking_stats(truth, truth, latency) == pytest.approx({"tau": 1.0, "tau_within": 1.0, "precision_top10": 1.0})
    assert ranking_stats(-truth, truth, latency)["tau"] == -1.0
    # Size alone: right across latency bins, no help within one (what params does).
    by_latency = latency + 0.0
    noisy = truth + rng.normal(scale=0.5, size=30)
    results = compare({"params": by_latency, "scorer": noisy}, truth, latency)
    diff, low, high = results["scorer"]["tau_minus_params"]
    assert low <= diff <= high and diff > 0
    assert "tau_minus_params" not in results["params"]
    runs = truth[:, None] + rng.normal(scale=0.1, size=(30, 3))
    assert 0.8 < ceiling(runs) < 1.0


def test_the_ceiling_of_a_seed_mean_truth_is_above_one_seed_against_the_rest():
    import numpy as np

    from experiments.ranking_truth import ceiling, truth_ceiling

    rng = np.random.default_rng(3)
    arch = rng.normal(size=40)
    # Seed noise as large as the archs' spread, and one data order per seed shifting every arch.
    runs = arch[:, None] + rng.normal(size=(40, 3)) + np.array([0.0, 2.0, -1.0])
    full, one = truth_ceiling(runs, sims=400)
    # Measured directly: the 3-seed mean against the arch effects a perfect scorer would know.
    from scipy.stats import kendalltau

    direct = np.mean([kendalltau(arch, (arch[:, None] + rng.normal(size=(40, 3))).mean(1)).statistic
                      for _ in range(200)])
    assert full == pytest.approx(direct, abs=0.08)
    assert one == pytest.approx(ceiling(runs), abs=0.15)  # the model reproduces what it can be checked on
    assert full > one + 0.05  # averaging three seeds is worth something
    clean = arch[:, None] + 1e-3 * rng.normal(size=(40, 3))
    assert truth_ceiling(clean, sims=50)[0] > 0.99


def test_calibrated_taus_fit_on_a_few_archs_and_score_the_rest():
    import numpy as np

    from experiments.ranking_truth import calibrated_taus

    rng = np.random.default_rng(1)
    n = 30
    features = [{"supernet_accuracy": float(a), "supernet_nll": float(-a + rng.normal(0, 0.02)), "log_params": float(p),
                 "depth": float(d)} for a, p, d in zip(rng.uniform(0.7, 0.8, n), rng.uniform(4, 5, n),
                                                        rng.integers(3, 7, n), strict=True)]
    # The truth: the supernet's score corrected for size, as a calibration should learn it.
    truth = np.array([f["supernet_accuracy"] + 0.05 * f["log_params"] for f in features]) + rng.normal(0, 0.003, n)
    params = np.array([10 ** f["log_params"] for f in features])
    taus = calibrated_taus(features, truth, params, k=10, splits=20)
    # the chosen model, each candidate set these features have (no proxies here), and the free scorers
    assert set(taus) == {"calibrated", "ridge on supernet_nll, log_params",
                         "ridge on supernet_accuracy, supernet_nll, log_params, depth", "supernet accuracy", "params"}
    assert all(len(v) == 20 for v in taus.values())
    assert taus["calibrated"].mean() > 0.75 > taus["supernet accuracy"].mean()


def test_steps_section_compares_the_rankings_of_two_training_lengths(tmp_path):
    from experiments.ranking_truth import append_trial, steps_section
    from nas.space import load

    space = load("mcu-vision")
    archs = space.sample_unique(random.Random(0), 4)
    path = tmp_path / "t.csv"
    for i, arch in enumerate(archs):
        for steps, acc in ((1600, 0.80 + 0.01 * i), (3200, 0.83 + 0.01 * i)):
            append_trial({"space": space.name, "arch": arch.to_str(), "steps": steps, "seed": 0, "acc": acc,
                          "nll": 0.5, "seconds": 1.0, "device": "cpu"}, path)
    text = steps_section(space.name, archs, 1600, [3200, 400], path)
    assert "| 3200 | 4 | 1.000 | +3.00 |" in text and "| 400 | 0 | - | - |" in text


def test_a_text_space_truth_is_the_negated_held_out_loss(tmp_path):
    """On hybrid-lm the truth is the loss (lower bits per byte is better), negated so that higher
    is better for every scorer, as accuracy is on the image spaces."""
    from experiments.ranking_truth import append_trial, truth
    from nas.space import load

    archs = load("hybrid-lm").sample_unique(random.Random(0), 2)
    path = tmp_path / "t.csv"
    for i, arch in enumerate(archs):
        append_trial({"space": "hybrid-lm", "arch": arch.to_str(), "steps": 8, "seed": 0, "acc": 0.3 + i / 10,
                      "nll": 2.0 - i / 10, "seconds": 1.0, "device": "cpu"}, path)
    assert truth("hybrid-lm", 8, archs, 1, path, loss=True).ravel().tolist() == [-2.0, -1.9]
    runs = truth("hybrid-lm", 8, archs, 2, path)  # accuracy, and a seed not stored yet
    assert runs[:, 0].tolist() == [0.3, 0.4] and all(v != v for v in runs[:, 1])


def test_the_scores_of_each_arch_are_kept_beside_the_truth(tmp_path):
    import csv

    import numpy as np

    from experiments.ranking_truth import write_scores
    from nas.space import load

    space = load("mcu-vision")
    archs = [space.largest(), space.smallest()]
    write_scores(tmp_path / "s.csv", archs, np.array([0.9, 0.8]),
                 {"params": np.array([2e5, 1e4]), "mean of the 3 supernets, -NLL": np.array([-0.3, -0.4])})
    rows = list(csv.DictReader((tmp_path / "s.csv").read_text().splitlines()))
    assert [space.parse(r["arch"]) for r in rows] == archs
    assert float(rows[1]["mean of the 3 supernets, -NLL"]) == -0.4 and float(rows[0]["truth"]) == 0.9

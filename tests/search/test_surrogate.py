"""The hardware-aware surrogate strategy: what it does with metrics known before evaluation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nas.objectives import Objective, parse_constraint
from nas.pareto import hypervolume, hypervolume_curve
from nas.search import make_strategy
from nas.search.surrogate import hypervolume_gains
from nas.space import load
from tests.search._problems import net_metrics, run

OBJECTIVES = [Objective("accuracy", "max"), Objective("cpu_ms", "min")]


def cheap(arch) -> dict[str, float]:
    """What a latency predictor gives: the latency, before any evaluation."""
    return {"cpu_ms": net_metrics(arch)["cpu_ms"]}


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_gains_match_the_hypervolume_they_add(m):
    rng = np.random.default_rng(m)
    reference = np.ones(m)
    for size in (0, 1, 5):
        front = rng.random((size, m))
        front = front[[not any(np.all(f <= g) and np.any(f < g) for f in front) for g in front]]
        points = rng.random((30, m)) * 1.2 - 0.1  # some beyond the reference, some dominated
        base = hypervolume(front, reference, ["min"] * m) if len(front) else 0.0
        expected = [hypervolume(np.vstack([front, q]), reference, ["min"] * m) - base for q in points]
        assert np.allclose(hypervolume_gains(front, points, reference), expected)


def test_start_up_spreads_over_the_known_latency_fastest_first():
    space = load("hybrid-vision")
    strategy = make_strategy("surrogate", space, OBJECTIVES, seed=0, cheap=cheap)
    first = [strategy.ask() for _ in range(strategy.startup)]
    latencies = [cheap(a)["cpu_ms"] for a in first]
    pool = [cheap(a)["cpu_ms"] for a in space.sample_unique(random.Random(1), 256)]
    assert latencies[0] == min(latencies) and latencies[-1] == max(latencies)
    assert latencies == sorted(latencies)
    assert max(latencies) - min(latencies) > 0.8 * (np.max(pool) - np.min(pool))


def test_known_latency_finds_a_better_front_sooner_than_random():
    space = load("hybrid-vision")
    reference = [0.0, 1.1 * cheap(space.largest())["cpu_ms"]]
    at = {}
    for name in ("random", "surrogate"):
        curves = []
        for seed in range(3):
            results = run(make_strategy(name, space, OBJECTIVES, seed=seed, cheap=cheap), net_metrics, 30)
            points = np.array([[m["accuracy"], m["cpu_ms"]] for _, m in results])
            curves.append(hypervolume_curve(points, reference, ["max", "min"]))
        at[name] = np.mean([c[-1] for c in curves])
    assert at["surrogate"] > at["random"]


def test_asks_in_flight_are_distinct_and_cheap_constraints_hold():
    space = load("hybrid-vision")
    bound = 0.5 * cheap(space.largest())["cpu_ms"]
    constraint = parse_constraint(f"cpu_ms<={bound}", ["accuracy", "cpu_ms"])
    strategy = make_strategy("surrogate", space, OBJECTIVES, [constraint], seed=2, cheap=cheap)
    results = run(strategy, net_metrics, 25)
    assert all(m["cpu_ms"] <= bound for _, m in results)
    batch = [strategy.ask() for _ in range(4)]  # a batch in flight: none told yet
    assert len(set(batch)) == 4 and not set(batch) & {a for a, _ in results}


def test_without_cheap_metrics_every_objective_is_modelled():
    space = load("toy-choice")
    objectives = [Objective("score", "max"), Objective("cost", "min")]
    strategy = make_strategy("surrogate", space, objectives, seed=0)
    assert strategy.known == [] and strategy.modelled == [0, 1]

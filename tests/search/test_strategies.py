"""Contract tests every strategy must pass; a new strategy is added to STRATEGIES and runs here."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nas.errors import NasError
from nas.objectives import Objective, parse_constraint
from nas.search import STRATEGIES, make_strategy
from nas.space import load
from tests.search._problems import OBJECTIVES, net_metrics, run, toy_metrics  # noqa: F401


@pytest.mark.parametrize("name", STRATEGIES)
def test_asks_valid_distinct_archs(name):
    space = load("toy-choice")
    strategy = make_strategy(name, space, OBJECTIVES, seed=0)
    asked = []
    n = 25 if name == "gp" else 40  # gp's fit grows fast with its history
    for _ in range(n):
        arch = strategy.ask()
        assert space.validate(arch) == arch
        asked.append(arch)
        strategy.tell(arch, toy_metrics(arch))
    assert len(set(asked)) == len(asked) == n  # no arch is ever proposed twice


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "random"])
def test_learns_where_the_good_archs_are(name):
    """Told that one activation scores 1 and the others 0, a strategy that learns proposes it far
    more often than a uniform draw's third (random search, which ignores what it is told, does not)."""
    space = load("toy-choice")
    history = [(a, {"score": float(a.as_dict()["activation"] == "gelu"), "cost": 1.0})
               for a in space.sample_unique(random.Random(5), 40)]
    strategy = make_strategy(name, space, OBJECTIVES, seed=0)
    strategy.warm_start(history)
    proposals = []
    for _ in range(20):
        arch = strategy.ask()
        proposals.append(arch.as_dict()["activation"] == "gelu")
        strategy.tell(arch, {"score": float(proposals[-1]), "cost": 1.0})
    assert np.mean(proposals) >= 0.5, f"{name} proposed the good activation {np.mean(proposals):.0%} of the time"


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_failed_evaluation_and_a_nan_objective_teach_nothing_and_break_nothing(name):
    """Every fifth evaluation raises (told as failed), every seventh returns NaN: the strategy goes
    on, never proposes those archs again, and no invented extreme (a 1e9) enters its model."""
    space = load("toy-choice")
    strategy = make_strategy(name, space, OBJECTIVES, seed=2)
    asked, told = [], []
    for i in range(30):
        arch = strategy.ask()
        asked.append(arch)
        if i % 5 == 4:
            strategy.tell_failed(arch)
        elif i % 7 == 6:
            strategy.tell(arch, {"score": float("nan"), "cost": toy_metrics(arch)["cost"]})
        else:
            told.append(toy_metrics(arch))
            strategy.tell(arch, told[-1])
    assert len(set(asked)) == len(asked)
    study = getattr(strategy, "study", None)
    if study is not None:  # the Optuna-backed ones: failed trials, and only real values in the others
        from optuna.trial import TrialState

        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        assert len(complete) == len(told)
        lowest = min(m["score"] for m in told)
        assert all(np.isfinite(t.values).all() and t.values[0] >= lowest for t in complete)
    for model_points in [getattr(strategy, "points", None)]:  # the surrogate's modelled results
        if model_points is not None:
            assert len(model_points) == len(told) and np.isfinite(np.array(model_points)).all()


@pytest.mark.parametrize("space_name", ["mcu-vision", "hybrid-vision"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_works_on_a_network_space(name, space_name):
    space = load(space_name)
    strategy = make_strategy(name, space, [Objective("accuracy", "max"), Objective("cpu_ms", "min")], seed=1)
    results = run(strategy, net_metrics, 20 if name == "gp" else 30)  # gp's fit grows fast with its history
    assert len(results) >= 15


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_proposals(name):
    space = load("toy-choice")
    first = [a for a, _ in run(make_strategy(name, space, OBJECTIVES, seed=7), toy_metrics, 25)]
    second = [a for a, _ in run(make_strategy(name, space, OBJECTIVES, seed=7), toy_metrics, 25)]
    assert first == second


@pytest.mark.parametrize("name", STRATEGIES)
def test_constraints_steer_towards_feasible(name):
    space = load("toy-choice")
    constraint = parse_constraint("cost<=1.5", ["score", "cost"])
    strategy = make_strategy(name, space, OBJECTIVES, [constraint], seed=3)
    results = run(strategy, toy_metrics, 40 if name == "gp" else 60)  # gp's fit grows fast with its history
    feasible = [m for _, m in results if m["cost"] <= 1.5]
    assert feasible, "no feasible point found"
    # Later proposals are feasible at least as often as the first ones (random: about equally).
    half = len(results) // 2
    early = np.mean([m["cost"] <= 1.5 for _, m in results[:half]])
    late = np.mean([m["cost"] <= 1.5 for _, m in results[half:]])
    assert late >= early - 0.25


@pytest.mark.parametrize("name", STRATEGIES)
def test_warm_start_accepts_history_with_failures(name):
    space = load("toy-choice")
    rng = random.Random(0)
    archs = space.sample_unique(rng, 30)
    # A resumed search's rows: ok ones with their metrics, failed ones without any (as the driver replays them).
    history = [(a, toy_metrics(a) if i % 6 else {}) for i, a in enumerate(archs)]
    strategy = make_strategy(name, space, OBJECTIVES, seed=0)
    strategy.warm_start(history)
    for _ in range(5):
        arch = strategy.ask()
        assert arch not in archs  # stored archs, failed ones too, are never proposed again
        strategy.tell(arch, toy_metrics(arch))


def test_results_without_objectives_are_failures_never_asked_again():
    space = load("toy-choice")
    for name in STRATEGIES:
        strategy = make_strategy(name, space, OBJECTIVES, [parse_constraint("cost<=0.5", ["score", "cost"])], seed=0)
        arch = strategy.ask()
        strategy.tell(arch, {"cost": 9.0})  # no score
        later = [strategy.ask() for _ in range(10)]
        assert arch not in later, name


def test_unknown_strategy_and_bad_constraints():
    with pytest.raises(NasError, match="unknown strategy 'annealing'"):
        make_strategy("annealing", load("toy-choice"), OBJECTIVES)
    for text, needle in [("cpu_ms<<2", "does not parse"), ("cpu_ms<=fast", "does not parse"),
                         ("gpu_ms<=2", "unknown metric 'gpu_ms'"), ("<=2", "does not parse"), ("cpu_ms=2", "does not parse")]:
        with pytest.raises(NasError, match=needle):
            parse_constraint(text, ["accuracy", "cpu_ms"])


def test_constraint_slack_and_violation():
    c = parse_constraint("sram_kb<=320", ["sram_kb"])
    assert c.violation({"sram_kb": 300}) == 0 and c.slack({"sram_kb": 300}) < 0
    assert c.violation({"sram_kb": 352}) == pytest.approx(0.1)
    assert c.violation({}) == float("inf")
    low = parse_constraint("accuracy>=0.8", ["accuracy"])
    assert low.violation({"accuracy": 0.9}) == 0 and low.violation({"accuracy": 0.6}) == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["nsga2", "tpe", "gp"])
def test_optuna_strategies_never_walk_past_trials_to_infer_their_space(name, monkeypatch):
    """The space is fixed, so asking must not intersect past trials' distributions: Optuna's walk
    restarts at the oldest unfinished trial on every ask, and one trial left unfinished made a
    long NSGA-II search spend its time there (the soak's rate fell to 2 evaluations a second)."""
    import optuna.search_space.intersection as intersection

    def walked(*args, **kwargs):
        raise AssertionError("the strategy inferred its search space from past trials")

    monkeypatch.setattr(intersection, "_calculate", walked)
    space = load("hybrid-vision")
    strategy = make_strategy(name, space, [Objective("accuracy", "max"), Objective("cpu_ms", "min")], seed=0)
    unfinished = strategy.ask()  # asked and never told, as an arch still in flight is
    rng = random.Random(0)
    for _ in range(20):
        arch = strategy.ask()
        strategy.tell(arch, {"accuracy": rng.random(), "cpu_ms": rng.random()})
    assert unfinished in strategy.pending


SMALL = """
name: small
kind: choice
choices:
  a: [1, 2, 3]
  b: [x, y]
  c: {low: 0, high: 1}
"""


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s != "gp"])
def test_never_proposes_a_taken_arch_and_says_when_the_space_is_exhausted(name):
    """12 archs: every ask is new until none is left, then one clear error."""
    from nas.search import SpaceExhausted
    from nas.space import loads

    space = loads(SMALL)
    strategy = make_strategy(name, space, [Objective("s", "max"), Objective("t", "min")], seed=0)
    asked = []
    for _ in range(space.size()):
        arch = strategy.ask()
        asked.append(arch)
        v = arch.as_dict()
        strategy.tell(arch, {"s": v["a"] + v["c"], "t": v["a"] * (1 + (v["b"] == "y"))})
    assert len(set(asked)) == space.size() == 12
    with pytest.raises(SpaceExhausted, match="all 12 archs of space 'small' are taken"):
        strategy.ask()


def test_a_search_on_an_exhausted_space_ends_with_one_line(tmp_path):
    from nas.evaluate import CallableEvaluator
    from nas.runner import SearchConfig, search
    from nas.space import loads

    space = loads(SMALL)
    objectives = [Objective("s", "max")]
    factory = lambda: CallableEvaluator(space, lambda a: {"s": a.as_dict()["a"]}, objectives)  # noqa: E731
    config = SearchConfig(strategy="tpe", budget=20, targets=(), workers=0, db=str(tmp_path / "x.db"), experiment="e")
    with pytest.raises(NasError, match="the search space is exhausted: all 12 archs"):
        search(config, evaluator_factory=factory, objectives=objectives)
    from nas.store import Store

    assert len(Store(str(tmp_path / "x.db"), readonly=True).evaluations("e")) == 12

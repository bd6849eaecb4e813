"""The hypervolume reference: one rule (nas.pareto.ReferenceRule) for the driver, the store, the
dashboard, the benchmarks and the default strategy's acquisition, for any objective's name."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import NasError
from nas.objectives import Constraint, Objective, parse_reference
from nas.pareto import (
    REFERENCE_AFTER,
    ReferenceRule,
    constraint_bounds,
    experiment_hypervolume,
    quantile_reference,
)
from nas.runner import SearchConfig, search
from nas.space import load
from nas.store import Store
from tests._faults import OBJECTIVES, make_toy, toy_metrics


def test_the_quantile_reference_is_the_ten_percent_worst_value_of_each_objective():
    values = np.column_stack([np.linspace(0, 1, 101), np.linspace(1, 11, 101)])
    assert quantile_reference(values, ["max", "min"]) == pytest.approx([0.1, 10.0])
    # a column where every row is the same still leaves the rows some volume
    same = quantile_reference(np.array([[0.5, 2.0], [0.5, 2.0]]), ["max", "min"])
    assert same[0] < 0.5 and same[1] > 2.0


def test_the_rule_fixes_the_reference_after_the_initial_design_and_keeps_what_was_given():
    rule = ReferenceRule(["score", "cost"], ["max", "min"], {"cost": 3.0})
    assert np.isnan(rule.point()[0]) and rule.point()[1] == 3.0
    rng = np.random.default_rng(0)
    rows = rng.uniform(size=(REFERENCE_AFTER, 2))
    for i, row in enumerate(rows):
        rule.add(list(row))
        assert rule.fixed == (i == REFERENCE_AFTER - 1)
    fixed = rule.point()
    assert fixed[0] == pytest.approx(np.quantile(rows[:, 0], 0.1)) and fixed[1] == 3.0
    assert not rule.add([-5.0, 99.0]) and np.array_equal(rule.point(), fixed)  # later results move nothing
    again = ReferenceRule.from_stored(["score", "cost"], ["max", "min"], {"cost": 3.0}, rows.tolist())
    assert np.array_equal(again.point(), fixed)  # what the dashboard computes for a running search
    assert not rule.add([float("nan"), 1.0])


def test_a_bound_on_an_objective_is_its_reference_and_the_user_can_name_any_objective():
    objectives = [Objective("int8_accuracy", "max"), Objective("mcu-m7_ms", "min")]
    bounds = constraint_bounds(objectives, [Constraint("int8_accuracy", ">=", 0.5), Constraint("mcu-m7_ms", "<=", 40),
                                            Constraint("mcu-m7_ms", "<=", 30), Constraint("sram_kb", "<=", 256)])
    assert bounds == {"int8_accuracy": 0.5, "mcu-m7_ms": 30}
    assert parse_reference("int8_accuracy=0.85, mcu-m7_ms=2", objectives) == {"int8_accuracy": 0.85, "mcu-m7_ms": 2.0}
    for bad, needle in (("accuracy", "expected NAME=NUMBER"), ("int8_accuracy=x", "not a number"),
                        ("int8_accuracy=nan", "finite"), ("flops=3", "not an objective"),
                        ("mcu-m7_ms=1,mcu-m7_ms=2", "twice")):
        with pytest.raises(NasError, match=needle):
            parse_reference(bad, objectives)


def test_a_python_api_search_with_its_own_objectives_reports_and_stores_its_hypervolume(tmp_path):
    db = str(tmp_path / "toy.db")
    result = search(SearchConfig(strategy="random", budget=30, targets=(), workers=0, db=db, experiment="toy"),
                    evaluator_factory=make_toy, objectives=OBJECTIVES)
    store = Store(db, readonly=True)
    exp = store.experiment("toy")
    rows = store.evaluation_rows("toy")
    first = np.array([[r["score"], r["cost"]] for r in sorted(rows, key=lambda r: r["trial"])[:REFERENCE_AFTER]])
    assert exp.reference == pytest.approx(dict(zip(["score", "cost"], quantile_reference(first, ["max", "min"]),
                                                   strict=True)))
    assert result.hypervolume > 0
    stored_hv, reference = experiment_hypervolume(rows, exp.objectives, exp.reference)
    assert stored_hv == pytest.approx(result.hypervolume) and reference == exp.reference
    # resumed, the experiment keeps its reference; given at the start, the user's value is used
    search(SearchConfig(strategy="random", budget=35, targets=(), workers=0, db=db, experiment="toy", resume=True),
           evaluator_factory=make_toy, objectives=OBJECTIVES)
    assert Store(db, readonly=True).experiment("toy").reference == exp.reference
    search(SearchConfig(strategy="surrogate", budget=25, targets=(), workers=0, db=db, experiment="given",
                        reference="score=0.2"), evaluator_factory=make_toy, objectives=OBJECTIVES)
    assert Store(db, readonly=True).experiment("given").reference["score"] == 0.2
    with pytest.raises(NasError, match="--reference score=0.2"):  # resumed with another: refused
        search(SearchConfig(strategy="surrogate", budget=30, targets=(), workers=0, db=db, experiment="given",
                            resume=True, reference="score=0.3"), evaluator_factory=make_toy, objectives=OBJECTIVES)


def test_a_search_shorter_than_the_initial_design_stores_the_reference_its_results_gave(tmp_path):
    db = str(tmp_path / "short.db")
    result = search(SearchConfig(strategy="random", budget=5, targets=(), workers=0, db=db, experiment="short"),
                    evaluator_factory=make_toy, objectives=OBJECTIVES)
    reference = Store(db, readonly=True).experiment("short").reference
    assert set(reference) == {"score", "cost"} and result.hypervolume > 0


def test_the_default_strategys_acquisition_adds_nothing_outside_the_reference():
    """A candidate worse than the reference in one objective holds no volume, however good in the
    other: the model proposes inside the region that counts far more often than chance does."""
    import random

    from nas.search import make_strategy

    space = load("toy-choice")
    rule = ReferenceRule(["score", "cost"], ["max", "min"], {"score": 0.6, "cost": 5.0})
    strategy = make_strategy("surrogate", space, OBJECTIVES, seed=0, reference=rule)

    def inside(arch) -> bool:
        m = toy_metrics(arch.as_dict())
        return m["score"] > 0.6 and m["cost"] < 5.0

    for arch in space.sample_unique(random.Random(0), 30):
        strategy.tell(arch, toy_metrics(arch.as_dict()))
    proposed = []
    for _ in range(15):
        arch = strategy._propose_model()  # the model's own choice (not the portfolio's TPE share)
        strategy.tell(arch, toy_metrics(arch.as_dict()))
        proposed.append(inside(arch))
    chance = np.mean([inside(a) for a in space.sample_unique(random.Random(1), 500)])
    assert np.mean(proposed) >= max(0.6, 2 * chance), (np.mean(proposed), chance)


def test_the_benchmark_judges_at_the_table_or_a_given_reference():
    pytest.importorskip("nas_bench_graph")
    from nas.bench import load_benchmark

    bench = load_benchmark("graph:proteins")
    values = bench.values(list(bench.table.values()))
    assert bench.reference == pytest.approx([np.percentile(values[:, 0], 10), np.percentile(values[:, 1], 90)])
    high = bench.at_reference({"accuracy": "p75"})
    assert high.reference[0] == pytest.approx(np.percentile(values[:, 0], 75))
    assert 0 < high.true_hypervolume < bench.true_hypervolume
    with pytest.raises(NasError, match="not an objective"):
        bench.at_reference({"flops": "p50"})


@pytest.mark.parametrize("name", ["tpe", "nsga2", "evolution", "surrogate"])
def test_strategies_judge_a_result_outside_the_reference_at_the_reference(name):
    """What selects by domination (Optuna's samplers, evolution's tournaments, the portfolio's TPE)
    sees a result worse than the reference in one objective at the reference in all of them."""
    from nas.search import make_strategy

    rule = ReferenceRule(["score", "cost"], ["max", "min"], {"score": 0.6, "cost": 5.0})
    strategy = make_strategy(name, load("toy-choice"), OBJECTIVES, seed=0, reference=rule)
    fast_and_useless = {"score": 0.1, "cost": 0.2, "params": 3.0}
    assert strategy.judged(fast_and_useless) == {"score": 0.6, "cost": 5.0, "params": 3.0}
    assert strategy.judged({"score": 0.7, "cost": 4.0}) == {"score": 0.7, "cost": 4.0}
    arch = strategy.ask()
    strategy.tell(arch, fast_and_useless)
    study = getattr(strategy, "study", None) or getattr(getattr(strategy, "robust", None), "study", None)
    if study is not None:
        assert study.trials[-1].values == [0.6, 5.0]

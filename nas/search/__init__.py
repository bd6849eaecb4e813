"""Search strategies behind one ask/tell interface, and objectives and constraints.

>>> strategy = make_strategy("nsga2", space, default_objectives(["cpu"]), [], seed=0)  # doctest: +SKIP
>>> arch = strategy.ask(); strategy.tell(arch, {"accuracy": 0.9, "cpu_ms": 0.4})     # doctest: +SKIP

Add a strategy by writing a ``Strategy`` subclass (``propose`` and ``learn``; ``tell_failed`` when it opens
bookkeeping per ask) in its own module and listing it here; the
contract tests in ``tests/search/test_strategies.py`` then run over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nas.errors import NasError
from nas.objectives import (
    ARCH_METRICS,
    Constraint,
    Objective,
    default_objectives,
    latency_metric,
    parse_constraint,
    total_violation,
)
from nas.pareto import ReferenceRule
from nas.search._base import SpaceExhausted, Strategy, objective_problem, usable
from nas.space import Arch, SearchSpace


def _registry() -> dict[str, type[Strategy]]:
    # Imported on use: the Optuna-backed modules pull in optuna.
    from nas.search.evolution import RegularizedEvolution
    from nas.search.gp import GaussianProcess
    from nas.search.nsga2 import Nsga2
    from nas.search.random_search import RandomSearch
    from nas.search.surrogate import SurrogateSearch
    from nas.search.tpe import Tpe

    return {cls.name: cls for cls in (RandomSearch, RegularizedEvolution, Nsga2, Tpe, GaussianProcess, SurrogateSearch)}


STRATEGIES = ("random", "evolution", "nsga2", "tpe", "gp", "surrogate")


def make_strategy(name: str, space: SearchSpace, objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = (), seed: int = 0,
                  cheap: Callable[[Arch], Mapping[str, float]] | None = None,
                  reference: ReferenceRule | None = None) -> Strategy:
    """``cheap``: an arch's metrics known before evaluation (the evaluator's ``cheap``), for the
    strategies that use them (``surrogate``); ``reference``: the search's hypervolume reference
    (the strategy keeps its own by the same rule without one)."""
    registry = _registry()
    if name not in registry:
        raise NasError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return registry[name](space, objectives, constraints, seed, cheap=cheap, reference=reference)


__all__ = [
    "ARCH_METRICS",
    "STRATEGIES",
    "Constraint",
    "SpaceExhausted",
    "Objective",
    "Strategy",
    "objective_problem",
    "usable",
    "default_objectives",
    "latency_metric",
    "make_strategy",
    "parse_constraint",
    "total_violation",
]

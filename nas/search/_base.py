"""The ask/tell interface every strategy implements; strategies see archs and numbers only."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from nas.errors import NasError
from nas.objectives import Constraint, Objective, total_violation
from nas.space import Arch, SearchSpace

# Substituted for a missing or non-finite objective value (a screened-out candidate has no accuracy).
_WORST = {"max": -1e9, "min": 1e9}


class Strategy(ABC):
    """Propose archs (``ask``) and learn from their results (``tell``).

    ``tell`` receives every metric of an evaluation; the strategy reads its objectives and
    the constraints' violations from them. A candidate that the driver screened out before
    evaluation (its cheap metrics already break a constraint) is told too, without accuracy.
    ``cheap``, when the evaluator has one, gives an arch's metrics that cost (almost) nothing
    before it is evaluated (predicted latency, params, memory); a strategy may use it or not.
    """

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 seed: int = 0, cheap: Callable[[Arch], Mapping[str, float]] | None = None) -> None:
        if not objectives:
            raise NasError("a search needs at least one objective")
        self.space = space
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        self.seed = seed
        self.rng = random.Random(seed)
        self.cheap = cheap

    @abstractmethod
    def ask(self) -> Arch:
        """A candidate to evaluate next (the driver skips ones already evaluated and tells their result)."""

    @abstractmethod
    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        """The result of evaluating ``arch``."""

    def warm_start(self, history: Sequence[tuple[Arch, Mapping[str, float]]]) -> None:
        """Learn from stored evaluations when a search resumes (in the order they were made)."""
        for arch, metrics in history:
            self.tell(arch, metrics)

    # -- helpers for implementations ---------------------------------------------------------------
    def values(self, metrics: Mapping[str, float]) -> list[float]:
        out = []
        for o in self.objectives:
            v = metrics.get(o.name)
            out.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else _WORST[o.direction])
        return out

    def violation(self, metrics: Mapping[str, float]) -> float:
        return total_violation(self.constraints, metrics)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

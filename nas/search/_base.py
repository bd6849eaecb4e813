"""The ask/tell interface every strategy implements; strategies see archs and numbers only."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar

from nas.errors import NasError
from nas.objectives import Constraint, Objective, total_violation
from nas.pareto import ReferenceRule, constraint_bounds
from nas.space import Arch, SearchSpace


def objective_problem(objectives: Sequence[Objective], metrics: Mapping[str, float]) -> str | None:
    """Why ``metrics`` are no result to learn from (an objective missing, not a number, or not
    finite), as the line a failed evaluation keeps; None when every objective is a finite number."""
    for o in objectives:
        v = metrics.get(o.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"the evaluation returned no number for objective {o.name!r} ({v!r})"
        if not math.isfinite(v):
            return f"objective {o.name!r} is {v}"
    return None


def usable(objectives: Sequence[Objective], metrics: Mapping[str, float]) -> bool:
    """Whether ``metrics`` hold a finite value of every objective (a result a strategy can learn from)."""
    return objective_problem(objectives, metrics) is None


class SpaceExhausted(NasError):
    """Every arch of the space has been taken (evaluated, screened or in flight)."""


class Strategy(ABC):
    """Propose archs (``ask``) and learn from their results (``tell``).

    ``ask`` never returns an arch already *taken* (asked before, or in the history it was
    started with): when the strategy's own proposal (``propose``) is taken, ``replace_taken``
    turns it into the nearest untaken neighbour, so a converged strategy keeps exploring
    around its optimum instead of proposing the same archs again, and its history never holds
    an arch twice. When no arch is left, ``ask`` raises :class:`SpaceExhausted`.

    ``tell`` receives every metric of an evaluation; the strategy reads its objectives and
    the constraints' violations from them (:meth:`learn`). A result without a finite value of
    every objective (the evaluation raised, or returned NaN) teaches nothing: ``tell`` hands it
    to :meth:`tell_failed`, which keeps the arch taken and, for Optuna, closes its trial as
    failed, so a live run and a resumed one (which skips failed rows) know the same things.
    ``cheap``, when the evaluator has one, gives an arch's metrics that cost (almost) nothing
    before it is evaluated (predicted latency, params, memory); a strategy may use it or not.
    ``reference`` is the search's hypervolume reference (:class:`nas.pareto.ReferenceRule`), the
    one its figures are measured with; an acquisition that weighs hypervolume uses it. Without
    one, the strategy keeps its own by the same rule over what it is told.
    """

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 seed: int = 0, cheap: Callable[[Arch], Mapping[str, float]] | None = None,
                 reference: ReferenceRule | None = None) -> None:
        if not objectives:
            raise NasError("a search needs at least one objective")
        self.space = space
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        self.seed = seed
        self.rng = random.Random(seed)
        self.cheap = cheap
        self.taken: set[Arch] = set()
        self._own_reference = reference is None
        self.reference = reference or ReferenceRule([o.name for o in self.objectives], self.directions,
                                                    constraint_bounds(self.objectives, self.constraints))

    def ask(self) -> Arch:
        """A candidate to evaluate next, never one already taken."""
        arch = self.propose()
        if arch in self.taken:
            arch = self.replace_taken(arch)
        self.taken.add(arch)
        return arch

    @abstractmethod
    def propose(self) -> Arch:
        """The strategy's own next candidate (it may be taken; :meth:`ask` handles that)."""

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        """The result of evaluating ``arch`` (a failure when an objective is missing or not finite)."""
        self.taken.add(arch)
        if usable(self.objectives, metrics):
            if self._own_reference:
                self.reference.add(self.values(metrics))
            self.learn(arch, metrics)
        else:
            self.tell_failed(arch)

    @abstractmethod
    def learn(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        """Learn from a usable result of ``arch`` (every objective finite)."""

    def tell_failed(self, arch: Arch) -> None:
        """``arch`` gave no usable result: it stays taken, nothing is learnt (subclasses close
        whatever they opened for it)."""
        self.taken.add(arch)

    def replace_taken(self, arch: Arch) -> Arch:
        """An untaken arch near ``arch``: its mutations, closest first, then a uniform draw.
        Subclasses that opened bookkeeping for ``arch`` (an Optuna trial) close it here."""
        for prob in (0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.5, 0.5):
            for _ in range(4):
                child = self.space.mutate(arch, self.rng, prob=prob)
                if child not in self.taken:
                    return child
        fresh = self.space.sample_unique(self.rng, 1, exclude=self.taken)
        if fresh:
            return fresh[0]
        left = self.space.untaken(self.taken, self.rng)
        if left is None:
            raise SpaceExhausted(f"all {self.space.size():,} archs of space {self.space.name!r} are taken")
        return left

    def warm_start(self, history: Sequence[tuple[Arch, Mapping[str, float]]], taken: Iterable[Arch] = ()) -> None:
        """Learn from stored evaluations when a search resumes (in the order they were made);
        ``taken`` adds archs stored without a usable result (failed ones), never to be asked."""
        self.taken.update(a for a, _ in history)
        self.taken.update(taken)
        self.replay(history)

    def replay(self, history: Sequence[tuple[Arch, Mapping[str, float]]]) -> None:
        """Tell the stored results (how a strategy learns from a resumed search's history)."""
        for arch, metrics in history:
            self.tell(arch, metrics)

    # -- helpers for implementations ---------------------------------------------------------------
    def values(self, metrics: Mapping[str, float]) -> list[float]:
        """The objectives' values of a usable result, in order."""
        return [float(metrics[o.name]) for o in self.objectives]

    def judged(self, metrics: Mapping[str, float]) -> Mapping[str, float]:
        """A usable result as the search judges it: one no better than the reference in some
        objective holds no hypervolume, so it is moved to the reference in every objective, where
        anything inside the region that counts beats it. Told as it is, the fastest net at chance
        accuracy is non-dominated, and a strategy that selects by domination breeds more of it."""
        ref = self.reference.point()
        if not all(math.isfinite(r) for r in ref):
            return metrics
        worse = any((v <= r) if o.direction == "max" else (v >= r)
                    for o, v, r in zip(self.objectives, self.values(metrics), ref, strict=True))
        return {**metrics, **{o.name: float(r) for o, r in zip(self.objectives, ref, strict=True)}} if worse else metrics

    def violation(self, metrics: Mapping[str, float]) -> float:
        return total_violation(self.constraints, metrics)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

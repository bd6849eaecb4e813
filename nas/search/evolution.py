"""Regularized (aging) evolution, multi-objective, with the space's own mutation and crossover.

Real et al. (2019): keep a population of the most recent ``population_size`` results; each
child comes from the winner of a tournament among ``sample_size`` random members, mutated
(and, with ``crossover_prob``, first crossed with a second winner); the oldest member dies.
With several objectives the tournament picks by non-dominated rank under Deb's constrained
domination (feasible before infeasible), then by crowding distance; a result outside the
search's reference box counts as at the reference (``Strategy.judged``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

from nas.pareto import crowding_distance, nondominated_ranks, signs
from nas.search._base import Strategy, usable
from nas.space import Arch


class RegularizedEvolution(Strategy):
    name = "evolution"
    population_size = 24
    sample_size = 6
    crossover_prob = 0.25

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.population: deque[tuple[Arch, list[float], float]] = deque(maxlen=self.population_size)
        self.asked_initial = 0

    def _winner(self) -> Arch:
        members = self.rng.sample(list(self.population), min(self.sample_size, len(self.population)))
        points = np.array([m[1] for m in members])
        ranks = nondominated_ranks(points, self.directions, np.array([m[2] for m in members]))
        best = np.flatnonzero(ranks == ranks.min())
        if len(best) > 1:
            crowd = crowding_distance(points[best] * signs(self.directions))
            best = best[crowd == crowd.max()]
        return members[int(self.rng.choice(list(best)))][0]

    def propose(self) -> Arch:
        if len(self.population) < self.population_size and self.asked_initial < self.population_size:
            self.asked_initial += 1
            return self.space.sample(self.rng)
        if not self.population:
            return self.space.sample(self.rng)
        parent = self._winner()
        if len(self.population) > 1 and self.rng.random() < self.crossover_prob:
            parent = self.space.crossover(parent, self._winner(), self.rng)
        return self.space.mutate(parent, self.rng)

    def learn(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.population.append((arch, self.values(self.judged(metrics)), self.violation(metrics)))

    def replay(self, history) -> None:
        usable_history = [(a, m) for a, m in history if usable(self.objectives, m)]
        for arch, metrics in usable_history[-self.population_size:]:
            self.tell(arch, metrics)
        self.asked_initial = min(len(history), self.population_size)

"""NSGA-II through Optuna's sampler: non-dominated sorting, crowding, uniform crossover of the
space's per-layer choices (a layer-wise crossover of archs) and random mutation."""

from __future__ import annotations

import optuna

from nas.search._optuna import OptunaStrategy


class Nsga2(OptunaStrategy):
    name = "nsga2"
    population_size = 24

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=self.seed)

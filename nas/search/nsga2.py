"""NSGA-II through Optuna's sampler: non-dominated sorting, crowding, uniform crossover of the
space's per-layer choices (a layer-wise crossover of archs) and random mutation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search._optuna import OptunaStrategy


class _CountingNSGAII(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II with its bookkeeping kept as it goes instead of rescanned per ask.

    Optuna finds a new trial's generation by scanning every finished trial, and a generation's
    parents by filtering every trial, on each ask: O(trials) per ask, which made a
    6,000-evaluation search driver-bound. Here the finished trials are counted per generation as
    they are told, and each generation's parents are kept once selected. The answers, and so
    the proposals, are the same as Optuna's."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._finished: Counter[int] = Counter()  # generation -> trials told COMPLETE
        self._parents: dict[int, list[FrozenTrial]] = {}

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        key = self._get_generation_key()
        generation = trial.system_attrs.get(key)
        if generation is not None:
            return generation
        newest = max(self._finished, default=0)
        generation = newest if self._finished[newest] < self._population_size else newest + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        if generation in self._parents:
            return self._parents[generation]
        parents = super().get_parent_population(study, generation)
        # Optuna returns later calls from its cache in trial order; so do we.
        self._parents[generation] = sorted(parents, key=lambda t: t.number)
        return parents

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        generation = trial.system_attrs.get(self._get_generation_key())
        if state == TrialState.COMPLETE and generation is not None and generation >= 0:
            self._finished[generation] += 1


class Nsga2(OptunaStrategy):
    name = "nsga2"
    population_size = 24

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return _CountingNSGAII(population_size=self.population_size, seed=self.seed)

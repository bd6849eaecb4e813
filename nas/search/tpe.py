"""Multi-objective TPE (MOTPE) through Optuna: density models of good and bad archs over all
parameters jointly (multivariate), constraint-aware."""

from __future__ import annotations

import optuna

from nas.search._optuna import OptunaStrategy


class Tpe(OptunaStrategy):
    name = "tpe"
    startup_trials = 16

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(n_startup_trials=self.startup_trials, multivariate=True, seed=self.seed,
                                          warn_independent_sampling=False)

"""Gaussian-process Bayesian optimisation through Optuna's GPSampler (multi-objective expected
hypervolume improvement; constraint-aware)."""

from __future__ import annotations

import optuna

from nas.search._optuna import OptunaStrategy


class GaussianProcess(OptunaStrategy):
    name = "gp"
    startup_trials = 16

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(n_startup_trials=self.startup_trials, seed=self.seed,
                                         deterministic_objective=True)

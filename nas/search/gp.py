"""Gaussian-process Bayesian optimisation through Optuna's GPSampler (multi-objective expected
hypervolume improvement; constraint-aware)."""

from __future__ import annotations

import warnings

import optuna

from nas.search._optuna import OptunaStrategy


class GaussianProcess(OptunaStrategy):
    name = "gp"
    startup_trials = 16

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        # An evaluation of one arch gives one answer (inherited weights, a fixed split), so the GP
        # models no noise. Optuna marks the argument experimental; that is not the user's concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(n_startup_trials=self.startup_trials, seed=self.seed,
                                             deterministic_objective=True)

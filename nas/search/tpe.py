"""Multi-objective TPE (MOTPE) through Optuna: density models of good and bad archs over all
parameters jointly (multivariate), constraint-aware."""

from __future__ import annotations

import optuna

from nas.search._optuna import OptunaStrategy


class Tpe(OptunaStrategy):
    name = "tpe"
    startup_trials = 16

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        # Every trial has the same flat parameters, so multivariate TPE never falls back to
        # independent sampling (Optuna 4.9 deprecated the switch that silenced that warning).
        return optuna.samplers.TPESampler(n_startup_trials=self.startup_trials, multivariate=True, seed=self.seed)

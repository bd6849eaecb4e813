"""Multi-objective TPE (MOTPE) through Optuna: density models of good and bad archs over all
parameters jointly (multivariate), constraint-aware.

Optuna rebuilds both density models from every trial on every ask, so an ask costs time in
proportion to the trials (about 12 ms at 2,000 on 2 cores). Past ``reuse_after`` trials the
models are kept for a batch of asks, one ask per hundred trials (each ask draws fresh
candidates from them), which keeps a long search evaluation-bound; a batch sees no results of
its own asks, as a batch of parallel workers would not either.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import FrozenTrial, TrialState

from nas.search._optuna import OptunaStrategy


class _BatchedTPE(optuna.samplers.TPESampler):
    """Optuna's TPE whose density models serve several asks once the study is large (see the
    module's docstring). It overrides the private ``_sample`` of the pinned Optuna (5.0) and calls
    the same helpers Optuna's own does, in the same order."""

    def __init__(self, reuse_after: int = 400, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reuse_after = reuse_after
        self._models: tuple[Any, Any] | None = None
        self._uses_left = 0
        self._key: tuple[str, ...] = ()

    def _sample(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True)
        if len(trials) < self._reuse_after:
            return super()._sample(study, trial, search_space)
        key = tuple(search_space)
        if self._models is None or self._uses_left <= 0 or key != self._key:
            if self._gamma is None:
                super()._sample(study, trial, search_space)  # sets Optuna's default gamma on first use
            below, above = _split_trials(study, trials, self._gamma(len(trials)))
            self._models = (self._build_parzen_estimator(study, search_space, below, handle_below=True),
                            self._build_parzen_estimator(study, search_space, above, handle_below=False))
            self._uses_left, self._key = max(1, len(trials) // 100), key
        self._uses_left -= 1
        below_model, above_model = self._models
        samples = below_model.sample(self._rng.rng, self._n_ei_candidates)
        chosen = optuna.samplers.TPESampler._compare(samples, self._compute_acquisition_func(samples, below_model,
                                                                                             above_model))
        return {name: dist.to_external_repr(chosen[name]) for name, dist in search_space.items()}


class Tpe(OptunaStrategy):
    name = "tpe"
    startup_trials = 16

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        # Every trial has the same flat parameters, so multivariate TPE never falls back to
        # independent sampling (Optuna 4.9 deprecated the switch that silenced that warning).
        return _BatchedTPE(n_startup_trials=self.startup_trials, multivariate=True, seed=self.seed)

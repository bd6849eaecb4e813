"""Adapter from our ask/tell interface to Optuna samplers (one in-memory study per search).

The study sees the space's fixed-length flat parameters (``SearchSpace.params()``: integer
ranges and categoricals, one pair of mixer/ffn choices per layer slot), so every sampler can
model every parameter jointly. Results come back as objective values plus constraint slacks
(``<= 0`` is feasible), set on each trial with Optuna's ``set_constraint``. Resuming replays the stored history into
the study with ``add_trial``; our SQL store is the persistent record, not Optuna's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import Trial, TrialState

from nas.errors import NasError
from nas.search._base import Strategy, usable
from nas.space import Arch

_MISSING = 1e6  # the slack of a constraint whose metric is missing (Optuna refuses NaN)


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna logs every finished trial at INFO; the search reports its own progress."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


class OptunaStrategy(Strategy):
    """Base of the Optuna-backed strategies; subclasses only build their sampler."""

    def make_sampler(self) -> optuna.samplers.BaseSampler:  # pragma: no cover - abstract
        raise NotImplementedError

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.distributions: dict[str, BaseDistribution] = {}
        for p in self.space.params():
            if p.kind == "int":
                self.distributions[p.name] = IntDistribution(p.low, p.high, step=p.step)
            else:
                self.distributions[p.name] = CategoricalDistribution(list(p.choices))
        sampler = self.make_sampler()
        # Every trial has these same distributions, so the relative search space is known. Optuna
        # infers it by intersecting the distributions of past trials, and that walk restarts at
        # the oldest unfinished trial on every ask: with one trial left unfinished it grew to
        # thousands of trials per ask and made a 6,000-evaluation NSGA-II search driver-bound.
        # Same contents and order (by name, single-valued ones left to independent sampling).
        relative = dict(sorted((n, d) for n, d in self.distributions.items() if not d.single()))
        sampler.infer_relative_search_space = lambda study, trial: dict(relative)
        directions = ["maximize" if d == "max" else "minimize" for d in self.directions]
        with _quiet():
            self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.pending: dict[Arch, Trial] = {}  # asked and not yet told
        self._last: Trial | None = None  # the trial of the latest proposal

    def propose(self) -> Arch:
        for _ in range(10):
            with _quiet():
                self._last = self.study.ask(self.distributions)
            try:
                arch = self.space.decode(self._last.params)
            except NasError:  # a combination the space does not hold (a benchmark that leaves some out)
                with _quiet():
                    self.study.tell(self._last, state=TrialState.FAIL)
                continue
            self.pending.setdefault(arch, self._last)
            return arch
        self._last = None  # ten invalid proposals in a row: a uniform draw, told later as a trial of its own
        return self.space.sample(self.rng)

    def replace_taken(self, arch: Arch) -> Arch:
        # The sampler proposed an arch already taken. Its trial is closed as failed, which the
        # samplers ignore, instead of told the old result again (a study that counted every
        # repeat grew, and slowed every ask, with the repeats); the neighbour that replaces it
        # is added to the study as a trial of its own when its result comes.
        if self._last is not None:
            if self.pending.get(arch) is self._last:
                del self.pending[arch]
            with _quiet():
                self.study.tell(self._last, state=TrialState.FAIL)
            self._last = None
        return super().replace_taken(arch)

    def _slacks(self, metrics: Mapping[str, float]) -> dict[str, float] | None:
        if not self.constraints:
            return None
        return {c.text: min(c.slack(metrics), _MISSING) for c in self.constraints}

    def tell_failed(self, arch: Arch) -> None:
        super().tell_failed(arch)
        trial = self.pending.pop(arch, None)
        if trial is not None:  # the samplers ignore failed trials
            with _quiet():
                self.study.tell(trial, state=TrialState.FAIL)

    def learn(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        values = self.values(self.judged(metrics))
        trial = self.pending.pop(arch, None)
        if trial is None:  # a result the study did not ask for (a replaced repeat, or history)
            self._add(arch, values, metrics)
            return
        for key, value in (self._slacks(metrics) or {}).items():
            trial.set_constraint(key, value)
        with _quiet():
            self.study.tell(trial, values, state=TrialState.COMPLETE)

    def _add(self, arch: Arch, values: list[float], metrics: Mapping[str, float]) -> None:
        with _quiet():
            self.study.add_trial(optuna.trial.create_trial(
                params=self.space.encode(arch), distributions=self.distributions, values=values,
                constraints=self._slacks(metrics), state=TrialState.COMPLETE,
            ))

    def replay(self, history) -> None:
        for arch, metrics in history:
            if usable(self.objectives, metrics):
                self._add(arch, self.values(self.judged(metrics)), metrics)

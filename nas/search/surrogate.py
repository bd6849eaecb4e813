"""Hardware-aware, surrogate-assisted search: latency is known before evaluation, only accuracy
is modelled, and each ask proposes the candidate with the largest predicted hypervolume gain.

A hardware-aware search knows a candidate's latency, memory and size before evaluating it:
the latency predictors cost microseconds, an evaluation costs a pass over the validation
split. The other strategies treat latency like any measured objective; this one uses what the
evaluator's cheap metrics already tell (DyNAS-T's LINAS and OFA's predictor-guided search
rest on the same observation):

1. Start-up. The first ``startup`` archs are spread evenly over the range of the first known
   objective (its quantiles over ``pool`` random archs), fastest first, instead of drawn
   uniformly: uniform draws of a deep elastic net bunch up around the middle latencies.
2. Then, on each ask, candidates are bred from the archs on the front so far with the space's
   own mutation and crossover (and a share of uniform draws). Objectives the cheap metrics
   give are taken as they are; the others (accuracy) come from a random forest over the
   space's flat parameters, optimistically (mean + ``beta`` x the trees' spread). The
   candidate whose point adds the most hypervolume to the front of the results so far, and
   of the archs still in flight at their predicted values (so one batch spreads out), is
   proposed; when no candidate adds any, the one closest to the front is.

Constraints on cheap metrics drop the candidates that break them; constraints on modelled
metrics rank candidates by predicted violation first. Without cheap metrics (a user's own
evaluator that gives none) every objective is modelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from nas.pareto import hypervolume_gains, pareto_mask, signs
from nas.search._base import Strategy
from nas.space import Arch


class SurrogateSearch(Strategy):
    name = "surrogate"
    startup = 10  # archs spread over the known objective's range before the model is used
    pool = 256  # random archs the start-up quantiles are taken from
    candidates = 128  # bred per ask
    uniform_share = 0.1  # of the candidates drawn uniformly, for global exploration
    crossover_share = 0.25
    beta = 1.0  # optimism: mean + beta x spread of the trees
    trees = 32

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.signs = signs(self.directions)  # to minimisation form
        self._cheap_cache: dict[Arch, dict[str, float]] = {}
        probe = self._known(self.space.sample(self.rng)) if self.cheap else {}
        self.known = [i for i, o in enumerate(self.objectives) if o.name in probe]
        self.modelled = [i for i, o in enumerate(self.objectives) if o.name not in probe]
        self.archs: list[Arch] = []  # told, in order
        self.points: list[np.ndarray] = []  # their objective values, minimisation form (NaN when missing)
        self.feasible: list[bool] = []
        self.seen: set[Arch] = set()
        self.pending: dict[Arch, np.ndarray | None] = {}  # asked, not yet told -> predicted point (once modelled)
        self._plan: list[Arch] | None = None
        self._model = None
        self._model_size = 0
        self._target_scale: tuple[np.ndarray, np.ndarray] | None = None

    # -- known (cheap) metrics ---------------------------------------------------------------------
    def _known(self, arch: Arch) -> dict[str, float]:
        out = self._cheap_cache.get(arch)
        if out is None:
            if len(self._cheap_cache) > 100_000:
                self._cheap_cache.clear()
            out = self._cheap_cache[arch] = dict(self.cheap(arch)) if self.cheap else {}
        return out

    # -- start-up ----------------------------------------------------------------------------------
    def _startup_plan(self) -> list[Arch]:
        pool = self.space.sample_unique(self.rng, self.pool, exclude=self.seen)
        if not self.known or not pool:
            return pool[: self.startup]
        allowed = [a for a in pool if self._cheap_violation(a) == 0] or pool
        first = self.objectives[self.known[0]].name
        signs = self.signs[self.known[0]]
        allowed.sort(key=lambda a: signs * self._known(a)[first])  # best value of the known objective first
        picks = np.unique(np.round(np.linspace(0, len(allowed) - 1, min(self.startup, len(allowed)))).astype(int))
        return [allowed[i] for i in picks]

    def _cheap_violation(self, arch: Arch) -> float:
        known = self._known(arch)
        return float(sum(c.violation(known) for c in self.constraints if c.metric in known))

    # -- the model of the other objectives ---------------------------------------------------------
    def _fit(self) -> None:
        rows = [i for i, p in enumerate(self.points) if np.all(np.isfinite(p[self.modelled]))]
        if len(rows) < 2:
            self._model = None
            return
        # Refit as results come in, less often as they pile up (a fit grows with the results).
        if self._model is not None and len(rows) - self._model_size < max(1, len(rows) // 10):
            return
        from sklearn.ensemble import RandomForestRegressor

        x = self.space.features([self.archs[i] for i in rows])
        y = np.array([self.points[i][self.modelled] for i in rows])
        mean, scale = y.mean(axis=0), y.std(axis=0)
        scale[scale == 0] = 1.0
        model = RandomForestRegressor(n_estimators=self.trees, min_samples_leaf=1, max_features=0.5,
                                      random_state=self.seed, n_jobs=1)
        target = (y - mean) / scale
        model.fit(x, target[:, 0] if target.shape[1] == 1 else target)
        self._model, self._model_size, self._target_scale = model, len(rows), (mean, scale)

    def _predict(self, archs: list[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the modelled objectives (minimisation form), one row per arch."""
        k = len(self.modelled)
        if self._model is None or not archs:
            return np.zeros((len(archs), k)), np.full((len(archs), k), np.inf)
        x = self.space.features(archs).astype(np.float32)
        # Each tree's own prediction, for the spread; straight from the fitted trees (the rows are
        # already valid: sklearn's per-call checks cost more than the trees themselves here).
        per_tree = np.stack([t.tree_.predict(x).reshape(len(archs), k) for t in self._model.estimators_])
        mean, scale = self._target_scale
        return per_tree.mean(axis=0) * scale + mean, per_tree.std(axis=0) * scale

    def _points(self, archs: list[Arch]) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
        """Each arch's objective values (minimisation form; modelled ones at the model's mean),
        their spread (0 for known ones and before there is a model) and the metrics its
        constraints can be checked on."""
        mean, spread = self._predict(archs)
        out = np.zeros((len(archs), len(self.objectives)))
        unsure = np.zeros_like(out)
        metrics = []
        for r, arch in enumerate(archs):
            known = self._known(arch)
            values = dict(known)
            for j in self.known:
                out[r, j] = self.signs[j] * known[self.objectives[j].name]
            for col, j in enumerate(self.modelled):
                out[r, j] = mean[r, col]
                unsure[r, j] = spread[r, col] if np.isfinite(spread[r, col]) else 0.0
                values[self.objectives[j].name] = self.signs[j] * mean[r, col]
            metrics.append(values)
        return out, unsure, metrics

    # -- ask / tell --------------------------------------------------------------------------------
    def _parents(self) -> list[Arch]:
        """What the candidates are bred from: the archs on the front so far (feasible ones first),
        topped up to 8 from the next fronts."""
        usable = np.array([i for i, p in enumerate(self.points) if np.all(np.isfinite(p))], dtype=int)
        if not len(usable):
            return []
        feasible = np.array([self.feasible[i] for i in usable], dtype=bool)
        points = np.array([self.points[i] for i in usable])
        chosen: list[int] = []
        want = min(8, len(usable))
        for group in (feasible, ~feasible):
            remaining, rows = usable[group], points[group]
            while len(remaining) and len(chosen) < want:
                on_front = pareto_mask(rows, ["min"] * rows.shape[1])
                if not chosen:
                    want = max(want, int(on_front.sum()))  # the whole first front, however large
                chosen.extend(int(i) for i in remaining[on_front])
                remaining, rows = remaining[~on_front], rows[~on_front]
        return [self.archs[i] for i in chosen[:want]]

    def _breed(self, parents: list[Arch]) -> list[Arch]:
        out: dict[Arch, None] = {}
        for _ in range(self.candidates):
            r = self.rng.random()
            if not parents or r < self.uniform_share:
                child = self.space.sample(self.rng)
            elif r < self.uniform_share + self.crossover_share and len(parents) > 1:
                a, b = self.rng.sample(parents, 2)
                child = self.space.mutate(self.space.crossover(a, b, self.rng), self.rng, prob=0.1)
            else:
                child = self.space.mutate(self.rng.choice(parents), self.rng, prob=self.rng.choice((0.1, 0.3)))
            if child not in self.seen and child not in self.pending:
                out[child] = None
        return list(out)

    def _front(self) -> np.ndarray:
        rows = [p for p, ok in zip(self.points, self.feasible, strict=True) if ok and np.all(np.isfinite(p))]
        rows += [p for p in self.pending.values() if p is not None]
        if not rows:
            return np.zeros((0, len(self.objectives)))
        points = np.array(rows)
        return points[pareto_mask(points, ["min"] * points.shape[1])]

    def _choose(self, candidates: list[Arch]) -> tuple[Arch, np.ndarray]:
        """The candidate to propose, and its predicted point."""
        predicted, unsure, metrics = self._points(candidates)
        optimistic = predicted - self.beta * unsure
        front = self._front()
        # Predicted violation first (cheap metrics exact, modelled ones at their mean), then gain.
        violation = np.array([sum(c.violation(m) for c in self.constraints if c.metric in m) for m in metrics])
        everything = np.vstack([front, optimistic]) if len(front) else optimistic
        worst, best = everything.max(axis=0), everything.min(axis=0)
        span = np.where(worst > best, worst - best, 1.0)
        reference = worst + 0.1 * span
        gain = hypervolume_gains(front, optimistic, reference)
        # How much each candidate must improve in every objective (relative to the span) to leave
        # the front's shadow: ranks the candidates that add nothing.
        if len(front):
            shadow = np.max(np.min((optimistic[:, None, :] - front[None, :, :]) / span, axis=2), axis=1)
            closeness = -np.maximum(shadow, 0.0)
        else:
            closeness = np.zeros(len(candidates))
        pick = int(np.lexsort((-closeness, -gain, violation))[0])
        return candidates[pick], predicted[pick]

    def propose(self) -> Arch:
        if len(self.archs) + len(self.pending) < self.startup:
            if self._plan is None:
                self._plan = self._startup_plan()
            while self._plan:
                arch = self._plan.pop(0)
                if arch not in self.seen and arch not in self.pending:
                    return self._remember(arch)
        self._fit()
        candidates = self._breed(self._parents())
        if not candidates:
            fresh = self.space.sample_unique(self.rng, 1, exclude=self.seen | set(self.pending))
            return self._remember(fresh[0] if fresh else self.space.sample(self.rng))
        return self._remember(*self._choose(candidates))

    def _remember(self, arch: Arch, predicted: np.ndarray | None = None) -> Arch:
        if arch not in self.seen:
            # In flight at its predicted point once there is a model (or nothing to model).
            if self._model is None and self.modelled:
                predicted = None
            elif predicted is None:
                predicted = self._points([arch])[0][0]
            self.pending[arch] = predicted
        return arch

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.pending.pop(arch, None)
        if arch in self.seen:
            return
        self.seen.add(arch)
        self.archs.append(arch)
        point = np.array([self.signs[j] * float(metrics[o.name])
                          if isinstance(metrics.get(o.name), (int, float)) and math.isfinite(metrics[o.name])
                          else math.nan for j, o in enumerate(self.objectives)])
        self.points.append(point)
        self.feasible.append(self.violation(metrics) == 0)


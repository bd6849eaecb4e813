"""The default strategy: a portfolio of a surrogate model's proposals and TPE's, in fixed shares,
with the model's acquisition restricted to the region that counts (better than the search's
reference point in every objective).

Why a portfolio. A model-based acquisition is only as good as its model and its yardstick: the
previous default, alone and weighing gains on log axes against a reference at the worst values
seen, spent 58% of a 300-evaluation search on archs below the accuracy a user would accept, and
ended below random search on a benchmark it was not tuned on. TPE, a density model of good and
bad archs, is rarely best and rarely bad. Here TPE proposes ``tpe_share`` of the archs after the
start-up (every other one), as SMAC interleaves random configurations with its model's, and
every result, whoever proposed it, teaches both members. The share was chosen on three of
NAS-Bench-Graph's nine datasets, four ways each (experiments/surrogate_settings.py; half beat a
quarter in all twelve, and shares that followed each member's hypervolume gains did no better);
the other six are where experiments/results/bench_graph.md reports it was never tuned.

The model's proposals. A hardware-aware search often knows a candidate's latency, memory and
size before evaluating it (the latency predictors cost microseconds); then only accuracy needs
modelling. On a table or a user's own evaluator every objective may be costly, and every one is
modelled. In both cases:

1. Start-up. The first ``startup`` archs are spread evenly over the range of the first known
   objective (its quantiles over ``pool`` random archs), fastest first; with nothing known,
   twice as many drawn uniformly. Five (ten uniform) beat ten (twenty) on the three tuning
   datasets after 300 evaluations in all four scenarios and after 100 in three of them
   (experiments/results/surrogate_settings.md).
2. Models. Each modelled objective gets a random forest over the space's features (each choice
   one-hot, and for a plain space how often each value occurs among parameters that share
   their choices, so that node order matters less than node content). An objective that is
   positive and spans more than 3x (a latency) is modelled in log space. The trees' spread is
   the uncertainty; candidates are judged optimistically (mean - ``beta`` x spread, mapped back
   to the objective's own scale).
3. Candidates. A space small enough to list (at most ``enumerate_limit`` archs, such as a
   tabular benchmark) is scored whole; a larger one through ``candidates`` archs bred from the
   front so far (the space's mutation and crossover) and a share of uniform draws.
4. Choice. The hypervolume each optimistic candidate adds to the front of the results so far
   and of the archs in flight, on the objectives' own scales (where the search is judged) and
   bounded by the search's reference point (:class:`nas.pareto.ReferenceRule`): a candidate
   worse than the reference in any objective adds nothing, however fast. Candidates are
   ordered by predicted constraint violation, then those that add volume before those that do
   not, then by rank among the optimistic points' non-dominated fronts, then by gain (and, for
   those that add nothing, by distance to the region that counts). A *batch* of the best is
   queued (one until ``sequential_until`` results, then growing with the results to
   ``max_batch``), so that several workers get different archs and a long search is not bound
   by refits.

Constraints on cheap metrics drop the candidates that break them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nas.pareto import first_fronts, hypervolume_gains, pareto_mask, signs
from nas.search._base import Strategy
from nas.search.tpe import Tpe
from nas.space import Arch


def _log_axis(raw: np.ndarray) -> bool:
    """Whether an objective's values (its own sign) are a positive quantity spanning more than 3x,
    such as a latency: modelled, and weighed in the acquisition, on a log axis."""
    raw = raw[np.isfinite(raw)]
    return bool(len(raw) and np.all(raw > 0) and raw.max() > 3 * raw.min())


class SurrogateSearch(Strategy):
    name = "surrogate"
    startup = 5  # archs spread over the known objective's range (twice as many uniform) before the models are used
    pool = 256  # random archs the start-up quantiles are taken from
    candidates = 256  # bred per plan, in a space too large to score whole
    uniform_share = 0.1  # of the bred candidates drawn uniformly, for global exploration
    crossover_share = 0.25
    beta = 0.5  # optimism: mean - beta x spread of the trees (minimisation form)
    tpe_share = 0.5  # of the proposals after the start-up, TPE's
    trees = 48
    max_batch = 64  # archs queued per plan at the most (one per 20 results so far, at least one)
    sequential_until = 100  # before this many results: one arch per plan, the models refit on every result
    # Spaces up to this size are scored whole on every plan; larger ones, even those small enough to
    # list (SearchSpace.enumerable, 200,000), through bred candidates: scoring more costs more than breeding.
    enumerate_limit = 100_000

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
        self._queue: list[tuple[Arch, np.ndarray]] = []  # chosen by the last plan, not yet proposed
        self._models: list = []  # one forest per modelled objective
        self._model_size = 0
        self._logged: list[bool] = []  # per modelled objective: fitted in log space
        self._listed: list[Arch] | None = None  # every arch, for a space small enough to list
        self._listed_x: np.ndarray | None = None
        self._counts = self._count_groups()
        # The portfolio: TPE told every result, and what each member's results have added.
        self.robust = Tpe(self.space, self.objectives, self.constraints, self.seed + 1, cheap=self.cheap,
                          reference=self.reference)
        self._made = {"model": 0, "tpe": 0}  # proposals after the start-up

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
            return pool[: self._startup()]
        allowed = [a for a in pool if self._cheap_violation(a) == 0] or pool
        first = self.objectives[self.known[0]].name
        signs = self.signs[self.known[0]]
        allowed.sort(key=lambda a: signs * self._known(a)[first])  # best value of the known objective first
        picks = np.unique(np.round(np.linspace(0, len(allowed) - 1, min(self.startup, len(allowed)))).astype(int))
        return [allowed[i] for i in picks]

    def _cheap_violation(self, arch: Arch) -> float:
        known = self._known(arch)
        return float(sum(c.violation(known) for c in self.constraints if c.metric in known))

    # -- features ----------------------------------------------------------------------------------
    def _count_groups(self) -> list[tuple[list[str], dict]]:
        """For a plain space, groups of two or more categorical parameters with the same choices
        (a cell's operations): each gives, per value, how many of its parameters take it."""
        if self.space.kind != "choice":
            return []
        groups: dict[tuple, list[str]] = {}
        for p in self.space.params():
            if p.kind == "categorical":
                groups.setdefault(tuple(p.choices), []).append(p.name)
        return [(names, {v: i for i, v in enumerate(choices)}) for choices, names in groups.items() if len(names) > 1]

    def _features(self, archs: list[Arch]) -> np.ndarray:
        x = self.space.features(archs)
        if not self._counts:
            return x
        encoded = [self.space.encode(arch) for arch in archs]
        extra = []
        for names, index in self._counts:
            counts = np.zeros((len(archs), len(index)))
            for r, values in enumerate(encoded):
                for name in names:
                    counts[r, index[values[name]]] += 1
            extra.append(counts)
        return np.hstack([x, *extra])

    # -- the models of the other objectives --------------------------------------------------------
    def _fit(self) -> None:
        rows = [i for i, p in enumerate(self.points) if np.all(np.isfinite(p[self.modelled]))]
        if len(rows) < 2:
            self._models = []
            return
        # Refit as results come in, less often as they pile up (a fit grows with the results).
        n = len(rows)
        interval = 1 if n < self.sequential_until else n // 10 if n > 400 else max(1, min(16, n // 10))
        if self._models and n - self._model_size < interval:
            return
        from sklearn.ensemble import RandomForestRegressor

        x = self._features([self.archs[i] for i in rows]).astype(np.float32)
        y = np.array([self.points[i][self.modelled] for i in rows])
        self._models, self._logged = [], []
        for col, j in enumerate(self.modelled):
            raw = self.signs[j] * y[:, col]
            logged = _log_axis(raw)
            target = self.signs[j] * np.log(raw) if logged else y[:, col]
            forest = RandomForestRegressor(n_estimators=self.trees, min_samples_leaf=1, max_features=0.5,
                                           random_state=self.seed, n_jobs=1).fit(x, target)
            self._models.append(forest)
            self._logged.append(logged)
        self._model_size = len(rows)

    def _predict_x(self, x: np.ndarray, optimism: float) -> tuple[np.ndarray, np.ndarray]:
        """The modelled objectives (minimisation form, their own scale) at the mean and at mean -
        ``optimism`` x the trees' spread."""
        mean, optimistic = np.zeros((len(x), len(self.modelled))), np.zeros((len(x), len(self.modelled)))
        for col, (forest, logged) in enumerate(zip(self._models, self._logged, strict=True)):
            # Each tree's own prediction, for the spread; straight from the fitted trees (the rows
            # are already valid: sklearn's per-call checks cost more than the trees themselves).
            per_tree = np.stack([t.tree_.predict(x).reshape(-1) for t in forest.estimators_])
            spread = per_tree.std(axis=0)
            centre = per_tree.mean(axis=0)
            j = self.modelled[col]
            for out, value in ((mean, centre), (optimistic, centre - optimism * spread)):
                out[:, col] = self.signs[j] * np.exp(self.signs[j] * value) if logged else value
        return mean, optimistic

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        if not self._models or not archs:
            return np.zeros((len(archs), len(self.modelled)))
        return self._predict_x(self._features(archs).astype(np.float32), 0.0)[0]

    def _points(self, archs: list[Arch], modelled: np.ndarray | None = None) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Each arch's objective values (minimisation form): known ones as they are, modelled ones
        from ``modelled`` (the models' mean by default), and the metrics its constraints can be
        checked on."""
        if modelled is None:
            modelled = self._predict(archs)
        out = np.zeros((len(archs), len(self.objectives)))
        if not self.known and not self.constraints:  # nothing per arch to look up
            out[:, self.modelled] = modelled
            return out, [{} for _ in archs]
        metrics = []
        for r, arch in enumerate(archs):
            known = self._known(arch)
            values = dict(known)
            for j in self.known:
                out[r, j] = self.signs[j] * known[self.objectives[j].name]
            for col, j in enumerate(self.modelled):
                out[r, j] = modelled[r, col]
                values[self.objectives[j].name] = self.signs[j] * modelled[r, col]
            metrics.append(values)
        return out, metrics

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

    def _reference_min(self, points: np.ndarray) -> np.ndarray:
        """The search's reference point in minimisation form; where it has none yet (no result),
        10% of the range past the worst of ``points``."""
        ref = self.reference.point() * self.signs
        if np.all(np.isfinite(ref)):
            return ref
        worst, best = points.max(axis=0), points.min(axis=0)
        return np.where(np.isfinite(ref), ref, worst + 0.1 * np.where(worst > best, worst - best, 1.0))

    def _front(self) -> np.ndarray:
        rows = [p for p, ok in zip(self.points, self.feasible, strict=True) if ok and np.all(np.isfinite(p))]
        rows += [p for p in self.pending.values() if p is not None]
        if not rows:
            return np.zeros((0, len(self.objectives)))
        points = np.array(rows)
        return points[pareto_mask(points, ["min"] * points.shape[1])]

    def _listed_candidates(self) -> tuple[list[Arch], np.ndarray] | None:
        """Every untaken arch and its features, for a space small enough to list (else None)."""
        if self.space.size() > self.enumerate_limit:
            return None
        if self._listed is None:
            self._listed = self.space.listing() or []
            self._listed_x = self._features(self._listed).astype(np.float32)
        keep = [i for i, a in enumerate(self._listed) if a not in self.taken and a not in self.pending]
        return [self._listed[i] for i in keep], self._listed_x[keep]

    def _plan_batch(self) -> list[tuple[Arch, np.ndarray]]:
        """The next batch: candidates ordered by predicted violation, optimistic front rank and
        hypervolume gain (see the module's docstring), with their predicted points."""
        listed = self._listed_candidates()
        if listed is not None:
            candidates, x = listed
        else:
            candidates = self._breed(self._parents())
            x = self._features(candidates).astype(np.float32) if candidates and self._models else None
        if not candidates:
            return []
        if self._models:
            mean, optimistic_m = self._predict_x(x, self.beta)
        else:
            mean = optimistic_m = np.zeros((len(candidates), len(self.modelled)))
        predicted, metrics = self._points(candidates, mean)
        optimistic = predicted.copy()  # the known objectives as they are, the modelled ones optimistic
        optimistic[:, self.modelled] = optimistic_m
        violation = np.array([sum(c.violation(m) for c in self.constraints if c.metric in m) for m in metrics])
        batch = 1 if len(self.archs) < self.sequential_until else int(np.clip(len(self.archs) // 20, 1, self.max_batch))
        front = self._front()
        reference = self._reference_min(np.vstack([front, optimistic]) if len(front) else optimistic)
        gain = hypervolume_gains(front, optimistic, reference)
        # How far a candidate that adds nothing is from the region that counts, in units of each
        # objective's spread over the candidates: the nearest are the next best guesses.
        spread = np.ptp(optimistic, axis=0)
        distance = (np.clip(optimistic - reference, 0.0, None) / np.where(spread > 0, spread, 1.0)).sum(axis=1)
        feasible = violation <= 0
        useful = feasible & (gain > 0)
        pool = useful if useful.any() else feasible
        ranks = np.full(len(candidates), len(candidates))
        if pool.any():
            ranks[pool] = first_fronts(optimistic[pool], batch)
        order = np.lexsort((distance, -gain, ranks, ~pool, violation))[:batch]
        return [(candidates[i], predicted[i]) for i in order]

    def _startup(self) -> int:
        """Archs before the models: ``startup``, twice that when every objective is modelled."""
        return self.startup if self.known else 2 * self.startup

    def _member(self) -> str:
        """Who proposes next: the member below its share of the proposals so far."""
        made = self._made["model"] + self._made["tpe"] + 1
        return "model" if self._made["model"] < (1 - self.tpe_share) * made else "tpe"

    def propose(self) -> Arch:
        if len(self.archs) + len(self.pending) < self._startup():
            if self._plan is None:
                self._plan = self._startup_plan()
            while self._plan:
                arch = self._plan.pop(0)
                if arch not in self.seen and arch not in self.pending:
                    return self._remember(arch)
        member = self._member()
        self._made[member] += 1
        if member == "tpe":
            arch = self._propose_tpe()
            if arch is not None:
                return arch
        arch = self._propose_model()
        self.robust.taken.add(arch)
        return arch

    def _propose_tpe(self) -> Arch | None:
        """TPE's next proposal that keeps the constraints on cheap metrics (None after 10 that break them)."""
        self.robust.taken.update(self.pending)  # what the model has in flight is taken for TPE too
        for _ in range(10):
            arch = self.robust.ask()
            if not self.constraints or not self.cheap or self._cheap_violation(arch) == 0:
                return self._remember(arch)
            self._screen_for_tpe(arch)  # TPE learns that it breaks a constraint; the model proposes instead
        return None

    def _screen_for_tpe(self, arch: Arch) -> None:
        """Tell TPE a proposal of its own that breaks a constraint on cheap metrics, as the driver
        tells a screened candidate: its cheap metrics and the worst value seen of the others."""
        if not self.points:
            self.robust.tell_failed(arch)
            return
        worst = np.nanmax(np.array(self.points), axis=0) * self.signs
        metrics = {o.name: float(worst[j]) for j, o in enumerate(self.objectives)}
        self.robust.tell(arch, {**metrics, **self._known(arch)})

    def _propose_model(self) -> Arch:
        while self._queue:
            arch, predicted = self._queue.pop(0)
            if arch not in self.seen and arch not in self.pending:
                return self._remember(arch, predicted)
        self._fit()
        self._queue = self._plan_batch()
        if not self._queue:
            fresh = self.space.sample_unique(self.rng, 1, exclude=self.seen | set(self.pending))
            return self._remember(fresh[0] if fresh else self.space.sample(self.rng))
        arch, predicted = self._queue.pop(0)
        return self._remember(arch, predicted)

    def _remember(self, arch: Arch, predicted: np.ndarray | None = None) -> Arch:
        if arch not in self.seen:
            # In flight at its predicted point once there is a model (or nothing to model).
            if not self._models and self.modelled:
                predicted = None
            elif predicted is None:
                predicted = self._points([arch])[0][0]
            self.pending[arch] = predicted
        return arch

    def tell_failed(self, arch: Arch) -> None:
        super().tell_failed(arch)
        self.pending.pop(arch, None)
        self.robust.tell_failed(arch)
        self.seen.add(arch)  # never a candidate again, and not a point of any model

    def learn(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.pending.pop(arch, None)
        if arch in self.seen:
            return
        self.robust.tell(arch, metrics)  # TPE judges it by the same reference (Strategy.judged)
        self.seen.add(arch)
        point = np.array([self.signs[j] * float(metrics[o.name]) for j, o in enumerate(self.objectives)])
        self.archs.append(arch)
        self.points.append(point)
        self.feasible.append(self.violation(metrics) == 0)


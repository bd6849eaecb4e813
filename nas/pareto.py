"""Pareto fronts and hypervolume over objectives with directions (pure numpy, no torch).

Points are rows of an (n, m) array; ``directions`` says per column ``"max"`` or ``"min"``.
Internally everything is turned into minimisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def signs(directions: Sequence[str]) -> np.ndarray:
    """Per objective, the factor that turns its values into minimisation form (-1 for "max")."""
    return np.array([-1.0 if d == "max" else 1.0 for d in directions])


def _to_min(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    return np.asarray(points, dtype=float) * signs(directions)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` dominates ``b`` (both already in minimisation form)."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """True for the non-dominated rows (duplicates of a front point are all kept)."""
    p = _to_min(points, directions)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if p.shape[1] == 2:
        # Sort by the first objective, then the second: a row is on the front when its second
        # objective beats every row before it; a run of identical rows shares its first row's fate.
        order = np.lexsort((p[:, 1], p[:, 0]))
        xs, ys = p[order, 0], p[order, 1]
        best_before = np.concatenate([[np.inf], np.minimum.accumulate(ys)[:-1]])
        starts = np.concatenate([[True], (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])])
        group = np.cumsum(starts) - 1
        on_front = (ys < best_before)[starts][group]
        mask = np.zeros(n, dtype=bool)
        mask[order] = on_front
        return mask
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if mask[i]:
            dominated = np.all(p[i] <= p, axis=1) & np.any(p[i] < p, axis=1)
            mask &= ~dominated
    return mask


def nondominated_ranks(points: np.ndarray, directions: Sequence[str], violation: np.ndarray | None = None) -> np.ndarray:
    """Front index of every row (0 = Pareto front), with Deb's constrained domination:
    feasible rows come before infeasible ones, which are ordered by total violation."""
    n = len(points)
    ranks = np.full(n, -1, dtype=int)
    violation = np.zeros(n) if violation is None else np.asarray(violation, dtype=float)
    feasible = violation <= 0
    rank = 0
    remaining = np.flatnonzero(feasible)
    while len(remaining):
        front = remaining[pareto_mask(points[remaining], directions)]
        ranks[front] = rank
        rank += 1
        remaining = np.setdiff1d(remaining, front)
    for i in np.flatnonzero(~feasible)[np.argsort(violation[~feasible], kind="stable")]:
        ranks[i] = rank
        rank += 1
    return ranks


def first_fronts(points: np.ndarray, count: int) -> np.ndarray:
    """Front index of the rows (minimisation form) in the first fronts that together hold at least
    ``count`` rows; the rows past them get a rank past every front (``len(points)``). Peeling only
    as many fronts as needed keeps this cheap on tens of thousands of candidates."""
    n = len(points)
    ranks = np.full(n, n, dtype=int)
    remaining = np.arange(n)
    rank = 0
    while len(remaining) and (ranks < n).sum() < count:
        on_front = remaining[pareto_mask(points[remaining], ["min"] * points.shape[1])]
        ranks[on_front] = rank
        remaining = np.setdiff1d(remaining, on_front, assume_unique=True)
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (larger = more isolated)."""
    n, m = points.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(points[:, j])
        span = points[order[-1], j] - points[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (points[order[2:], j] - points[order[:-2], j]) / span
    return dist


def hypervolume(points: np.ndarray, reference: Sequence[float], directions: Sequence[str]) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (exact; 2-D sweep, N-D slicing)."""
    p = _to_min(np.asarray(points, dtype=float).reshape(-1, len(directions)), directions)
    ref = _to_min(np.asarray(reference, dtype=float)[None, :], directions)[0]
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[pareto_mask(p, ["min"] * p.shape[1])]
    return float(_hv(np.unique(p, axis=0), ref))


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    if p.shape[1] == 1:
        return float(ref[0] - p[:, 0].min())
    if p.shape[1] == 2:
        order = np.argsort(p[:, 0])
        xs, ys = p[order, 0], p[order, 1]
        volume, best_y = 0.0, ref[1]
        for k in range(len(xs)):
            if ys[k] < best_y:
                next_x = ref[0]
                volume += (next_x - xs[k]) * (best_y - ys[k])
                best_y = ys[k]
        return volume
    # Slice along the last objective: between consecutive levels, the dominated region is the
    # (m-1)-dimensional hypervolume of the points at or below that level.
    order = np.argsort(p[:, -1])
    p = p[order]
    levels = list(p[:, -1]) + [ref[-1]]
    volume = 0.0
    for k in range(len(p)):
        height = levels[k + 1] - levels[k]
        if height > 0:
            sub = p[: k + 1, :-1]
            sub = sub[pareto_mask(sub, ["min"] * sub.shape[1])]
            volume += height * _hv(sub, ref[:-1])
    return volume


def hypervolume_gains(front: np.ndarray, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The hypervolume each point (a row of ``points``) would add to ``front`` on its own, all in
    minimisation form. Two objectives: a sweep over the front's staircase for all points at once."""
    front = front[np.all(front < reference, axis=1)]
    points = np.minimum(points, reference)
    if points.shape[1] != 2:
        directions = ["min"] * len(reference)
        base = hypervolume(front, reference, directions) if len(front) else 0.0
        gains = np.zeros(len(points))
        for r, q in enumerate(points):
            if not np.any(np.all(front <= q, axis=1)):  # a point the front already covers adds nothing
                gains[r] = hypervolume(np.vstack([front, q]), reference, directions) - base
        return gains
    # The front's dominated region, as columns: over [edges[k], edges[k + 1]) it reaches down to
    # level[k]; a point adds, column by column, the part of its box above that level.
    order = np.argsort(front[:, 0], kind="stable")
    xs, ys = front[order, 0], front[order, 1]
    edges = np.concatenate([[-np.inf], xs, [reference[0]]])
    level = np.minimum.accumulate(np.concatenate([[reference[1]], ys]))
    left = np.maximum(edges[None, :-1], points[:, :1])
    width = np.clip(edges[None, 1:] - left, 0.0, None)
    height = np.clip(level[None, :] - points[:, 1:], 0.0, None)
    return (width * height).sum(axis=1)


class RunningFront:
    """The non-dominated points of a stream of points, the hypervolume they hold and the best
    value per objective, updated per point in time proportional to the front rather than to
    the stream (recomputing over every result made a long search's progress bar cost more
    than its evaluations)."""

    def __init__(self, reference: Sequence[float], directions: Sequence[str]) -> None:
        self.signs = signs(directions)
        self.ref = np.asarray(reference, dtype=float) * self.signs  # a NaN reference holds no volume
        self.front = np.zeros((0, len(directions)))  # minimisation form
        self.best_min = np.full(len(directions), np.nan)
        self._hv: float | None = 0.0

    def best(self, names: Sequence[str]) -> dict[str, float]:
        """The best value of each objective among the points added so far, by name."""
        return {n: float(v * s) for n, v, s in zip(names, self.best_min, self.signs, strict=True) if not np.isnan(v)}

    def add(self, point: Sequence[float]) -> None:
        q = np.asarray(point, dtype=float) * self.signs
        self.best_min = np.fmin(self.best_min, q)
        if not np.all(np.isfinite(q)) or np.any(np.all(self.front <= q, axis=1)):
            return  # a point the front weakly dominates changes neither the front nor its volume
        self.front = np.vstack([self.front[~np.all(q <= self.front, axis=1)], q])
        self._hv = None

    def hypervolume(self) -> float:
        if self._hv is None:
            inside = self.front[np.all(self.front < self.ref, axis=1)]
            self._hv = float(_hv(np.unique(inside, axis=0), self.ref)) if len(inside) else 0.0
        return self._hv


def hypervolume_curve(points: np.ndarray, reference: Sequence[float], directions: Sequence[str],
                      feasible: np.ndarray | None = None) -> np.ndarray:
    """Hypervolume after each of the first 1..n points (in order), counting feasible ones only."""
    points = np.asarray(points, dtype=float).reshape(-1, len(directions))
    feasible = np.ones(len(points), dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool)
    running = RunningFront(reference, directions)
    out = np.zeros(len(points))
    for i, point in enumerate(points):
        if feasible[i]:
            running.add(point)
        out[i] = running.hypervolume()
    return out


def front_indices(values: np.ndarray, usable: np.ndarray, objectives: Sequence[Mapping[str, str]]) -> np.ndarray:
    """Indices of the usable rows of ``values`` (one column per objective, finite) on their Pareto
    front, best first by the first objective (ties keep row order)."""
    directions = [o["direction"] for o in objectives]
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    rows = np.flatnonzero(np.asarray(usable, dtype=bool) & np.isfinite(values).all(axis=1))
    front = rows[pareto_mask(values[rows], directions)]
    first = values[front, 0]
    return front[np.argsort(-first if directions[0] == "max" else first, kind="stable")]


def front_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Mapping[str, str]]) -> list[Mapping[str, Any]]:
    """The feasible rows (``status`` ok, ``feasible`` true) on the Pareto front of ``objectives``
    (``[{"name": ..., "direction": "max"|"min"}, ...]``), best first by the first objective."""
    names = [o["name"] for o in objectives]
    values = [[v if isinstance(v := r.get(n), (int, float)) else np.nan for n in names] for r in rows]
    usable = [r.get("status", "ok") == "ok" and bool(r.get("feasible", True)) for r in rows]
    return [rows[i] for i in front_indices(values, usable, objectives)]


# -- the reference point: one rule for the whole product ---------------------------------------------
REFERENCE_AFTER = 20  # results after which a reference taken from the data is fixed
REFERENCE_QUANTILE = 0.9  # of those results, the share that beats the reference in each objective


def quantile_reference(values: np.ndarray, directions: Sequence[str], quantile: float = REFERENCE_QUANTILE) -> np.ndarray:
    """Per objective, the value that ``quantile`` of the rows of ``values`` beat: the 10th percentile
    of a maximised objective, the 90th of a minimised one (NaN for a column with no finite value).
    Where every row holds the same value, 10% of its size (or 1) further out, so the points hold volume."""
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    out = np.full(len(directions), np.nan)
    for j, d in enumerate(directions):
        column = values[:, j][np.isfinite(values[:, j])]
        if not len(column):
            continue
        q = float(np.quantile(column, 1 - quantile if d == "max" else quantile))
        best = column.max() if d == "max" else column.min()
        if q == best:
            q += (-1 if d == "max" else 1) * (0.1 * abs(q) or 1.0)
        out[j] = q
    return out


class ReferenceRule:
    """The hypervolume reference of one search, per objective: the user's value when given (a
    constraint's bound on an objective counts as given: nothing past it is worth anything), else
    :func:`quantile_reference` over the first ``after`` results (the initial design), fixed from
    then on; before that, the same over the results so far (``point`` moves, ``fixed`` is False).

    Every figure of an experiment (the progress line, the store's record, the dashboard's curve,
    a strategy's acquisition) uses the point this gives, so a search is judged where its user
    would judge it: not by who finds the fastest net at chance accuracy first."""

    def __init__(self, names: Sequence[str], directions: Sequence[str], given: Mapping[str, float] | None = None,
                 after: int = REFERENCE_AFTER) -> None:
        self.names, self.directions = list(names), list(directions)
        self.given = {n: float(v) for n, v in (given or {}).items() if n in self.names and math.isfinite(float(v))}
        self.after = after
        self.seen: list[list[float]] = []
        self._point = self._compute()

    @classmethod
    def from_stored(cls, names: Sequence[str], directions: Sequence[str], stored: Mapping[str, Any],
                    rows: Sequence[Sequence[float]] = ()) -> ReferenceRule:
        """The rule of an experiment whose reference was stored as ``stored`` (possibly partial: a
        search stopped within its initial design), brought up to its results ``rows`` (in order)."""
        rule = cls(names, directions, {n: v for n, v in stored.items() if isinstance(v, (int, float))})
        for row in rows:
            rule.add(row)
        return rule

    @property
    def complete(self) -> bool:
        return all(n in self.given for n in self.names)

    @property
    def fixed(self) -> bool:
        return self.complete or len(self.seen) >= self.after

    def add(self, values: Sequence[float]) -> bool:
        """One more result (objective values in order; rows with a non-finite value are skipped);
        True when this moved the point."""
        if self.fixed or not all(math.isfinite(v) for v in values):
            return False
        self.seen.append([float(v) for v in values])
        old, self._point = self._point, self._compute()
        return not np.array_equal(old, self._point, equal_nan=True)

    def _compute(self) -> np.ndarray:
        data = quantile_reference(np.array(self.seen), self.directions) if self.seen else np.full(len(self.names), np.nan)
        return np.array([self.given.get(n, data[j]) for j, n in enumerate(self.names)])

    def point(self) -> np.ndarray:
        """The reference, objective by objective (NaN for one with no value and no result yet)."""
        return self._point.copy()

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self._point, strict=True) if math.isfinite(v)}


def constraint_bounds(objectives: Sequence[Mapping[str, str]] | Sequence[Any], constraints: Sequence[Any]) -> dict[str, float]:
    """For each objective a constraint bounds on its good side (``accuracy>=0.8`` on a maximised
    accuracy, ``cpu_ms<=2`` on a minimised latency), the tightest bound: a reference a user gave."""
    out: dict[str, float] = {}
    for o in objectives:
        name, direction = (o["name"], o["direction"]) if isinstance(o, Mapping) else (o.name, o.direction)
        for c in constraints:
            if c.metric != name or (direction == "max") != (c.op in (">=", ">")):
                continue
            tighter = max if direction == "max" else min
            out[name] = tighter(out.get(name, c.bound), c.bound)
    return out


def experiment_hypervolume(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Mapping[str, str]],
                           stored: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """A stored experiment's hypervolume and the reference it is measured at: ``rows`` are its
    evaluations in order (``status``, ``feasible`` and the metrics), ``stored`` its stored reference
    (completed by the rule over its results where the initial design is not in yet)."""
    names, directions = [o["name"] for o in objectives], [o["direction"] for o in objectives]
    values = np.array([[v if isinstance(v := r.get(n), (int, float)) else np.nan for n in names] for r in rows],
                      dtype=float).reshape(-1, len(names))
    ok = np.array([r.get("status", "ok") == "ok" for r in rows], dtype=bool)
    finite = np.all(np.isfinite(values), axis=1)
    rule = ReferenceRule.from_stored(names, directions, stored, values[ok & finite].tolist())
    feasible = ok & finite & np.array([bool(r.get("feasible", True)) for r in rows], dtype=bool)
    ref = rule.point()
    hv = hypervolume(values[feasible], ref, directions) if feasible.any() and np.all(np.isfinite(ref)) else 0.0
    return hv, rule.as_dict()

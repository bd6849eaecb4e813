"""A new device's latency from a few measurements, by transfer from devices already known.

Measuring every unit of a space on a new device (a kit) takes hundreds of graphs; nn-Meter's
builder takes thousands. But devices rank architectures much alike: what a subnet costs on a
known device says most of what it costs on the new one (HELP, NeurIPS 2021). So the new
device is measured on ``k`` whole archs only, and its latency is learned as a function of
what the *reference* devices give for the same archs:

- **log-linear**: ``log ms = a + sum_j w_j log ref_j`` (ridge, its penalty chosen by
  leave-one-out on the ``k`` rows), which carries multiplicative differences between devices;
- **additive**: ``ms = sum_c s_c comp_c + b`` with non-negative scales fitted in relative
  error, over the references' *components*: for a network space the references' unit
  latencies summed per block family (conv, attention, ssm, mlp, moe, stem, down, head), so
  a new device may run attention relatively faster than a known one; for tables, the
  references' totals;

and the prediction is their geometric mean. References are latency predictors of the
profiles already here (cpu, gpu, mcu-m7, mcu-m4, imported ones) or tables of measured
(arch, ms) rows (any space, plain-choice ones included). A table is first smoothed by an
additive model of its own rows on the space's features (a latency is close to a sum of
per-choice costs, and measurement noise is not), which also lets it answer for archs it
does not hold.

``fit_transfer(space, measured, references)`` is the API; :class:`TransferPredictor` has
``predict`` and ``predict_metrics`` like every predictor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.optimize import nnls

from nas.errors import NasError
from nas.latency.predictor import PREDICTORS, predictor_for
from nas.latency.profile import Profile
from nas.space import Arch, SearchSpace

MIN_ROWS = 5  # measured archs a transfer needs at the least
ALPHAS = np.logspace(-3, 3, 13)


class Reference(Protocol):
    """What a known device offers a transfer: its latency of any arch of the space, and
    optionally that latency split into non-negative parts (per block family)."""

    name: str

    def total(self, archs: Sequence[Arch], features: np.ndarray | None = None) -> np.ndarray:
        """Latency in ms per arch (``features``: the archs' ``space.features``, when already computed)."""

    def components(self, archs: Sequence[Arch]) -> np.ndarray | None: ...


@dataclass
class PredictorReference:
    """A profile's predictor as a reference (its unit-level split when it has one)."""

    name: str
    predictor: Any  # nas.latency.predictor.Predictor

    def total(self, archs: Sequence[Arch], features: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.predictor.predict(list(archs)), dtype=float)

    def components(self, archs: Sequence[Arch]) -> np.ndarray | None:
        split = getattr(self.predictor, "family_latencies", None)
        return split(list(archs)) if split is not None else None


class TableReference:
    """A table of measured (arch, ms) rows as a reference, smoothed by an additive model of the
    space's features (ridge in linear latency, its penalty chosen by leave-one-out)."""

    def __init__(self, name: str, space: SearchSpace, rows: Sequence[tuple[Arch, float]]) -> None:
        from sklearn.linear_model import RidgeCV

        if len(rows) < MIN_ROWS:
            raise NasError(f"reference {name!r} has {len(rows)} rows; a reference table needs at least {MIN_ROWS}")
        self.name, self.space = name, space
        self.rows = [(space.validate(a), float(ms)) for a, ms in rows]
        x = space.features([a for a, _ in self.rows])
        y = np.array([ms for _, ms in self.rows])
        self.scale = float(np.mean(y))
        self.model = RidgeCV(alphas=ALPHAS).fit(x, y / self.scale)
        self.floor = float(np.min(y)) * 0.05  # an additive model may dip below zero far from its rows

    def total(self, archs: Sequence[Arch], features: np.ndarray | None = None) -> np.ndarray:
        x = self.space.features(list(archs)) if features is None else features
        return np.maximum(self.model.predict(x) * self.scale, self.floor)

    def components(self, archs: Sequence[Arch]) -> np.ndarray | None:
        return None


def _log_ridge(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=ALPHAS).fit(np.log(x), np.log(y))


def _relative_nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative scales of the columns of ``x`` plus a constant, minimising relative error."""
    design = np.c_[x, np.full(len(y), float(np.mean(y)))] / y[:, None]
    weights, _ = nnls(design, np.ones(len(y)))
    return weights


class TransferPredictor:
    """Latency of a new device from ``k`` measured archs and the references (see the module's docstring)."""

    def __init__(self, target: str, space: SearchSpace, measured: Sequence[tuple[Arch, float]],
                 references: Sequence[Reference]) -> None:
        if not references:
            raise NasError("a transfer needs at least one reference device (--transfer-from or --reference)")
        if len(measured) < MIN_ROWS:
            raise NasError(f"a transfer needs at least {MIN_ROWS} measured archs, got {len(measured)}")
        self.target, self.space, self.references = target, space, list(references)
        self.measured = [(space.validate(a), float(ms)) for a, ms in measured]
        seen: set[Arch] = set()
        for arch, ms in self.measured:
            if not (math.isfinite(ms) and ms > 0):
                raise NasError(f"measured latency of {arch.to_str()} must be a positive number, got {ms!r}")
            if arch in seen:
                raise NasError(f"arch {arch.to_str()} is measured twice; give each arch once (the median of its runs)")
            seen.add(arch)
        archs = [a for a, _ in self.measured]
        y = np.array([ms for _, ms in self.measured])
        totals = self._totals(archs)
        self.log_model = _log_ridge(totals, y)
        self.weights = _relative_nnls(self._parts(archs, totals), y)
        self.mean_ms = float(np.mean(y))

    def _totals(self, archs: Sequence[Arch]) -> np.ndarray:
        tables = any(isinstance(r, TableReference) for r in self.references)
        features = self.space.features(list(archs)) if tables else None  # once for every table
        totals = np.column_stack([r.total(archs, features) for r in self.references])
        if not np.all(np.isfinite(totals)) or np.any(totals <= 0):
            bad = [r.name for r, col in zip(self.references, totals.T, strict=True)
                   if not (np.all(np.isfinite(col)) and np.all(col > 0))]
            raise NasError(f"reference(s) {', '.join(bad)} gave non-positive latencies for some archs")
        return totals

    def _parts(self, archs: Sequence[Arch], totals: np.ndarray) -> np.ndarray:
        parts = []
        for r, total in zip(self.references, totals.T, strict=True):
            split = r.components(archs)
            parts.append(total[:, None] if split is None else split)
        return np.hstack(parts)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        totals = self._totals(archs)
        log_linear = np.exp(self.log_model.predict(np.log(totals)))
        design = np.c_[self._parts(archs, totals), np.full(len(archs), self.mean_ms)]
        additive = np.maximum(design @ self.weights, 1e-3 * self.mean_ms)
        return np.sqrt(log_linear * additive)

    def predict_metrics(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        return {"latency_ms": self.predict(archs)}


def parse_rows(space: SearchSpace, rows: Sequence[tuple[Arch | str, float]], what: str) -> list[tuple[Arch, float]]:
    """``rows`` with every arch parsed and checked against ``space`` (one line naming the bad one)."""
    out = []
    for i, (arch, ms) in enumerate(rows):
        try:
            parsed = space.parse(arch) if isinstance(arch, str) else space.validate(arch)
        except NasError as exc:
            raise NasError(f"{what} row {i + 1}: {exc}") from None
        try:
            value = float(ms)
        except (TypeError, ValueError):
            raise NasError(f"{what} row {i + 1}: latency {ms!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise NasError(f"{what} row {i + 1}: latency must be a positive number, got {ms!r}")
        out.append((parsed, value))
    return out


def fit_transfer(space: SearchSpace, measured: Sequence[tuple[Arch | str, float]],
                 references: Mapping[str, Sequence[tuple[Arch | str, float]] | Any],
                 target: str = "new-device") -> TransferPredictor:
    """A predictor of ``target`` over ``space`` from ``k`` measured (arch, ms) rows and reference
    devices: each a table of (arch, ms) rows, a :class:`nas.latency.Profile`, a latency predictor
    (from :func:`nas.latency.load_predictor`), or a :class:`TableReference` made once and reused for
    many transfers (it fits a model of the whole table). A table must share at least one arch with the measured
    rows (a check that both describe the same space).

    >>> from nas.latency.transfer import fit_transfer
    >>> predictor = fit_transfer(space, [(arch, ms), ...], {"pixel3": rows, "cpu": load_predictor("cpu", space)})  # doctest: +SKIP
    >>> predictor.predict(archs)  # doctest: +SKIP
    """
    rows = parse_rows(space, measured, "measured")
    if len(rows) < MIN_ROWS:
        raise NasError(f"a transfer needs at least {MIN_ROWS} measured archs, got {len(rows)}")
    mine = {a for a, _ in rows}
    refs: list[Reference] = []
    for name, ref in references.items():
        if isinstance(ref, (TableReference, PredictorReference)):  # made once, reused (benchmarks)
            refs.append(ref)
            continue
        if hasattr(ref, "predict"):
            refs.append(PredictorReference(name, ref))
            continue
        if isinstance(ref, Profile):
            refs.append(ProfileReference(name, predictor_for(ref, space), ref))
            continue
        table = parse_rows(space, list(ref), f"reference {name!r}")
        if not mine & {a for a, _ in table}:
            raise NasError(f"reference {name!r} has no arch in common with the measured rows: "
                           "are both tables of the same space?")
        refs.append(TableReference(name, space, table))
    return TransferPredictor(target, space, rows, refs)


# -- profiles: a transfer is stored with what it was fitted from -------------------------------------
def reference_json(reference: Reference) -> dict[str, Any]:
    """What a profile keeps of a reference to rebuild it anywhere (a Ray worker included): a
    profile's JSON, or a table's rows."""
    if isinstance(reference, TableReference):
        return {"kind": "table", "rows": [[a.to_str(), ms] for a, ms in reference.rows]}
    profile = getattr(reference, "profile", None)
    if profile is None:
        raise NasError(f"reference {reference.name!r} cannot be stored: it is neither a table nor a profile's predictor")
    return {"kind": "profile", "profile": profile.to_json()}


def references_from_json(space: SearchSpace, data: Mapping[str, Mapping[str, Any]]) -> list[Reference]:
    from nas.latency.profile import Profile

    out: list[Reference] = []
    for name, ref in data.items():
        if ref.get("kind") == "table":
            out.append(TableReference(name, space, [(space.parse(a), ms) for a, ms in ref["rows"]]))
        else:
            profile = Profile.from_json(ref["profile"], f"reference {name!r}")
            out.append(ProfileReference(name, predictor_for(profile, space), profile))
    return out


@dataclass
class ProfileReference(PredictorReference):
    """A profile's predictor as a reference, holding the profile so a transfer can store it."""

    profile: Any = None  # nas.latency.profile.Profile


def transfer_from_profile(profile, space: SearchSpace) -> TransferPredictor:
    """The transfer a ``transfer`` profile describes, refitted from its measured rows and references."""
    measured = [(space.parse(r["arch"]), float(r["median_ms"])) for r in profile.archs]
    return TransferPredictor(profile.target, space, measured, references_from_json(space, profile.model["references"]))


PREDICTORS["transfer"] = transfer_from_profile


# -- which archs to measure ---------------------------------------------------------------------------
def spread_archs(space: SearchSpace, references: Sequence[Reference], k: int, seed: int = 0,
                 candidates: int = 2000, exclude: set[Arch] | None = None,
                 pool: Sequence[Arch] | None = None) -> list[Arch]:
    """``k`` archs spread over what the references predict: farthest-point selection in the
    standardised log latencies of the references (their first principal components), from
    the median arch out, among ``candidates`` random archs of the space (or of ``pool``, such
    as the archs a table holds). A spread sample pins a regression down better than a uniform
    one, which bunches up around the middle latencies."""
    import random

    rng = random.Random(seed)
    if pool is None:
        pool = space.sample_unique(rng, candidates, exclude=exclude)
    else:
        pool = [a for a in pool if not exclude or a not in exclude]
        pool = rng.sample(pool, min(candidates, len(pool)))
    if len(pool) <= k:
        return pool
    logs = np.log(np.column_stack([r.total(pool) for r in references]))
    z = (logs - logs.mean(axis=0)) / np.where(logs.std(axis=0) > 0, logs.std(axis=0), 1.0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    points = u[:, :4] * s[:4]
    chosen = [int(np.argmin(np.abs(points[:, 0] - np.median(points[:, 0]))))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(points - points[nxt], axis=1))
    return [pool[i] for i in chosen]


def transfer_references(space: SearchSpace, names: Sequence[str]) -> list:
    """The known targets ``names`` as references for a transfer (their profiles of ``space``)."""
    from nas.latency.profile import load_profile

    if not names:
        raise NasError("a transfer needs at least one known target to learn from: --transfer-from cpu,mcu-m7")
    out = []
    for name in names:
        profile, _ = load_profile(name, space)
        out.append(ProfileReference(name, predictor_for(profile, space), profile))
    return out

"""Latency predictors: one small interface, four implementations (three here; the fourth,
:class:`nas.latency.transfer.TransferPredictor`, transfers from other devices).

- :class:`UnitPredictor` (measured targets: cpu, gpu, an imported device): the measured
  median of every unit, summed over the arch's units, then corrected for what summing misses
  by a linear model learned from a few whole-subnet measurements (nn-Meter's kernel-level
  idea, applied to our blocks): ``latency = a * sum(units) + b * n_units + c + d * params
  + e * MACs + f * elements``. The first three terms carry per-graph overhead and fusions
  across unit boundaries; the last three the memory traffic a unit timed alone never pays: in
  a loop over one unit its weights and activations stay in cache, in a whole network they
  compete for it (the README's Results compare the two models). With fewer than ``2 * 6``
  whole subnets only the first three are fitted. Units missing from the table fall back to a
  per-kind linear model of their MACs and activation elements, fitted on the measured units.
- :class:`McuPredictor` (mcu-m7, mcu-m4): the calibrated cost model's instructions per
  unit, summed, and peak SRAM (largest unit peak) and flash (sum) alongside.
- :class:`TablePredictor` (any space, plain-choice ones too): a random forest on the space's
  flat parameters, fitted on a user's table of (arch, latency).

All predict a batch of archs at once and cost microseconds per arch. Which one a profile
makes is decided by the profile's ``kind`` (:func:`predictor_for`), not by its target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.optimize import nnls

from nas.errors import NasError
from nas.latency.profile import Profile
from nas.space import Arch, NetSpace, SearchSpace, Unit, UnitCache, kind_names, parse_ffn_or_mixer


class Predictor(Protocol):
    target: str

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Latency in milliseconds for each arch."""

    def predict_metrics(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        """``latency_ms`` and, where the target models them, ``peak_sram_kb`` and ``flash_kb``."""


def unit_family(unit: Unit) -> str:
    """The group a unit's fallback model is fitted within: its block kind (conv, attention, ssm,
    mlp, moe, or any registered one) for mixers and ffns, else stem, down or head."""
    if unit.kind in ("mixer", "ffn"):
        return parse_ffn_or_mixer(unit.op).kind
    return unit.kind


def families() -> tuple[str, ...]:
    """Every unit family, in a fixed order: the fixed parts, then each registered block kind."""
    return ("stem", "down", "head", *kind_names())


def _family_matrix(units_of, archs: Sequence[Arch], latency) -> np.ndarray:
    """(archs, families + 1): each arch's unit latencies summed per family, and its unit count."""
    order = {f: i for i, f in enumerate(families())}
    out = np.zeros((len(archs), len(order) + 1))
    for r, arch in enumerate(archs):
        units = units_of(arch)
        for unit in units:
            out[r, order[unit_family(unit)]] += latency(unit)
        out[r, -1] = len(units)
    return out


def require_net_space(space: SearchSpace, hint: str | None = None) -> NetSpace:
    """``space`` as a network space, or one line saying that a plain space is modelled from a table."""
    if not isinstance(space, NetSpace):
        from nas.space import space_ref

        raise NasError(f"space {space.name!r} has no supernet to measure: fit a latency table instead "
                       f"('nas latency import TABLE.csv --target NAME --space {space_ref(space, hint)}')")
    return space


_NO_WORK = (float("nan"),) * 3


@dataclass
class FamilyModel:
    """``ms = c0 + c1 * MACs + c2 * elements`` with non-negative coefficients, per unit family."""

    coefficients: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def features(stats: dict[str, float]) -> np.ndarray:
        return np.array([1.0, stats["macs"] / 1e6, stats["elements"] / 1e6])

    @classmethod
    def fit(cls, rows: list[tuple[str, dict[str, float], float]]) -> FamilyModel:
        coefficients = {}
        for family in sorted({r[0] for r in rows}):
            mine = [r for r in rows if r[0] == family]
            a = np.stack([cls.features(s) for _, s, _ in mine])
            y = np.array([ms for _, _, ms in mine])
            coef, _ = nnls(a / y[:, None], np.ones(len(y)))  # relative error
            coefficients[family] = [float(c) for c in coef]
        return cls(coefficients)

    def predict(self, family: str, stats: dict[str, float]) -> float:
        if family not in self.coefficients:
            raise NasError(f"the latency profile has no measurements of {family} units")
        return float(self.features(stats) @ np.array(self.coefficients[family]))


class UnitPredictor:
    """Sum of measured unit latencies, corrected by a learned whole-network overhead."""

    def __init__(
        self,
        target: str,
        space: NetSpace,
        input_shape: tuple[int, ...],
        unit_ms: dict[str, float],
        overhead: Sequence[float] = (1.0, 0.0, 0.0),
        families: FamilyModel | None = None,
        unit_stats: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.target = target
        self.space = space
        self.unit_ms = dict(unit_ms)
        self.overhead = tuple(float(c) for c in overhead)
        self.families = families or FamilyModel()
        self.unit_stats = unit_stats or {}
        self._units = UnitCache.of(space, input_shape)
        self._rows: dict[Arch, tuple[float, ...]] = {}
        self._vectors: dict[str, tuple[float, float, float, float]] = {}

    @classmethod
    def fitted(cls, target: str, space: NetSpace, input_shape: tuple[int, ...], units: dict[str, dict[str, Any]],
               archs: Sequence[Arch], measured_ms: Sequence[float]) -> UnitPredictor:
        """The predictor a build or a kit's import makes of its measurements: the units' medians
        (``units``: key -> record, ``median_ms`` where measured), the family model fitted on them
        for the units that were not, and the overhead fitted on the whole subnets ``archs``."""
        timed = {k: r["median_ms"] for k, r in units.items() if "median_ms" in r}
        families = FamilyModel.fit([(r["family"], r, r["median_ms"]) for r in units.values() if "median_ms" in r])
        predictor = cls(target, space, input_shape, timed, families=families, unit_stats=units)
        predictor.fit_overhead(archs, measured_ms)
        return predictor

    def model_json(self) -> dict[str, Any]:
        """What a profile keeps of the fitted model (``Profile.model``), besides its diagnostics."""
        return {"overhead": list(self.overhead), "families": self.families.coefficients}

    def unit_latency(self, unit: Unit) -> float:
        ms = self.unit_ms.get(unit.key)
        if ms is None:
            if unit.key not in self.unit_stats:
                raise NasError(f"the latency profile has no measurement for unit {unit.key}; rebuild it")
            ms = self.families.predict(unit_family(unit), self.unit_stats[unit.key])
            self.unit_ms[unit.key] = ms
        return ms

    def _unit_vector(self, unit: Unit) -> tuple[float, float, float, float]:
        """(latency, params, MACs, elements) of one unit; NaN sizes where the profile lacks them."""
        vector = self._vectors.get(unit.key)
        if vector is None:
            stats = self.unit_stats.get(unit.key, {})
            work = (stats["params"] / 1e6, stats["macs"] / 1e6, stats["elements"] / 1e6) if "params" in stats else _NO_WORK
            vector = self._vectors[unit.key] = (self.unit_latency(unit), *work)
        return vector

    def _full_design(self, archs: Sequence[Arch]) -> np.ndarray:
        """All six terms per arch, NaN in the size terms where the profile lacks a unit's statistics."""
        out = np.empty((len(archs), 6))
        for i, arch in enumerate(archs):
            row = self._rows.get(arch)
            if row is None:
                units = self._units.units(arch)
                ms = params = macs = elements = 0.0
                for unit in units:
                    a, b, c, d = self._unit_vector(unit)
                    ms, params, macs, elements = ms + a, params + b, macs + c, elements + d
                row = (ms, len(units), 1.0, params, macs, elements)
                if len(self._rows) < 200_000:
                    self._rows[arch] = row
            out[i] = row
        return out

    def design(self, archs: Sequence[Arch], terms: int | None = None) -> np.ndarray:
        """One row per arch: the terms of the overhead model (see the module's docstring)."""
        out = self._full_design(archs)[:, :terms or len(self.overhead)]
        if np.isnan(out).any():
            raise NasError("the latency profile lacks size statistics for some units; rebuild it")
        return out

    # A floor for the overhead model's extrapolation: a fit on a few subnets can cross zero for an
    # arch smaller than all of them, and no subnet runs faster than a fraction of its own units.
    floor_share = 0.1

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        design = self.design(archs)
        return np.maximum(design @ np.asarray(self.overhead), self.floor_share * design[:, 0])

    def family_latencies(self, archs: Sequence[Arch]) -> np.ndarray:
        """Per arch, the measured unit latencies summed per family (:func:`families`) and the unit
        count: what a transfer to a new device scales (nas.latency.transfer)."""
        return _family_matrix(self._units.units, archs, self.unit_latency)

    def predict_metrics(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        return {"latency_ms": self.predict(archs)}

    @classmethod
    def from_profile(cls, profile: Profile, space: SearchSpace) -> UnitPredictor:
        unit_ms = {k: r["median_ms"] for k, r in profile.units.items() if r.get("median_ms") is not None}
        return cls(profile.target, require_net_space(space), tuple(profile.input_shape), unit_ms,
                   tuple(profile.model.get("overhead", (1.0, 0.0, 0.0))),
                   FamilyModel(profile.model.get("families", {})),
                   {k: r for k, r in profile.units.items() if "macs" in r})

    def fit_overhead(self, archs: Sequence[Arch], measured_ms: Sequence[float]) -> tuple[float, ...]:
        """Fit the overhead model to whole-subnet measurements, in relative error.

        All six terms when there are at least twice as many subnets (and size statistics for
        every unit), else the first three. A soft-L1 loss keeps one disturbed measurement (a
        busy machine slows a whole run evenly, which no per-run spread reveals) from dragging
        the fit.
        """
        from scipy.optimize import least_squares

        full = self._full_design(archs)
        terms = 6 if len(archs) >= 2 * 6 and not np.isnan(full).any() else 3
        y = np.asarray(measured_ms, dtype=float)
        design = full[:, :terms] / y[:, None]
        start, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
        fit = least_squares(lambda c: design @ c - 1.0, start, loss="soft_l1", f_scale=0.05)
        self.overhead = tuple(float(c) for c in fit.x)
        return self.overhead


class McuPredictor:
    """The MCU cost model composed over units: latency and peak SRAM and flash per arch."""

    def __init__(self, target: str, space: NetSpace, input_shape: tuple[int, ...], cpi: float, clock_mhz: float,
                 unit_counts: dict[str, dict[str, float]]) -> None:
        self.target = target
        self.space = space
        self.cpi, self.clock_mhz = cpi, clock_mhz
        self.unit_counts = unit_counts
        self._units = UnitCache.of(space, input_shape)

    @classmethod
    def from_profile(cls, profile: Profile, space: SearchSpace) -> McuPredictor:
        from nas.latency.boards import BOARDS

        board = BOARDS.get(profile.target)
        clock = board.clock_mhz if board else float(profile.meta["clock_mhz"])
        return cls(profile.target, require_net_space(space), tuple(profile.input_shape), profile.model["cpi"], clock,
                   profile.units)

    def predict_metrics(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        lat, sram, flash = np.empty(len(archs)), np.empty(len(archs)), np.empty(len(archs))
        for i, arch in enumerate(archs):
            try:
                counts = [self.unit_counts[u.key] for u in self._units.units(arch)]
            except KeyError as exc:
                raise NasError(f"the {self.target} profile has no unit {exc}; rebuild it") from None
            lat[i] = self.cpi * sum(c["instructions"] for c in counts) / (self.clock_mhz * 1e3)
            sram[i] = max(c["peak_bytes"] for c in counts) / 1024
            flash[i] = sum(c["flash_bytes"] for c in counts) / 1024
        return {"latency_ms": lat, "peak_sram_kb": sram, "flash_kb": flash}

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.predict_metrics(archs)["latency_ms"]

    def family_latencies(self, archs: Sequence[Arch]) -> np.ndarray:
        """Per arch, the units' modelled latencies summed per family and the unit count (see UnitPredictor)."""
        try:
            return _family_matrix(self._units.units, archs, lambda u: self.cpi * self.unit_counts[u.key]["instructions"]
                                  / (self.clock_mhz * 1e3))
        except KeyError as exc:
            raise NasError(f"the {self.target} profile has no unit {exc}; rebuild it") from None


class TablePredictor:
    """A random forest on the space's flat parameters, fitted on measured (arch, latency) rows."""

    def __init__(self, target: str, space: SearchSpace, rows: Sequence[tuple[Arch, float]]) -> None:
        from sklearn.ensemble import RandomForestRegressor

        if len(rows) < 5:
            raise NasError(f"a latency table needs at least 5 measured archs, got {len(rows)}")
        self.target = target
        self.space = space
        self.rows = [(space.validate(a), float(ms)) for a, ms in rows]
        x = space.features([a for a, _ in self.rows])
        y = np.log([ms for _, ms in self.rows])
        self.model = RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=0, n_jobs=1).fit(x, y)

    @classmethod
    def from_profile(cls, profile: Profile, space: SearchSpace) -> TablePredictor:
        return cls(profile.target, space, [(space.parse(r["arch"]), r["median_ms"]) for r in profile.archs])

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.exp(self.model.predict(self.space.features(list(archs))))

    def predict_metrics(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        return {"latency_ms": self.predict(archs)}


# A profile's kind -> how its predictor is made. nas.latency.transfer adds "transfer" when it is
# imported (the nas.latency package imports it), so this module never imports its own user.
PREDICTORS: dict[str, Any] = {"measured": UnitPredictor.from_profile, "mcu": McuPredictor.from_profile,
                              "table": TablePredictor.from_profile}


def predictor_for(profile: Profile, space: SearchSpace) -> Predictor:
    """The predictor ``profile`` describes, for ``space`` (whose hash the profile must match)."""
    make = PREDICTORS.get(profile.kind)
    if make is None:
        raise NasError(f"the {profile.target} profile of {profile.name} has kind {profile.kind!r}, "
                       f"which this nas cannot read (known: {', '.join(PREDICTORS)})")
    return make(profile, space)

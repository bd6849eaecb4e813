"""Validating a latency model on held-out subnets measured end to end.

Each held-out subnet is measured twice, in two separate passes over the whole set, so the
report can say how far two honest measurements of the same subnet disagree: that is the
floor no predictor can beat. Where the two passes disagree by more than 10% one of them was
disturbed (a neighbour on the host, for the length of a measurement); such a subnet is measured
a third time and the median of the three is kept (``remeasured`` counts them).

A shared or virtual machine also drifts in speed over minutes and days (a busier host). Each
pass therefore first re-measures ten of the subnets the build measured, and the median ratio
of their latency now to their latency then is the machine's speed relative to the build
(``speed_vs_build``). The figures are reported on measurements brought back to the build's
speed, and uncorrected beside them (``*_uncorrected``); the held-out subnets play no part in
the correction. For MCU targets nothing can be measured here; validation then
checks the composed per-unit predictor against the cost model run on each whole graph, and
reports the calibration's leave-one-out error.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from nas.errors import NasError
from nas.graph import analyze
from nas.latency.build import build_archs, random_supernet
from nas.latency.measure import (
    CostedTarget,
    MeasureConfig,
    MeasuringTarget,
    Meter,
    Progress,
    measure_in_passes,
)
from nas.latency.predictor import predictor_for
from nas.latency.profile import Profile
from nas.space import Arch, NetArch, NetSpace
from nas.supernet.to_onnx import to_onnx


@dataclass(frozen=True)
class Validation:
    rows: list[dict[str, Any]]  # arch, measured_ms, predicted_ms, and the two passes
    summary: dict[str, Any]


def score_predictions(measured: np.ndarray, predicted: np.ndarray, noise_cv: float, repeat_diff: float | None) -> dict[str, Any]:
    ape = np.abs(predicted - measured) / measured
    tau = kendalltau(measured, predicted).statistic if len(measured) > 1 else float("nan")
    out = {
        "n": int(len(measured)),
        "within_10pct": round(float(np.mean(ape <= 0.10)), 4),
        "kendall_tau": round(float(tau), 4),
        "mape": round(float(100 * np.mean(ape)), 3),
        "rmse_ms": round(float(np.sqrt(np.mean((predicted - measured) ** 2))), 5),
        "noise_cv": round(float(noise_cv), 4),
        "p90_ape_pct": round(float(100 * np.percentile(ape, 90)), 3),
    }
    if repeat_diff is not None:
        out["repeat_diff_pct"] = round(float(100 * repeat_diff), 3)
    return out


def held_out_archs(space: NetSpace, profile: Profile, n: int, seed: int) -> list[NetArch]:
    built = {space.parse(r["arch"]) for r in profile.archs}
    built |= set(build_archs(space, 2, 0))
    return space.sample_unique(random.Random(seed), n, exclude=built)


def validate_against(predictor, rows: list[tuple[Arch, float]]) -> Validation:
    """A predictor's figures on measurements made elsewhere (a device's own runs of held-out archs)."""
    _check_n(len(rows))
    measured = np.array([ms for _, ms in rows])
    predicted = np.asarray(predictor.predict([a for a, _ in rows]), dtype=float)
    summary = score_predictions(measured, predicted, 0.0, None)
    summary["measured_by"] = "the measurements given"
    return Validation([{"arch": a.to_str(), "measured_ms": float(m), "predicted_ms": float(p)}
                       for (a, _), m, p in zip(rows, measured, predicted, strict=True)], summary)


def validate_costed(target: CostedTarget, space: NetSpace, profile: Profile, n: int, seed: int,
                    progress: Progress) -> Validation:
    """An MCU profile's per-unit composition against the cost model run on each whole graph."""
    _check_n(n)
    predictor = predictor_for(profile, space)
    archs = held_out_archs(space, profile, n, seed)
    predicted = predictor.predict(archs)
    shape = tuple(profile.input_shape)
    net = random_supernet(space, 0, shape)
    model = target.model()
    advance = progress(f"{target.name}: whole-graph cost model on {len(archs)} subnets", len(archs))
    measured = []
    for arch in archs:
        sub = net.extract(arch, shape)
        measured.append(model.estimate(analyze(to_onnx(sub, torch.zeros(1, *shape)))).latency_ms)
        advance()
    rows = [{"arch": a.to_str(), "measured_ms": m, "predicted_ms": float(p)}
            for a, m, p in zip(archs, measured, predicted, strict=True)]
    summary = score_predictions(np.array(measured), predicted, 0.0, None)
    summary["measured_by"] = "the cost model on each whole graph (no board here)"
    summary["calibration_loo_error_pct"] = profile.model.get("loo_error_pct", {})
    return Validation(rows, summary)


def _check_n(n: int) -> None:
    if n < 2:
        raise NasError(f"-n must be at least 2, got {n}")


def validate_measured(
    target: MeasuringTarget,
    space: NetSpace,
    profile: Profile,
    n: int = 100,
    seed: int = 12345,
    config: MeasureConfig | None = None,
    progress: Progress | None = None,
) -> Validation:
    """Measure ``n`` held-out subnets twice on ``target`` and score the profile's predictor (see the module's docstring)."""
    _check_n(n)
    problem = target.status()
    if problem:
        raise NasError(problem)
    progress = progress or (lambda description, total: lambda: None)
    predictor = predictor_for(profile, space)
    archs = held_out_archs(space, profile, n, seed)
    predicted = predictor.predict(archs)
    shape = tuple(profile.input_shape)
    net = random_supernet(space, 0, shape)
    meter = Meter(config or MeasureConfig(threads=int(profile.meta.get("threads", 1)),
                                          batch=int(profile.meta.get("batch", 1))))
    graphs = []
    advance = progress(f"{target.name}: exporting {len(archs)} held-out subnets", len(archs))
    for arch in archs:
        sub = net.extract(arch, shape)
        graphs.append((sub, to_onnx(sub, torch.zeros(1, *shape)) if target.times_onnx else None))
        advance()
    cvs: list[float] = []

    def measure(i: int) -> float:
        m = target.measure(graphs[i][0], (1, *shape), meter, graphs[i][1])
        cvs.append(m.cv)
        return m.median_ms

    references = [(lambda arch=arch: target.measure(net.extract(arch, shape), (1, *shape), meter).median_ms, built_ms)
                  for arch, built_ms in reference_archs(space, profile)]
    runs = measure_in_passes(len(archs), measure, references, progress=progress, name=f"{target.name}: ")
    (raw_first, raw_second), (first, second) = runs.raw, runs.scaled
    rows = [{"arch": a.to_str(), "measured_ms": float(m), "predicted_ms": float(p), "pass1_ms": float(x),
             "pass2_ms": float(y), "raw_pass1_ms": float(rx), "raw_pass2_ms": float(ry)}
            for a, m, p, x, y, rx, ry in zip(archs, runs.measured, predicted, first, second, raw_first, raw_second,
                                             strict=True)]
    noise_cv = float(np.median(cvs))
    summary = score_predictions(runs.measured, predicted, noise_cv, float(np.median(runs.disagreement)))
    raw = score_predictions(runs.raw_mean, predicted, noise_cv, None)
    summary.update({"speed_vs_build": round(float(np.mean(runs.speeds)), 4), "remeasured": int(len(runs.remeasured)),
                    "within_10pct_uncorrected": raw["within_10pct"], "mape_uncorrected": raw["mape"],
                    "kendall_tau_uncorrected": raw["kendall_tau"]})
    summary.update({f"guard_{k}": v for k, v in meter.guard_report().items()})
    return Validation(rows, summary)


def reference_archs(space: NetSpace, profile: Profile, n: int = 10) -> list[tuple[NetArch, float]]:
    """``n`` of the build's own measured subnets, spread over its latency range."""
    built = sorted(((space.parse(r["arch"]), float(r["median_ms"])) for r in profile.archs), key=lambda t: t[1])
    if len(built) <= n:
        return built
    return [built[round(i * (len(built) - 1) / (n - 1))] for i in range(n)]


def write_validation(validation: Validation, csv_path: Path, png_path: Path | None, title: str) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(validation.rows[0]))
        writer.writeheader()
        writer.writerows(validation.rows)
    if png_path is not None:
        plot_validation(validation, png_path, title)


def plot_validation(validation: Validation, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = np.array([r["measured_ms"] for r in validation.rows])
    predicted = np.array([r["predicted_ms"] for r in validation.rows])
    lo, hi = float(min(measured.min(), predicted.min())) * 0.9, float(max(measured.max(), predicted.max())) * 1.1
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    line = np.linspace(lo, hi, 50)
    ax.fill_between(line, line * 0.9, line * 1.1, color="#dde8f5", label="within 10%")
    ax.plot(line, line, color="#4a6fa5", lw=1)
    ax.scatter(measured, predicted, s=14, color="#c0392b", zorder=3)
    s = validation.summary
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{title}\nn={s['n']}  within 10%: {100 * s['within_10pct']:.0f}%  "
                 f"tau={s['kendall_tau']:.3f}  MAPE={s['mape']:.1f}%", fontsize=9)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def record_validation(profile: Profile, path: Path, validation: Validation, title: str,
                      plot: Path | None = None) -> Path:
    """Keep a validation with its profile: its rows (CSV) and predicted-vs-measured plot beside the
    profile file ``path`` when that folder is writable (a source tree), else under
    ``./latency_models/TARGET/``, and its figures in the profile, saved again there. Returns the
    plot's path."""
    import os

    from nas.latency.profile import default_out_dir, save_profile

    writable = os.access(path.parent, os.W_OK)
    folder = path.parent if writable else default_out_dir() / profile.target
    png = plot or folder / f"{profile.name}.validation.png"
    write_validation(validation, folder / f"{profile.name}.validation.csv", png, title)
    profile.validation = validation.summary
    profile.validation_rows = [{k: r[k] for k in ("arch", "measured_ms", "predicted_ms")} for r in validation.rows]
    save_profile(profile, path.parent.parent if writable else default_out_dir())
    return png

"""Building latency profiles: measure (or cost) every unit, measure a few whole subnets, fit.

Measured targets use a randomly initialised supernet of the space: latency depends on shapes,
not on trained weights (the one exception, which tokens an MoE routes where, averages out).
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nas.errors import NasError
from nas.graph import analyze
from nas.latency.mcu import BOARDS, McuModel, calibrate, graph_instructions
from nas.latency.measure import MeasureConfig, reference_level
from nas.latency.predictor import (
    FamilyModel,
    McuPredictor,
    Predictor,
    TablePredictor,
    UnitPredictor,
    unit_family,
)
from nas.latency.profile import Profile, load_profile, profile_name, space_hash
from nas.latency.targets import Target, describe, get_target, require_measurable
from nas.space import Arch, NetArch, NetSpace, SearchSpace
from nas.supernet import Supernet, SupernetConfig
from nas.supernet.metrics import flash_bytes
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import Unit, all_units, unit_module

Progress = Callable[[str, int], Callable[[], None]]  # (description, total) -> advance()


def _no_progress(description: str, total: int) -> Callable[[], None]:
    return lambda: None


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import nas

    return {"nas": nas.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def random_supernet(space: NetSpace, seed: int = 0, input_shape: tuple[int, ...] | None = None) -> Supernet:
    torch.manual_seed(seed)
    channels = input_shape[0] if input_shape else None
    return Supernet(SupernetConfig.from_space(space, in_channels=channels)).eval()


def _require_net_space(space: SearchSpace) -> NetSpace:
    if not isinstance(space, NetSpace):
        raise NasError(
            f"space {space.name!r} has no supernet to measure: fit a latency table instead "
            f"('nas latency import TABLE.csv --target NAME --space {space.name}')"
        )
    return space


def build_archs(space: NetSpace, n: int, seed: int) -> list[NetArch]:
    """The whole subnets a build measures: the extremes and ``n - 2`` random ones."""
    extremes = [space.largest(), space.smallest()]
    return extremes + space.sample_unique(random.Random(seed), max(0, n - 2), exclude=set(extremes))


def unit_record(unit: Unit, module: torch.nn.Module, data: bytes) -> dict[str, Any]:
    """What a profile keeps of a unit besides its latency: work, MCU instructions, memory."""
    stats = analyze(data)
    return {"family": unit_family(unit), "macs": stats.macs,
            "elements": sum(op.elements for op in stats.ops), "ops": len(stats.ops),
            "instructions": graph_instructions(stats), "peak_bytes": stats.peak_activation_bytes,
            "flash_bytes": flash_bytes(module), "params": sum(p.numel() for p in module.parameters())}


def build_profile(
    space: SearchSpace,
    target_name: str,
    config: MeasureConfig | None = None,
    n_archs: int = 40,
    seed: int = 0,
    progress: Progress = _no_progress,
    input_shape: tuple[int, ...] | None = None,
) -> Profile:
    """Measure and fit a profile of ``target_name`` for ``space`` (or cost it, for MCU boards),
    at ``input_shape`` (the task's by default; another one makes a ``SPACE@CxHxW`` profile)."""
    space = _require_net_space(space)
    target = get_target(target_name)
    config = config or MeasureConfig()
    shape = _check_shape(space, input_shape)
    if target.kind == "mcu":
        return _build_mcu(space, target, progress, shape)
    require_measurable(target)
    if n_archs < 5:
        raise NasError(f"--archs must be at least 5 to fit the overhead model, got {n_archs}")
    net = random_supernet(space, seed, shape)
    units = all_units(space, shape)
    advance = progress(f"{target.name}: measuring {len(units)} units", len(units))
    records: dict[str, dict[str, Any]] = {}
    unit_measurements = {}
    for unit in units:
        module, example = unit_module(net, unit)
        data = to_onnx(module, torch.zeros(example))
        unit_measurements[unit.key] = m = _measure(target, module, example, config, data)
        records[unit.key] = {**unit_record(unit, module, data), **m.as_dict()}
        advance()

    archs = build_archs(space, n_archs, seed)
    advance = progress(f"{target.name}: measuring {len(archs)} whole subnets", len(archs))
    arch_measurements = []
    for arch in archs:
        subnet = net.extract(arch, shape)
        arch_measurements.append(_measure(target, subnet, (1, *shape), config))
        advance()
    # The probe level says how fast the machine was during the build (a diagnostic; validation
    # compares speeds with the build's own subnets, see nas.latency.validate).
    level = reference_level(list(unit_measurements.values()) + arch_measurements)
    arch_rows = [{"arch": a.to_str(), **m.as_dict()} for a, m in zip(archs, arch_measurements, strict=True)]

    families = FamilyModel.fit([(r["family"], r, r["median_ms"]) for r in records.values()])
    predictor = UnitPredictor(target.name, space, shape, {k: r["median_ms"] for k, r in records.items()},
                              families=families, unit_stats=records)
    overhead = predictor.fit_overhead(archs, [r["median_ms"] for r in arch_rows])
    fitted = predictor.predict(archs)
    measured = np.array([r["median_ms"] for r in arch_rows])
    family_err = [abs(families.predict(r["family"], r) - r["median_ms"]) / r["median_ms"] for r in records.values()]
    return Profile(
        target=target.name,
        space=space.name,
        name=profile_name(space, shape),
        kind="measured",
        space_hash=space_hash(space),
        input_shape=list(shape),
        meta={**describe(target, config), "versions": versions(), "date": _dt.date.today().isoformat(),
              "warmup": config.warmup, "repeats": config.repeats, "seed": seed, "probe_us": level},
        units=records,
        archs=arch_rows,
        model={
            "overhead": list(overhead),
            "families": families.coefficients,
            "fit_mape_pct": float(100 * np.mean(np.abs(fitted - measured) / measured)),
            "family_mape_pct": float(100 * np.mean(family_err)),
            "noisy_units": sum(bool(r["noisy"]) for r in records.values()),
        },
    )


def _measure(target: Target, module: torch.nn.Module, shape: tuple[int, ...], config: MeasureConfig,
             data: bytes | None = None):
    from nas.latency.targets import measure_module

    return measure_module(target, module, shape, config, data)


def _check_shape(space: NetSpace, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    shape = tuple(input_shape or space.task.input_shape)
    if len(shape) != len(space.task.input_shape) or any(d < 1 for d in shape):
        form = "C,H,W" if space.task.kind == "image" else "C,L"
        raise NasError(f"input shape {list(shape)} does not fit a {space.task.kind} space (expected {form})")
    return shape


def _build_mcu(space: NetSpace, target: Target, progress: Progress, shape: tuple[int, ...]) -> Profile:
    board = BOARDS[target.name]
    calibration = calibrate(target.name)
    net = random_supernet(space, 0, shape)
    units = all_units(space, shape)
    advance = progress(f"{target.name}: costing {len(units)} units", len(units))
    records = {}
    for unit in units:
        module, example = unit_module(net, unit)
        records[unit.key] = unit_record(unit, module, to_onnx(module, torch.zeros(example)))
        advance()
    return Profile(
        target=target.name,
        space=space.name,
        name=profile_name(space, shape),
        kind="mcu",
        space_hash=space_hash(space),
        input_shape=list(shape),
        meta={"device": f"{board.name} ({board.core}, {board.clock_mhz:.0f} MHz)",
              "runtime": "int8 cost model calibrated on MLPerf Tiny v1.0 (latency_models/mcu/)",
              "sram_kb": board.sram_kb, "flash_kb": board.flash_kb, "clock_mhz": board.clock_mhz,
              "versions": versions(), "date": _dt.date.today().isoformat()},
        units=records,
        model={"cpi": calibration.cpi, "fit_error_pct": calibration.fit_error_pct,
               "loo_error_pct": calibration.loo_error_pct},
    )


def predictor_for(profile: Profile, space: SearchSpace) -> Predictor:
    """The predictor a profile describes, for ``space`` (whose hash the profile must match)."""
    shape = tuple(profile.input_shape)
    if profile.kind == "table":
        rows = [(space.parse(r["arch"]), r["median_ms"]) for r in profile.archs]
        return TablePredictor(profile.target, space, rows)
    space = _require_net_space(space)
    if profile.kind == "mcu":
        board = BOARDS.get(profile.target)
        clock = board.clock_mhz if board else float(profile.meta["clock_mhz"])
        return McuPredictor(profile.target, space, shape, profile.model["cpi"], clock, profile.units)
    unit_ms = {k: r["median_ms"] for k, r in profile.units.items() if r.get("median_ms") is not None}
    return UnitPredictor(profile.target, space, shape, unit_ms, tuple(profile.model.get("overhead", (1.0, 0.0, 0.0))),
                         FamilyModel(profile.model.get("families", {})),
                         {k: r for k, r in profile.units.items() if "macs" in r})


def load_predictor(target: str, space: SearchSpace, input_shape: tuple[int, ...] | None = None) -> Predictor:
    get_target(target)
    profile, _ = load_profile(target, space, input_shape=input_shape)
    return predictor_for(profile, space)


def mcu_model(target: str) -> McuModel:
    return McuModel(BOARDS[target], calibrate(target).cpi)


def predict_archs(predictor: Predictor, archs: list[Arch]) -> dict[str, np.ndarray]:
    return predictor.predict_metrics(archs)

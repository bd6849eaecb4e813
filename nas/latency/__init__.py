"""Latency models: measured (cpu, gpu, imported devices) and modelled (Cortex-M boards).

>>> from nas.latency import get_target
>>> predictor = get_target("cpu").load_predictor(space)   # doctest: +SKIP
>>> predictor.predict(archs)                              # milliseconds, one per arch  # doctest: +SKIP

Targets are types (:mod:`nas.latency.targets`); ``build_profile``, ``load_predictor`` and
``predictor_for`` are shorthands for their methods.
"""

from __future__ import annotations

from pathlib import Path

from nas.latency.mcu import BOARDS, McuModel, calibrate
from nas.latency.measure import MeasureConfig, Measurement, Meter
from nas.latency.predictor import (
    McuPredictor,
    Predictor,
    TablePredictor,
    UnitPredictor,
    predictor_for,
)
from nas.latency.profile import Profile, list_profiles, load_profile, save_profile
from nas.latency.targets import (
    BUILTIN_NAMES,
    CpuTarget,
    GpuTarget,
    ImportedTarget,
    McuTarget,
    Progress,
    Target,
    get_target,
    known_targets,
    no_progress,
)
from nas.latency.transfer import (
    TransferPredictor,  # also registers the transfer kind with predictor_for
)
from nas.space import SearchSpace


def build_profile(space: SearchSpace, target: str, config: MeasureConfig | None = None, *, n_archs: int = 40,
                  seed: int = 0, progress: Progress = no_progress, input_shape: tuple[int, ...] | None = None) -> Profile:
    """``get_target(target).build(space, ...)``."""
    return get_target(target).build(space, config, n_archs=n_archs, seed=seed, progress=progress,
                                    input_shape=input_shape)


def load_predictor(target: str, space: SearchSpace, input_shape: tuple[int, ...] | None = None,
                   roots: list[Path] | None = None) -> Predictor:
    """The predictor of ``target``'s profile of ``space`` (``roots``: profile folders to look in)."""
    profile, _ = load_profile(get_target(target).name if roots is None else target, space, roots, input_shape)
    return predictor_for(profile, space)


__all__ = [
    "BOARDS",
    "BUILTIN_NAMES",
    "CpuTarget",
    "GpuTarget",
    "ImportedTarget",
    "McuModel",
    "McuPredictor",
    "McuTarget",
    "MeasureConfig",
    "Measurement",
    "Meter",
    "Predictor",
    "Profile",
    "TablePredictor",
    "TransferPredictor",
    "Target",
    "UnitPredictor",
    "build_profile",
    "calibrate",
    "get_target",
    "known_targets",
    "list_profiles",
    "load_predictor",
    "load_profile",
    "predictor_for",
    "save_profile",
]

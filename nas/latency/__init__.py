"""Latency models: measured (cpu, gpu, imported devices) and modelled (Cortex-M boards).

>>> from nas.latency import load_predictor
>>> predictor = load_predictor("cpu", space)          # doctest: +SKIP
>>> predictor.predict(archs)                          # milliseconds, one per arch  # doctest: +SKIP
"""

from nas.latency.build import build_profile, load_predictor, mcu_model, predictor_for
from nas.latency.mcu import BOARDS, McuModel, calibrate
from nas.latency.measure import MeasureConfig, Measurement, measure_onnx
from nas.latency.predictor import McuPredictor, Predictor, TablePredictor, UnitPredictor
from nas.latency.profile import Profile, list_profiles, load_profile, save_profile
from nas.latency.targets import Target, get_target, known_targets

__all__ = [
    "BOARDS",
    "McuModel",
    "McuPredictor",
    "MeasureConfig",
    "Measurement",
    "Predictor",
    "Profile",
    "TablePredictor",
    "Target",
    "UnitPredictor",
    "build_profile",
    "calibrate",
    "get_target",
    "known_targets",
    "list_profiles",
    "load_predictor",
    "load_profile",
    "mcu_model",
    "measure_onnx",
    "predictor_for",
    "save_profile",
]

"""Evaluating subnets of a trained supernet."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import NasError
from nas.evaluate._base import Evaluator
from nas.latency import Predictor, Profile, list_profiles, load_profile, predictor_for
from nas.latency.profile import profile_name
from nas.objectives import ARCH_METRICS, Objective, default_objectives, latency_metric
from nas.space import Arch, NetArch
from nas.supernet import checkpoint
from nas.supernet.metrics import MetricsModel, UnitStats


@dataclass(frozen=True)
class EvaluatorPayload:
    """A supernet evaluator packed for a worker: plain bytes and arrays, shipped once per worker
    through Ray's object store (no worker needs the files, even on another host)."""

    checkpoint_bytes: bytes
    profiles: dict[str, dict[str, Any]]
    x: np.ndarray | None
    y: np.ndarray | None
    targets: tuple[str, ...]
    device: str = "cpu"  # where the worker scores accuracy: cpu, auto, cuda or cuda:N
    calibration: np.ndarray | None = None  # int8 calibration samples, when int8 accuracy is scored
    finetune: tuple[int, np.ndarray, np.ndarray] | None = None  # (steps, x_train, y_train)
    accuracy_model: dict[str, Any] | None = None  # an accuracy calibration's JSON (nas.supernet.calibrate)
    lm_costs: dict[str, dict[str, Any]] | None = None  # a language model's latency models, by metric


class SupernetEvaluator(Evaluator):
    """Accuracy with inherited weights on the validation split, plus latency and size metrics.

    Build it with :meth:`from_files` (checks everything: checkpoint, dataset, one latency
    profile per target at the checkpoint's input shape). :meth:`payload` packs what it holds
    into plain bytes and arrays, and :meth:`from_payload` rebuilds it from them: that is how
    Ray workers get their copy, so no worker needs the files, even on another host.
    """

    def __init__(self, checkpoint_bytes: bytes, profiles: dict[str, dict[str, Any]],
                 x: np.ndarray | None = None, y: np.ndarray | None = None, threads: int | None = None,
                 targets: Sequence[str] | None = None, device: str = "cpu",
                 calibration: np.ndarray | None = None,
                 finetune: tuple[int, np.ndarray, np.ndarray] | None = None,
                 accuracy_model: dict[str, Any] | None = None,
                 lm_costs: dict[str, dict[str, Any]] | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        from nas.supernet.devices import resolve_device

        self.device = resolve_device(device)
        self._checkpoint_bytes = checkpoint_bytes
        self._profiles = profiles
        self.net, self.info = checkpoint.load_bytes(checkpoint_bytes)
        self.net.eval()
        self.space = self.info.space
        # The search's targets (objectives); every other profiled target is reported too, so
        # each stored evaluation has its latency on all known devices side by side.
        self.targets = tuple(targets or profiles)
        self.other_targets = tuple(t for t in profiles if t not in self.targets)
        loaded = {t: Profile.from_json(p, f"the {t} profile") for t, p in profiles.items()}
        self.predictors: dict[str, Predictor] = {t: predictor_for(p, self.space) for t, p in loaded.items()}
        self.metrics = MetricsModel(self.net, self.space, self.info.input_shape)
        # Per-unit params, MACs and memory come with the latency profiles; nothing to export here.
        for profile in loaded.values():
            for key, unit in profile.units.items():
                if all(k in unit for k in ("params", "macs", "peak_bytes", "flash_bytes")):
                    self.metrics.cache.setdefault(key, UnitStats(int(unit["params"]), int(unit["macs"]),
                                                                 int(unit["peak_bytes"]), int(unit["flash_bytes"])))
        self.objectives = tuple(default_objectives(self.targets))
        # A language model: bits per byte, and prefill and decode latency and the decode's state.
        self.lm_costs = lm_costs
        self.lm_models = {}
        if lm_costs is not None:
            from nas.latency.lm import LmLatency

            self.lm_models = {m: LmLatency.from_json(js, f"the {m} model") for m, js in lm_costs.items()}
            decode = next(m for m in self.lm_models.values() if m.mode == "decode")
            self.context = decode.length
            self.objectives = (Objective("bpb", "min"),
                               *(Objective(m, "min") for m in self.lm_models if m.endswith("_decode_ms")))
        # With calibration samples, every evaluation also quantises the subnet to int8 and scores it.
        self.calibration = calibration
        # With an accuracy calibration, accuracy is its model's estimate of the stand-alone accuracy,
        # and the supernet's own score is kept beside it.
        self.accuracy_model = accuracy_model
        self._calibrated = None
        if accuracy_model is not None:
            from nas.supernet.calibrate import AccuracyCalibration

            self._calibrated = AccuracyCalibration.from_json(accuracy_model, "the accuracy calibration")
        if lm_costs is not None:
            self.metric_names = ("bpb", *(("supernet_bpb",) if accuracy_model is not None else ()), "accuracy",
                                 *self.lm_models, "state_kb", "params")
        else:
            self.metric_names = ("accuracy", *(("supernet_accuracy",) if accuracy_model is not None else ()),
                             *(("int8_accuracy",) if calibration is not None else ()),
                                 *(latency_metric(t) for t in (*self.targets, *self.other_targets)), *ARCH_METRICS)
        self.x, self.y = x, y
        self._x_host, self._y_host = x, y
        # (steps, x_train, y_train): each subnet is fine-tuned that many steps before it is scored.
        self.finetune = finetune
        # Accuracy runs batched on the device, on a copy of the weights held there with the
        # validation data; sizes and latency stay on the CPU copy (their graphs are built on the host).
        self.eval_net = self.net
        if self.device.type != "cpu":
            import copy

            self.eval_net = copy.deepcopy(self.net).to(self.device)
            if x is not None:
                self.x, self.y = torch.as_tensor(x).to(self.device), torch.as_tensor(y).to(self.device)

    @classmethod
    def from_files(cls, checkpoint_path: str | Path, targets: Sequence[str], with_data: bool = True,
                   val_examples: int | None = None, roots: list[Path] | None = None,
                   hint: str | None = None, int8: bool = False, finetune_steps: int = 0,
                   accuracy_calibration: str | Path | None = None) -> SupernetEvaluator:
        """``hint``: how the user named the space, for the build command an error suggests; ``int8``:
        every evaluation also reports ``int8_accuracy`` (calibrated on the training split);
        ``finetune_steps``: accuracy after that many fine-tuning steps on the training split (batches
        of 128 from a fixed sample of ``steps * 128`` training examples shipped with the evaluator);
        ``accuracy_calibration``: a file from ``nas supernet calibrate`` of this checkpoint, whose
        model then gives the accuracy (the supernet's own is kept as ``supernet_accuracy``)."""
        if finetune_steps < 0:
            raise NasError(f"--finetune-steps must be 0 or more, not {finetune_steps}")
        if (int8 or finetune_steps) and not with_data:
            raise NasError("int8 accuracy and fine-tuning need the dataset's training split")
        path = Path(checkpoint_path)
        if not path.is_file():
            raise NasError(f"checkpoint {str(path)!r} does not exist")
        data = path.read_bytes()
        _, info = checkpoint.load_bytes(data, str(path))
        accuracy_model = None
        if accuracy_calibration is not None:
            import hashlib

            from nas.supernet.calibrate import AccuracyCalibration

            if finetune_steps:
                raise NasError("a calibrated accuracy is fitted on inherited weights: leave out --finetune-steps")
            calibrated = AccuracyCalibration.load(accuracy_calibration)
            if calibrated.supernet_sha256 != hashlib.sha256(data).hexdigest():
                raise NasError(f"{Path(accuracy_calibration).name} calibrates another supernet than {path.name}: "
                               f"run nas supernet calibrate {path.name}")
            if not calibrated.coef:
                raise NasError(f"{Path(accuracy_calibration).name} is not finished: rerun nas supernet calibrate to resume it")
            accuracy_model = calibrated.to_json()
        if not targets:
            raise NasError("a search needs at least one latency --target")
        shape = tuple(info.input_shape)
        lm_costs = _lm_costs(info, targets, roots) if info.vocab else None
        profiles = {} if info.vocab else {t: load_profile(t, info.space, roots, input_shape=shape, hint=hint)[0].to_json() for t in targets}
        for target, name, _ in ([] if info.vocab else list_profiles(roots)):
            if target not in profiles and name == profile_name(info.space, shape):
                with contextlib.suppress(NasError):  # a stale profile of another target is skipped, not fatal
                    profiles[target] = load_profile(target, info.space, roots, input_shape=shape)[0].to_json()
        x = y = None
        if with_data:
            from nas.data import load_dataset

            dataset = load_dataset(info.dataset, info.space.task)
            if tuple(dataset.input_shape) != tuple(info.input_shape):
                raise NasError(f"dataset {info.dataset} now has input {list(dataset.input_shape)}, "
                               f"the checkpoint expects {list(info.input_shape)}")
            x, y = dataset.x_val[:val_examples], dataset.y_val[:val_examples]
        calibration = finetune = None
        if int8:
            from nas.supernet.quantize import calibration_sample

            calibration = calibration_sample(dataset.x_train)
        if finetune_steps:
            from nas.supernet.scoring import finetune_sample

            finetune = (finetune_steps, *finetune_sample(dataset.x_train, dataset.y_train, finetune_steps))
        return cls(data, profiles, x, y, targets=targets, calibration=calibration, finetune=finetune,
                   accuracy_model=accuracy_model, lm_costs=lm_costs)

    def payload(self, device: str | None = None) -> EvaluatorPayload:
        """What a worker rebuilds this evaluator from (``device``: where the worker scores accuracy,
        by default this evaluator's)."""
        return EvaluatorPayload(self._checkpoint_bytes, self._profiles, self._x_host, self._y_host, self.targets,
                                device or str(self.device), self.calibration, self.finetune, self.accuracy_model,
                                self.lm_costs)

    @classmethod
    def from_payload(cls, payload: EvaluatorPayload, threads: int | None = 1) -> SupernetEvaluator:
        return cls(payload.checkpoint_bytes, payload.profiles, payload.x, payload.y, threads, payload.targets,
                   payload.device, payload.calibration, payload.finetune, payload.accuracy_model, payload.lm_costs)

    def profiles(self) -> dict[str, dict[str, Any]]:
        """The latency profiles this evaluator predicts with (to keep in the store)."""
        return dict(self._profiles)

    def cheap(self, arch: Arch) -> dict[str, float]:
        return self.cheap_metrics(arch, None)

    def cheap_metrics(self, arch: Arch, names: Collection[str] | None) -> dict[str, float]:
        """Predicted latency per target and the size metrics, those among ``names`` only (``None``: all)."""
        if not isinstance(arch, NetArch):
            raise NasError("the supernet evaluator takes network archs")
        if self.lm_costs is not None:
            from nas.latency.lm import state_bytes

            lm = {m: float(model.predict([arch])[0]) for m, model in self.lm_models.items()}
            lm |= {"state_kb": state_bytes(self.space, arch, self.context) / 1024, "params": float(self.metrics.params(arch))}
            return {k: v for k, v in lm.items() if names is None or k in names}
        out = {latency_metric(t): float(p.predict([arch])[0]) for t, p in self.predictors.items()
               if names is None or latency_metric(t) in names}
        if names is None or any(m in names for m in ARCH_METRICS):
            m = self.metrics(arch)
            sizes = {"params": float(m.params), "macs": float(m.macs), "sram_kb": m.peak_sram_kb, "flash_kb": m.flash_kb}
            out.update((k, v) for k, v in sizes.items() if names is None or k in names)
        return out

    def evaluate(self, arch: Arch) -> dict[str, float]:
        if self.x is None:
            raise NasError("this evaluator was built without data")
        if self.lm_costs is not None:
            import math

            from nas.supernet.scoring import accuracy_and_nll

            acc, nll = accuracy_and_nll(self.eval_net, arch, self.x, self.y, batch=64)
            scored = {"bpb": nll / math.log(2), "accuracy": acc}
            if self._calibrated is not None:  # the calibration's estimate of stand-alone bits per byte
                from nas.supernet.calibrate import arch_features

                features = arch_features(self.eval_net, arch, self.x, self.y, self.metrics.params(arch))
                scored = {"bpb": self._calibrated.predict(features), "supernet_bpb": scored["bpb"], "accuracy": acc}
            return {**scored, **self.cheap(arch)}
        out = {**self._accuracy(arch), **self.cheap(arch)}
        if self.calibration is not None:
            out["int8_accuracy"] = self.int8_accuracy(arch)
        return out

    def _accuracy(self, arch: NetArch) -> dict[str, float]:
        """``accuracy`` on the validation split: with inherited weights, after a fine-tune, or the
        calibration's estimate (with the supernet's own as ``supernet_accuracy``)."""
        from nas.supernet.scoring import accuracy

        if self.finetune:
            from nas.supernet.scoring import finetune

            steps, x_train, y_train = self.finetune
            subnet = finetune(self.eval_net.extract(arch, self.info.input_shape), x_train, y_train, steps)
            return {"accuracy": accuracy(subnet, None, self.x, self.y)}
        if self._calibrated is not None:
            from nas.supernet.calibrate import arch_features

            features = arch_features(self.eval_net, arch, self.x, self.y, self.metrics.params(arch), self._fresh())
            return {"accuracy": self._calibrated.predict(features), "supernet_accuracy": features["supernet_accuracy"]}
        return {"accuracy": accuracy(self.eval_net, arch, self.x, self.y)}

    def _fresh(self):
        """The space's supernet at initialisation, when the calibration's features include proxies."""
        from nas.supernet.calibrate import needs_proxies

        if not needs_proxies(self._calibrated.features):
            return None
        if getattr(self, "_fresh_net", None) is None:
            from nas.supernet.proxies import fresh_supernet

            self._fresh_net = fresh_supernet(self.space)
        return self._fresh_net

    def int8_accuracy(self, arch: NetArch) -> float:
        """The subnet exported, quantised to int8 (calibrated on training samples) and scored in
        onnxruntime on the validation split: the accuracy of the model an MCU would run."""
        from nas.supernet.quantize import onnx_accuracy, quantise
        from nas.supernet.to_onnx import to_onnx

        sub = self.net.extract(arch, self.info.input_shape)
        data = to_onnx(sub, torch.from_numpy(np.asarray(self.calibration[:1], dtype=np.float32)))
        return onnx_accuracy(quantise(data, self.calibration).data, np.asarray(self._x_host), np.asarray(self._y_host))

    def sources(self) -> dict[str, str]:
        if self.lm_costs is not None:
            calibrated = {} if self._calibrated is None else {
                "bpb": f"calibrated (a ridge model of stand-alone bits per byte, fitted on {len(self._calibrated.rows)} "
                       f"archs trained from scratch, of {', '.join(self._calibrated.features)})",
                "supernet_bpb": "measured (inherited weights, validation split, bits per byte)"}
            return {"bpb": "measured (inherited weights, validation split, bits per byte)",
                    "accuracy": "measured (next-byte accuracy, validation split)",
                    **{m: f"predicted ({model.mode} at {model.length} tokens)" for m, model in self.lm_models.items()},
                    "state_kb": f"computed (float32 decode state at {self.context} tokens)", "params": "computed",
                    **calibrated}
        tuned = f" + {self.finetune[0]} fine-tuning steps" if self.finetune else ""
        accuracy = f"measured (inherited weights{tuned}, validation split)"
        if self._calibrated is not None:
            accuracy = (f"calibrated (a ridge model of stand-alone accuracy, fitted on {len(self._calibrated.rows)} archs "
                        f"trained from scratch, of {', '.join(self._calibrated.features)})")
        out = {"accuracy": accuracy, "supernet_accuracy": "measured (inherited weights, validation split)",
               "int8_accuracy": "measured (the int8 QDQ graph in onnxruntime, validation split)"}
        out.update({latency_metric(t): "predicted" for t in (*self.targets, *self.other_targets)})
        out.update({m: "computed" for m in ARCH_METRICS})
        return out


def _lm_costs(info, targets: Sequence[str], roots: list[Path] | None) -> dict[str, dict[str, Any]]:
    """A language model's latency models per target: the prefill of a prompt of
    ``min(64, context)`` tokens and the decode step at the trained context (``nas latency build``)."""
    from nas.latency import lm

    context = info.input_shape[-1]
    out = {}
    for target in targets:
        for mode, length in (("prefill", min(lm.DEFAULT_PROMPT, context)), ("decode", context)):
            model, _ = lm.find(target, info.space, mode, length, roots)
            out[model.metric] = model.to_json()
    return out

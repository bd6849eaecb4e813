"""Accuracy calibrated from a few real trainings, as a new device's latency is transferred from a
few measurements (``nas latency import --transfer-from``).

A supernet's inherited-weight accuracy ranks subnets only roughly: it over-scores some kinds and
sizes and under-scores others (experiments/results/supernet_ranking*.md). ``calibrate`` trains
``k`` archs of the supernet's space from scratch (:mod:`nas.supernet.standalone`), spread over the
space (stratified over log parameter count and over which block kinds they use), and fits a ridge
model of their stand-alone test accuracy on what the supernet tells of each arch for free: its
accuracy and its loss (NLL) on the validation split with inherited weights, the log of its
parameter count and its depth, and (image and series spaces) three zero-cost proxies of the arch at
initialisation (:func:`nas.supernet.proxies.proxy_features`). Which of a few feature sets the model
uses is chosen by leave-one-out error on the ``k`` archs themselves (nothing is tuned on a benchmark),
and the check it reports is nested: each left-out arch is predicted by a model whose feature set
was chosen without it. A search then scores every subnet by that model
(``nas search --accuracy calibrated``), and stores the calibration with the experiment.

A language model (a text space) is calibrated on its objective instead: the stand-alone test
bits per byte (``target`` ``bpb``), from the same features less the proxies (they score images and
series); the stand-alone runs use the space's recipe batch of windows.

The calibration file is written after every trained arch, so an interrupted run resumes where it
stopped; it names the checkpoint it belongs to by its SHA-256, and a search refuses a calibration
of another supernet. Leave-one-out predictions of the ``k`` archs are kept as its check.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.atomic import atomic_write, check_writable
from nas.errors import NasError
from nas.space import NetArch, NetSpace

FEATURES = ("supernet_accuracy", "supernet_nll", "log_params", "depth")  # the set of files before proxies
# The feature sets a calibration chooses from by leave-one-out error (few: ten archs cannot pick among many).
CANDIDATES = (
    ("supernet_nll", "log_params"),
    FEATURES,
    ("log_params", "depth", "log_synflow", "naswot", "log_grad_norm"),
    (*FEATURES, "log_synflow", "naswot", "log_grad_norm"),
)
FORMAT = "nas-accuracy-calibration"
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


def kind_pattern(arch: NetArch) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which mixer kinds and which ffn kinds an arch uses."""
    layers = [layer for _, _, layer in arch.layers()]
    return tuple(sorted({la.mixer.kind for la in layers})), tuple(sorted({la.ffn.kind for la in layers}))


def stratified(pool: Sequence[NetArch], values: np.ndarray, n: int, window: int = 25) -> list[int]:
    """Indices of ``n`` archs of ``pool`` spread over ``values`` (evenly spaced points of their
    range) and over kind patterns: at each point, of the ``window`` archs nearest to it, the one
    whose kind pattern has been taken least so far."""
    values = np.asarray(values, dtype=float)
    chosen: list[int] = []
    used: Counter = Counter()
    for point in np.linspace(values.min(), values.max(), min(n, len(pool))):
        near = sorted((i for i in range(len(pool)) if i not in chosen), key=lambda i: abs(values[i] - point))
        best = min(near[:window], key=lambda i: (used[kind_pattern(pool[i])], abs(values[i] - point)))
        chosen.append(best)
        used[kind_pattern(pool[best])] += 1
    return chosen


def arch_features(net, arch: NetArch, x_val, y_val, params: float, fresh=None) -> dict[str, float]:
    """What the supernet tells of ``arch`` for free: inherited-weight accuracy and NLL on the
    validation examples, log10 of its parameter count, its depth (layers); with ``fresh`` (the
    space's supernet at initialisation, :func:`nas.supernet.proxies.fresh_supernet`) also the
    zero-cost proxies on the first 128 validation examples."""
    from nas.supernet.scoring import accuracy_and_nll

    acc, nll = accuracy_and_nll(net, arch, x_val, y_val)
    out = {"supernet_accuracy": acc, "supernet_nll": nll, "log_params": math.log10(max(params, 1.0)),
           "depth": float(sum(1 for _ in arch.layers()))}
    if fresh is not None:
        from nas.supernet.proxies import proxy_features

        x, y = (np.asarray(v.cpu() if hasattr(v, "cpu") else v)[:128] for v in (x_val, y_val))
        out |= proxy_features(fresh, arch, x, y)
    return out


def needs_proxies(features: Sequence[str]) -> bool:
    from nas.supernet.proxies import PROXY_FEATURES

    return any(f in PROXY_FEATURES for f in features)


@dataclass
class AccuracyCalibration:
    """The fitted model and the trainings it was fitted on (each row: arch, its stand-alone test
    accuracy, its features)."""

    supernet_sha256: str
    steps: int
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0
    alpha: float = 1.0
    check: dict[str, float] = field(default_factory=dict)  # nested leave-one-out: mae, kendall tau
    features: list[str] = field(default_factory=lambda: list(FEATURES))  # the chosen set
    target: str = "accuracy"  # what a row's stand-alone value is: accuracy, or bpb for a language model

    def predict(self, features: dict[str, float]) -> float:
        if not self.coef:
            raise NasError("this accuracy calibration has no fitted model yet: finish nas supernet calibrate")
        z = (np.array([features[f] for f in self.features]) - self.mean) / self.scale
        value = self.intercept + z @ np.array(self.coef)
        return float(np.clip(value, 0.0, 1.0) if self.target == "accuracy" else max(value, 0.0))

    def supernet_value(self, features: dict[str, float]) -> float:
        """The supernet's own estimate of the target (its accuracy, or its bits per byte)."""
        return features["supernet_accuracy"] if self.target == "accuracy" else features["supernet_nll"] / math.log(2)

    def fit(self, candidates: Sequence[tuple[str, ...]] = CANDIDATES, check: bool = True) -> AccuracyCalibration:
        """Choose the feature set (of ``candidates``, those every row has) by leave-one-out
        error, fit the ridge model (its strength by leave-one-out) on the rows, and (with
        ``check``) score it by nested leave-one-out predictions of each row."""
        if len(self.rows) < 4:
            raise NasError(f"an accuracy calibration needs at least 4 trained archs, has {len(self.rows)}")
        y = np.array([r[self.target] for r in self.rows])
        sets = [tuple(c) for c in candidates if all(f in r["features"] for r in self.rows for f in c)]
        if not sets:
            raise NasError("the calibration's rows lack the features of every candidate set")
        x = {c: np.array([[r["features"][f] for f in c] for r in self.rows]) for c in sets}
        chosen = _choose(sets, x, y, np.arange(len(y)))
        self.features = list(chosen)
        self.mean, self.scale, self.coef, self.intercept, self.alpha = _ridge(x[chosen], y)
        if not check:
            return self
        loo = []
        for i in range(len(y)):
            keep = np.flatnonzero(np.arange(len(y)) != i)
            inner = _choose(sets, x, y, keep)
            mean, scale, coef, intercept, _ = _ridge(x[inner][keep], y[keep])
            loo.append(intercept + ((x[inner][i] - mean) / scale) @ np.array(coef))
        from scipy.stats import kendalltau

        loo = np.array(loo)
        self.check = {"loo_mae": float(np.mean(np.abs(loo - y))),
                      "loo_kendall_tau": float(kendalltau(loo, y).statistic),
                      "supernet_kendall_tau": float(kendalltau([self.supernet_value(r["features"]) for r in self.rows],
                                                               y).statistic)}
        return self

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> AccuracyCalibration:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NasError(f"{source} is not an accuracy calibration (from nas supernet calibrate)")
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise NasError(f"{source} is an incomplete accuracy calibration: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> AccuracyCalibration:
        from nas.atomic import read_json

        path = Path(path)
        return cls.from_json(read_json(path, "accuracy calibration", "nas supernet calibrate"), path.name)

    def save(self, path: str | Path) -> None:
        atomic_write(Path(path), json.dumps(self.to_json(), indent=1).encode())


def _loo_error(x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared leave-one-out error of the ridge model on ``x, y``."""
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mean, scale, coef, intercept, _ = _ridge(x[keep], y[keep])
        errors.append((intercept + ((x[i] - mean) / scale) @ np.array(coef) - y[i]) ** 2)
    return float(np.mean(errors))


def _choose(sets: list[tuple[str, ...]], x: dict, y: np.ndarray, rows: np.ndarray) -> tuple[str, ...]:
    """The feature set of least leave-one-out error on ``rows`` (the first on ties)."""
    return min(sets, key=lambda c: _loo_error(x[c][rows], y[rows]))


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float], list[float], float, float]:
    from sklearn.linear_model import RidgeCV

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = RidgeCV(alphas=ALPHAS).fit((x - mean) / scale, y)
    return list(map(float, mean)), list(map(float, scale)), list(map(float, model.coef_)), float(model.intercept_), \
        float(model.alpha_)


def default_path(checkpoint_path: str | Path) -> Path:
    """Where a checkpoint's calibration lives unless told: beside it, ``NAME.calibration.json``."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".calibration.json")


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrate(checkpoint_path: str | Path, k: int = 10, steps: int = 1600, seed: int = 0,
              out: str | Path | None = None, device: str = "cpu", limit: int | None = None,
              progress: Callable[[str, int], Callable[[], None]] | None = None) -> tuple[AccuracyCalibration, Path]:
    """Train ``k`` archs of the checkpoint's space from scratch (``steps`` each, seeds ``seed``),
    fit the calibration and write it to ``out`` (default beside the checkpoint), resuming from
    what ``out`` already holds for this checkpoint. ``limit``: train on the first ``limit``
    training examples only (a quick calibration; what tests use)."""
    from nas.data import load_dataset
    from nas.supernet import checkpoint
    from nas.supernet.devices import resolve_device
    from nas.supernet.metrics import MetricsModel
    from nas.supernet.proxies import fresh_supernet
    from nas.supernet.scoring import accuracy_and_nll
    from nas.supernet.standalone import StandaloneRecipe, train_from_scratch

    if k < 4:
        raise NasError(f"--archs must be at least 4 (the model has 4 features and a check), got {k}")
    if steps < 1:
        raise NasError(f"--steps must be at least 1, got {steps}")
    if not Path(checkpoint_path).is_file():
        raise NasError(f"checkpoint {str(checkpoint_path)!r} does not exist")
    path = check_writable(Path(out) if out else default_path(checkpoint_path), "calibration output")
    digest = sha256_of(checkpoint_path)
    net, info = checkpoint.load(checkpoint_path)
    space: NetSpace = info.space
    data = load_dataset(info.dataset, space.task).limit(limit)
    text = space.task.kind == "text"
    recipe = StandaloneRecipe(steps=steps, batch_size=int(space.recipe.get("batch_size", 16)) if text else 128)
    calibration = AccuracyCalibration(digest, steps, seed, target="bpb" if text else "accuracy")
    if path.is_file():
        kept = AccuracyCalibration.load(path)
        if (kept.supernet_sha256, kept.steps, kept.seed) == (digest, steps, seed):
            calibration.rows = kept.rows
    metrics = MetricsModel(net, space, info.input_shape)
    fresh = None if text else fresh_supernet(space)
    pool = space.sample_unique(random.Random(seed), 1000)
    log_params = np.log([metrics.params(a) for a in pool])
    archs = [pool[i] for i in stratified(pool, log_params, k)]
    done = {r["arch"] for r in calibration.rows}
    todo = [a for a in archs if a.to_str() not in done]
    advance = progress(f"training {len(todo)} archs from scratch, {steps} steps each", len(todo)) if progress \
        else (lambda: None)
    where = resolve_device(device)
    for arch in todo:
        trained = train_from_scratch(space, arch, data.x_train, data.y_train, seed, recipe, where,
                                     num_classes=data.num_classes)
        acc, nll = accuracy_and_nll(trained, None, data.x_test, data.y_test)
        calibration.rows.append({
            "arch": arch.to_str(), calibration.target: nll / math.log(2) if text else acc,
            "features": arch_features(net, arch, data.x_val, data.y_val, metrics.params(arch), fresh)})
        calibration.save(path)  # every trained arch kept at once: a rerun resumes here
        advance()
    calibration.fit()
    calibration.save(path)
    return calibration, path

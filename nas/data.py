"""Datasets as in-memory arrays: built-in real data, and a user's own ``.npz`` or callable.

Built-in names:

- ``digits``: scikit-learn's 8x8 digits (1,797 images, in the wheel).
- ``fashion-mnist``: the IDX files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``; another folder with ``NAS_FASHION_MNIST_DIR``).
- ``gunpoint`` or ``ucr:NAME``: a UCR/UEA time-series problem shipped inside the ``aeon``
  wheel (``ucr:ArrowHead``, ``ucr:BasicMotions``, ...), read directly from its ``.ts`` files.
- ``gcide`` or ``text:PATH`` (text spaces only): a byte-level language-modelling corpus cut into
  windows of next-byte prediction (:mod:`nas.textdata`).

A user's data: a path to an ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``
(and optionally ``x_val``, ``y_val``), or ``module:function`` / ``file.py:function`` naming a
callable that returns a dict with those keys.

Every dataset has a train, a validation and a test split. The supernet trains on train,
search scores subnets on validation, and reports quote test. Inputs are standardised per
channel with the training split's statistics (kept with the dataset and the checkpoint).
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import os
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
BUILTIN = ("digits", "fashion-mnist", "gunpoint", "ucr:NAME")
TEXT_BUILTIN = ("gcide", "text:PATH")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    vocab: bytes = b""  # a text dataset's byte vocabulary (token i is byte vocab[i]); empty otherwise

    @property
    def is_text(self) -> bool:
        return bool(self.vocab)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def limit(self, n_train: int | None) -> Dataset:
        """The same dataset with at most ``n_train`` training examples (a stratified-enough prefix)."""
        if n_train is None or n_train >= len(self.x_train):
            return self
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train])

    def summary(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        if self.is_text:
            return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test "
                    f"windows of {shape} bytes ({self.x_train.size / 2**20:.1f} MiB of training text), "
                    f"vocabulary of {len(self.vocab)} byte values")
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test, "
                f"input {shape}, {self.num_classes} classes")


def load_dataset(spec: str, kind: Any = "image", seed: int = 0, context: int = 128) -> Dataset:
    """Load a dataset by built-in name, ``.npz`` path or ``module:function``, for a space's task:
    ``kind`` is the task (``space.task``: its kind, and for text its context as the input shape)
    or the task kind alone (``context`` then gives a text space's window length)."""
    if not isinstance(kind, str):
        kind, context = kind.kind, int(kind.input_shape[-1])
    if kind == "text":
        return _text(spec, context)
    if spec == "gcide" or spec.startswith("text:"):
        raise NasError(f"dataset {spec!r} is text: it trains a text space (hybrid-lm), not a {kind} space")
    if spec == "digits":
        return _digits(seed)
    if spec == "fashion-mnist":
        return _fashion_mnist(seed)
    if spec == "gunpoint":
        return _ucr("GunPoint", seed)
    if spec.startswith("ucr:"):
        return _ucr(spec[4:], seed)
    if spec.endswith(".npz"):
        return _from_arrays(spec, _read_npz(spec), kind, seed)
    if ":" in spec:
        return _from_arrays(spec, _call(spec), kind, seed)
    raise NasError(
        f"unknown dataset {spec!r} (built-in: {', '.join(BUILTIN)}; or a .npz file, or module:function)"
    )


# ----------------------------------------------------------------------------- splits


def _split(n: int, fraction: float, rng: np.random.Generator, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``range(n)`` into (kept, held out) with ``fraction`` held out per class."""
    held: list[np.ndarray] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        held.append(idx[: max(1, round(fraction * len(idx)))])
    out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(n), out)
    return rng.permutation(keep), out


def _standardise(name: str, x_train, y_train, x_val, y_val, x_test, y_test, num_classes: int) -> Dataset:
    axes = (0,) + tuple(range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = x_train.std(axis=axes, dtype=np.float64) + 1e-8
    shape = (1, -1) + (1,) * (x_train.ndim - 2)

    def norm(x: np.ndarray) -> np.ndarray:
        return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    return Dataset(
        name, norm(x_train), y_train.astype(np.int64), norm(x_val), y_val.astype(np.int64),
        norm(x_test), y_test.astype(np.int64), num_classes,
        tuple(float(m) for m in mean), tuple(float(s) for s in std),
    )


def _with_val(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              num_classes: int, seed: int, val_fraction: float) -> Dataset:
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split(len(x), val_fraction, rng, y)
    return _standardise(name, x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test, num_classes)


# ----------------------------------------------------------------------------- built-in


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    rest, test = _split(len(x), 0.2, rng, y)
    return _with_val("digits", x[rest], y[rest], x[test], y[test], 10, seed, 0.1)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist(seed: int) -> Dataset:
    folder = Path(os.environ.get("NAS_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise NasError(
            f"Fashion-MNIST not found in {folder} (missing {missing[0]}): install the Debian package "
            "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or set NAS_FASHION_MNIST_DIR"
        )
    try:
        xtr, ytr, xte, yte = (_read_idx(folder / n) for n in names)
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise NasError(f"Fashion-MNIST files in {folder} are unreadable: {exc}") from None
    xtr = (xtr.astype(np.float32) / 255.0)[:, None]
    xte = (xte.astype(np.float32) / 255.0)[:, None]
    return _with_val("fashion-mnist", xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), 10, seed, 1 / 12)


def ucr_dir() -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise NasError("UCR data needs the 'aeon' package (pip install aeon)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def ucr_problems() -> list[str]:
    root = ucr_dir()
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())


def _read_ts(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Read an equal-length ``.ts`` file: (N, dims, length) values, labels, declared class labels."""
    rows, labels, classes = [], [], []
    in_data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@classlabel"):
                classes = line.split()[2:]
            elif low.startswith("@equallength") and low.split()[1] == "false":
                raise NasError(f"{path.stem}: series of unequal length are not supported")
            elif low == "@data":
                in_data = True
            continue
        *dims, label = line.split(":")
        rows.append([[float(v) for v in d.split(",")] for d in dims])
        labels.append(label)
    return np.asarray(rows, dtype=np.float32), labels, classes


def _ucr(problem: str, seed: int) -> Dataset:
    root = ucr_dir()
    train_file = root / problem / f"{problem}_TRAIN.ts"
    if not train_file.is_file():
        raise NasError(f"unknown UCR problem {problem!r} (in aeon: {', '.join(ucr_problems())})")
    xtr, ltr, classes = _read_ts(train_file)
    xte, lte, _ = _read_ts(root / problem / f"{problem}_TEST.ts")
    classes = classes or sorted(set(ltr))
    index = {c: i for i, c in enumerate(classes)}
    ytr = np.array([index[v] for v in ltr], dtype=np.int64)
    yte = np.array([index[v] for v in lte], dtype=np.int64)
    return _with_val(f"ucr:{problem}" if problem != "GunPoint" else "gunpoint", xtr, ytr, xte, yte,
                     len(classes), seed, 0.2)


def _text(spec: str, context: int) -> Dataset:
    from nas import textdata

    if spec in ("digits", "fashion-mnist", "gunpoint") or spec.startswith("ucr:") or spec.endswith(".npz"):
        raise NasError(f"dataset {spec!r} is not text: a text space takes {', '.join(TEXT_BUILTIN)}")
    corpus = textdata.corpus(spec)
    splits = [textdata.windows(textdata.encode(part, corpus.vocab), context) for part in corpus.splits()]
    if min(len(x) for x, _ in splits) < 1:
        raise NasError(f"dataset {spec!r}: its validation or test split is shorter than one window of {context} bytes")
    (xtr, ytr), (xva, yva), (xte, yte) = splits
    order = np.random.default_rng(0).permutation(len(xtr))  # a --limit prefix samples the whole text
    xtr, ytr = xtr[order], ytr[order]
    return Dataset(corpus.name, xtr, ytr, xva, yva, xte, yte, len(corpus.vocab), vocab=corpus.vocab)


# ----------------------------------------------------------------------------- user data


def _read_npz(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise NasError(f"dataset file {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise NasError(f"dataset file {path!r} is not a readable .npz: {exc}") from None


def _call(spec: str) -> dict[str, Any]:
    target, _, func_name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            if not Path(target).is_file():
                raise NasError(f"dataset module file {target!r} does not exist")
            mod_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        func = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise NasError(f"cannot load dataset callable {spec!r}: {exc}") from None
    result = func()
    if isinstance(result, (tuple, list)) and len(result) in (4, 6):
        keys = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
        result = dict(zip(keys, result, strict=False))
    if not isinstance(result, dict):
        raise NasError(f"dataset callable {spec!r} must return a dict with x_train, y_train, x_test, y_test")
    return result


def _from_arrays(name: str, arrays: dict[str, Any], kind: str, seed: int) -> Dataset:
    required = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise NasError(f"dataset {name!r} lacks {', '.join(missing)} (needs {', '.join(required)})")
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key not in required + ("x_val", "y_val"):
            continue
        arr = np.asarray(value)
        if key.startswith("x"):
            if not np.issubdtype(arr.dtype, np.number) or arr.ndim < 2:
                raise NasError(f"dataset {name!r}: {key} must be a numeric array of shape (N, ...), got {arr.dtype} {arr.shape}")
            if arr.ndim == 2:
                arr = arr[:, None]  # (N, L) -> one channel
            elif arr.ndim == 3 and kind == "image":
                arr = arr[:, None]  # (N, H, W) -> one channel
            if not np.isfinite(arr).all():
                raise NasError(f"dataset {name!r}: {key} holds NaN or infinite values")
            arr = arr.astype(np.float32)
        else:
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
                raise NasError(f"dataset {name!r}: {key} must be a 1-D array of non-negative integer labels")
            arr = arr.astype(np.int64)
        out[key] = arr
    for split in ("train", "test", "val"):
        if f"x_{split}" in out and len(out[f"x_{split}"]) != len(out[f"y_{split}"]):
            raise NasError(f"dataset {name!r}: x_{split} and y_{split} differ in length")
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise NasError(f"dataset {name!r}: x_train and x_test differ in shape per example")
    want = 4 if kind == "image" else 3
    if out["x_train"].ndim != want:
        form = "(N, C, H, W) or (N, H, W)" if kind == "image" else "(N, C, L) or (N, L)"
        raise NasError(f"dataset {name!r}: x_train has shape {out['x_train'].shape}, expected {form}")
    num_classes = int(max(out["y_train"].max(), out["y_test"].max())) + 1
    if num_classes < 2:
        raise NasError(f"dataset {name!r}: needs at least two classes")
    label = Path(name).name
    if "x_val" in out:
        return _standardise(label, out["x_train"], out["y_train"], out["x_val"], out["y_val"],
                            out["x_test"], out["y_test"], num_classes)
    return _with_val(label, out["x_train"], out["y_train"], out["x_test"], out["y_test"], num_classes, seed, 0.1)

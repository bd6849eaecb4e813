"""Export a subnet of a trained supernet to ONNX, verified against onnxruntime on real inputs.

>>> result = export_subnet("runs/hv.ckpt", "largest", "model.onnx")   # doctest: +SKIP
>>> result.max_abs_error < 1e-4                                        # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.atomic import atomic_write
from nas.errors import NasError
from nas.space import NetArch, NetSpace

MAX_ABS_ERROR = 1e-4


@dataclass(frozen=True)
class ExportResult:
    path: Path
    arch: NetArch
    space: str
    space_spec: NetSpace
    max_abs_error: float
    check_inputs: str  # where the parity inputs came from
    params: int
    seconds: float


def resolve_arch(space: NetSpace, text: str) -> NetArch:
    """An arch from a canonical string, JSON text, a ``.json`` file, or ``largest`` / ``smallest``."""
    text = text.strip()
    if text == "largest":
        return space.largest()
    if text == "smallest":
        return space.smallest()
    if text.endswith(".json") and "{" not in text:
        path = Path(text)
        if not path.is_file():
            raise NasError(f"arch file {text!r} does not exist")
        text = path.read_text()
    return space.parse(text)  # type: ignore[return-value]


def check_inputs(dataset: str, kind: str, input_shape: tuple[int, ...], n: int) -> tuple[np.ndarray, str]:
    """Real test inputs for parity checks, or standard-normal ones when the dataset is not here."""
    from nas.data import load_dataset

    try:
        data = load_dataset(dataset, kind)
        if tuple(data.input_shape) == tuple(input_shape):
            return data.x_test[:n], f"{n} {dataset} test inputs"
    except NasError:
        pass
    x = np.random.default_rng(0).standard_normal((n, *input_shape)).astype(np.float32)
    return x, f"{n} random inputs ({dataset} is not available here)"


def export_subnet(
    checkpoint_path: str | Path,
    arch_text: str,
    out: str | Path,
    max_error: float = MAX_ABS_ERROR,
    n_check: int = 64,
) -> ExportResult:
    """Extract ``arch`` from the checkpoint, write ONNX to ``out``, and verify it in onnxruntime.

    Raises NasError (and writes nothing) when the error against PyTorch exceeds ``max_error``.
    """
    from nas.supernet import checkpoint
    from nas.supernet.to_onnx import OPSET, parity, to_onnx

    started = time.time()
    out = Path(out)
    if out.is_dir():
        raise NasError(f"output {str(out)!r} is a folder; give a file name such as model.onnx")
    if out.suffix != ".onnx":
        raise NasError(f"output {str(out)!r} must end in .onnx")
    if not out.parent.exists():
        raise NasError(f"output folder {str(out.parent)!r} does not exist")
    net, info = checkpoint.load(checkpoint_path)
    arch = resolve_arch(info.space, arch_text)
    subnet = net.extract(arch, info.input_shape).eval()
    x, source = check_inputs(info.dataset, info.space.task.kind, info.input_shape, n_check)
    metadata = {
        "nas.arch": arch.to_str(),
        "nas.space": info.space.name,
        "nas.dataset": info.dataset,
        "nas.input_mean": json.dumps(list(info.mean)),
        "nas.input_std": json.dumps(list(info.std)),
        "nas.opset": str(OPSET),
    }
    data = to_onnx(subnet, torch.from_numpy(x[:1]), metadata)
    error, ties = parity(subnet, data, x)
    if ties:  # MoE routing a rounding difference can flip: both runtimes are right on these
        source += f" ({ties} on an MoE routing tie left out)"
    if not error <= max_error:  # also catches NaN
        raise NasError(f"onnxruntime output differs from PyTorch by {error:.2e} (limit {max_error:.0e}); nothing written")
    atomic_write(out, data)
    return ExportResult(out, arch, info.space.name, info.space, error, source, subnet.num_params(), time.time() - started)


def record_export(store, result: ExportResult, experiment: str | None = None) -> None:
    """Keep an export in the store (which arch, where, its parity error)."""
    from nas.latency.profile import space_hash
    from nas.supernet.to_onnx import OPSET

    space = result.space_spec
    space_id = store.ensure_space(space.name, space_hash(space), space.kind, space.source_text)
    store.add_export(space_id, result.arch.to_str(), result.arch.key, result.arch.block_mix(),
                     str(result.path.resolve()), result.max_abs_error, OPSET, experiment)

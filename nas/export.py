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

from nas.atomic import atomic_write, check_writable
from nas.errors import NasError, first_line
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
    int8: dict | None = None  # with --int8: accuracies, memory beside the MCU model, ops kept float
    step_path: Path | None = None  # a language model's decode-step graph (``path`` is its prefill)


def resolve_arch(space: NetSpace, text: str) -> NetArch:
    """An arch from a canonical string, JSON text, a ``.json`` file, or ``largest`` / ``smallest``."""
    return space.resolve(text)  # type: ignore[return-value]


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
    int8: bool = False,
    n_test: int = 2000,
) -> ExportResult:
    """Extract ``arch`` from the checkpoint, write ONNX to ``out``, and verify it in onnxruntime.

    Raises NasError (and writes nothing) when the error against PyTorch exceeds ``max_error``.
    With ``int8``, the verified float graph is quantised (:mod:`nas.supernet.quantize`,
    calibrated on the training split) and the int8 graph is what is written; the result then
    holds both graphs' test accuracy on ``n_test`` examples and the int8 graph's peak SRAM and
    flash beside the MCU cost model's.
    """
    from nas.supernet import checkpoint
    from nas.supernet.to_onnx import parity, to_onnx

    started = time.time()
    out = Path(out)
    if out.is_dir():
        raise NasError(f"output {str(out)!r} is a folder; give a file name such as model.onnx")
    if out.suffix != ".onnx":
        raise NasError(f"output {str(out)!r} must end in .onnx")
    check_writable(out)
    net, info = checkpoint.load(checkpoint_path)
    arch = resolve_arch(info.space, arch_text)
    subnet = net.extract(arch, info.input_shape).eval()
    if info.vocab:
        if int8:
            raise NasError("--int8 is for the image and sequence spaces' MCU deployment; a language model exports in float")
        return _export_lm(subnet, info, arch, out, max_error, started)
    x, source = check_inputs(info.dataset, info.space.task.kind, info.input_shape, n_check)
    data = to_onnx(subnet, torch.from_numpy(x[:1]), _metadata(info, arch))
    error, ties = parity(subnet, data, x)
    if ties:  # MoE routing a rounding difference can flip: both runtimes are right on these
        source += f" ({ties} on an MoE routing tie left out)"
    if not error <= max_error:  # also catches NaN
        raise NasError(f"onnxruntime output differs from PyTorch by {error:.2e} (limit {max_error:.0e}); nothing written")
    report = None
    if int8:
        data, report = _int8(data, info, arch, n_test, _training_data(info, "--int8"))
    atomic_write(out, data)
    return ExportResult(out, arch, info.space.name, info.space, error, source, subnet.num_params(), time.time() - started,
                        report)


GENERATE_CHECK = 64  # greedy tokens the exported pair must generate as PyTorch does


def lm_paths(out: Path) -> tuple[Path, Path]:
    """Where a language model's pair goes for ``-o out.onnx``: ``out.prefill.onnx``, ``out.step.onnx``."""
    return out.with_suffix(".prefill.onnx"), out.with_suffix(".step.onnx")


def _export_lm(subnet, info, arch: NetArch, out: Path, max_error: float, started: float, prompts: int = 3,
               ) -> ExportResult:
    """A language model's prefill and decode-step graphs (:mod:`nas.supernet.lm_onnx`), written
    only when, from ``prompts`` test-text prompts, onnxruntime's greedy generation of 64 bytes
    equals PyTorch's token for token and the prefill's logits agree within ``max_error``."""
    from nas.data import load_dataset
    from nas.supernet.generate import generate
    from nas.supernet.lm_onnx import export_pair, greedy_onnx
    from nas.supernet.to_onnx import ort_session
    from nas.textdata import decode

    context = info.input_shape[-1]
    n_prompt = max(1, min(32, context - GENERATE_CHECK))
    n_new = min(GENERATE_CHECK, context - n_prompt)
    try:
        x = load_dataset(info.dataset, info.space.task).x_test
        ids, source = [x[i, :n_prompt] for i in range(min(prompts, len(x)))], f"{info.dataset} test text"
    except NasError:
        ids = [np.arange(n_prompt) % len(info.vocab)]
        source = f"a prompt of the vocabulary's bytes ({info.dataset} is not available here)"
    prefill, step = export_pair(subnet, info.vocab, context, _metadata(info, arch))
    sess = ort_session(prefill)
    error = 0.0
    for prompt in ids:
        with torch.no_grad():
            want = subnet(torch.as_tensor(prompt, dtype=torch.long)[None]).numpy()
        got = sess.run(None, {"tokens": prompt.astype(np.int64)[None]})[0]
        error = max(error, float(np.abs(got - want).max()))
        torch_tokens = generate(subnet, decode(prompt, info.vocab), n_new, info.vocab, context).tokens
        ort_tokens = greedy_onnx(prefill, step, prompt, n_new)
        if torch_tokens != ort_tokens:
            first = next(i for i, (a, b) in enumerate(zip(torch_tokens, ort_tokens, strict=True)) if a != b)
            raise NasError(f"the exported pair's greedy generation leaves PyTorch's at byte {first + 1} of {n_new}; "
                           "nothing written")
    if not error <= max_error:
        raise NasError(f"the prefill graph's logits differ from PyTorch by {error:.2e} (limit {max_error:.0e}); "
                       "nothing written")
    prefill_path, step_path = lm_paths(out)
    check_writable(step_path)
    atomic_write(prefill_path, prefill)
    atomic_write(step_path, step)
    check = (f"{len(ids)} prompts of {n_prompt} bytes of {source}: {n_new} greedy bytes identical in onnxruntime "
             f"(prefill + {n_new - 1} decode steps) and PyTorch")
    return ExportResult(prefill_path, arch, info.space.name, info.space, error, check, subnet.num_params(),
                        time.time() - started, None, step_path)


def finetune_qat_export(checkpoint_path: str | Path, arch_text: str, out: str | Path, steps: int = 300,
                        n_test: int = 2000) -> dict:
    """Quantisation-aware fine-tuning of a subnet (:func:`nas.supernet.quantize.finetune_qat`), then
    the int8 export of the result to ``out``; the report has the int8 accuracy without and with
    the fine-tuning beside the float accuracy."""
    from nas.supernet import checkpoint
    from nas.supernet.quantize import finetune_qat
    from nas.supernet.to_onnx import to_onnx

    out = Path(out)
    if out.suffix != ".onnx" or not out.parent.exists():
        raise NasError(f"output {str(out)!r} must be an .onnx file in an existing folder")
    check_writable(out)
    if steps < 1:
        raise NasError(f"--steps must be at least 1, got {steps}")
    net, info = checkpoint.load(checkpoint_path)
    arch = resolve_arch(info.space, arch_text)
    dataset = _training_data(info, "--qat")
    subnet = net.extract(arch, info.input_shape).eval()
    example = torch.from_numpy(dataset.x_test[:1])
    _, before = _int8(to_onnx(subnet, example), info, arch, n_test, dataset)
    finetune_qat(subnet, dataset.x_train, dataset.y_train, steps=steps)
    data, after = _int8(to_onnx(subnet, example, _metadata(info, arch)), info, arch, n_test, dataset)
    atomic_write(out, data)
    return {"path": str(out), "arch": arch.to_str(), "float_accuracy": before["float_accuracy"],
            "int8_accuracy_ptq": before["int8_accuracy"], "int8_accuracy_qat": after["int8_accuracy"],
            "float_accuracy_after_qat": after["float_accuracy"], "steps": steps, "test_examples": after["test_examples"]}


def _metadata(info, arch: NetArch) -> dict[str, str]:
    from nas.supernet.to_onnx import OPSET

    return {"nas.arch": arch.to_str(), "nas.space": info.space.name, "nas.dataset": info.dataset,
            "nas.input_mean": json.dumps(list(info.mean)), "nas.input_std": json.dumps(list(info.std)),
            "nas.opset": str(OPSET)}


def _training_data(info, option: str):
    """The checkpoint's dataset, for calibration and fine-tuning (one line when it is not here)."""
    from nas.data import load_dataset

    try:
        dataset = load_dataset(info.dataset, info.space.task)
    except NasError as exc:
        raise NasError(f"{option} needs calibration data from the checkpoint's dataset: {exc}") from None
    if tuple(dataset.input_shape) != tuple(info.input_shape) or not len(dataset.x_train):
        raise NasError(f"{option} needs calibration data: dataset {info.dataset} has none of the checkpoint's shape")
    return dataset


def _int8(data: bytes, info, arch: NetArch, n_test: int, dataset) -> tuple[bytes, dict]:
    """The int8 graph of the verified float ``data``, and what it costs in accuracy and memory
    (calibrated on ``dataset``'s training split, scored on its test split)."""
    import onnx

    from nas.graph import analyze
    from nas.supernet.quantize import calibration_sample, onnx_accuracy, quantise

    calibration = calibration_sample(dataset.x_train)
    model = quantise(data, calibration)
    int8_model = onnx.load_from_string(model.data)
    try:
        onnx.checker.check_model(int8_model)
    except onnx.checker.ValidationError as exc:
        raise NasError(f"the int8 graph fails onnx.checker: {first_line(exc)}") from None
    for key, value in (("nas.precision", "int8 (QDQ: weights per channel, activations per tensor)"),
                       ("nas.float_ops", json.dumps(model.kept_float))):
        meta = int8_model.metadata_props.add()  # the float graph's metadata came through quantisation
        meta.key, meta.value = key, value
    int8_data = int8_model.SerializeToString()
    x, y = dataset.x_test[:n_test], dataset.y_test[:n_test]
    stats = analyze(int8_data)
    report = {"float_accuracy": onnx_accuracy(data, x, y), "int8_accuracy": onnx_accuracy(int8_data, x, y),
              "test_examples": int(len(x)), "kept_float": model.kept_float, "quantised": model.quantised,
              "graph_sram_kb": stats.peak_sram_kb, "graph_flash_kb": stats.flash_kb, **_mcu_prediction(info, arch, data)}
    return int8_data, report


def _mcu_prediction(info, arch: NetArch, data: bytes) -> dict:
    """What the MCU model predicts for the subnet: its mcu-m7 profile's composition of units when
    one exists for the space and input, else the cost model on the whole graph."""
    from nas.graph import analyze
    from nas.latency.predictor import predictor_for
    from nas.latency.profile import load_profile
    from nas.latency.targets import get_target

    try:
        profile, _ = load_profile("mcu-m7", info.space, input_shape=tuple(info.input_shape))
        got = predictor_for(profile, info.space).predict_metrics([arch])
        return {"mcu_sram_kb": float(got["peak_sram_kb"][0]), "mcu_flash_kb": float(got["flash_kb"][0]),
                "mcu_source": "the mcu-m7 profile's units"}
    except NasError:
        est = get_target("mcu-m7").cost_graph(analyze(data))
        return {"mcu_sram_kb": est.peak_sram_kb, "mcu_flash_kb": est.flash_kb,
                "mcu_source": "the cost model on the float graph (no mcu-m7 profile at this input)"}


def record_export(store, result: ExportResult, experiment: str | None = None) -> None:
    """Keep an export in the store (which arch, where, its parity error)."""
    from nas.space import space_hash
    from nas.supernet.to_onnx import OPSET

    space = result.space_spec
    space_id = store.ensure_space(space.name, space_hash(space), space.kind, space.source_text)
    store.add_export(space_id, result.arch.to_str(), result.arch.key, result.arch.block_mix(),
                     str(result.path.resolve()), result.max_abs_error, OPSET, experiment)

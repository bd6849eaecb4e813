"""What a language model costs where it is deployed: prefill latency for a prompt of P tokens,
per-token decode latency at a context of C tokens, and the state a decode keeps.

Latency is measured the way the image spaces' is (nn-Meter's kernel-level idea): each unit is
its own ONNX graph timed in onnxruntime on this CPU (one thread, median of repeats, the
machine's fast phases), a whole subnet's latency is the sum of its units corrected by a
linear model of per-graph overhead fitted on a few whole subnets, and held-out whole subnets
measured end to end validate it. The units of a decode are step graphs with state in and out:

- per layer, the mixer's step (one new token, its state at C - 1 tokens in, the state after it
  out: the KV cache for attention, the last kernel - 1 inputs for a conv, the conv inputs and
  scan state for an SSM) with its residual add, and the ffn on one token with its add;
- per width, the ends: the byte embedding, the final norm and the tied output head.

The prefill's units are the same blocks on P tokens, producing the state a decode starts from.
The whole graphs are exactly :mod:`nas.supernet.lm_onnx`'s prefill and step, which the export
writes and checks.

The state (:func:`state_bytes`, float32) grows with C for attention (2 x heads x head_dim x C
per layer) and not for conv (width x (kernel - 1)) or SSM (inner x (ssm_conv - 1) + heads x
head_dim x state) layers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import NasError
from nas.space import NetArch, NetSpace

DEFAULT_PROMPT = 64
MODES = ("prefill", "decode")


def check_lengths(space: NetSpace, prompt: int, context: int) -> None:
    trained = space.task.input_shape[-1]
    if prompt < 1 or context < 2:
        raise NasError(f"--prompt must be at least 1 and --context at least 2 tokens, got {prompt} and {context}")
    for name, value in (("--prompt", prompt), ("--context", context)):
        if value > trained:
            raise NasError(f"{name} {value} is longer than the context of {trained} tokens {space.name} is trained on")


def state_bytes(space: NetSpace, arch: NetArch, context: int) -> int:
    """The float32 bytes a decode keeps after ``context`` tokens (see the module doc)."""
    s, total = space.settings, 0
    width = arch.stages[0].width
    for layer in arch.stages[0].layers:
        m = layer.mixer
        if m.kind == "attention":
            total += 2 * m.heads * s.attention_head_dim * context
        elif m.kind == "conv":
            total += width * (m.kernel - 1)
        elif m.kind == "ssm":
            inner = m.expand * width
            total += inner * (s.ssm_conv - 1) + (inner // s.ssm_head_dim) * s.ssm_head_dim * m.state
    return 4 * total


# ----------------------------------------------------------------------------- unit graphs


class _MixerUnit(nn.Module):
    """``x + mixer(x)`` on new tokens after a state, returning the state after them."""

    def __init__(self, block: nn.Module, width: int, op, stateful: bool) -> None:
        super().__init__()
        self.block, self.width, self.op, self.stateful = block, width, op, stateful

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.block.forward_cached(x, self.width, self.op, tuple(state) if self.stateful else None)
        return (x + y, *new)


class _FfnUnit(nn.Module):
    def __init__(self, block: nn.Module, width: int, op) -> None:
        super().__init__()
        self.block, self.width, self.op = block, width, op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x, (x.shape[1],), self.width, self.op, None)


class _Ends(nn.Module):
    """The byte embedding, then the final norm and the tied head (the two ends of every subnet)."""

    def __init__(self, stem: nn.Module, head: nn.Module, width: int) -> None:
        super().__init__()
        self.stem, self.head, self.width = stem, head, width

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(tokens, self.width), self.width)


@dataclass(frozen=True)
class Graph:
    """An ONNX graph and the inputs it is timed on."""

    data: bytes
    feeds: dict[str, np.ndarray]


def _graph(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str]) -> Graph:
    from nas.supernet.to_onnx import export_graph

    return Graph(export_graph(module, args, names), {n: a.numpy() for n, a in zip(names, args, strict=True)})


def unit_keys(arch: NetArch) -> list[str]:
    width = arch.stages[0].width
    keys = [f"{width}/ends"]
    for layer in arch.stages[0].layers:
        keys += [f"{width}/{layer.mixer.token}", f"{width}/{layer.ffn.token}"]
    return keys


def all_unit_keys(space: NetSpace) -> list[str]:
    spec = space.stages[0]
    return [f"{w}/{t}" for w in spec.widths for t in ("ends", *(m.token for m in spec.mixers),
                                                      *(f.token for f in spec.ffns))]


def unit_graph(net: nn.Module, space: NetSpace, key: str, mode: str, length: int) -> Graph:
    """The graph of unit ``key`` (``WIDTH/TOKEN`` or ``WIDTH/ends``): on ``length`` tokens for a
    prefill, on one token after a state of ``length - 1`` tokens for a decode."""
    from nas.space import parse_ffn_or_mixer

    width_text, token = key.split("/")
    width = int(width_text)
    gen = torch.Generator().manual_seed(0)
    new = 1 if mode == "decode" else length
    if token == "ends":
        stem = net.stem.extract(width)
        tokens = torch.randint(0, stem.weight.shape[0], (1, new), generator=gen)
        return _graph(_Ends(stem, net.head.extract(width, stem), width), (tokens,), ["tokens"])
    op = parse_ffn_or_mixer(token)
    layer = net.stages[0][0]
    x = torch.randn(1, new, width, generator=gen)
    if op.role == "ffn":
        return _graph(_FfnUnit(layer.ffns[op.kind].extract(width, op), width, op), (x,), ["x"])
    block = layer.mixers[op.kind].extract(width, op).eval()
    if mode == "prefill":
        return _graph(_MixerUnit(block, width, op, False), (x,), ["x"])
    with torch.no_grad():
        _, state = block.forward_cached(torch.randn(1, length - 1, width, generator=gen), width, op, None)
    names = ["x", *(f"state{i}" for i in range(len(state)))]
    return _graph(_MixerUnit(block, width, op, True), (x, *state), names)


def whole_graph(net: nn.Module, arch: NetArch, mode: str, length: int) -> Graph:
    """A subnet's prefill graph on ``length`` tokens, or its decode step after ``length - 1``."""
    from nas.supernet.lm_onnx import export_pair, state_names

    sub = net.extract(arch, (length,)).eval()
    vocab = sub.net.stem.weight.shape[0]
    prefill, step = export_pair(sub, bytes(range(vocab)), length)
    gen = torch.Generator().manual_seed(0)
    if mode == "prefill":
        return Graph(prefill, {"tokens": torch.randint(0, vocab, (1, length), generator=gen).numpy()})
    with torch.no_grad():
        _, states = sub.decode(torch.randint(0, vocab, (1, length - 1), generator=gen))
    flat = [t.numpy() for state in states for t in state]
    return Graph(step, {"token": np.array([[1]], dtype=np.int64), **dict(zip(state_names(arch), flat, strict=True))})


def time_graph(graph: Graph, meter) -> float:
    """The median milliseconds of one run of ``graph`` in onnxruntime (the meter's threads, repeats, guard)."""
    from nas.supernet.to_onnx import ort_session

    sess = ort_session(graph.data, threads=meter.config.threads)
    sess.run(None, graph.feeds)
    return meter.time(lambda: sess.run(None, graph.feeds)).median_ms


# ----------------------------------------------------------------------------- the model


@dataclass
class LmLatency:
    """Per-unit medians and the overhead fitted on whole subnets, for one mode at one length."""

    target: str
    space: str
    mode: str  # prefill or decode
    length: int  # P tokens of a prefill, or the context C a decode step runs at
    units: dict[str, float]
    overhead: tuple[float, float, float] = (1.0, 0.0, 0.0)  # a * sum + b * layers + c
    fit: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return f"{self.target}_{self.mode}_ms"

    def unit_sum(self, arch: NetArch) -> float:
        missing = [k for k in unit_keys(arch) if k not in self.units]
        if missing:
            raise NasError(f"the {self.metric} model has no unit {missing[0]!r}: rebuild it for this space")
        return float(sum(self.units[k] for k in unit_keys(arch)))

    def predict(self, archs: Sequence[NetArch]) -> np.ndarray:
        a, b, c = self.overhead
        return np.array([a * self.unit_sum(x) + b * x.stages[0].depth + c for x in archs])

    def fit_overhead(self, archs: Sequence[NetArch], measured: Sequence[float]) -> None:
        """``a``, ``b``, ``c`` by least squares in relative error (every subnet weighs alike)."""
        y = np.asarray(measured, dtype=float)
        design = np.array([[self.unit_sum(x), x.stages[0].depth, 1.0] for x in archs]) / y[:, None]
        coef, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
        self.overhead = tuple(float(v) for v in coef)
        self.fit = [{"arch": x.to_str(), "measured_ms": float(m)} for x, m in zip(archs, y, strict=True)]

    def to_json(self) -> dict[str, Any]:
        return {"format": "nas-lm-latency", "target": self.target, "space": self.space, "mode": self.mode,
                "length": self.length, "units": self.units, "overhead": list(self.overhead), "fit": self.fit,
                "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> LmLatency:
        try:
            if data.get("format") != "nas-lm-latency":
                raise KeyError("format")
            return cls(str(data["target"]), str(data["space"]), str(data["mode"]), int(data["length"]),
                       {str(k): float(v) for k, v in data["units"].items()}, tuple(float(v) for v in data["overhead"]),
                       list(data.get("fit", [])), dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NasError(f"{where} is not a language-model latency model ({exc})") from None


def build(space: NetSpace, net: nn.Module, meter, mode: str, length: int, target: str = "cpu", n_fit: int = 12,
          seed: int = 0, progress: Callable[[str], None] | None = None) -> LmLatency:
    """Measure every unit of ``space`` for ``mode`` at ``length`` and fit the overhead on ``n_fit``
    whole subnets (the extremes and random ones)."""
    from nas.latency.measure import host_description

    if mode not in MODES:
        raise NasError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    started = time.time()
    units = {}
    for key in all_unit_keys(space):
        units[key] = time_graph(unit_graph(net, space, key, mode, length), meter)
        if progress:
            progress(f"{mode} unit {key}: {units[key]:.4f} ms")
    model = LmLatency(target, space.name, mode, length, units)
    archs = [space.largest(), space.smallest(),
             *space.sample_unique(random.Random(seed), n_fit - 2, exclude={space.largest(), space.smallest()})]
    measured = []
    for a in archs:
        measured.append(time_graph(whole_graph(net, a, mode, length), meter))
        if progress:
            progress(f"{mode} subnet {a.to_str()}: {measured[-1]:.4f} ms")
    model.fit_overhead(archs, measured)
    model.meta = {**host_description(meter.config.threads), "built": time.strftime("%Y-%m-%d %H:%M"),
                  "seconds": round(time.time() - started, 1), "repeats": meter.config.repeats}
    return model


def validate(space: NetSpace, net: nn.Module, model: LmLatency, meter, n: int = 100, seed: int = 1,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure ``n`` held-out random subnets end to end (none of the fit's) and compare with the
    model: the share within 10% of measured, the median and 90th-percentile relative error, on
    measurements brought back to the build's speed (``speed_vs_build``) and uncorrected."""
    fitted = {row["arch"] for row in model.fit}
    archs = [a for a in space.sample_unique(random.Random(seed), n + len(fitted)) if a.to_str() not in fitted][:n]
    # The machine's speed now against the build's (a VM drifts over minutes): ten of the build's own
    # subnets measured again, the median ratio; the figures are given on measurements brought back to
    # the build's speed and uncorrected beside them (as nas.latency.validate does for the other spaces).
    again = model.fit[:: max(1, len(model.fit) // 10)][:10]
    speed = float(np.median([time_graph(whole_graph(net, space.parse(r["arch"]), model.mode, model.length), meter)
                             / r["measured_ms"] for r in again])) if again else 1.0
    rows = []
    for i, arch in enumerate(archs):
        measured = time_graph(whole_graph(net, arch, model.mode, model.length), meter)
        predicted = float(model.predict([arch])[0])
        rows.append({"arch": arch.to_str(), "measured_ms": measured, "predicted_ms": predicted,
                     "state_kb": state_bytes(space, arch, model.length) / 1024})
        if progress:
            progress(f"validated {i + 1}/{len(archs)}")
    raw = np.array([abs(r["predicted_ms"] / r["measured_ms"] - 1) for r in rows])
    err = np.array([abs(r["predicted_ms"] * speed / r["measured_ms"] - 1) for r in rows])
    from scipy.stats import kendalltau

    tau = kendalltau([r["measured_ms"] for r in rows], [r["predicted_ms"] for r in rows]).statistic
    return {"rows": rows, "n": len(rows), "within_10pct": float((err <= 0.10).mean()),
            "within_5pct": float((err <= 0.05).mean()), "median_rel_error": float(np.median(err)),
            "p90_rel_error": float(np.percentile(err, 90)), "kendall_tau": float(tau),
            "speed_vs_build": speed, "within_10pct_uncorrected": float((raw <= 0.10).mean()),
            "median_rel_error_uncorrected": float(np.median(raw)),
            "measured_ms_range": [float(min(r["measured_ms"] for r in rows)), float(max(r["measured_ms"] for r in rows))]}


def model_path(root: Path, target: str, space: NetSpace, mode: str, length: int) -> Path:
    return root / target / f"{space.name}.{mode}{length}.lm.json"


def save(model: LmLatency, path: Path) -> None:
    from nas.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(model.to_json(), indent=1))


def find(target: str, space: NetSpace, mode: str, length: int, roots: list[Path] | None = None,
         ) -> tuple[LmLatency, Path]:
    """The model of ``target``'s ``mode`` at ``length`` tokens, from the profile folders
    (:func:`nas.latency.profile.profiles_dirs`), with one line naming the build command when none is there."""
    from nas.latency.profile import profiles_dirs

    for root in roots or profiles_dirs():
        path = model_path(root, target, space, mode, length)
        if path.is_file():
            model = load(path)
            if model.space != space.name or model.mode != mode:
                raise NasError(f"{path} models {model.space} {model.mode}, not {space.name} {mode}")
            return model, path
    option = "--prompt" if mode == "prefill" else "--context"
    raise NasError(f"no {target} {mode} latency model of {space.name} at {length} tokens: run nas latency build "
                   f"{space.ref or space.name} --target {target} {option} {length}")


def load(path: Path) -> LmLatency:
    from nas.atomic import read_json

    return LmLatency.from_json(read_json(path, "language-model latency model", "nas latency build"), str(path))

"""A language-model subnet as two ONNX graphs that generate: a prefill and a decode step.

- prefill: ``tokens`` (batch, prompt) int64 -> ``logits`` (batch, prompt, vocabulary) and every
  layer's decode state after the prompt;
- step: ``token`` (batch, 1) and the states -> ``logits`` (batch, 1, vocabulary) and the states
  after it.

The states, per layer in order, by mixer kind: attention ``k{j}``, ``v{j}`` (batch, heads, seen,
head_dim), the KV cache, one longer after every step; conv ``conv{j}`` (batch, width, kernel - 1);
SSM ``conv{j}`` (batch, inner, ssm_conv - 1) and ``ssm{j}`` (batch, heads, head_dim, state).
Step outputs carry the prefix ``new_``. The vocabulary (its byte values) and the context are in
the graphs' metadata (``nas.vocab``, ``nas.context``), so the pair generates text on its own.

:func:`greedy_onnx` runs the pair in onnxruntime; the export checks it against
:func:`nas.supernet.generate.generate` (the PyTorch subnet on the whole window every byte).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import torch
from torch import nn

from nas.errors import NasError
from nas.space import NetArch
from nas.supernet.to_onnx import export_graph, ort_session


def state_names(arch: NetArch) -> list[str]:
    """The names of a decode's state tensors, layer by layer (see the module doc)."""
    names: list[str] = []
    for j, layer in enumerate(arch.stages[0].layers):
        kind = layer.mixer.kind
        names += {"attention": [f"k{j}", f"v{j}"], "conv": [f"conv{j}"], "ssm": [f"conv{j}", f"ssm{j}"]}[kind]
    return names


def _grouped(arch: NetArch, flat: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, ...]]:
    out, i = [], 0
    for layer in arch.stages[0].layers:
        n = 1 if layer.mixer.kind == "conv" else 2
        out.append(tuple(flat[i : i + n]))
        i += n
    return out


class PrefillGraph(nn.Module):
    def __init__(self, subnet: nn.Module) -> None:
        super().__init__()
        self.subnet = subnet

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, states = self.subnet.decode(tokens)
        return (logits, *(t for state in states for t in state))


class StepGraph(nn.Module):
    def __init__(self, subnet: nn.Module) -> None:
        super().__init__()
        self.subnet = subnet

    def forward(self, token: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, states = self.subnet.decode(token, _grouped(self.subnet.arch, flat))
        return (logits, *(t for state in states for t in state))


def _export(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], dynamic: dict,
            metadata: dict[str, str]) -> bytes:
    model = onnx.load_from_string(export_graph(module, args, inputs, outputs, dynamic))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return model.SerializeToString()


def export_pair(subnet: nn.Module, vocab: bytes, context: int, metadata: dict[str, str] | None = None,
                ) -> tuple[bytes, bytes]:
    """The (prefill, step) ONNX graphs of a language-model subnet (batch, prompt length and the
    KV cache's length dynamic), each passing ``onnx.checker``."""
    arch = subnet.arch
    names = state_names(arch)
    meta = {"nas.vocab": json.dumps(list(vocab)), "nas.context": str(context), "nas.states": json.dumps(names),
            **(metadata or {})}
    prompt = torch.zeros(1, 4, dtype=torch.long)
    with torch.no_grad():
        _, states = subnet.decode(prompt)
    flat = tuple(t for state in states for t in state)
    seen = {"k", "v"}
    dyn_prefill = {"tokens": {0: "batch", 1: "prompt"}, "logits": {0: "batch", 1: "prompt"}}
    dyn_step = {"token": {0: "batch"}, "logits": {0: "batch"}}
    for name in names:
        grows = name.rstrip("0123456789") in seen
        dyn_prefill[name] = {0: "batch", 2: "prompt"} if grows else {0: "batch"}
        dyn_step[name] = {0: "batch", 2: "past"} if grows else {0: "batch"}
        dyn_step[f"new_{name}"] = {0: "batch", 2: "past_and_one"} if grows else {0: "batch"}
    prefill = _export(PrefillGraph(subnet), (prompt,), ["tokens"], ["logits", *names], dyn_prefill,
                      {**meta, "nas.graph": "prefill"})
    step = _export(StepGraph(subnet), (prompt[:, :1], *flat), ["token", *names], ["logits", *(f"new_{n}" for n in names)],
                   dyn_step, {**meta, "nas.graph": "step"})
    for graph, what in ((prefill, "prefill"), (step, "decode-step")):
        try:
            onnx.checker.check_model(onnx.load_from_string(graph))
        except onnx.checker.ValidationError as exc:
            raise NasError(f"the exported {what} graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    return prefill, step


def pair_metadata(graph: bytes) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load_from_string(graph).metadata_props}


def greedy_onnx(prefill: bytes, step: bytes, prompt_ids: np.ndarray, n_tokens: int, threads: int = 1) -> list[int]:
    """``n_tokens`` greedy tokens after ``prompt_ids`` from the exported pair in onnxruntime: the
    prompt through the prefill once, then one decode step per token with the states carried."""
    pre, stp = ort_session(prefill, threads), ort_session(step, threads)
    names = [o.name for o in pre.get_outputs()][1:]
    outs = pre.run(None, {"tokens": np.asarray(prompt_ids, dtype=np.int64)[None]})
    logits, states = outs[0], outs[1:]
    tokens: list[int] = []
    for _ in range(n_tokens):
        nxt = int(np.argmax(logits[0, -1]))
        tokens.append(nxt)
        if len(tokens) == n_tokens:
            break
        feed = {"token": np.array([[nxt]], dtype=np.int64), **dict(zip(names, states, strict=True))}
        outs = stp.run(None, feed)
        logits, states = outs[0], outs[1:]
    return tokens

"""MoE's experts batched into one set of ops against one expert after another (the ONNX export's
way), on the training step's shapes.

    python -m experiments.moe_batching [--device cpu|cuda] [--threads 2] [--repeats 20]

1. One MoE ffn (hybrid-vision's largest width, 96, on a 7x7 grid: 49 tokens), forward and
   backward at batch 128, for every (experts, top_k) the shipped spaces offer: median ms of
   ``--repeats`` after warm-up, each way.
2. The sandwich step of hybrid-vision (largest, smallest, two random subnets; forward, backward,
   AdamW) at batch 128: samples/s each way, the same subnets in both.

The two ways alternate in 3 blocks, so that the machine's drift (a shared VM) hits both alike.

Writes experiments/results/moe_batching.md (with ``--device cuda``: moe_batching_cuda.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch

from experiments._common import markdown_table, write_report
from experiments._training import sandwich_rate  # the step as training runs it, synthetic images


@contextmanager
def experts_in_turn(enabled: bool):
    """Run MoE's experts one after another in PyTorch too (what an ONNX export does)."""
    from nas.blocks.moe import MoeFfn

    batched = MoeFfn._experts_at_once
    if enabled:
        MoeFfn._experts_at_once = MoeFfn._experts_in_turn
    try:
        yield
    finally:
        MoeFfn._experts_at_once = batched


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def moe_times(device: torch.device, experts: int, top_k: int, repeats: int, batch: int = 128, width: int = 96,
              tokens: int = 49) -> list[float]:
    """ms of each of ``repeats`` forward and backward passes of an MoE ffn, after warm-up."""
    from nas.blocks import Aux, MoeFfn
    from nas.space import Ffn

    torch.manual_seed(0)
    moe = MoeFfn(width, 4, 2).to(device)
    option = Ffn("moe", experts=experts, top_k=top_k)
    x = torch.randn(batch, tokens, width, device=device, requires_grad=True)
    times = []
    for i in range(repeats + 3):
        synchronize(device)
        started = time.perf_counter()
        aux = Aux()
        (moe(x, (7, 7), width, option, aux).sum() + aux.losses[0]).backward()
        synchronize(device)
        if i >= 3:
            times.append(1000 * (time.perf_counter() - started))
    return times


def alternating(measure, blocks: int = 3) -> tuple[float, float]:
    """The median of ``measure()`` (a list of values) with experts in turn and batched, the two
    alternating in ``blocks`` blocks so that a drift of the machine's speed hits both alike."""
    values: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(blocks):
        for in_turn in (True, False):
            with experts_in_turn(in_turn):
                values[in_turn] += measure()
    return float(np.median(values[True])), float(np.median(values[False]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=60, help="MoE passes timed, each way")
    parser.add_argument("--steps", type=int, default=24, help="sandwich steps timed, each way")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    blocks = 3
    for experts, top_k in ((2, 1), (2, 2), (4, 1), (4, 2)):
        in_turn, batched = alternating(lambda e=experts, k=top_k: moe_times(device, e, k, max(1, args.repeats // blocks)), blocks)
        rows.append([f"moe{experts}k{top_k}", f"{in_turn:.2f}", f"{batched:.2f}", f"{in_turn / batched:.2f}x"])
        print(rows[-1], flush=True)
    before, after = alternating(lambda: [sandwich_rate(device, 128, max(1, args.steps // blocks))], blocks)
    print(f"sandwich step: {before:.0f} -> {after:.0f} samples/s", flush=True)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} CPU threads"
    body = (f"On {where}. One MoE ffn at width 96 on 49 tokens, batch 128, forward and backward (median of "
            f"{args.repeats}, in 3 blocks alternating with the other way):\n\n"
            + markdown_table(["ffn", "experts in turn (ms)", "batched (ms)", "speed-up"], rows)
            + f"\n\nhybrid-vision's sandwich step at batch 128 (median of 3 blocks of {args.steps // 3} + 2 steps each way, "
              f"alternating; as gpu_check.py times it): {before:.0f} samples/s with experts in turn, {after:.0f} batched ({after / before:.2f}x).")
    name = "moe_batching" + ("_cuda" if device.type == "cuda" else "")
    print(write_report(name, "MoE experts batched against one after another",
                       "python -m experiments.moe_batching " + " ".join(sys.argv[1:]), body))


if __name__ == "__main__":
    main()

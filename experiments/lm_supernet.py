"""The hybrid-lm supernet trained with its defaults, against what a language model must beat.

On GCIDE's test split (the blocks held out by nas.textdata), in bits per byte:

- unigram and bigram byte models counted on the training split (the bigram's add-k smoothing
  chosen on the validation split, then scored on test);
- the supernet's largest and smallest subnets (inherited weights);
- the same two archs trained stand-alone from scratch on the same budget of text the supernet
  saw (its recipe's steps of its batch of windows, one arch per step instead of four);
- the exported prefill and decode-step pair of 10 random subnets, which must generate the same
  64 greedy bytes as PyTorch (ONNX checker passing).

The supernet is runs/hybrid-lm-gcide.ckpt, trained here with the space's defaults when missing
(`nas supernet train hybrid-lm`). Writes experiments/results/lm_supernet.{md,json}.

    python -m experiments.lm_supernet [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from experiments._common import REPO, RESULTS, markdown_table, write_report

SUPERNET = REPO / "runs" / "hybrid-lm-gcide.ckpt"


def ngram_bpb(train: np.ndarray, val: np.ndarray, test: np.ndarray, vocab: int) -> dict[str, float]:
    """Test bits per byte of add-one unigram and add-k bigram counts of the training tokens (k
    chosen on validation from a grid)."""
    uni = np.bincount(train, minlength=vocab) + 1.0
    p_uni = uni / uni.sum()
    out = {"unigram": float(-np.log2(p_uni[test]).mean())}
    pairs = np.zeros((vocab, vocab))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)

    def bigram(k: float, seq: np.ndarray) -> float:
        p = (pairs + k) / (pairs + k).sum(1, keepdims=True)
        return float(-np.log2(p[seq[:-1], seq[1:]]).mean())

    ks = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
    best = min(ks, key=lambda k: bigram(k, val))
    out["bigram"] = bigram(best, test)
    out["bigram_k"] = best
    return out


def split_tokens(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The contiguous token stream of a split's windows (inputs, then each window's last target)."""
    return np.concatenate([np.concatenate([row, t[-1:]]) for row, t in zip(x, y, strict=True)]).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", type=Path, default=SUPERNET)
    parser.add_argument("--subnets", type=int, default=10, help="random subnets whose exported pair is checked")
    parser.add_argument("--smoke", action="store_true", help="a tiny supernet and budget, a scratch result")
    args = parser.parse_args()
    torch.set_num_threads(2)

    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet import checkpoint
    from nas.supernet.generate import generate
    from nas.supernet.lm_onnx import export_pair, greedy_onnx
    from nas.supernet.recipe import TrainConfig
    from nas.supernet.scoring import accuracy_and_nll
    from nas.supernet.standalone import StandaloneRecipe, train_from_scratch
    from nas.supernet.train import train
    from nas.textdata import decode

    space = load("hybrid-lm")
    recipe = dict(space.recipe)
    if args.smoke:
        recipe.update(limit=64, batch_size=8)
        args.supernet = RESULTS / "lm-smoke.ckpt"
        args.subnets = 2
    data = load_dataset(space.task.dataset, space.task)
    if args.smoke:  # scored on 64 held-out windows each, not thousands: the smoke run checks the path
        data = replace(data, x_val=data.x_val[:64], y_val=data.y_val[:64], x_test=data.x_test[:64],
                       y_test=data.y_test[:64])
    started = time.time()
    if not args.supernet.is_file():
        print(f"training {args.supernet} with the space's defaults ({recipe}) ...", flush=True)
        train(space, data, TrainConfig(**recipe), args.supernet)
    supernet_s = time.time() - started
    net, info = checkpoint.load(args.supernet)
    if info.final.get("train_examples") is None:
        raise SystemExit(f"{args.supernet} is not a finished run")
    steps = info.step
    batch = int(info.train_config["batch_size"])
    n_vocab = len(info.vocab)

    ngrams = ngram_bpb(split_tokens(data.x_train, data.y_train), split_tokens(data.x_val, data.y_val),
                       split_tokens(data.x_test, data.y_test), n_vocab)
    rows: list[dict] = [{"model": "uniform over the vocabulary", "test_bpb": math.log2(n_vocab)},
                        {"model": "unigram (train counts, add-one)", "test_bpb": ngrams["unigram"]},
                        {"model": f"bigram (train counts, add-{ngrams['bigram_k']:g}, k chosen on validation)",
                         "test_bpb": ngrams["bigram"]}]
    limited = data.limit(int(info.train_config.get("limit") or len(data.x_train)))
    for which, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        sub = net.extract(arch, info.input_shape)
        acc, nll = accuracy_and_nll(sub, None, data.x_test, data.y_test)
        rows.append({"model": f"supernet {which} {arch.to_str()}", "params": sub.num_params(),
                     "test_bpb": nll / math.log(2), "test_acc": acc})
        t0 = time.time()
        alone = train_from_scratch(space, arch, limited.x_train, limited.y_train, seed=0,
                                   recipe=StandaloneRecipe(steps=steps, batch_size=batch), num_classes=n_vocab)
        acc, nll = accuracy_and_nll(alone, None, data.x_test, data.y_test)
        rows.append({"model": f"stand-alone {which}, {steps} steps of {batch} windows", "params": sub.num_params(),
                     "test_bpb": nll / math.log(2), "test_acc": acc, "seconds": round(time.time() - t0, 1)})
        print(rows[-2], rows[-1], flush=True)

    rng = random.Random(0)
    exports = []
    prompt_ids = data.x_test[0, :32]
    for arch in space.sample_unique(rng, args.subnets):
        sub = net.extract(arch, info.input_shape).eval()
        prefill, step = export_pair(sub, info.vocab, info.input_shape[-1])  # onnx.checker inside
        want = generate(sub, decode(prompt_ids, info.vocab), 64, info.vocab, info.input_shape[-1]).tokens
        got = greedy_onnx(prefill, step, prompt_ids, 64)
        exports.append({"arch": arch.to_str(), "same_64_tokens": got == want,
                        "matching": sum(a == b for a, b in zip(got, want, strict=True)),
                        "text": decode(got, info.vocab).decode("ascii", "replace")})
        print(exports[-1], flush=True)

    result = {"supernet": str(args.supernet), "train_config": info.train_config, "steps": steps,
              "supernet_history": info.history, "supernet_final": info.final, "rows": rows, "exports": exports,
              "test_windows": len(data.x_test), "prompt": decode(prompt_ids, info.vocab).decode("ascii", "replace")}
    name = "lm_supernet_smoke" if args.smoke else "lm_supernet"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    table = markdown_table(["model", "params", "test bits/byte", "next-byte acc"],
                           [(r["model"], f"{r['params']:,}" if "params" in r else "", f"{r['test_bpb']:.3f}",
                             f"{r['test_acc']:.3f}" if "test_acc" in r else "") for r in rows])
    same = sum(e["same_64_tokens"] for e in exports)
    body = (f"Supernet: {args.supernet.name}, {steps} steps of {batch} windows of {info.input_shape[-1]} bytes "
            f"({steps * batch * info.input_shape[-1] / 2**20:.1f} MiB of text); trained in this run: "
            f"{'no' if supernet_s < 5 else f'{supernet_s / 60:.1f} min'}. Test split: {len(data.x_test)} windows "
            f"({len(data.x_test) * info.input_shape[-1] / 1024:.0f} KiB) of GCIDE held out by blocks.\n\n{table}\n\n"
            f"Exported prefill + decode-step pairs of {len(exports)} random subnets: {same} of {len(exports)} generate "
            f"the same 64 greedy bytes in onnxruntime as in PyTorch after the prompt {result['prompt']!r} "
            "(ONNX checker passes on every graph).\n")
    write_report(name, "hybrid-lm: the supernet with its defaults against n-gram and stand-alone baselines",
                 "python -m experiments.lm_supernet" + (" --smoke" if args.smoke else ""), body)
    print(body)


if __name__ == "__main__":
    main()

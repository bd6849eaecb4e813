"""The GPU check: everything that needs a CUDA device, in one run of a few minutes.

    python -m experiments.gpu_check [--out DIR] [--fashion-mnist DIR] [--smoke]

Runs on a bare GPU machine (Python, torch with CUDA, onnx, onnxruntime, numpy, scipy, pandas,
scikit-learn, pyyaml, typer, rich, matplotlib; no network, nothing installed): from the
repository root, ``PYTHONPATH=. python -m experiments.gpu_check``.

1. The device checks of tests/supernet/test_devices.py on ``cuda``: forward and backward of every block
   kind and of the largest, smallest and random subnets of every shipped space.
2. Training throughput: the sandwich step (largest, smallest, two random subnets, forward and
   backward, AdamW) in samples/s, on 2 CPU threads at batch 128 and on the GPU at 128, 512 and
   2,048 (fp32, and bf16 autocast at 2,048).
3. Time to the default recipe's accuracy: the CPU recipe (batch 128, lr 3e-3, 2 epochs on
   Fashion-MNIST) timed from its measured steps/s, against the GPU at batch 512 with the
   square-root learning-rate rule (lr 3e-3 x sqrt(512 / 128)), trained to the end; both
   subnets' test accuracy beside the CPU recipe's.
4. MoE's experts batched (PyTorch's way) against one after another (the ONNX export's):
   experiments/moe_batching.py's measures on the GPU.
5. The gpu latency profile of hybrid-vision: build (timed) and validation on 100 held-out
   subnets; the profile is written under DIR/latency_models/gpu/ to be committed.

Writes DIR/gpu_check.md (default experiments/results) with the device's name; ``--smoke`` runs
every part tiny (on the CPU when there is no GPU) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import traceback
from pathlib import Path

import torch

from experiments._training import sandwich_rate

CPU_RECIPE = {"largest": 0.891, "smallest": 0.874, "seconds": 474}  # README: defaults on 2 Xeon cores


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def device_checks(device: torch.device) -> list[str]:
    from nas.blocks import Aux, block_class
    from nas.space import BlockSettings, Ffn, Mixer, kinds, load, shipped_spaces
    from nas.supernet import Supernet, SupernetConfig

    options = {"conv": Mixer("conv", kernel=3), "attention": Mixer("attention", heads=2),
               "ssm": Mixer("ssm", state=8, expand=2), "mlp": Ffn("mlp", ratio=2), "moe": Ffn("moe", experts=4, top_k=2)}
    done = []
    for kind in kinds():
        op = options[kind.name]
        with torch.device(device):
            block = block_class(kind.name).build(op, 16, BlockSettings(attention_head_dim=8, ssm_head_dim=8), 1)
            x = torch.randn(2, 12, 16, requires_grad=True)
        aux = Aux(margins=[])
        y = block(x, (12,), 16, op, aux) if op.role == "ffn" else block(x, (12,), 16, op)
        (y.sum() + sum(aux.losses)).backward()
        assert y.device.type == device.type and x.grad.device.type == device.type
        done.append(f"block {kind.name}")
    for name in shipped_spaces():
        space = load(name)
        if space.kind != "net":
            continue
        with torch.device(device):
            net = Supernet(SupernetConfig.from_space(space))
            x = torch.randn(2, *space.task.input_shape)
        for arch in [space.largest(), space.smallest(), *space.sample_unique(random.Random(0), 2)]:
            aux = Aux()
            (net(x, arch, aux=aux).logsumexp(-1).mean() + 0.01 * sum(aux.losses)).backward()
        sub = net.extract(space.smallest(), space.task.input_shape)
        assert sub(x).device.type == device.type
        done.append(f"space {name}")
    return done


def time_to_accuracy(device: torch.device, fmnist: str | None, batch: int, epochs: int, smoke: bool) -> dict:
    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    if fmnist:
        os.environ["NAS_FASHION_MNIST_DIR"] = fmnist
    space = load("hybrid-vision")
    try:
        data = load_dataset("fashion-mnist", space.task)
    except Exception as exc:  # noqa: BLE001 - no Fashion-MNIST on this machine: said in the report
        return {"error": f"Fashion-MNIST not found ({exc}); carry the IDX files and pass --fashion-mnist DIR"}
    lr = 3e-3 * math.sqrt(batch / 128)
    config = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, limit=2048 if smoke else None)
    out = Path("/tmp/gpu_check.ckpt")
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    info = train(space, data, config, out, device=device)
    return {"seconds": time.perf_counter() - started, "largest": info.final["test_acc_largest"],
            "smallest": info.final["test_acc_smallest"], "batch": batch, "lr": round(lr, 5), "epochs": epochs}


def latency(out: Path, smoke: bool) -> dict:
    from nas.latency import MeasureConfig, get_target, save_profile
    from nas.space import load

    target = get_target("gpu")
    if target.status() and not smoke:
        return {"error": target.status()}
    space = load("mcu-vision" if smoke else "hybrid-vision")
    if target.status():  # smoke on a CPU: the same path through the cpu target
        target = get_target("cpu")
    config = MeasureConfig(warmup=10, repeats=20 if not smoke else 5, retries=0)
    started = time.perf_counter()
    profile = target.build(space, config, n_archs=40 if not smoke else 6)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    validation = target.validate(space, profile, n=100 if not smoke else 4, config=config)
    profile.validation = validation.summary
    profile.validation_rows = [{k: r[k] for k in ("arch", "measured_ms", "predicted_ms")} for r in validation.rows]
    path = save_profile(profile, out / "latency_models")
    return {"build_s": build_s, "validate_s": time.perf_counter() - started, "profile": str(path),
            **{k: validation.summary[k] for k in ("n", "within_10pct", "kendall_tau", "mape")}}


def moe_batching(device: torch.device, smoke: bool) -> dict:
    """MoE's experts batched (what PyTorch runs) against one after another (the ONNX export's
    way): ms of one MoE ffn forward and backward, and the sandwich step's samples/s at batch 512."""
    from experiments.moe_batching import alternating, moe_times

    out = {}
    for experts, top_k in ((4, 1), (4, 2)):
        out[f"moe{experts}k{top_k}_ms"] = alternating(lambda e=experts, k=top_k: moe_times(device, e, k, 2 if smoke else 20))
    batch = 128 if smoke else 512
    out[f"sandwich_b{batch}_samples_per_s"] = alternating(lambda: [sandwich_rate(device, batch, 1 if smoke else 5)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--fashion-mnist", default=os.environ.get("NAS_FASHION_MNIST_DIR"))
    parser.add_argument("--smoke", action="store_true", help="every part tiny, to check the script (CPU if no GPU)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        sys.exit("no GPU here (torch.cuda.is_available() is False); --smoke checks the script on the CPU")
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(0) if cuda else platform.processor() or "CPU"
    report: dict = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}
    started = time.perf_counter()
    parts = [("device_checks", lambda: device_checks(device))]
    torch.set_num_threads(2)
    parts.append(("throughput", lambda: {
        "cpu_b128": sandwich_rate(torch.device("cpu"), 128, 3 if args.smoke else 8),
        **({f"{device.type}_b{b}": sandwich_rate(device, b, 3 if args.smoke else 10) for b in
            ((128,) if args.smoke else (128, 512, 2048))}),
        **({} if args.smoke or not cuda else {"cuda_b2048_bf16": sandwich_rate(device, 2048, 10, "bf16")}),
    }))
    parts.append(("time_to_accuracy", lambda: time_to_accuracy(device, args.fashion_mnist, 512, 1 if args.smoke else 2,
                                                                args.smoke)))
    parts.append(("moe_batching", lambda: moe_batching(device, args.smoke)))
    parts.append(("latency", lambda: latency(args.out, args.smoke)))
    for key, part in parts:
        log(f"{key} ...")
        t = time.perf_counter()
        try:
            report[key] = part()
        except Exception as exc:  # noqa: BLE001 - a failed part is reported, the others still run
            report[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        log(f"{key}: {json.dumps(report[key], default=str)[:400]} ({time.perf_counter() - t:.0f} s)")
    report["total_s"] = time.perf_counter() - started
    write(report, args.out / "gpu_check.md")
    log(f"wrote {args.out / 'gpu_check.md'} in {report['total_s']:.0f} s")


def write(report: dict, path: Path) -> None:
    lines = [f"# GPU check on {report['device']}", "",
             f"Command: `python -m experiments.gpu_check`; torch {report['torch']}, CUDA {report['cuda']}, "
             f"Python {report['python']}; {time.strftime('%Y-%m-%d %H:%M')}; {report['total_s']:.0f} s in all.", ""]
    checks = report.get("device_checks")
    lines += ["## Device checks", "", (f"passed: {', '.join(checks)}" if isinstance(checks, list)
                                       else f"FAILED: {checks}"), ""]
    rates = report.get("throughput", {})
    lines += ["## Training step (sandwich of four subnets, samples/s)", "", "| where | samples/s |", "| --- | --- |"]
    lines += [f"| {k} | {v:,.0f} |" for k, v in rates.items() if isinstance(v, float)] or [f"| error | {rates} |"]
    moe = report.get("moe_batching", {})
    lines += ["", "## MoE experts one after another (the ONNX export's way) against batched (PyTorch's)", "",
              "| measure | in turn | batched |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v[0]:,.2f} | {v[1]:,.2f} |" for k, v in moe.items() if isinstance(v, tuple)] \
        or [f"| error | {moe} | |"]
    tta = report.get("time_to_accuracy", {})
    lines += ["", "## Time to the default recipe's accuracy (Fashion-MNIST)", ""]
    if "seconds" in tta:
        cpu_s = CPU_RECIPE["seconds"]
        lines += [f"GPU, batch {tta['batch']}, lr {tta['lr']} (square-root rule), {tta['epochs']} epochs: "
                  f"{tta['seconds']:.0f} s, test accuracy largest {tta['largest']:.4f}, smallest {tta['smallest']:.4f}; "
                  f"the CPU recipe: {cpu_s} s on 2 cores, largest {CPU_RECIPE['largest']}, smallest "
                  f"{CPU_RECIPE['smallest']}; speed-up {cpu_s / tta['seconds']:.1f}x."]
    else:
        lines += [f"not measured: {tta}"]
    lat = report.get("latency", {})
    lines += ["", "## gpu latency profile of hybrid-vision", ""]
    lines += [f"build {lat['build_s']:.0f} s; validation on {lat['n']} held-out subnets: {100 * lat['within_10pct']:.0f}% "
              f"within 10%, Kendall tau {lat['kendall_tau']:.3f}, MAPE {lat['mape']:.1f}% ({lat['validate_s']:.0f} s); "
              f"profile {lat['profile']}"] if "build_s" in lat else [f"not built: {lat}"]
    path.write_text("\n".join(lines) + "\n\n```json\n" + json.dumps(report, indent=1, default=str) + "\n```\n")


if __name__ == "__main__":
    main()

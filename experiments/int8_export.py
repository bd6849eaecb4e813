"""int8 subnets for microcontrollers: accuracy and memory of the quantised graphs, per block kind.

    python -m experiments.int8_export [--subnets 10] [--quickstart DIR] [--test 2000]

An mcu-vision supernet trained on Fashion-MNIST with the defaults (trained here when missing,
as ``nas supernet train mcu-vision --dataset fashion-mnist``), and:

1. ``--subnets`` random mcu-vision subnets and the quickstart's pick (the first arch of the
   quickstart's front, from DIR or a quickstart run here): each exported with ``--int8``; the
   int8 graph checked and run in onnxruntime, its test accuracy beside the float graph's, and
   its peak SRAM and flash (nas.graph) beside the MCU model's prediction for the subnet.
2. Per block kind: the largest subnet of one mixer kind and one ffn kind at a time, the same.

Writes experiments/results/int8_export.md.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from experiments._common import REPO, ensure_supernet, markdown_table, write_report

MCU = REPO / "runs" / "mcu-vision-fashion-mnist.ckpt"


def quickstart_pick(folder: Path | None) -> tuple[Path, str]:
    """The quickstart's checkpoint and the first arch of its front (a quickstart is run when none is given)."""
    from nas.objectives import Objective
    from nas.runner import pareto_front
    from nas.store import Store

    if folder is None:
        folder = REPO / "runs" / "quickstart-int8"
        if not (folder / "nas.db").is_file():
            subprocess.run([sys.executable, "-m", "nas", "quickstart", "--out", str(folder)], check=True)
    with Store(str(folder / "nas.db"), readonly=True) as store:
        exp = store.experiment("quickstart")
        front = pareto_front(store.evaluations("quickstart"), [Objective(**o) for o in exp.objectives])
    return folder / "supernet.ckpt", front[0]["arch"]


def row(label: str, ckpt: Path, arch: str, n_test: int) -> list:
    from nas.export import export_subnet

    with tempfile.TemporaryDirectory() as tmp:
        r = export_subnet(ckpt, arch, Path(tmp) / "m.onnx", int8=True, n_test=n_test).int8
    drop = 100 * (r["int8_accuracy"] - r["float_accuracy"])
    sram = 100 * (r["graph_sram_kb"] - r["mcu_sram_kb"]) / r["mcu_sram_kb"]
    flash = 100 * (r["graph_flash_kb"] - r["mcu_flash_kb"]) / r["mcu_flash_kb"]
    kept = ", ".join(f"{n} {op}" for op, n in r["kept_float"].items()) or "-"
    print(label, arch, f"{drop:+.2f} points, SRAM {sram:+.1f}%, flash {flash:+.1f}%", flush=True)
    return [label, f"`{arch}`", f"{r['float_accuracy']:.4f}", f"{r['int8_accuracy']:.4f}", f"{drop:+.2f}",
            f"{r['graph_sram_kb']:.1f} / {r['mcu_sram_kb']:.1f} ({sram:+.1f}%)",
            f"{r['graph_flash_kb']:.1f} / {r['mcu_flash_kb']:.1f} ({flash:+.1f}%)", kept]


def run(n: int, quickstart: Path | None, n_test: int, ckpt: Path | None = None, with_quickstart: bool = True) -> Path:
    from nas.supernet import checkpoint

    ckpt = ckpt or ensure_supernet(MCU, "mcu-vision")
    _, info = checkpoint.load(ckpt)
    space = info.space
    rows = [row(f"random {i + 1}", ckpt, a.to_str(), n_test)
            for i, a in enumerate(space.sample_unique(random.Random(0), n))]
    if with_quickstart:
        qs_ckpt, qs_arch = quickstart_pick(quickstart)
        rows.append(row("quickstart's pick (hybrid-vision)", qs_ckpt, qs_arch, n_test))
    kinds = []
    for mixer in space.stages[0].mixer_kinds():
        for ffn in space.stages[0].ffn_kinds():
            arch = space.uniform(mixer, ffn, largest=True)
            kinds.append(row(f"{mixer} + {ffn}", ckpt, arch.to_str(), n_test))
    header = ["subnet", "arch", "float acc", "int8 acc", "drop (points)", "peak SRAM KB: graph / MCU model",
              "flash KB: graph / MCU model", "kept float"]
    drops = [float(r[4]) for r in rows]
    body = (f"mcu-vision supernet on Fashion-MNIST (defaults), {n_test:,} test examples; int8 = onnxruntime static "
            "quantisation, QDQ, weights per channel, activations per tensor, calibrated on 128 training samples; "
            "Conv, MatMul and Gemm in int8, the rest float (named per row). The MCU model's memory is the mcu-m7 "
            "profile's composition of units where the profile exists, else the cost model on the float graph.\n\n"
            + markdown_table(header, rows)
            + f"\n\nAccuracy change over these {len(rows)} subnets: mean {np.mean(drops):+.2f} points, worst "
              f"{min(drops):+.2f}.\n\n## Per block kind (the largest subnet of one mixer kind and one ffn kind)\n\n"
            + markdown_table(header, kinds))
    return write_report("int8_export", "int8 export: accuracy and memory of the quantised subnets",
                        "python -m experiments.int8_export " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=10)
    parser.add_argument("--quickstart", type=Path, default=None)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--supernet", type=Path, default=None, help=f"an mcu-vision checkpoint (default: train or reuse {MCU.name})")
    parser.add_argument("--no-quickstart", action="store_true", help="leave out the quickstart's pick (and its run)")
    args = parser.parse_args()
    print(run(args.subnets, args.quickstart, args.test, args.supernet, not args.no_quickstart))


if __name__ == "__main__":
    main()

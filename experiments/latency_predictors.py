"""Validate every latency model on held-out subnets and tabulate the figures.

    python -m experiments.latency_predictors [-n 100] [--spaces hybrid-vision ...] [--targets cpu ...]

For the cpu (and gpu, when present) targets each held-out subnet is measured end to end,
twice; for MCU boards the composed unit predictor is checked against the cost model on each
whole graph, and the calibration's leave-one-out error is reported. Profiles come from
latency_models/ (built with `nas latency build` when missing). Writes
experiments/results/latency_predictors.md and one PNG per (target, space).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments._common import RESULTS, markdown_table, write_report


def run(n: int, spaces: list[str], targets: list[str]) -> Path:
    from nas.errors import NasError
    from nas.latency import build_profile
    from nas.latency.profile import load_profile, save_profile
    from nas.latency.targets import get_target
    from nas.latency.validate import write_validation
    from nas.space import load

    rows = []
    for target in targets:
        if get_target(target).status():
            rows.append([target, "-", "-", "-", "-", "-", "-", get_target(target).status()])
            continue
        for name in spaces:
            space = load(name)
            try:
                profile, _ = load_profile(target, space)
            except NasError:
                profile = build_profile(space, target)
                save_profile(profile)
            started = time.time()
            result = get_target(target).validate(space, profile, n=n)
            write_validation(result, RESULTS / f"latency_{target}_{name}.csv", RESULTS / f"latency_{target}_{name}.png",
                             f"{target} latency on {name}")
            s = result.summary
            note = (f"repeat diff {s['repeat_diff_pct']:.2f}%; machine speed vs build {s['speed_vs_build']:.3f} "
                    f"(uncorrected: {100 * s['within_10pct_uncorrected']:.0f}% within 10%, MAPE {s['mape_uncorrected']:.1f}%)"
                    if "repeat_diff_pct" in s
                    else "LOO " + ", ".join(f"{k.split('_')[0]} {v:+.1f}%" for k, v in s["calibration_loo_error_pct"].items()))
            rows.append([target, name, s["n"], f"{100 * s['within_10pct']:.0f}%", f"{s['kendall_tau']:.3f}",
                         f"{s['mape']:.2f}%", f"{s['rmse_ms']:.4f}", f"{note}; {time.time() - started:.0f} s"])
            print(rows[-1], flush=True)
    body = (markdown_table(["target", "space", "n", "within 10%", "Kendall tau", "MAPE", "RMSE (ms)", "noise / notes"], rows)
            + "\n\ncpu: held-out random subnets, each measured twice end to end in onnxruntime (1 thread, batch 1, "
            "3 guarded windows of 50 runs); 'repeat diff' is the median disagreement of the two measurements, "
            "the floor for any predictor. Each pass also re-measures ten of the build's own subnets; their median "
            "ratio now/then is the machine's speed relative to the build, and measurements are brought back to the "
            "build's speed with it (uncorrected figures beside). MCU: predicted by composing per-unit costs, checked against the cost "
            "model run on each whole graph (no board here); LOO is the leave-one-out error of the board's "
            "calibration on the MLPerf Tiny table (resnet8, dscnn, fc autoencoder).")
    return write_report("latency_predictors", "Latency predictors on held-out subnets",
                        "python -m experiments.latency_predictors " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--spaces", nargs="+", default=["hybrid-vision", "hybrid-seq", "mcu-vision"])
    parser.add_argument("--targets", nargs="+", default=["cpu", "gpu", "mcu-m7", "mcu-m4"])
    args = parser.parse_args()
    print(run(args.n, args.spaces, args.targets))


if __name__ == "__main__":
    main()

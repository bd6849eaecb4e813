"""A new device's latency from k measurements: transfer from known devices (nas.latency.transfer).

    python -m experiments.latency_transfer [--fbnet PATH] [--draws 3] [--skip-fbnet] [--skip-own]

1. HW-NAS-Bench's FBNet table (5,000 archs, 27 device configurations; ../shared/data): each
   device in turn is the new one, k of its rows (k = 5, 10, 20, 50; ``--draws`` random draws,
   and once the k archs a quick kit would pick) are measured, the other 26 devices are the
   references. Spearman rho and the share within 10% on the other rows, beside two baselines:
   a ridge on the space's one-hot features fitted on the k rows alone (what a table predictor
   learns from the new device only), and a ridge on the other devices' log latencies (the
   issue's HELP-style baseline). The ceiling column fits a ridge on the references and the
   one-hot features with 4,000 rows of the device itself: what its measurements allow at all.
2. This project's targets on hybrid-vision: mcu-m4 from mcu-m7 and cpu (ground truth: the
   mcu-m4 cost model on each whole graph); this machine's cpu from the committed cpu profile
   (built on another machine; ground truth: subnets measured here now, 20 to fit and 100 held
   out); gpu from cpu when a GPU is present.

Writes experiments/results/latency_transfer.md and .png.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from experiments._common import REPO, RESULTS, markdown_table, write_report

FBNET = REPO.parent / "shared" / "data" / "hwnasbench_fbnet_latency.csv.gz"
OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
KS = (5, 10, 20, 50)


def fbnet_space():
    from nas.space import loads

    return loads("name: fbnet\nkind: choice\ndescription: HW-NAS-Bench FBNet space (22 layers)\nchoices:\n"
                 + "".join(f"  l{i}: [{', '.join(OPS)}]\n" for i in range(22)))


def _score(predicted: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    return float(spearmanr(predicted, measured).statistic), float(np.mean(np.abs(predicted - measured) / measured <= 0.10))


def fbnet(path: Path, draws: int) -> tuple[str, dict]:
    import pandas as pd
    from sklearn.linear_model import RidgeCV

    from nas.latency.transfer import ALPHAS, TableReference, fit_transfer, spread_archs

    frame = pd.read_csv(path)
    devices = [c for c in frame.columns if c.endswith("_ms")]
    space = fbnet_space()
    archs = [space.parse(",".join(f"l{i}={op}" for i, op in enumerate(a.split("-")))) for a in frame["arch"]]
    n = len(archs)
    started = time.time()
    tables = {d: TableReference(d, space, list(zip(archs, frame[d].to_numpy(), strict=True))) for d in devices}
    onehot = space.features(archs)
    smoothed = {d: tables[d].total(archs, onehot) for d in devices}
    print(f"reference models of {len(devices)} devices in {time.time() - started:.0f} s", flush=True)
    results: dict = {}  # (method, k) -> device -> list of (rho, within)
    ceiling = {}
    for j, device in enumerate(devices):
        y = frame[device].to_numpy()
        refs = {d: tables[d] for d in devices if d != device}
        log_refs = np.log(frame[[d for d in devices if d != device]].to_numpy())
        train, test = np.arange(4000), np.arange(4000, n)
        both = np.c_[log_refs, onehot]
        ceiling[device] = _score(np.exp(RidgeCV(alphas=ALPHAS).fit(both[train], np.log(y[train])).predict(both[test])),
                                 y[test])
        for k in KS:
            picks = [np.random.default_rng(1000 * k + s).choice(n, k, replace=False) for s in range(draws)]
            quick = spread_archs(space, list(refs.values()), k, seed=k, pool=archs)
            index = {a: i for i, a in enumerate(archs)}
            picks.append(np.array([index[a] for a in quick]))
            for s, idx in enumerate(picks):
                rest = np.setdiff1d(np.arange(n), idx)
                method = "transfer" if s < draws else "transfer, quick-kit archs"
                predictor = fit_transfer(space, [(archs[i], y[i]) for i in idx], refs, device)
                results.setdefault((method, k), {}).setdefault(device, []).append(
                    _score(predictor.predict([archs[i] for i in rest]), y[rest]))
                if s < draws:
                    base = RidgeCV(alphas=ALPHAS).fit(onehot[idx], np.log(y[idx]))
                    results.setdefault(("one-hot ridge (k rows only)", k), {}).setdefault(device, []).append(
                        _score(np.exp(base.predict(onehot[rest])), y[rest]))
                    help_like = RidgeCV(alphas=ALPHAS).fit(log_refs[idx], np.log(y[idx]))
                    results.setdefault(("ridge on other devices' log latency", k), {}).setdefault(device, []).append(
                        _score(np.exp(help_like.predict(log_refs[rest])), y[rest]))
        print(f"{j + 1}/{len(devices)} {device}: k=20 transfer rho "
              f"{np.mean([r for r, _ in results[('transfer', 20)][device]]):.3f}, ceiling {ceiling[device][0]:.3f} "
              f"({time.time() - started:.0f} s)", flush=True)
    del smoothed
    rows = []
    for (method, k), per in sorted(results.items(), key=lambda t: (t[0][1], t[0][0])):
        rho = {d: np.mean([r for r, _ in v]) for d, v in per.items()}
        within = {d: np.mean([w for _, w in v]) for d, v in per.items()}
        spread = np.std([np.mean([v[i][0] for v in per.values()]) for i in range(len(next(iter(per.values()))))])
        worst = min(rho, key=rho.get)
        rows.append([k, method, f"{np.mean(list(rho.values())):.3f} ± {spread:.3f}",
                     f"{rho[worst]:.3f} ({worst.removesuffix('_ms')})", f"{100 * np.mean(list(within.values())):.1f}%",
                     f"{100 * min(within.values()):.1f}%"])
    ceiling_mean = np.mean([c[0] for c in ceiling.values()])
    worst3 = sorted(ceiling.items(), key=lambda t: t[1][0])[:3]
    body = (f"{len(devices)} devices, {n:,} archs; each device left out in turn, k of its rows measured, "
            f"{draws} random draws per k (± is the spread of the mean over draws) and the k archs a quick kit picks "
            "(spread over the references' predictions).\n\n"
            + markdown_table(["k", "method", "mean Spearman", "worst device", "mean within 10%", "worst within 10%"], rows)
            + f"\n\nCeiling (a ridge on the references and one-hot features fitted on 4,000 rows of the device itself, "
              f"scored on the other 1,000): mean Spearman {ceiling_mean:.3f}; lowest "
            + ", ".join(f"{d.removesuffix('_ms')} {c[0]:.3f}" for d, c in worst3)
            + ". Those devices' own measurements (whole milliseconds, run to run noise) rank their archs no better, "
              "whatever the predictor.\n")
    summary = {"k20_mean": float(np.mean([np.mean([r for r, _ in v]) for v in results[("transfer", 20)].values()])),
               "ceiling_mean": float(ceiling_mean), "results": results}
    return body, summary


def own_targets(space_name: str, k: int, held_out: int) -> tuple[str, list]:
    import torch

    from nas.graph import analyze
    from nas.latency import MeasureConfig, Meter, get_target, load_profile
    from nas.latency.build import random_supernet
    from nas.latency.predictor import predictor_for
    from nas.latency.transfer import ProfileReference, fit_transfer, spread_archs
    from nas.space import load
    from nas.supernet.to_onnx import to_onnx

    space = load(space_name)
    shape = space.task.input_shape
    net = random_supernet(space, 0, shape)

    def reference(name: str) -> ProfileReference:
        profile, _ = load_profile(name, space)
        return ProfileReference(name, predictor_for(profile, space), profile)

    def measure_all(target, archs):
        out = []
        for i, arch in enumerate(archs):
            sub = net.extract(arch, shape)
            if target.kind == "mcu":
                out.append(target.cost_graph(analyze(to_onnx(sub, torch.zeros(1, *shape)))).latency_ms)
            else:
                out.append(target.measure(sub, (1, *shape), meter).median_ms)
            if (i + 1) % 20 == 0:
                print(f"  {target.name}: {i + 1}/{len(archs)} measured", flush=True)
        return np.array(out)

    meter = Meter(MeasureConfig())
    cases = [("mcu-m4", ["mcu-m7", "cpu"], "the mcu-m4 cost model on each whole graph"),
             ("cpu", ["cpu"], "onnxruntime on this machine, measured now (the reference is the committed profile)")]
    if not get_target("gpu").status():
        cases.append(("gpu", ["cpu"], "CUDA events on this machine's GPU"))
    rows, points = [], []
    for new, sources, truth in cases:
        refs = [reference(name) for name in sources]
        fit_archs = spread_archs(space, refs, k, seed=0)
        held = space.sample_unique(random.Random(7), held_out, exclude=set(fit_archs))
        target = get_target(new)
        started = time.time()
        measured_fit = measure_all(target, fit_archs)
        measured_held = measure_all(target, held)
        predictor = fit_transfer(space, list(zip(fit_archs, measured_fit, strict=True)), {r.name: r for r in refs}, new)
        predicted = predictor.predict(held)
        rho, within = _score(predicted, measured_held)
        ape = np.abs(predicted - measured_held) / measured_held
        source_alone = refs[0].total(held) * np.median(measured_fit / refs[0].total(fit_archs))
        rho0, within0 = _score(source_alone, measured_held)
        rows.append([f"{new} from {', '.join(sources)}", truth, k, held_out, f"{rho:.3f}", f"{100 * within:.0f}%",
                     f"{100 * np.mean(ape):.1f}%", f"{rho0:.3f} / {100 * within0:.0f}%", f"{time.time() - started:.0f} s"])
        points.append((f"{new} from {', '.join(sources)}", measured_held, predicted))
        print(rows[-1], flush=True)
    body = (f"`{space_name}`: {k} subnets a quick kit picks (spread over the references' predictions) measured on the "
            f"new target, {held_out} other random subnets held out.\n\n"
            + markdown_table(["new target", "ground truth", "k", "held out", "Spearman", "within 10%", "MAPE",
                              "first reference rescaled (Spearman / within 10%)", "time"], rows))
    return body, points


def plot(summary: dict | None, points: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (1 if summary else 0) + len(points)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(4.6 * max(panels, 1), 4.2), dpi=110)
    axes = np.atleast_1d(axes)
    i = 0
    if summary:
        ax = axes[0]
        for method in ("transfer", "ridge on other devices' log latency", "one-hot ridge (k rows only)"):
            means = [np.mean([np.mean([r for r, _ in v]) for v in summary["results"][(method, k)].values()]) for k in KS]
            ax.plot(KS, means, marker="o", label=method)
        ax.axhline(summary["ceiling_mean"], color="#999", ls="--", label="ceiling (4,000 rows)")
        ax.set_xscale("log")
        ax.set_xticks(KS, [str(k) for k in KS])
        ax.minorticks_off()
        ax.set_xlabel("measured archs of the new device (k)")
        ax.set_ylabel("mean Spearman over 27 devices")
        ax.set_title("FBNet, leave one device out", fontsize=9)
        ax.legend(fontsize=7)
        i = 1
    for title, measured, predicted in points:
        ax = axes[i]
        lo, hi = min(measured.min(), predicted.min()) * 0.9, max(measured.max(), predicted.max()) * 1.1
        line = np.linspace(lo, hi, 20)
        ax.fill_between(line, line * 0.9, line * 1.1, color="#dde8f5")
        ax.plot(line, line, color="#4a6fa5", lw=1)
        ax.scatter(measured, predicted, s=10, color="#c0392b")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
        i += 1
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fbnet", type=Path, default=FBNET)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--space", default="hybrid-vision")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--skip-fbnet", action="store_true")
    parser.add_argument("--skip-own", action="store_true")
    args = parser.parse_args()
    parts, summary, points = [], None, []
    if not args.skip_fbnet:
        if args.fbnet.is_file():
            body, summary = fbnet(args.fbnet, args.draws)
            parts.append("## HW-NAS-Bench FBNet, leave one device out\n\n" + body)
        else:
            parts.append(f"## HW-NAS-Bench FBNet\n\nskipped: {args.fbnet} is not here.\n")
    if not args.skip_own:
        body, points = own_targets(args.space, args.k, args.held_out)
        parts.append("## This project's targets\n\n" + body)
    png = RESULTS / "latency_transfer.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(summary, points, png)
    print(write_report("latency_transfer", "A new device's latency from k measurements (transfer)",
                       "python -m experiments.latency_transfer " + " ".join(sys.argv[1:]),
                       "\n\n".join(parts) + "\n\n![transfer](latency_transfer.png)"))


if __name__ == "__main__":
    main()

"""Settings of the surrogate strategy side by side on NAS-Bench-Graph, in a plain ask/tell loop
(or, with ``--supernet``, on a shipped space's supernet).

    python -m experiments.surrogate_settings --set sequential_until=0 --set sequential_until=100 [--seeds 10]
                                             [--datasets cora pubmed ...] [--processes 2]
    python -m experiments.surrogate_settings --supernet CKPT --set ... [--seeds 5] [--budget 120]

Each ``--set`` is one setting: comma-separated class attributes of ``SurrogateSearch`` (Python
literals), ``-`` for the shipped defaults. Every setting, and ``tpe`` for reference, runs 300
asks and tells per dataset and seed, straight on the table: no store and no driver, so it is
several times faster than ``experiments/bench_graph.py`` (whose figures are the ones quoted)
and fit for trying settings. Prints, per dataset, the share of the true front's hypervolume
after 100 and 300 evaluations (mean over seeds), and per setting the mean, the worst dataset and
on how many datasets it beats tpe's mean after 100.

With ``--supernet`` every setting, and ``random`` for reference, searches the checkpoint's space
as ``experiments/search_efficiency.py`` does (in process, accuracy on 1,000 validation images
against cpu latency): the hypervolume after 10, a third of the budget and the budget, mean over
seeds, and after how many evaluations the mean curve reaches random's final hypervolume.
"""

from __future__ import annotations

import argparse
import ast
import time
from multiprocessing import Pool

import numpy as np

BUDGET = 300
_SHIPPED: dict[str, object] = {}  # SurrogateSearch's own attributes, as this process first saw them


def parse_setting(text: str) -> dict[str, object]:
    if text == "-":
        return {}
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        out[name.strip()] = ast.literal_eval(value.strip())
    return out


def apply(setting: dict[str, object]) -> None:
    """SurrogateSearch with its shipped attributes, then ``setting``'s."""
    from nas.search.surrogate import SurrogateSearch

    if not _SHIPPED:
        _SHIPPED.update({k: v for k, v in vars(SurrogateSearch).items()
                         if not k.startswith("_") and isinstance(v, (int, float, str))})
    for name, value in _SHIPPED.items():
        setattr(SurrogateSearch, name, value)
    for name, value in setting.items():
        if name not in _SHIPPED:
            raise SystemExit(f"SurrogateSearch has no setting {name!r}")
        setattr(SurrogateSearch, name, value)


def on_supernet(ckpt: str, settings: list[dict[str, object]], seeds: int, budget: int) -> None:
    import experiments.search_efficiency as efficiency

    efficiency.store_curve = lambda *args: None  # these runs are not search_efficiency's to keep
    curves = efficiency.curves
    runs = {"random": curves(ckpt, budget, {"random": seeds}, 1000, False)[0]["random"]}
    for setting in settings:
        apply(setting)
        runs[repr(setting or "defaults")] = curves(ckpt, budget, {"surrogate": seeds}, 1000, False)[0]["surrogate"]
    apply({})
    random_final = runs["random"][:, -1].mean()
    for label, hv in runs.items():
        mean = hv.mean(axis=0)
        reach = int(np.argmax(mean >= random_final)) + 1 if (mean >= random_final).any() else f"> {budget}"
        print(f"{label}: HV after {budget} {mean[-1]:.4f} ± {hv[:, -1].std():.4f}, after {budget // 3} "
              f"{mean[budget // 3 - 1]:.4f}, after 10 {mean[9]:.4f}; random's final HV after {reach}")


def one_run(job: tuple[str, str, dict[str, object], int, str]) -> tuple[str, str, int, float, float, float]:
    strategy, dataset, setting, seed, scenario = job
    from experiments.bench_graph import SCENARIOS, _bench
    from nas.bench.run import hypervolume_fraction
    from nas.search import make_strategy
    apply(setting)  # a pool's process runs jobs of several settings
    bench = _bench(f"graph:{dataset}", scenario)
    known = SCENARIOS[scenario][1]
    cheap = (lambda arch: {m: bench.metrics(arch)[m] for m in known}) if known else None
    search = make_strategy(strategy, bench.space, bench.objectives, seed=seed, cheap=cheap)
    results = []
    started = time.perf_counter()
    for _ in range(BUDGET):
        arch = search.ask()
        metrics = bench.metrics(arch)
        search.tell(arch, metrics)
        results.append(metrics)
    curve = hypervolume_fraction(bench, results)
    label = strategy if strategy != "surrogate" else repr(setting or "defaults")
    return label, dataset, seed, curve[99], curve[BUDGET - 1], time.perf_counter() - started


def main() -> None:
    from nas.bench import GRAPH_DATASETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="settings", action="append", default=None,
                        help="name=value[,name=value...] of SurrogateSearch, or - for its defaults (repeatable)")
    parser.add_argument("--datasets", nargs="+", default=list(GRAPH_DATASETS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--supernet", default=None, help="a checkpoint: search its space instead of the tables")
    parser.add_argument("--budget", type=int, default=120, help="with --supernet: evaluations per search")
    parser.add_argument("--scenario", default="table-costly", help="as experiments/bench_graph.py names them")
    args = parser.parse_args()
    settings = [parse_setting(s) for s in (args.settings or ["-"])]
    if args.supernet:
        on_supernet(args.supernet, settings, args.seeds, args.budget)
        return
    jobs = [(b, d, {}, s, args.scenario) for b in ("random", "tpe") for d in args.datasets for s in range(args.seeds)]
    jobs += [("surrogate", d, setting, s, args.scenario) for setting in settings for d in args.datasets
             for s in range(args.seeds)]
    with Pool(args.processes) as pool:
        runs = pool.map(one_run, jobs)
    labels = list(dict.fromkeys(r[0] for r in runs))

    def mean(label: str, dataset: str, column: int) -> float:
        return float(np.mean([r[column] for r in runs if r[0] == label and r[1] == dataset]))

    for dataset in args.datasets:
        print(dataset + ": " + "; ".join(f"{label} {mean(label, dataset, 3):.3f} / {mean(label, dataset, 4):.3f}"
                                         for label in labels))
    print(f"after 100 / after {BUDGET}, mean over {args.seeds} seeds of the share of the true front's hypervolume")
    for label in labels:
        at100 = [mean(label, d, 3) for d in args.datasets]
        final = [mean(label, d, 4) for d in args.datasets]
        beats = sum(mean(label, d, 3) > mean("tpe", d, 3) for d in args.datasets)
        seconds = np.mean([r[5] for r in runs if r[0] == label])
        print(f"{label}: after 100 {np.mean(at100):.3f}, after {BUDGET} {np.mean(final):.3f} (worst {min(final):.3f}), "
              + (f"beats tpe after 100 on {beats} of {len(args.datasets)}, " if label not in ("tpe", "random") else "")
              + f"{seconds:.1f} s per run")


if __name__ == "__main__":
    main()

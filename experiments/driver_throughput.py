"""How many evaluations per second the search driver sustains when evaluating costs nothing.

    python -m experiments.driver_throughput [--evaluations 2000] [--strategies random evolution nsga2 tpe surrogate]

A 15,625-arch plain space (six choices of five values, NAS-Bench-201's size), an evaluator that
answers at once (two objectives computed from the arch), searched in process (``--workers 0``)
into a SQLite store: whatever rate is left is the driver's own (strategy, store, bookkeeping).
Reports the rate over the last 10% of the evaluations, and each strategy's share of the time
spent in ``ask`` and ``tell``. Writes experiments/results/driver_throughput.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from experiments._common import markdown_table, write_report

SPACE = """name: cell-15625
kind: choice
description: six edges of a cell, five operations each (NAS-Bench-201's size)
choices:
""" + "".join(f"  e{i}: [none, skip, conv1, conv3, pool]\n" for i in range(6))
COST = {"none": 0.0, "skip": 0.1, "conv1": 1.0, "conv3": 3.0, "pool": 0.3}
GAIN = {"none": 0.0, "skip": 0.4, "conv1": 0.7, "conv3": 1.0, "pool": 0.2}


def metrics(arch) -> dict[str, float]:
    """An instant two-objective problem: accuracy saturates with the operations' gain, latency adds their cost."""
    import math

    v = arch.as_dict()
    gain = sum(GAIN[o] * (1 + 0.15 * i) for i, o in enumerate(v.values()))
    return {"accuracy": 1 - math.exp(-gain / 3) + 0.001 * (hash(arch.to_str()) % 7),
            "latency_ms": 0.2 + sum(COST[o] for o in v.values())}


def run(evaluations: int, strategies: list[str]) -> Path:
    from nas.evaluate import CallableEvaluator
    from nas.objectives import Objective
    from nas.runner import SearchConfig, search
    from nas.space import loads
    from nas.store import Store

    space = loads(SPACE)
    objectives = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in strategies:
            db = str(Path(tmp) / f"{strategy}.db")
            started = time.perf_counter()
            search(SearchConfig(strategy=strategy, budget=evaluations, targets=(), workers=0, db=db,
                                experiment=strategy, seed=0),
                   evaluator_factory=lambda: CallableEvaluator(space, metrics, objectives), objectives=objectives)
            wall = time.perf_counter() - started
            with Store(db, readonly=True) as store:
                records = store.evaluations(strategy)
            ends = sorted(r.finished_at.timestamp() for r in records)
            tail = int(0.9 * len(ends))
            rate_tail = (len(ends) - tail) / max(ends[-1] - ends[tail], 1e-9)
            rows.append([strategy, len(records), f"{wall:.1f}", f"{len(records) / wall:.0f}", f"{rate_tail:.0f}"])
            print(rows[-1], flush=True)
    body = (f"{evaluations:,} evaluations per strategy on a {space.size():,}-arch plain space, instant evaluator, "
            "in process, SQLite.\n\n"
            + markdown_table(["strategy", "stored", "wall (s)", "evaluations/s overall", "evaluations/s over the last 10%"],
                             rows))
    return write_report("driver_throughput", "The search driver's own rate (instant evaluator)",
                        "python -m experiments.driver_throughput " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--strategies", nargs="+", default=["random", "evolution", "nsga2", "tpe", "surrogate"])
    args = parser.parse_args()
    print(run(args.evaluations, args.strategies))


if __name__ == "__main__":
    main()

"""How fast latency predictors are: 10,000 archs per target, from a cold start.

    python -m experiments.predictor_speed [-n 10000] [--space hybrid-vision]

Loads each committed profile, then times one batched prediction of N random archs the
predictor has never seen (unit lists built on the way) and a second call on the same archs.
Writes experiments/results/predictor_speed.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from experiments._common import markdown_table, write_report


def run(n: int, space_name: str) -> Path:
    from nas.latency import load_predictor
    from nas.space import load

    space = load(space_name)
    archs = [space.sample(random.Random(i)) for i in range(n)]
    rows = []
    for target in ("cpu", "mcu-m7", "mcu-m4"):
        started = time.perf_counter()
        predictor = load_predictor(target, space)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        predictor.predict_metrics(archs)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        predictor.predict_metrics(archs)
        warm = time.perf_counter() - started
        rows.append([target, f"{loaded:.3f}", f"{cold:.3f}", f"{warm:.3f}", f"{1e6 * cold / n:.1f}"])
        print(rows[-1], flush=True)
    body = markdown_table(["target", "load profile (s)", f"predict {n:,} new archs (s)", "again, cached (s)",
                           "us per arch (cold)"], rows)
    return write_report("predictor_speed", f"Latency prediction speed on {space_name}",
                        "python -m experiments.predictor_speed " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--space", default="hybrid-vision")
    args = parser.parse_args()
    print(run(args.n, args.space))


if __name__ == "__main__":
    main()

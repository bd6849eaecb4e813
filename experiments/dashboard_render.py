"""How fast the Pareto explorer renders a big store.

    python -m experiments.dashboard_render [--evaluations 100000] [--keep DB]

Seeds a SQLite store with N evaluations of random hybrid-vision archs (synthetic metrics: this
measures rendering, not search), then times the explorer's first render twice: the page's
script alone (Streamlit's AppTest, caches cold), and in Debian's Chromium from navigation to
the Pareto front's points on screen (a real browser, as a user sees it). Writes
experiments/results/dashboard_render.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from dashboard.testing import CHROMIUM, CHROMIUM_FLAGS, dashboard_server
from experiments._common import markdown_table, write_report
from nas.store.synthetic import synthetic_store


def apptest_seconds(db: str) -> float:
    from streamlit.testing.v1 import AppTest

    os.environ["NAS_DB_URL"] = db
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app_pages" / "explorer.py"),
                           default_timeout=300)
    started = time.perf_counter()
    at.run()
    assert not at.exception, at.exception
    return time.perf_counter() - started


def browser_seconds(db: str) -> float:
    from playwright.sync_api import sync_playwright

    with dashboard_server(db) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(f"{url}/explorer")
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=300_000)
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def run(n: int, keep: str | None) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        db = keep or str(Path(tmp) / "big.db")
        started = time.perf_counter()
        if not (keep and Path(keep).exists()):
            synthetic_store(db, n)
        seeding = time.perf_counter() - started
        small = str(Path(tmp) / "small.db")
        synthetic_store(small, 200)
        script = apptest_seconds(db)
        has_browser = Path(CHROMIUM).exists()
        browser = browser_seconds(db) if has_browser else float("nan")
        floor = browser_seconds(small) if has_browser else float("nan")
    rows = [["seed the store (bulk insert)", f"{seeding:.1f}"],
            ["explorer script, first run (AppTest, caches cold)", f"{script:.2f}"],
            ["explorer in Chromium: navigation to Pareto points drawn", f"{browser:.2f}"],
            ["the same on a store of 200 evaluations (Streamlit's own page load)", f"{floor:.2f}"]]
    body = (markdown_table(["step", "seconds"], rows)
            + f"\n\n{n:,} evaluations in one experiment. The explorer computes the front on all of them and "
            "draws one point per marker-sized cell of a 220 x 80 grid over the plot, and the front (WebGL). "
            "Each browser run starts a fresh `nas dashboard` server, so its caches are cold.")
    print(body)
    return write_report("dashboard_render", f"Dashboard first render with {n:,} evaluations",
                        "python -m experiments.dashboard_render " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--keep", metavar="DB", help="seed this SQLite file once and reuse it on later runs")
    args = parser.parse_args()
    print(run(args.evaluations, args.keep))


if __name__ == "__main__":
    main()

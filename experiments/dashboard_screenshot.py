"""A screenshot of the Pareto explorer on a real store, for the README.

    python -m experiments.dashboard_screenshot --db runs/quickstart-.../nas.db [--out experiments/results/explorer.png]

Starts ``nas dashboard`` on the store, opens the explorer in Debian's headless Chromium,
waits until the Pareto front's points are drawn, and saves the page as a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dashboard.testing import CHROMIUM, CHROMIUM_FLAGS, dashboard_server
from experiments._common import RESULTS


def shoot(db: str, out: Path) -> Path:
    from playwright.sync_api import sync_playwright

    with dashboard_server(db) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/explorer", wait_until="networkidle")
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=120_000)
        page.wait_for_timeout(1500)  # let Plotly finish its transitions
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=False)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a store with at least one finished search")
    parser.add_argument("--out", type=Path, default=RESULTS / "explorer.png")
    args = parser.parse_args()
    print(shoot(args.db, args.out))


if __name__ == "__main__":
    main()

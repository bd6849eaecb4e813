"""The ``nas`` command line. Each module registers its commands on the apps in ``_app``."""

from __future__ import annotations

import sys

from nas.cli import (  # noqa: F401  (registration)
    _app,
    bench_cmd,
    cluster_cmd,
    dashboard_cmd,
    latency_cmd,
    quickstart_cmd,
    search_cmd,
    space_cmd,
    subnet_cmd,
    supernet_cmd,
)
from nas.cli._app import app, run

__all__ = ["app", "main", "run"]


def main() -> None:
    sys.exit(run())

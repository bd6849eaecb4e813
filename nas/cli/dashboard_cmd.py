"""``nas dashboard``: the Streamlit app over a store, read-only, on 127.0.0.1 by default."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import typer

from nas.cli._app import app, console
from nas.errors import NasError


def dashboard_script() -> Path:
    import dashboard

    return Path(dashboard.__file__).resolve().parent / "app.py"


def streamlit_command(db: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "dashboard.serve", "run", str(dashboard_script()),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "viewer",  # no Deploy button or developer menu: not our product's
            "--", "--db", db]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@app.command("dashboard")
def dashboard_cmd(
    db: str = typer.Option(None, "--db", help="Store URL or SQLite path (default $NAS_DB_URL or ./nas.db)."),
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it to the network."),
) -> None:
    """Browse experiments and Pareto fronts in a Streamlit app (it only reads the store)."""
    from nas.store import Store, resolve_url

    if not 1 <= port <= 65535:
        raise NasError(f"--port must be between 1 and 65535, got {port}")
    url = resolve_url(db)
    Store(url, readonly=True).close()  # a missing store, or one that is not ours, fails here in one line
    try:
        socket.getaddrinfo(host, port)
    except socket.gaierror:
        raise NasError(f"--host {host!r} is not an address of this machine") from None
    if not _port_free(host, port):
        raise NasError(f"port {port} on {host} is in use: pass another --port")
    console.print(f"dashboard on http://{host}:{port} (store {Store(url, readonly=True).display_url}, read-only); Ctrl-C stops it")
    try:
        code = subprocess.call(streamlit_command(url, host, port))
    except KeyboardInterrupt:
        code = 0
    if code not in (0, -2, 130):
        raise NasError(f"streamlit exited with status {code}")

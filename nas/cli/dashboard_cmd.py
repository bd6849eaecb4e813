"""``nas dashboard``: the Streamlit app over a store, read-only, on 127.0.0.1 by default."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import typer

from nas.cli._app import app, console, err_console
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


def _bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be served on ("" when it can): in use, or not this machine's address."""
    import errno

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: pass another --port"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"--host {host!r} is not an address of this machine"
            return f"cannot serve on {host}:{port}: {exc.strerror or exc}"
    return ""


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM when ``nas dashboard`` dies, even by SIGKILL."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _serve(command: list[str]) -> int:
    """Run Streamlit as a child and stop it with us: SIGTERM or SIGHUP to ``nas dashboard`` ends the
    child too, so no orphaned server keeps listening."""
    import signal

    child = subprocess.Popen(command, preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509

    def stop(signum, frame):  # noqa: ANN001 - signal handler signature
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    except (socket.gaierror, UnicodeError):
        raise NasError(f"--host {host!r} is not an address of this machine") from None
    problem = _bind_problem(host, port)
    if problem:
        raise NasError(problem)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"warning: --host {host} serves the dashboard beyond this machine, with no login: anyone who "
                          "reaches the port reads every experiment in the store", markup=False)
    console.print(f"dashboard on http://{host}:{port} (store {Store(url, readonly=True).display_url}, read-only); Ctrl-C stops it")
    code = _serve(streamlit_command(url, host, port))
    if code not in (0, -2, -15, 130):
        raise NasError(f"streamlit exited with status {code}")

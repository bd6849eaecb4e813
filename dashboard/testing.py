"""Running the dashboard from code, for tests and benchmarks: its server on a free port, and
Debian's Chromium headless as this machine's own probe runs it (the synthetic stores the pages
are load-tested on come from nas.store.synthetic: the dashboard itself never writes)."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager

# Debian's Chromium, headless, as the machine's own probe runs it: no sandbox as root and no
# background networking (the network is closed).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextmanager
def dashboard_server(db: str, timeout_s: float = 60):
    """``nas dashboard --db DB`` on a free port, up and healthy; yields its URL, stops it after."""
    import signal
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the dashboard did not start: " + proc.stdout.read1().decode()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

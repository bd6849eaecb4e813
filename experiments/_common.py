"""What every experiment shares: where results go, which machine ran it, markdown tables."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Where every experiment writes (and resumes from): experiments/results/, or $NAS_EXPERIMENT_RESULTS
# (the suite's smoke runs write to a scratch folder, never over the committed figures).
RESULTS = Path(os.environ.get("NAS_EXPERIMENT_RESULTS") or Path(__file__).resolve().parent / "results")
RESULTS.mkdir(parents=True, exist_ok=True)


def machine() -> str:
    """One line naming the machine, for every table."""
    from nas.latency.measure import cpu_model

    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = float("nan")
    return f"{cpu_model()}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.system()} {platform.release()}"


def commit() -> str:
    """The short commit, marked when tracked files that can change a figure differ from it (not
    the results, which a report writes as it goes, nor the README that quotes them)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent,
                              timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD") or "unknown"
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                   if not line.split(None, 1)[-1].startswith(("experiments/results/", "README.md"))]
        return head + (" with uncommitted changes" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(name: str, title: str, command: str, body: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(
        f"# {title}\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {machine()}; commit {commit()}; {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}\n\n"
        f"{body}\n"
    )
    return path


REPO = Path(__file__).resolve().parent.parent
DEFAULT_SUPERNET = REPO / "runs" / "hybrid-vision-fashion-mnist.ckpt"


def ensure_supernet(path: Path = DEFAULT_SUPERNET, space_name: str = "hybrid-vision") -> Path:
    """A shipped space's supernet trained on Fashion-MNIST with the defaults, trained here when
    missing (the same as `nas supernet train SPACE --dataset fashion-mnist`)."""
    if path.is_file():
        return path
    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    print(f"training {path} with the default recipe (minutes on 2 cores) ...", flush=True)
    space = load(space_name)
    train(space, load_dataset("fashion-mnist", space.task), TrainConfig(), path)
    return path

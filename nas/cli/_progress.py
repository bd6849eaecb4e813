"""Rich progress bars shared by the long-running commands; plain lines when the output is a log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nas.cli._app import console, err_console


@dataclass
class _Line:
    description: str
    total: float | None
    status: str = ""
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    printed_at: float = -1.0  # the share of the total at the last line
    printed_time: float = field(default_factory=time.monotonic)


class LineProgress:
    """What :class:`rich.progress.Progress` offers the commands (``add_task``, ``advance``,
    ``update``, ``console``), written as plain lines for a log: one when a task starts, one per
    tenth of its total or per ``every_s`` seconds, whichever comes first, and one when it ends.
    A bar redrawn into a file would leave only its truncated last frame."""

    def __init__(self, console: Console, every_s: float = 30.0) -> None:
        self.console = console
        self.every_s = every_s
        self.tasks: list[_Line] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, status: str = "", completed: float = 0,
                 **_: Any) -> int:
        self.tasks.append(_Line(description, total, status, completed))
        self._print(self.tasks[-1])
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, advance: float = 0, status: str | None = None, completed: float | None = None,
               **_: Any) -> None:
        line = self.tasks[task]
        line.completed = (line.completed if completed is None else completed) + advance
        if status is not None:
            line.status = status
        now = time.monotonic()
        share = line.completed / line.total if line.total else 0.0
        if share >= 1.0 and line.printed_at < 1.0 or share - line.printed_at >= 0.1 or now - line.printed_time >= self.every_s:
            self._print(line)

    def _print(self, line: _Line) -> None:
        now = time.monotonic()
        count = f"{line.completed:.0f}/{line.total:.0f}" if line.total else f"{line.completed:.0f}"
        status = f" {line.status}" if line.status else ""
        self.console.print(f"{line.description}: {count}{status} ({now - line.started:.0f} s)", markup=False,
                           highlight=False, soft_wrap=True)
        line.printed_at = line.completed / line.total if line.total else 0.0
        line.printed_time = now


class _LazyProgress(Progress):
    """A Rich bar that starts drawing at its first task: a command that fails before any work
    (bad input found inside the ``with``) prints its one error line and no empty bar."""

    def __enter__(self) -> _LazyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live.is_started:
            self.stop()

    def add_task(self, *args: Any, **kwargs: Any) -> Any:
        if not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


def progress_bar(transient: bool = False, to_stderr: bool = False) -> Progress | LineProgress:
    """A bar with description, count, status, elapsed and eta; on stderr when stdout carries data.
    When that stream is not a terminal (a log, a pipe), plain lines at intervals instead."""
    target = err_console if to_stderr else console
    if not target.is_terminal:
        return LineProgress(target)
    return _LazyProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=target,
        transient=transient,
    )


@contextmanager
def step_bars(to_stderr: bool = False) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """A ``progress(description, total) -> advance`` factory (what builds, validations and kits
    report through) drawing one Rich bar per stage; on stderr when stdout carries data."""
    bar = progress_bar(to_stderr=to_stderr)
    with bar:
        def factory(description: str, total: int) -> Callable[[], None]:
            task = bar.add_task(description, total=total, status="")
            return lambda: bar.advance(task)

        yield factory


class TrainBar:
    """Adapts :class:`nas.supernet.train.TrainProgress` events to a Rich bar (or log lines)."""

    def __init__(self, progress: Progress | LineProgress) -> None:
        self.progress = progress
        self.task: Any = None

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, status="")

    def steps_done(self, steps: int, loss: float, accuracy: float) -> None:
        self.progress.update(self.task, advance=steps, status=f"loss {loss:.3f} acc(largest) {accuracy:.3f}")

    def epoch_done(self, record: dict[str, Any]) -> None:
        if "val_bpb_largest" in record:  # a language model: bits per byte first
            status = (f"loss {record['loss']:.3f} val bpb largest {record['val_bpb_largest']:.3f} "
                      f"smallest {record['val_bpb_smallest']:.3f}")
        else:
            status = (f"loss {record['loss']:.3f} val largest {record['val_acc_largest']:.3f} "
                      f"smallest {record['val_acc_smallest']:.3f}")
        self.progress.update(self.task, status=status)
        if not self.progress.console.is_terminal:  # a log file gets a line per epoch, not only the last bar
            self.progress.console.print(f"epoch {record['epoch']}: {status} ({record['seconds']:.0f} s)", markup=False)

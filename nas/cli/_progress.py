"""Rich progress bars shared by the long-running commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nas.cli._app import console, err_console


def progress_bar(transient: bool = False, to_stderr: bool = False) -> Progress:
    """A bar with description, count, status, elapsed and eta; on stderr when stdout carries data."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console if to_stderr else console,
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
    """Adapts :class:`nas.supernet.train.TrainProgress` events to a Rich bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, status="")

    def steps_done(self, steps: int, loss: float, accuracy: float) -> None:
        self.progress.update(self.task, advance=steps, status=f"loss {loss:.3f} acc(largest) {accuracy:.3f}")

    def epoch_done(self, record: dict[str, Any]) -> None:
        status = (f"loss {record['loss']:.3f} val largest {record['val_acc_largest']:.3f} "
                  f"smallest {record['val_acc_smallest']:.3f}")
        self.progress.update(self.task, status=status)
        if not self.progress.console.is_terminal:  # a log file gets a line per epoch, not only the last bar
            self.progress.console.print(f"epoch {record['epoch']}: {status} ({record['seconds']:.0f} s)")

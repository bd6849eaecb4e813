"""The Typer applications and the one place where errors become a line and an exit status."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.console import Console
from typer import Abort
from typer import Exit as ClickExit

from nas.errors import NasError

try:  # recent Typer vendors Click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - Typer that depends on Click
    from click.exceptions import ClickException, NoArgsIsHelpError

# No emoji codes (a metric named "table:ok" must not print as an emoji) and no markup guessing.
console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def make_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


app = make_app("Hardware-aware neural architecture search: spaces, supernets, latency models, search, export.")
space_app = make_app("Inspect search spaces.")
supernet_app = make_app("Train and inspect weight-sharing supernets.")
subnet_app = make_app("Work with single subnets of a trained supernet.")
latency_app = make_app("Build, validate and use latency models for cpu, gpu and MCU targets.")
cluster_app = make_app("Start, stop and use Ray clusters (wraps Ray's cluster launcher).")
app.add_typer(space_app, name="space")
app.add_typer(supernet_app, name="supernet")
app.add_typer(subnet_app, name="subnet")
app.add_typer(latency_app, name="latency")
app.add_typer(cluster_app, name="cluster")


def fail(message: str) -> None:
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that what is running ends as after Ctrl-C (a search
    marks its experiment interrupted, temporary files are removed). Not a KeyboardInterrupt:
    Typer would turn that into a silent exit status 130."""


def _terminate(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
    raise Terminated


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status: 0 ok, 2 bad input, 1 an internal error, 130
    interrupted (143 terminated by SIGTERM)."""
    import signal
    import threading

    command = typer.main.get_command(app)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    else:
        previous = None
    try:
        return _run(command, argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(command, argv: list[str] | None) -> int:  # noqa: ANN001 - a Click command
    try:
        result = command.main(list(sys.argv[1:] if argv is None else argv), prog_name="nas", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        console.print(exc.format_message(), markup=False)
        return 0
    except ClickException as exc:  # usage errors: unknown option, bad value, missing argument
        fail(" ".join(exc.format_message().split()))
        return 2
    except ClickExit as exc:
        return exc.exit_code
    except Terminated:
        fail("terminated")
        return 143
    except NasError as exc:
        fail(" ".join(str(exc).split()))
        return 2
    except (KeyboardInterrupt, Abort):
        fail("interrupted")
        return 130
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("NAS_DEBUG"):
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc} (set NAS_DEBUG=1 for the traceback)")
        return 1
    if result == 130:  # Typer turns Ctrl-C into a silent exit status 130: say what it was
        fail("interrupted")
    return result if isinstance(result, int) else 0

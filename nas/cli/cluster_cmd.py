"""``nas cluster up|down|submit CONFIG``: thin wrappers of Ray's cluster launcher (``ray up`` ...).

The config is a Ray cluster-launcher YAML (examples in ``experiments/cluster/``). ``submit``
runs a ``nas`` command on the head node with ``--address auto`` added, so a search uses the
whole cluster. Arguments are passed as a list to ``ray`` (no local shell); the remote command
string is built with ``shlex.join`` so every argument stays one argument.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import typer
import yaml

from nas.cli._app import cluster_app, console
from nas.errors import NasError


def _nodes(data: object, budget: int) -> int:
    """How many values ``data`` holds when every alias is expanded, counting up to ``budget`` only."""
    count, stack = 0, [data]
    while stack and count < budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _check_config(path: Path) -> dict:
    if not path.is_file():
        raise NasError(f"cluster config {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise NasError(f"{path}{':' + str(mark.line + 1) if mark else ''}: YAML syntax error") from None
    if not isinstance(data, dict):
        raise NasError(f"{path}: a Ray cluster config must be a YAML mapping")
    if _nodes(data, 100_000) >= 100_000:  # aliases may share nodes (Ray's configs use them), not multiply them
        raise NasError(f"{path}: the config expands to more than 100,000 values (nested YAML aliases?): not a cluster config")
    for key in ("cluster_name", "provider"):
        if key not in data:
            raise NasError(f"{path}: field {key!r} is required by Ray's cluster launcher")
    if not isinstance(data["provider"], dict) or "type" not in data["provider"]:
        raise NasError(f"{path}: field 'provider.type' is required (local, aws, gcp, azure, ...)")
    return data


def _ray() -> str:
    candidate = Path(sys.executable).with_name("ray")
    found = str(candidate) if candidate.exists() else shutil.which("ray")
    if not found:
        raise NasError("the 'ray' command is missing: install ray[default]")
    return found


def _run(args: list[str], dry_run: bool) -> None:
    console.print(" ".join(shlex.quote(a) for a in args))
    if dry_run:
        return
    code = subprocess.call(args)
    if code:
        raise NasError(f"'{' '.join(args[:2])}' failed with exit status {code}")


@cluster_app.command("up")
def up_cmd(config: Path = typer.Argument(..., metavar="CONFIG"),
           dry_run: bool = typer.Option(False, "--dry-run", help="Print the ray command instead of running it.")) -> None:
    """Start (or update) the cluster described by CONFIG: ``ray up CONFIG -y``."""
    _check_config(config)
    _run([_ray(), "up", str(config), "-y"], dry_run)


@cluster_app.command("down")
def down_cmd(config: Path = typer.Argument(..., metavar="CONFIG"),
             dry_run: bool = typer.Option(False, "--dry-run")) -> None:
    """Stop the cluster: ``ray down CONFIG -y``."""
    _check_config(config)
    _run([_ray(), "down", str(config), "-y"], dry_run)


@cluster_app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit_cmd(ctx: typer.Context, config: Path = typer.Argument(..., metavar="CONFIG"),
               dry_run: bool = typer.Option(False, "--dry-run")) -> None:
    """Run a nas command on the head node against the whole cluster, for example:

    nas cluster submit cluster.yaml -- search --supernet /data/hv.ckpt --workers 16 --budget 2000
    """
    _check_config(config)
    args = list(ctx.args)
    if not args:
        raise NasError("nothing to submit: give a nas command after the config, for example: -- search --supernet CKPT")
    if args[0] == "nas":
        args = args[1:]
    if args and args[0] == "search" and "--address" not in args:
        args += ["--address", "auto"]
    _run([_ray(), "exec", str(config), shlex.join(["nas", *args])], dry_run)

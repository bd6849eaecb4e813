"""``nas space show|sample|check|kinds``."""

from __future__ import annotations

import json
import random

import typer
from rich.table import Table

from nas.cli._app import console, space_app
from nas.errors import NasError


@space_app.command("show")
def show(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the choices as JSON."),
) -> None:
    """The space's choices and its number of subnets."""
    from nas.space import load

    s = load(space)
    rows = s.describe()
    if as_json:
        console.print_json(json.dumps({"name": s.name, "kind": s.kind, "size": s.size(), "fields": dict(rows)}))
        return
    table = Table(title=f"{s.name}: {s.description}" if s.description else s.name, show_header=True)
    table.add_column("field")
    table.add_column("allowed values")
    for field, values in rows:
        table.add_row(field, values)
    console.print(table)


@space_app.command("sample")
def sample(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    n: int = typer.Option(5, "-n", help="How many distinct archs."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object a line instead of the arch string."),
) -> None:
    """Print ``n`` distinct random archs, one canonical string a line."""
    from nas.space import load

    if n < 1:
        raise NasError(f"-n must be at least 1, got {n}")
    s = load(space)
    for arch in s.sample_unique(random.Random(seed), n):
        print(json.dumps(arch.to_json()) if as_json else arch.to_str())


@space_app.command("check")
def check(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    arch: str = typer.Argument(..., help="An arch string, JSON, a .json file, 'largest' or 'smallest'."),
) -> None:
    """Validate an arch against a space; prints its canonical string."""
    from nas.space import load

    print(load(space).resolve(arch).to_str())


@space_app.command("kinds")
def kinds_cmd() -> None:
    """The block kinds a space can use: their YAML key, arch-string token and fields."""
    from nas.space import describe_kinds

    table = Table(title="block kinds (nas/space/_kinds.py; modules in nas/blocks/)")
    for column in ("kind", "role", "token", "fields", "description"):
        table.add_column(column)
    for row in describe_kinds():
        table.add_row(*(str(row[c]) for c in ("kind", "role", "token", "fields", "description")))
    console.print(table)

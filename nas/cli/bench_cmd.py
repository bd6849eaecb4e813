"""``nas bench``: strategies on a tabular benchmark, scored by the share of the true front's hypervolume."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nas.cli._app import app, console
from nas.errors import NasError


@app.command("bench")
def bench_cmd(
    benchmark: str = typer.Argument(..., help="graph:DATASET (NAS-Bench-Graph: arxiv, citeseer, computers, cora, cs, "
                                    "photo, physics, proteins, pubmed) or a CSV of arch + metric columns."),
    strategy: list[str] = typer.Option(["surrogate"], "--strategy", help="Strategies to compare (repeatable)."),
    seeds: int = typer.Option(10, "--seeds", help="Seeds per strategy."),
    budget: int = typer.Option(300, "--budget", help="Evaluations per run."),
    workers: int = typer.Option(0, "--workers", help="0 evaluates in this process; more runs Ray workers."),
    space: str = typer.Option(None, "--space", help="For a CSV: its plain-choice space (YAML)."),
    objective: list[str] = typer.Option([], "--objective", help="For a CSV: NAME:max or NAME:min (repeatable)."),
    db: str = typer.Option(None, "--db", help="Store the runs here (default: a temporary SQLite file)."),
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for the table (.md) and the plot (.png)."),
    reference: str = typer.Option(None, "--reference", help="Judge at this reference, NAME=VALUE or NAME=pNN (the "
                                  "table's NNth percentile), comma-separated; for example accuracy=p75 for the top "
                                  "quarter's region. Default: the table's 10%-worst value of each objective."),
    cheap: list[str] = typer.Option([], "--cheap", help="A metric the search knows before evaluating, as a latency "
                                    "predictor gives it (repeatable; for example latency_ms)."),
) -> None:
    """Run strategies on a tabular benchmark through the normal search path; report the share of the
    true Pareto front's hypervolume after 25, 50, 100, 200 and 300 evaluations (mean ± std over seeds)."""
    from nas.bench import BenchConfig, load_benchmark, plot, run_bench
    from nas.cli._progress import progress_bar

    if out.exists() and not out.is_dir():  # before the run: its work would be lost at the end
        raise NasError(f"--out {str(out)!r} is a file; give a folder for the table and the plot")
    if not out.exists() and not out.parent.is_dir():
        raise NasError(f"--out folder {str(out.parent)!r} does not exist")
    bench = load_benchmark(benchmark, space, objective)
    if reference:
        from nas.objectives import reference_pairs

        bench = bench.at_reference(dict(reference_pairs(reference, "VALUE|pNN")))
    config = BenchConfig(strategies=tuple(strategy), seeds=seeds, budget=budget, workers=workers, db=db,
                         cheap=tuple(cheap))
    with progress_bar() as bar:
        task = bar.add_task(f"{bench.name}: {len(strategy)} strategies x {seeds} seeds", total=len(strategy) * seeds,
                            status="")
        result = run_bench(bench, config, progress=lambda line: bar.update(task, advance=1, status=line[-60:]))
    table = Table(title=f"{bench.name}: share of the true front's hypervolume ({len(bench.table):,} archs, "
                        f"reference {', '.join(f'{o.name} {r:.4g}' for o, r in zip(bench.objectives, bench.reference, strict=True))})")
    for column in result.header():
        table.add_column(column, justify="right")
    for row in result.rows():
        table.add_row(*row)
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    stem = bench.name.replace(":", "-").replace("@", "-").replace("=", "").replace(",", "-") + ("-cheap" if cheap else "")
    (out / f"{stem}.md").write_text(_markdown(result))
    console.print(f"table: {out / f'{stem}.md'}; plot: {plot([result], out / f'{stem}.png')}")


def _markdown(result) -> str:
    lines = ["| " + " | ".join(result.header()) + " |", "|" + " --- |" * len(result.header())]
    lines += ["| " + " | ".join(row) + " |" for row in result.rows()]
    return f"# {result.benchmark}\n\n" + "\n".join(lines) + "\n"

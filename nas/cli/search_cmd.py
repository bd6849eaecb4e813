"""``nas search`` and ``nas results``."""

from __future__ import annotations

import csv
import io
import json
import sys

import typer
from rich.table import Table

from nas.cli._app import app, console
from nas.errors import NasError


class _Bar:
    """Rich progress for a search: evaluations, best values, hypervolume."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.task = None

    def started(self, experiment: str, done: int, budget: int) -> None:
        console.print(f"experiment {experiment}" + (f" (resuming at {done}/{budget})" if done else ""))
        self.task = self.progress.add_task("evaluations", total=budget, completed=done, status="")

    def result(self, done: int, budget: int, best: dict, hypervolume: float) -> None:
        parts = [f"{k} {_fmt(v)}" for k, v in best.items()]
        self.progress.update(self.task, completed=done, status=f"best {' '.join(parts)}  HV {hypervolume:.4g}")


@app.command("search")
def search_cmd(
    space: str = typer.Argument(None, help="The space (optional: the checkpoint names it; given, it must match)."),
    supernet: str = typer.Option(..., "--supernet", help="A checkpoint from nas supernet train."),
    target: list[str] = typer.Option(["cpu"], "--target", help="Latency target(s): cpu, gpu, mcu-m7, mcu-m4 or an imported one."),
    strategy: str = typer.Option("surrogate", "--strategy", help="surrogate (the default: models what is not known before evaluation), random, evolution, nsga2, tpe or gp."),
    budget: int = typer.Option(100, "--budget", help="Evaluations to store (in total, when resuming)."),
    workers: int = typer.Option(2, "--workers", help="Ray workers (each holds the supernet and data once); 0 evaluates here, without Ray."),
    constraint: list[str] = typer.Option([], "--constraint", help="For example cpu_ms<=2, sram_kb<=320, flash_kb<=1024."),
    db: str = typer.Option(None, "--db", help="Store URL or SQLite path (default $NAS_DB_URL or ./nas.db)."),
    experiment: str = typer.Option(None, "--experiment", help="Experiment name (default SPACE-STRATEGY-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue --experiment from the store."),
    address: str = typer.Option(None, "--address", help="Join an existing Ray cluster (ray://... or HOST:PORT)."),
    seed: int = typer.Option(0, "--seed"),
    val_examples: int = typer.Option(None, "--val-examples", help="Score accuracy on the first N validation examples."),
    device: str = typer.Option("cpu", "--device", help="Where workers score accuracy: cpu, auto, cuda or cuda:N "
                               "(on a GPU the workers share it, each asking Ray for a fraction)."),
    int8: bool = typer.Option(False, "--int8", help="Also score every subnet quantised to int8 (int8_accuracy), "
                              "for MCU targets: usable in --objective and --constraint."),
    finetune_steps: int = typer.Option(0, "--finetune-steps", help="Fine-tune each subnet this many steps (batches "
                                       "of 128 training examples) before scoring its accuracy: slower, ranks closer to "
                                       "training from scratch (see README, The supernet)."),
    accuracy: str = typer.Option("supernet", "--accuracy", help="supernet: inherited weights; calibrated: the "
                                 "model nas supernet calibrate fitted on a few stand-alone trainings (the file beside "
                                 "the checkpoint, or calibrated:PATH); the supernet's own is kept as supernet_accuracy."),
    objective: list[str] = typer.Option([], "--objective", help="NAME:max|min (repeatable), instead of accuracy "
                                        "and each target's latency; for example int8_accuracy:max --objective mcu-m7_ms:min."),
    reference: str = typer.Option(None, "--reference", help="The hypervolume reference, NAME=VALUE,... (for example "
                                  "accuracy=0.85,cpu_ms=2): what counts is better than it in every objective. Left "
                                  "out, an objective's is the 10%-worst value of the first 20 results (or a "
                                  "constraint's bound on it), stored with the experiment."),
) -> None:
    """Multi-objective search (accuracy up, latency down) over a supernet's subnets on Ray workers. A
    language model (hybrid-lm) is searched for bits per byte down and each target's per-token decode
    latency down (bpb, cpu_decode_ms), with cpu_prefill_ms and state_kb to constrain."""
    from nas.cli._progress import progress_bar
    from nas.runner import SearchConfig, search

    config = SearchConfig(strategy=strategy, budget=budget, targets=tuple(target), constraints=tuple(constraint),
                          workers=workers, experiment=experiment, db=db, resume=resume, address=address, seed=seed,
                          supernet=supernet, space=space, val_examples=val_examples, device=device, int8=int8,
                          finetune_steps=finetune_steps, accuracy=accuracy, objectives=tuple(objective),
                          reference=reference)
    with progress_bar() as progress:
        result = search(config, progress=_Bar(progress))
    console.print(f"{result.evaluated} evaluations this run ({result.total} stored, {result.screened} screened out by "
                  f"constraints, {result.failed} failed); hypervolume {result.hypervolume:.4g}; "
                  f"{result.wall_s:.0f} s, workers busy {100 * (1 - result.overhead_share):.0f}% of the time")
    _front_table(result.front, result.objectives, title=f"Pareto front of {result.experiment}")
    console.print(f"nas results {result.experiment}" + (f" --db {db}" if db else ""))


def _front_table(rows: list[dict], objective_columns: list[str], title: str) -> None:
    """The metrics as a table (the objectives first), then each arch whole on its own line (to copy
    into nas subnet export)."""
    table = Table(title=title)
    extra = ("accuracy", "params", "sram_kb", "flash_kb") if "bpb" not in objective_columns else \
        ("accuracy", "cpu_prefill_ms", "state_kb", "params")
    columns = [*objective_columns, *(c for c in extra if c not in objective_columns and any(c in r for r in rows))]
    for c in ["#", *columns]:
        table.add_column(c, justify="right")
    for i, row in enumerate(rows):
        table.add_row(str(i), *(_fmt(row.get(c)) for c in columns))
    console.print(table)
    for i, row in enumerate(rows):
        console.print(f"#{i} {row['arch']}", markup=False)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return "-" if value is None else str(value)


@app.command("results")
def results_cmd(
    experiment: str = typer.Argument(..., help="The experiment's name."),
    db: str = typer.Option(None, "--db", help="Store URL or SQLite path (default $NAS_DB_URL or ./nas.db)."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    all_rows: bool = typer.Option(False, "--all", help="Every evaluation after the Pareto front, not only the front."),
) -> None:
    """An experiment's Pareto front (feasible points only) first, then, with --all, every evaluation."""
    from nas.pareto import experiment_hypervolume, front_rows
    from nas.store import Store

    if fmt not in ("table", "csv", "json"):
        raise NasError(f"--format must be table, csv or json, got {fmt!r}")
    store = Store(db, readonly=True)
    exp = store.experiment(experiment)
    rows = store.evaluation_rows(experiment)
    front = [dict(r) for r in front_rows(rows, exp.objectives)]
    front_archs = {r["arch"] for r in front}
    for r in rows:
        r["pareto"] = r["arch"] in front_archs
    ordered = front + ([r for r in rows if not r["pareto"]] if all_rows else [])
    hypervolume, reference = experiment_hypervolume(rows, exp.objectives, exp.reference)
    metric_keys = [o["name"] for o in exp.objectives] + [k for k in ("params", "macs", "sram_kb", "flash_kb")
                                                         if any(k in r for r in rows)]
    if fmt == "json":
        out = {"experiment": exp.name, "space": exp.space_name, "strategy": exp.strategy, "status": exp.status,
               "evaluations": exp.evaluations, "budget": exp.budget, "objectives": list(exp.objectives),
               "constraints": list(exp.constraints), "hypervolume": hypervolume, "reference": reference,
               "rows": [{"arch": r["arch"], "trial": r["trial"], "pareto": r.get("pareto", True),
                         "status": r["status"], "feasible": r["feasible"], **{k: r.get(k) for k in metric_keys},
                         **({"error": r["error"]} if r.get("error") else {})} for r in ordered]}
        print(json.dumps(out, indent=1, default=str))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["pareto", "trial", *metric_keys, "feasible", "status", "arch", "error"])
        for r in ordered:
            writer.writerow([int(r.get("pareto", True)), r["trial"], *(r.get(k) for k in metric_keys), int(r["feasible"]),
                             r["status"], r["arch"], r.get("error") or ""])
        sys.stdout.write(buf.getvalue())
        return
    console.print(f"{exp.name}: space {exp.space_name}, strategy {exp.strategy}, {exp.status}, "
                  f"{exp.evaluations}/{exp.budget} evaluations, constraints: {', '.join(exp.constraints) or 'none'}; "
                  f"hypervolume {hypervolume:.4g} (reference {', '.join(f'{k} {v:.4g}' for k, v in reference.items()) or 'none yet'})",
                  markup=False)
    names = [o["name"] for o in exp.objectives]
    _front_table(front, names, title=f"Pareto front ({len(front)} points)")
    if all_rows:
        others = [r for r in rows if not r["pareto"] and r["status"] == "ok"]
        _front_table(others, names, title="other evaluations")
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            console.print(f"failed evaluations ({len(failed)}):")
            for r in failed:
                console.print(f"  trial {r['trial']}: {r.get('error') or 'no reason was stored'}  {r['arch']}",
                              markup=False)
    if front:
        console.print(f"export one: nas subnet export {exp.config.get('supernet') or 'CKPT'} '{front[0]['arch']}' -o model.onnx")

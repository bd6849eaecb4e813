"""``nas quickstart``: the whole flow on embedded defaults, in a few minutes, in its own folder."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.table import Table

from nas.cli._app import app, console
from nas.errors import NasError


class _Timer:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, name: str):
        console.rule(name)
        started = time.time()
        yield
        self.stages.append((name, time.time() - started))


def _dataset() -> str:
    from nas.data import load_dataset

    try:
        load_dataset("fashion-mnist")
        return "fashion-mnist"
    except NasError as exc:
        console.print(f"[yellow]{exc}[/yellow]\nusing scikit-learn's digits instead")
        return "digits"


@app.command("quickstart")
def quickstart_cmd(
    out: Path = typer.Option(None, "--out", help="Folder for this run (default runs/quickstart-TIME)."),
    steps: int = typer.Option(300, "--steps", help="Supernet training steps (batches of 128)."),
    budget: int = typer.Option(40, "--budget", help="Search evaluations."),
    workers: int = typer.Option(2, "--workers"),
    seed: int = typer.Option(0, "--seed"),
    latency_archs: int = typer.Option(40, "--latency-archs", help="Whole subnets the cpu latency build measures."),
    latency_repeats: int = typer.Option(50, "--latency-repeats", help="Timed runs per graph in the cpu latency "
                                        "build (fewer: a quicker, rougher model)."),
) -> None:
    """Train a supernet, build the CPU latency model, search on Ray, export the best subnet, in minutes."""
    from nas.cli._progress import TrainBar, progress_bar, step_bars
    from nas.cli.search_cmd import _Bar, _front_table
    from nas.data import load_dataset
    from nas.export import export_subnet, record_export
    from nas.latency import build_profile, load_predictor, save_profile
    from nas.latency.measure import MeasureConfig
    from nas.runner import SearchConfig, search
    from nas.space import load
    from nas.store import Store
    from nas.supernet.train import TrainConfig, train

    if steps < 1 or budget < 1 or workers < 1:
        raise NasError("--steps, --budget and --workers must be at least 1")
    if latency_archs < 5 or latency_repeats < 5:
        raise NasError("--latency-archs and --latency-repeats must be at least 5")
    out = out or Path("runs") / f"quickstart-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise NasError(f"{out} is not empty: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    profiles = (out / "latency_models").resolve()  # this run's own profile, used before any other
    db = str((out / "nas.db").resolve())
    ckpt = out / "supernet.ckpt"
    timer = _Timer()
    space = load("hybrid-vision")
    started = time.time()

    with timer.stage("1/5 data"):
        name = _dataset()
        data = load_dataset(name, space.task, seed=seed)
        console.print(data.summary())
    with timer.stage("2/5 supernet training"):
        limit = min(len(data.x_train), steps * 128)
        console.print(f"sandwich rule with in-place distillation, {steps} steps on {limit:,} examples")
        with progress_bar() as bar:
            info = train(space, data, TrainConfig(epochs=1, limit=limit, seed=seed), ckpt, progress=TrainBar(bar))
        console.print(f"test accuracy: largest {info.final['test_acc_largest']:.4f}, "
                      f"smallest {info.final['test_acc_smallest']:.4f}")
    with timer.stage("3/5 cpu latency model"):
        with step_bars() as progress:
            profile = build_profile(space, "cpu", MeasureConfig(repeats=latency_repeats), n_archs=latency_archs,
                                    progress=progress, input_shape=tuple(data.input_shape))
        save_profile(profile, profiles)
        predictor = load_predictor("cpu", space, tuple(data.input_shape), roots=[profiles])
        fastest, slowest = predictor.predict([space.smallest(), space.largest()])
        latency_budget = round(float(fastest + 0.4 * (slowest - fastest)), 3)
        console.print(f"{profile.meta['device']}: subnets take {fastest:.3f} to {slowest:.3f} ms; "
                      f"latency budget for the search: cpu_ms<={latency_budget}")
    with timer.stage("4/5 search"):
        config = SearchConfig(strategy="surrogate", budget=budget, targets=("cpu",), constraints=(f"cpu_ms<={latency_budget}",),
                              workers=workers, db=db, experiment="quickstart", supernet=str(ckpt.resolve()),
                              seed=seed, val_examples=2000, profiles=str(profiles))
        with progress_bar() as bar:
            result = search(config, progress=_Bar(bar))
        _front_table(result.front, ["cpu_ms"], title=f"Pareto front under cpu_ms<={latency_budget} "
                                                     f"({result.total} evaluations)")
    with timer.stage("5/5 export"):
        if not result.front:
            raise NasError("the search found no subnet within the latency budget")
        best = result.front[0]
        exported = export_subnet(ckpt, best["arch"], out / "best.onnx")
        record_export(Store(db), exported, "quickstart")

    table = Table(title="where the time went")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in timer.stages:
        table.add_row(stage, f"{seconds:.0f}")
    table.add_row("total", f"{time.time() - started:.0f}")
    console.print(table)
    console.print(f"best subnet under {latency_budget} ms: accuracy {best['accuracy']:.4f}, "
                  f"cpu {best['cpu_ms']:.3f} ms, {best['arch']}")
    console.print(f"ONNX: {exported.path} (onnxruntime vs PyTorch max abs error {exported.max_abs_error:.2e})")
    console.print(f"open the dashboard: nas dashboard --db {db}")

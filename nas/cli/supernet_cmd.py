"""``nas supernet train``, ``nas supernet info`` and ``nas supernet calibrate``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nas.cli._app import console, supernet_app
from nas.errors import NasError
from nas.supernet.recipe import TrainConfig

_D = TrainConfig()  # the defaults the help shows (torch-free, as the recipe module is)


@supernet_app.command("train")
def train_cmd(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    dataset: str = typer.Option(None, "--dataset", help="digits, fashion-mnist, gunpoint, ucr:NAME, a .npz file or module:function; for a text space gcide or text:PATH (default: the space's)."),
    epochs: int = typer.Option(None, "--epochs", help=f"Total epochs [default: {_D.epochs}; with --resume: the checkpoint's, or continue up to this many]."),
    out: Path = typer.Option(None, "--out", help="Checkpoint path (default runs/SPACE-DATASET.ckpt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint at --out, with its own recipe for every option not given."),
    batch_size: int = typer.Option(None, "--batch-size", help=f"[default: {_D.batch_size}]"),
    lr: float = typer.Option(None, "--lr", help=f"Peak learning rate [default: {_D.lr:g}]."),
    random_subnets: int = typer.Option(None, "--random-subnets", help=f"Random subnets per step besides the largest and smallest [default: {_D.random_subnets}]."),
    extremes: str = typer.Option(None, "--extremes", help="per-kind: the largest and smallest subnet of one block kind per step, in turn; global: the space's costliest and cheapest every step; largest: per-kind largest only, no smallest; none: random subnets only, on the labels (needs --no-distill) [default: " + _D.extremes + "]."),
    distill: bool = typer.Option(None, "--distill/--no-distill", help="In-place distillation from the largest subnet, or the labels only for every subnet [default: " + ("--distill" if _D.distill else "--no-distill") + "]."),
    distill_weight: float = typer.Option(None, "--distill-weight", help=f"Final weight of distillation vs labels for the smaller subnets [default: {_D.distill_weight:g}]."),
    limit: int = typer.Option(None, "--limit", help="Use at most this many training examples."),
    seed: int = typer.Option(None, "--seed", help=f"[default: {_D.seed}]"),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    precision: str = typer.Option(None, "--precision", help=f"fp32, or bf16 (autocast on CUDA) [default: {_D.precision}]."),
    workers: int = typer.Option(0, "--workers", help="Data-parallel Ray Train workers (0: this process only)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per worker (0: CPUs over gloo)."),
    address: str = typer.Option(None, "--address", help="With --workers: join the Ray cluster at this address."),
) -> None:
    """Train a weight-sharing supernet with the sandwich rule and in-place distillation, on this
    process's device or on several workers (GPUs, nodes) with Ray Train. A space's YAML may set its
    own defaults (``recipe:``; hybrid-lm does), which an option given here overrides."""
    from nas.cli._progress import TrainBar, progress_bar
    from nas.data import load_dataset
    from nas.space import NetSpace, load
    from nas.supernet.devices import resolve_device
    from nas.supernet.recipe import resumed_config
    from nas.supernet.train import train

    s = load(space)
    if not isinstance(s, NetSpace):
        raise NasError(f"space {s.name!r} is a plain-choice space: it has no supernet to train")
    given = dict(epochs=epochs, batch_size=batch_size, lr=lr, random_subnets=random_subnets, extremes=extremes,
                 distill=distill, distill_weight=distill_weight, limit=limit, seed=seed, precision=precision)
    if workers < 0:
        raise NasError(f"--workers must be 0 (this process) or more, got {workers}")
    if address and not workers:
        raise NasError("--address needs --workers N (the Ray Train workers to run there)")
    dataset = dataset or s.task.dataset
    out = out or Path("runs") / f"{s.name}-{dataset.replace(':', '-').replace('/', '_')}.ckpt"
    if resume and not out.is_file():
        raise NasError(f"--resume: checkpoint {str(out)!r} does not exist")
    if not resume and out.exists():
        raise NasError(f"{str(out)!r} already exists: pass --resume to continue it, or choose another --out")
    if resume:
        from nas.supernet import checkpoint

        saved = checkpoint.load(out)[1]
        config = resumed_config(saved.train_config, **given)
        changed = [f"{k}={v}" for k, v in given.items() if v is not None and v != saved.train_config.get(k)]
        console.print(f"resuming {out} at epoch {saved.epoch} of {config.epochs} with its own recipe"
                      + (f", except {', '.join(changed)}" if changed else ""))
    else:
        config = TrainConfig(**(s.recipe | {k: v for k, v in given.items() if v is not None}))
    data = load_dataset(dataset, s.task, seed=config.seed)
    if workers:
        from nas.supernet.distributed import train_distributed

        console.print(f"space {s.name} ({s.size():.2e} subnets), {data.limit(config.limit).summary()}; "
                      f"{workers} Ray Train workers, {gpus_per_worker:g} GPU each")
        if resume:
            from nas.supernet.train import check_resume

            check_resume(out, s, data)
        info = train_distributed(s, dataset, config, out, workers, gpus_per_worker, address, resume)
    else:
        where = resolve_device(device)
        console.print(f"space {s.name} ({s.size():.2e} subnets), {data.limit(config.limit).summary()}, on {where}")
        with progress_bar() as progress:
            info = train(s, data, config, out, resume=resume, progress=TrainBar(progress), device=where)
    text = "test_bpb_largest" in info.final
    table = Table(title="test bits per byte and next-byte accuracy" if text else "test accuracy")
    table.add_column("subnet")
    table.add_column("arch")
    if text:
        table.add_column("test bpb", justify="right")
    table.add_column("test acc", justify="right")
    for which in ("largest", "smallest"):
        bpb = [f"{info.final[f'test_bpb_{which}']:.4f}"] if text else []
        table.add_row(which, info.final[which], *bpb, f"{info.final[f'test_acc_{which}']:.4f}")
    console.print(table)
    console.print(f"checkpoint: {out}")


@supernet_app.command("info")
def info_cmd(checkpoint_path: Path = typer.Argument(..., metavar="CKPT")) -> None:
    """What a checkpoint holds: space, dataset, epochs, history and final accuracies."""
    from nas.supernet import checkpoint

    net, info = checkpoint.load(checkpoint_path)
    console.print(f"space {info.space.name}, dataset {info.dataset}, input {list(info.input_shape)}, "
                  f"{info.num_classes} classes, {info.epoch} epochs, {sum(p.numel() for p in net.parameters()):,} parameters")
    if info.history:
        table = Table()
        keys = list(dict.fromkeys(k for row in info.history for k in row))  # epochs may add fields (restarts)
        for key in keys:
            table.add_column(key)
        for row in info.history:
            table.add_row(*(str(row.get(k, "-")) for k in keys))
        console.print(table)
    for key, value in info.final.items():
        console.print(f"{key}: {value}")


@supernet_app.command("calibrate")
def calibrate_cmd(
    checkpoint_path: Path = typer.Argument(..., metavar="CKPT", help="A checkpoint from nas supernet train."),
    archs: int = typer.Option(10, "--archs", help="Archs to train from scratch, spread over the space's sizes and block kinds."),
    steps: int = typer.Option(1600, "--steps", help="Stand-alone training steps per arch, of 128 examples (the ranking settles by 1,600 on Fashion-MNIST) or of the recipe's batch of windows for a language model."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(None, "--out", help="Calibration file (default CKPT's name with .calibration.json); an unfinished one resumes."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    limit: int = typer.Option(None, "--limit", help="Train on at most this many training examples (a quick, rougher calibration)."),
) -> None:
    """Calibrate the supernet's accuracy on a few stand-alone trainings, for nas search --accuracy calibrated."""
    from nas.cli._progress import step_bars
    from nas.supernet.calibrate import calibrate

    if limit is not None and limit < 1:
        raise NasError(f"--limit must be at least 1, got {limit}")
    with step_bars() as progress:
        calibration, path = calibrate(checkpoint_path, archs, steps, seed, out, device, limit, progress)
    what = "acc" if calibration.target == "accuracy" else calibration.target
    table = Table(title=f"{len(calibration.rows)} archs trained from scratch ({steps} steps each)")
    for column in (f"stand-alone {what}", f"supernet {what}", "calibrated (fit)", "arch"):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for row in sorted(calibration.rows, key=lambda r: r[calibration.target]):
        table.add_row(f"{row[calibration.target]:.4f}", f"{calibration.supernet_value(row['features']):.4f}",
                      f"{calibration.predict(row['features']):.4f}", row["arch"])
    console.print(table)
    check = calibration.check
    console.print(f"leave-one-out: mean error {check['loo_mae']:.4f}, Kendall tau {check['loo_kendall_tau']:.3f} "
                  f"(the supernet's own {what}: {check['supernet_kendall_tau']:.3f}); features: "
                  f"{', '.join(calibration.features)}")
    console.print(f"calibration: {path}  (nas search --supernet {checkpoint_path} --accuracy calibrated)")

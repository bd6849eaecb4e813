"""``nas subnet export`` and ``nas subnet show``."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli._app import console, subnet_app
from nas.errors import NasError


@subnet_app.command("export")
def export_cmd(
    checkpoint_path: Path = typer.Argument(..., metavar="CKPT", help="A supernet checkpoint."),
    arch: str = typer.Argument(..., help="An arch string, JSON, a .json file, 'largest' or 'smallest'."),
    out: Path = typer.Option(..., "-o", "--out", help="The .onnx file to write."),
    max_error: float = typer.Option(1e-4, "--max-error", help="Fail when onnxruntime differs from PyTorch by more."),
    db: str = typer.Option(None, "--db", help="Also record the export in this store."),
    experiment: str = typer.Option(None, "--experiment", help="The experiment the arch came from (with --db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a subnet to ONNX and verify it against onnxruntime on real inputs."""
    import json

    from nas.export import export_subnet, record_export

    if experiment and not db:
        raise NasError("--experiment needs --db (the store that holds it)")
    store = None
    if db:
        from nas.store import Store

        store = Store(db)  # fail on an unreachable store before the work
        if experiment:
            store.experiment(experiment)
    result = export_subnet(checkpoint_path, arch, out, max_error=max_error)
    if store is not None:
        record_export(store, result, experiment)
    if as_json:
        print(json.dumps({"path": str(result.path), "arch": result.arch.to_str(), "space": result.space,
                          "max_abs_error": result.max_abs_error, "params": result.params,
                          "check_inputs": result.check_inputs, "seconds": round(result.seconds, 3)}))
        return
    console.print(f"arch {result.arch.to_str()}")
    console.print(f"{result.params:,} parameters; onnxruntime vs PyTorch on {result.check_inputs}: "
                  f"max abs error {result.max_abs_error:.2e}")
    console.print(f"wrote {result.path}")


@subnet_app.command("show")
def show_cmd(
    checkpoint_path: Path = typer.Argument(..., metavar="CKPT"),
    arch: str = typer.Argument(..., help="An arch string, JSON, a .json file, 'largest' or 'smallest'."),
) -> None:
    """A subnet's layers, metrics (params, MACs, peak SRAM, flash) and validation accuracy."""
    from nas.data import load_dataset
    from nas.export import resolve_arch
    from nas.supernet import checkpoint
    from nas.supernet.metrics import subnet_metrics
    from nas.supernet.train import accuracy

    net, info = checkpoint.load(checkpoint_path)
    a = resolve_arch(info.space, arch)
    for i, stage in enumerate(a.stages):
        console.print(f"stage {i}: width {stage.width}, " + ", ".join(la.token for la in stage.layers))
    m = subnet_metrics(net.extract(a, info.input_shape))
    console.print(f"params {m.params:,}  MACs {m.macs:,}  peak SRAM {m.peak_sram_kb:.1f} KB  flash {m.flash_kb:.1f} KB (int8)")
    data = load_dataset(info.dataset, info.space.task.kind)
    console.print(f"validation accuracy {accuracy(net, a, data.x_val, data.y_val):.4f}  "
                  f"test accuracy {accuracy(net, a, data.x_test, data.y_test):.4f}")

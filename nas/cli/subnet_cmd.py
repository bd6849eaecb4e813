"""``nas subnet export``, ``finetune``, ``show`` and ``generate``."""

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
    int8: bool = typer.Option(False, "--int8", help="Write the int8 graph (post-training static quantisation, "
                              "calibrated on the training split), with its test accuracy beside the float one."),
) -> None:
    """Export a subnet to ONNX and verify it against onnxruntime on real inputs (optionally as int8).
    A language model (hybrid-lm) exports as a pair, OUT.prefill.onnx and OUT.step.onnx, written
    only when they generate 64 greedy bytes as PyTorch does."""
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
    result = export_subnet(checkpoint_path, arch, out, max_error=max_error, int8=int8)
    if store is not None:
        record_export(store, result, experiment)
    if as_json:
        print(json.dumps({"path": str(result.path), "arch": result.arch.to_str(), "space": result.space,
                          **({"step_path": str(result.step_path)} if result.step_path else {}),
                          "max_abs_error": result.max_abs_error, "params": result.params,
                          "check_inputs": result.check_inputs, "seconds": round(result.seconds, 3),
                          **({"int8": result.int8} if result.int8 else {})}))
        return
    console.print(f"arch {result.arch.to_str()}")
    if result.step_path is not None:
        console.print(f"{result.params:,} parameters; {result.check_inputs}; prefill logits max abs error "
                      f"{result.max_abs_error:.2e}")
        console.print(f"wrote {result.path} and {result.step_path}")
        return
    console.print(f"{result.params:,} parameters; onnxruntime vs PyTorch on {result.check_inputs}: "
                  f"max abs error {result.max_abs_error:.2e}")
    if result.int8:
        r = result.int8
        console.print(f"test accuracy on {r['test_examples']:,} examples: float {r['float_accuracy']:.4f}, "
                      f"int8 {r['int8_accuracy']:.4f} ({100 * (r['int8_accuracy'] - r['float_accuracy']):+.2f} points)")
        console.print(f"int8 graph: peak SRAM {r['graph_sram_kb']:.1f} KB, flash {r['graph_flash_kb']:.1f} KB; "
                      f"MCU model ({r['mcu_source']}): {r['mcu_sram_kb']:.1f} KB, {r['mcu_flash_kb']:.1f} KB")
        console.print("int8: " + ", ".join(f"{n} {op}" for op, n in r["quantised"].items())
                      + "; kept float: " + (", ".join(f"{n} {op}" for op, n in r["kept_float"].items()) or "nothing"))
    console.print(f"wrote {result.path}")


@subnet_app.command("finetune")
def finetune_cmd(
    checkpoint_path: Path = typer.Argument(..., metavar="CKPT", help="A supernet checkpoint."),
    arch: str = typer.Argument(..., help="An arch string, JSON, a .json file, 'largest' or 'smallest'."),
    out: Path = typer.Option(..., "-o", "--out", help="The int8 .onnx file to write."),
    qat: bool = typer.Option(False, "--qat", help="Quantisation-aware fine-tuning (the only kind there is for now)."),
    steps: int = typer.Option(300, "--steps", help="Fine-tuning steps (batches of 128 training examples)."),
) -> None:
    """Fine-tune a subnet with its weights and activations fake-quantised to int8, then export it as
    int8: for a subnet that loses more than a point to post-training quantisation."""
    from nas.export import finetune_qat_export

    if not qat:
        raise NasError("nas subnet finetune needs --qat (quantisation-aware fine-tuning)")
    r = finetune_qat_export(checkpoint_path, arch, out, steps=steps)
    console.print(f"test accuracy on {r['test_examples']:,} examples: float {r['float_accuracy']:.4f}; int8 after "
                  f"post-training quantisation {r['int8_accuracy_ptq']:.4f}; int8 after {r['steps']} QAT steps "
                  f"{r['int8_accuracy_qat']:.4f}")
    console.print(f"wrote {r['path']}")


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
    from nas.supernet.scoring import accuracy

    net, info = checkpoint.load(checkpoint_path)
    a = resolve_arch(info.space, arch)
    for i, stage in enumerate(a.stages):
        console.print(f"stage {i}: width {stage.width}, " + ", ".join(la.token for la in stage.layers))
    m = subnet_metrics(net.extract(a, info.input_shape))
    console.print(f"params {m.params:,}  MACs {m.macs:,}  peak SRAM {m.peak_sram_kb:.1f} KB  flash {m.flash_kb:.1f} KB (int8)")
    data = load_dataset(info.dataset, info.space.task)
    console.print(f"validation accuracy {accuracy(net, a, data.x_val, data.y_val):.4f}  "
                  f"test accuracy {accuracy(net, a, data.x_test, data.y_test):.4f}")


@subnet_app.command("generate")
def generate_cmd(
    checkpoint_path: Path = typer.Argument(..., metavar="CKPT", help="A supernet checkpoint of a text space (hybrid-lm)."),
    arch: str = typer.Argument(..., help="An arch string, JSON, a .json file, 'largest' or 'smallest'."),
    prompt: str = typer.Option(..., "--prompt", help="The text to continue (UTF-8; every byte must be in the "
                               "training text's vocabulary)."),
    tokens: int = typer.Option(None, "--tokens", help="Bytes to generate; the prompt and these fit the context "
                               "[default: 64, or what the context leaves after the prompt]."),
    temperature: float = typer.Option(0.0, "--temperature", help="0: the most likely byte each time; above 0: sampled."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling (with --temperature)."),
    onnx_path: Path = typer.Option(None, "--onnx", help="Generate with the exported pair of this arch instead "
                                   "(the -o of nas subnet export: OUT.prefill.onnx and OUT.step.onnx), greedy."),
) -> None:
    """Continue a prompt with a language-model subnet, byte by byte, and print the text: from the
    PyTorch subnet, or with --onnx from its exported prefill and decode-step graphs in onnxruntime."""
    from nas.export import lm_paths, resolve_arch
    from nas.supernet import checkpoint
    from nas.supernet.generate import check_prompt, generate
    from nas.textdata import decode

    net, info = checkpoint.load(checkpoint_path)
    context = info.input_shape[-1]
    if tokens is None:
        tokens = max(1, min(64, context - len(prompt.encode())))
    ids = check_prompt(prompt.encode(), tokens, info.vocab, context)  # bad input fails before any work
    a = resolve_arch(info.space, arch)
    if onnx_path is not None:
        from nas.supernet.lm_onnx import greedy_onnx, pair_metadata

        if temperature:
            raise NasError("--onnx generates greedily: leave out --temperature")
        paths = lm_paths(onnx_path)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise NasError(f"{missing[0]!r} does not exist: export the pair first (nas subnet export CKPT ARCH -o {onnx_path})")
        prefill, step = (p.read_bytes() for p in paths)
        try:
            meta = pair_metadata(prefill)
        except Exception:  # noqa: BLE001 - any parse failure of a file that is not ONNX
            raise NasError(f"{str(paths[0])!r} is not an ONNX graph") from None
        if meta.get("nas.arch") != a.to_str():
            raise NasError(f"{str(paths[0])!r} holds arch {meta.get('nas.arch')!r}, not {a.to_str()!r}")
        text = decode(greedy_onnx(prefill, step, ids, tokens), info.vocab)
    else:
        text = generate(net.extract(a, info.input_shape), prompt.encode(), tokens, info.vocab, context,
                        temperature, seed).text
    console.print(prompt, end="", markup=False, highlight=False)
    console.print(text.decode("utf-8", errors="replace"), style="bold", markup=False, highlight=False)

"""``nas latency targets|build|validate|predict|measure|kit|import``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from nas.cli._app import console, latency_app
from nas.cli._progress import step_bars
from nas.errors import NasError


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``1,8,8`` -> (1, 8, 8)."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise NasError(f"--input-shape {text!r} is not a list of integers like 1,28,28") from None
    if not shape or any(d < 1 for d in shape):
        raise NasError(f"--input-shape {text!r} must hold positive integers")
    return shape


SHAPE_HELP = "Input shape C,H,W (or C,L) when it differs from the space's task, e.g. 1,8,8 for digits."


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=1, sort_keys=True, default=float))


@latency_app.command("targets")
def targets_cmd() -> None:
    """Known targets and the profiles found for them."""
    from nas.latency.profile import list_profiles
    from nas.latency.targets import known_targets

    profiles: dict[str, list[str]] = {}
    for target, space, _ in list_profiles():
        profiles.setdefault(target, []).append(space)
    table = Table()
    for column in ("target", "kind", "description", "profiles"):
        table.add_column(column)
    for name, t in known_targets().items():
        description = t.description + (" (none here)" if t.status() else "")
        table.add_row(name, t.kind, description, ", ".join(profiles.get(name, [])) or "-")
    console.print(table)


@latency_app.command("build")
def build_cmd(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    target: str = typer.Option(..., "--target", help="cpu, gpu, mcu-m7 or mcu-m4."),
    threads: int = typer.Option(1, "--threads", help="onnxruntime intra-op threads (cpu)."),
    batch: int = typer.Option(1, "--batch", help="Batch size to measure at."),
    archs: int = typer.Option(40, "--archs", help="Whole subnets measured to learn the overhead."),
    repeats: int = typer.Option(50, "--repeats", help="Timed runs per graph (after 10 warm-up runs)."),
    seed: int = typer.Option(0, "--seed"),
    input_shape: str = typer.Option(None, "--input-shape", help=SHAPE_HELP),
    out: Path = typer.Option(None, "--out", help="Profiles folder to write (default ./latency_models or $NAS_PROFILES)."),
    prompt: int = typer.Option(None, "--prompt", help="Text spaces: the prompt length P whose prefill is timed "
                               f"[default: {64}]."),
    context: int = typer.Option(None, "--context", help="Text spaces: the context C a decode step runs at "
                                "[default: the space's trained context]."),
) -> None:
    """Measure every unit and some whole subnets, fit the predictor, write the profile. For a text
    space (hybrid-lm): the prefill of a P-token prompt and the decode step at a context of C tokens."""
    from nas.latency.measure import MeasureConfig
    from nas.latency.profile import save_profile
    from nas.latency.targets import get_target
    from nas.space import load

    if threads < 1 or batch < 1 or repeats < 5:
        raise NasError("--threads and --batch must be at least 1 and --repeats at least 5")
    s = load(space)
    if getattr(getattr(s, "task", None), "kind", None) == "text":
        _build_lm(s, target, MeasureConfig(threads=threads, repeats=repeats), archs, seed, prompt, context, out)
        return
    if prompt is not None or context is not None:
        raise NasError("--prompt and --context are for text spaces (hybrid-lm)")
    t = get_target(target)
    config = MeasureConfig(threads=threads, batch=batch, repeats=repeats)
    with step_bars() as progress:
        profile = t.build(s, config, n_archs=archs, seed=seed, progress=progress, input_shape=parse_shape(input_shape),
                          hint=space)
    path = save_profile(profile, out)
    console.print(t.summary(profile))
    console.print(f"profile: {path}")


def _lm_lengths(s, prompt: int | None, context: int | None) -> dict[str, int]:
    from nas.latency import lm

    lengths = {"prefill": prompt or min(lm.DEFAULT_PROMPT, s.task.input_shape[-1]),
               "decode": context or s.task.input_shape[-1]}
    lm.check_lengths(s, lengths["prefill"], lengths["decode"])
    return lengths


def _build_lm(s, target: str, config, archs: int, seed: int, prompt: int | None, context: int | None,
              out: Path | None) -> None:
    from dataclasses import replace

    from nas.latency import lm
    from nas.latency.build import random_supernet
    from nas.latency.profile import default_out_dir
    from nas.latency.targets import get_target

    lengths = _lm_lengths(s, prompt, context)
    cost = get_target(target).lm_cost(replace(config, min_window_ms=lm.MIN_WINDOW_MS))
    net, n_fit = random_supernet(s), max(3, min(archs, 40))
    with step_bars() as progress:
        for mode, length in lengths.items():
            advance = progress(f"{target} {mode}: units and subnets", (len(lm.all_unit_keys(s)) + n_fit) * cost.passes)
            model = lm.build(s, net, cost, mode, length, n_fit=n_fit, seed=seed,
                             progress=lambda _msg, step=advance: step())
            path = lm.model_path(out or default_out_dir(), model.target, s, mode, length)
            lm.save(model, path)
            a, b, c = model.overhead
            console.print(f"{model.metric} at {length} tokens: {len(model.units)} units, overhead "
                          f"{a:.3f} x sum + {b * 1000:.1f} us x layers + {c * 1000:.1f} us, fitted on {len(model.fit)} "
                          f"subnets; {path}")


@latency_app.command("validate")
def validate_cmd(
    space: str = typer.Argument(...),
    target: str = typer.Option(..., "--target"),
    n: int = typer.Option(100, "-n", help="Held-out subnets to measure end to end."),
    seed: int = typer.Option(12345, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    plot: Path = typer.Option(None, "--plot", help="Where to write the predicted-vs-measured PNG (default next to the profile)."),
    input_shape: str = typer.Option(None, "--input-shape", help=SHAPE_HELP),
    measured: Path = typer.Option(None, "--measured", help="Score against these measurements instead of measuring "
                                  "here: a table of arch,latency_ms or a kit's results (any target, any space)."),
    prompt: int = typer.Option(None, "--prompt", help="Text spaces: the prefill's prompt length [default: 64]."),
    context: int = typer.Option(None, "--context", help="Text spaces: the decode's context [default: the trained one]."),
    mode: str = typer.Option("both", "--mode", help="Text spaces: decode, prefill or both."),
) -> None:
    """Measure held-out subnets end to end and score the predictor (MAPE, RMSE, Kendall tau, within 10%)."""
    from nas.latency.profile import load_profile
    from nas.latency.targets import get_target
    from nas.latency.validate import record_validation, validate_against
    from nas.space import NetSpace, load

    s = load(space)
    if getattr(getattr(s, "task", None), "kind", None) == "text":
        _validate_lm(s, target, n, seed, prompt, context, mode, as_json)
        return
    t = get_target(target)
    if measured is None and not isinstance(s, NetSpace):
        raise NasError(f"space {s.name!r} has no supernet to measure here: score the model against measurements "
                       "with --measured FILE.csv")
    profile, path = load_profile(target, s, input_shape=parse_shape(input_shape), hint=space)
    if measured is not None:
        from nas.latency.kit_import import measured_rows

        result = validate_against(t.predictor(profile, s), measured_rows(measured, s))
    else:
        with step_bars(as_json) as progress:
            result = t.validate(s, profile, n=n, seed=seed, progress=progress)
    png = record_validation(profile, path, result, f"{target} latency on {profile.name}", plot)
    if as_json:
        _print_json(result.summary)
        return
    table = Table(title=f"{target} latency model on {result.summary['n']} held-out {s.name} archs")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.summary.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"plot: {png}")


def _validate_lm(s, target: str, n: int, seed: int, prompt: int | None, context: int | None, mode: str,
                 as_json: bool) -> None:
    import csv

    from nas.latency import lm
    from nas.latency.build import random_supernet
    from nas.latency.measure import MeasureConfig
    from nas.latency.targets import get_target

    if mode not in ("decode", "prefill", "both"):
        raise NasError(f"--mode {mode!r} is not one of decode, prefill, both")
    if n < 1:
        raise NasError(f"-n must be at least 1, got {n}")
    lengths = _lm_lengths(s, prompt, context)
    modes = [m for m in lm.MODES if mode in (m, "both")]
    found = {m: lm.find(target, s, m, lengths[m]) for m in modes}  # fail before any measuring
    models, paths = {m: f[0] for m, f in found.items()}, {m: f[1] for m, f in found.items()}
    cost = get_target(target).lm_cost(MeasureConfig(min_window_ms=lm.MIN_WINDOW_MS))
    net = random_supernet(s)
    summaries = {}
    for m, model in models.items():
        with step_bars(as_json) as progress:
            advance = progress(f"{target} {m}: held-out subnets", n * min(2, cost.passes))
            result = lm.validate(s, net, model, cost, n=n, seed=seed, progress=lambda _msg, step=advance: step())
        path = paths[m].with_suffix(".validation.csv")
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(result["rows"][0]))
            writer.writeheader()
            writer.writerows(result["rows"])
        summaries[m] = {k: v for k, v in result.items() if k != "rows"} | {"csv": str(path), "length": lengths[m]}
    if as_json:
        _print_json(summaries)
        return
    for m, summary in summaries.items():
        table = Table(title=f"{target} {m} latency ({summary['length']} tokens) on {summary['n']} held-out {s.name} archs")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in summary.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(table)


@latency_app.command("predict")
def predict_cmd(
    model_or_arch: str = typer.Argument(..., metavar="ONNX_OR_ARCH", help="An .onnx file or an arch string."),
    target: str = typer.Option(..., "--target"),
    space: str = typer.Option(None, "--space", help="The arch's space (found automatically when only one fits)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predicted latency (and, for MCU targets, peak SRAM and flash) of a model or an arch."""
    from nas.latency.predict import predict_one

    result = predict_one(model_or_arch, target, space)
    if as_json:
        _print_json(result)
        return
    for key, value in result.items():
        console.print(f"{key}: {value}")


@latency_app.command("measure")
def measure_cmd(
    model: Path = typer.Argument(..., metavar="MODEL.onnx"),
    target: str = typer.Option("cpu", "--target", help="Only cpu can be measured directly here."),
    threads: int = typer.Option(1, "--threads"),
    batch: int = typer.Option(1, "--batch"),
    repeats: int = typer.Option(50, "--repeats"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure an ONNX model on this machine: median and spread of repeated runs."""
    from nas.graph import load_model
    from nas.latency.measure import MeasureConfig, Meter
    from nas.latency.targets import get_target

    t = get_target(target)
    if not t.times_onnx:
        raise NasError(f"target {target!r} cannot be measured here: nas latency measure runs ONNX graphs on this CPU (--target cpu)")
    if threads < 1 or batch < 1 or repeats < 5:
        raise NasError("--threads and --batch must be at least 1 and --repeats at least 5")
    data = load_model(model).SerializeToString()
    m = Meter(MeasureConfig(threads=threads, batch=batch, repeats=repeats)).onnx(data)
    result = {"target": "cpu", "model": str(model), **m.as_dict()}
    if as_json:
        _print_json(result)
    else:
        console.print(f"median {m.median_ms:.4f} ms (p10 {m.p10_ms:.4f}, p90 {m.p90_ms:.4f}, cv {m.cv:.3f}"
                      f"{', noisy' if m.noisy else ''}) over {m.runs} runs")


@latency_app.command("kit")
def kit_cmd(
    space: str = typer.Argument(...),
    out: Path = typer.Option(..., "-o", "--out", help="The .zip to write."),
    fit: int = typer.Option(30, "--fit", help="Whole subnets to fit the overhead on."),
    held_out: int = typer.Option(20, "--validate", help="Whole subnets held out for validation."),
    quick: int = typer.Option(None, "--quick", help="Only K whole subnets, spread over what --transfer-from predicts, "
                              "for a transfer (no units: minutes on the device instead of an hour)."),
    transfer_from: str = typer.Option(None, "--transfer-from", help="With --quick: known targets to spread over and "
                                      "to learn from, comma-separated (default: every target with a profile of SPACE)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a self-contained measurement kit (ONNX files + a runner that needs only onnxruntime)."""
    from nas.latency.kit import write_kit
    from nas.space import load

    s = load(space)
    references = _targets_list(transfer_from, s) if quick is not None else []
    with step_bars() as progress:
        path = write_kit(s, out, n_fit=fit, n_validate=held_out, seed=seed, progress=progress, quick=quick,
                         references=references)
    then = (f"'nas latency import results.csv --target NAME --space {space} --transfer-from {','.join(references)}'"
            if quick is not None else "'nas latency import results.csv --target NAME'")
    console.print(f"wrote {path}: unzip it on the device, run 'python run_kit.py', then {then}")


def _targets_list(text: str | None, space) -> list[str]:
    """``cpu,mcu-m7`` -> known targets (each checked); none given: every target with a profile of ``space``."""
    from nas.latency.profile import list_profiles, profile_name
    from nas.latency.targets import get_target

    if text:
        names = [t.strip() for t in text.split(",") if t.strip()]
        if not names:
            raise NasError(f"--transfer-from {text!r} names no target")
        return [get_target(t).name for t in names]
    names = sorted({t for t, name, _ in list_profiles() if name == profile_name(space)})
    if not names:
        raise NasError(f"no target has a profile of space {space.name!r} to learn from: build one "
                       f"('nas latency build {space.ref or space.name} --target cpu') or pass --transfer-from")
    return names


@latency_app.command("import")
def import_cmd(
    results: Path = typer.Argument(..., metavar="RESULTS.csv"),
    target: str = typer.Option(..., "--target", help="The new target's name."),
    space: str = typer.Option(None, "--space", help="Needed for a plain arch,latency_ms table."),
    transfer_from: str = typer.Option(None, "--transfer-from", help="Learn the device from these known targets' "
                                      "predictions of the measured archs, comma-separated (cpu,mcu-m7)."),
    reference: list[Path] = typer.Option([], "--reference", help="A table of other devices (arch + one latency "
                                         "column per device) to learn the device from; repeatable."),
    out: Path = typer.Option(None, "--out", help="Profiles folder to write (default ./latency_models or $NAS_PROFILES)."),
) -> None:
    """Turn a kit's results (or a table of arch,latency_ms) into a new target; with --transfer-from or
    --reference, from a few measured archs and devices already known."""
    from nas.latency.kit_import import import_results
    from nas.latency.profile import save_profile
    from nas.space import load

    s = load(space) if space else None
    if transfer_from is not None and s is None:
        raise NasError("--transfer-from needs --space SPACE (the space the measured archs belong to)")
    targets = _targets_list(transfer_from, s) if transfer_from is not None else []
    profile = import_results(results, target, s, transfer_from=targets, reference_tables=reference)
    path = save_profile(profile, out)
    extra = ""
    if profile.validation:
        v = profile.validation
        extra = f"; held-out: {100 * v['within_10pct']:.0f}% within 10%, MAPE {v['mape']:.1f}%, tau {v['kendall_tau']:.3f}"
    console.print(f"target {target} for space {profile.space} from {results.name} ({profile.kind}){extra}")
    console.print(f"profile: {path}")

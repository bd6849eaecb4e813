"""int8 export and int8 accuracy in the search: onnxruntime's static quantisation, measured."""

from __future__ import annotations

import json

import pytest

from nas.errors import NasError
from tests.conftest import assert_one_line_error


@pytest.fixture(scope="module")
def mcu_digits_ckpt(tmp_path_factory, digits):
    """An mcu-vision supernet trained briefly on digits."""
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    out = tmp_path_factory.mktemp("int8") / "mcu.ckpt"
    train(load("mcu-vision"), digits, TrainConfig(epochs=2, batch_size=64), out)
    return out


def test_int8_export_is_checked_runs_and_keeps_accuracy_and_memory(mcu_digits_ckpt, tmp_path, cli):
    from nas.export import export_subnet
    from nas.graph import load_model

    result = export_subnet(mcu_digits_ckpt, "largest", tmp_path / "m.onnx", int8=True)
    r = result.int8
    model = load_model(tmp_path / "m.onnx")  # passes onnx.checker
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["nas.precision"].startswith("int8") and "nas.input_mean" in meta and json.loads(meta["nas.float_ops"]) == r["kept_float"]
    assert r["quantised"].get("Conv", 0) + r["quantised"].get("MatMul", 0) > 0
    assert r["float_accuracy"] > 0.5 and abs(r["int8_accuracy"] - r["float_accuracy"]) < 0.03
    assert abs(r["graph_flash_kb"] - r["mcu_flash_kb"]) <= 0.1 * r["mcu_flash_kb"]
    assert abs(r["graph_sram_kb"] - r["mcu_sram_kb"]) <= 0.1 * r["mcu_sram_kb"]
    result = cli("subnet", "export", mcu_digits_ckpt, "smallest", "-o", tmp_path / "s.onnx", "--int8")
    assert result.code == 0, result
    assert "int8" in result.out and "kept float" in result.out


def test_int8_bad_input_is_one_line(mcu_digits_ckpt, tmp_path, cli, monkeypatch):
    from nas.supernet.quantize import quantise

    with pytest.raises(NasError, match="needs calibration samples"):
        quantise(b"", None)
    # a checkpoint whose dataset is not here: nothing to calibrate on
    import torch

    payload = torch.load(mcu_digits_ckpt, weights_only=True)
    torch.save({**payload, "dataset": str(tmp_path / "gone.npz")}, tmp_path / "nodata.ckpt")
    assert_one_line_error(cli("subnet", "export", tmp_path / "nodata.ckpt", "smallest", "-o", tmp_path / "x.onnx",
                              "--int8"), "--int8 needs calibration data")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_a_search_with_int8_accuracy_as_an_objective_reaches_the_store_and_the_dashboard(
        mcu_digits_ckpt, tmp_path, digits_profiles, monkeypatch, cli):
    from nas.runner import SearchConfig, search
    from nas.store import Store

    monkeypatch.setenv("NAS_PROFILES", str(digits_profiles))
    db = str(tmp_path / "int8.db")
    result = search(SearchConfig(supernet=str(mcu_digits_ckpt), targets=("mcu-m7",), budget=6, workers=0, db=db,
                                 experiment="q", int8=True, objectives=("int8_accuracy:max", "mcu-m7_ms:min"),
                                 constraints=("int8_accuracy>=0.1",)))
    assert result.total == 6
    rows = Store(db, readonly=True).evaluations("q")
    assert all(0 <= r.metrics["int8_accuracy"] <= 1 for r in rows)
    assert abs(sum(r.metrics["int8_accuracy"] - r.metrics["accuracy"] for r in rows) / len(rows)) < 0.05
    # Its hypervolume, at a reference the constraint's bound sets for int8_accuracy: in the result,
    # the store (the reference), `nas results` and the dashboard's curve.
    reference = Store(db, readonly=True).experiment("q").reference
    assert reference["int8_accuracy"] == 0.1 and reference["mcu-m7_ms"] > 0
    assert result.hypervolume > 0
    shown = cli("results", "q", "--db", db, "--format", "json")
    assert json.loads(shown.out)["hypervolume"] == pytest.approx(result.hypervolume)
    from tests.dashboard._pages import run_page

    page = run_page("explorer", db, monkeypatch)
    assert not page.exception
    assert "int8_accuracy" in page.selectbox(key="explorer_x").options
    page = run_page("experiments", db, monkeypatch)
    assert not page.exception and not [i for i in page.info if "Hypervolume 0" in i.value]
    assert any("hypervolume counted where int8_accuracy > 0.1" in c.value for c in page.caption)


def test_quantisation_aware_fine_tuning_exports_int8(mcu_digits_ckpt, tmp_path, cli):
    from nas.space import load

    arch = load("mcu-vision").uniform("attention", "moe", largest=True).to_str()
    result = cli("subnet", "finetune", mcu_digits_ckpt, arch, "--qat", "--steps", "60", "-o", tmp_path / "q.onnx")
    assert result.code == 0, result
    assert "after post-training quantisation" in result.out and (tmp_path / "q.onnx").stat().st_size > 0
    assert_one_line_error(cli("subnet", "finetune", mcu_digits_ckpt, arch, "-o", tmp_path / "q.onnx"), "needs --qat")

"""The MCU cost model: calibration on MLPerf Tiny, and hand-checked SRAM and flash."""

from __future__ import annotations

import json

import pytest

from nas.latency.mcu import BOARDS, calibrate, calibration_rows
from nas.latency.reference_models import REFERENCE_MODELS, reference_onnx


@pytest.mark.parametrize("target", list(BOARDS))
def test_leave_one_out_error_is_under_25_percent(target):
    result = calibrate(target)
    assert set(result.loo_error_pct) == set(REFERENCE_MODELS)
    for model, error in result.loo_error_pct.items():
        assert abs(error) < 25, (model, error)


def test_calibration_table_is_the_shared_one():
    rows = calibration_rows()
    assert {r["core"] for r in rows} == {"Cortex-M7", "Cortex-M4"}
    assert len(rows) == 6


# Hand counts (int8 weights at 1 byte, biases at 4 bytes; activations at 1 byte per element):
# resnet8: weights 432+2304+2304+4608+9216+512+18432+36864+2048+640 = 77,360, biases 346 x 4
#   peak: during stack 1's second conv, its input x (kept for the residual), the first conv's
#   output and its own output are live: 3 x 32x32x16 = 49,152 bytes.
# dscnn: weights 2,560 + 4 x 576 + 4 x 4,096 + 768 = 22,016, biases 588 x 4
#   peak: a depthwise conv's input and output, 2 x 25x5x64 = 16,000 bytes.
# fc autoencoder: weights 264,192, biases 1,672 x 4; peak: 640 in + 128 out = 768 bytes.
HAND = {
    "resnet8_cifar10": (49152, 77360 + 346 * 4),
    "dscnn_speech_commands": (16000, 22016 + 588 * 4),
    "fc_autoencoder_toycar": (768, 264192 + 1672 * 4),
}


@pytest.mark.parametrize("model", list(REFERENCE_MODELS))
def test_predict_reports_hand_checked_sram_and_flash(model, tmp_path, cli):
    path = tmp_path / f"{model}.onnx"
    path.write_bytes(reference_onnx(model))
    result = cli("latency", "predict", path, "--target", "mcu-m7", "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    peak, flash = HAND[model]
    assert data["peak_sram_kb"] == pytest.approx(peak / 1024, abs=1e-3)
    assert data["flash_kb"] == pytest.approx(flash / 1024, abs=1e-3)
    assert data["latency_ms"] > 0 and data["fits"] is True


def test_predicted_latency_tracks_the_measured_table():
    from nas.graph import analyze
    from nas.latency import get_target

    rows = {(r["core"], r["model"]): float(r["latency_ms"]) for r in calibration_rows()}
    for target, board in BOARDS.items():
        model = get_target(target).model()
        for name in REFERENCE_MODELS:
            predicted = model.estimate(analyze(reference_onnx(name))).latency_ms
            assert abs(predicted - rows[(board.core, name)]) / rows[(board.core, name)] < 0.25

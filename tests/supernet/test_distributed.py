"""Data-parallel supernet training with Ray Train on two gloo workers: the same update as one
process on the whole batch, and the checkpoint works as any other."""

from __future__ import annotations

import pytest
import torch

from nas.space import load
from nas.supernet import checkpoint
from tests.conftest import DATA

pytestmark = pytest.mark.slow
TINY = str(DATA / "tiny-vision.yaml")


def test_two_workers_make_the_same_update_as_one_process_on_the_whole_batch(tmp_path, digits):
    """Same subnets at every step, gradients averaged by each rank's share: after an epoch of 6
    steps the weights agree to float tolerance. MoE's balance loss is a statistic of each rank's
    own tokens, the one term that differs, so it is switched off here (aux_weight=0)."""
    from nas.supernet.distributed import train_distributed
    from nas.supernet.train import TrainConfig, train

    space = load(TINY)
    config = TrainConfig(epochs=1, batch_size=32, limit=192, aux_weight=0.0, seed=0)  # the digits fixture's split
    single = tmp_path / "one.ckpt"
    train(space, digits, config, single)
    double = tmp_path / "two.ckpt"
    train_distributed(space, "digits", config, double, workers=2)
    one, _ = checkpoint.load(single)
    two, info = checkpoint.load(double)
    assert info.step == 6 and info.epoch == 1
    for (name, a), (_, b) in zip(one.state_dict().items(), two.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)


def test_the_cli_trains_on_two_workers_and_the_checkpoint_searches_and_exports(tmp_path, cli, digits_profiles,
                                                                              monkeypatch):
    out = tmp_path / "hv.ckpt"
    result = cli("supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "1", "--workers", "2",
                 "--out", out)
    assert result.code == 0, result
    _, info = checkpoint.load(out)
    assert info.epoch == 1 and info.final["test_acc_largest"] > 0.3
    assert cli("subnet", "export", out, "smallest", "-o", tmp_path / "s.onnx").code == 0
    monkeypatch.setenv("NAS_PROFILES", str(digits_profiles))  # digits is 8x8: the profiles at that input
    result = cli("search", "--supernet", out, "--target", "mcu-m7", "--strategy", "random", "--budget", "3",
                 "--workers", "0", "--db", tmp_path / "x.db", "--experiment", "d")
    assert result.code == 0, result

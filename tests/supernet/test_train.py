"""Supernet training: sandwich rule, fairness, checkpoints that resume and load weights-only."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from nas.errors import NasError
from nas.space import load
from nas.supernet import checkpoint
from nas.supernet.scoring import accuracy
from nas.supernet.train import TrainConfig, fair_subnet, resumed_config, sandwich, train


def test_sandwich_has_largest_smallest_and_random():
    space = load("hybrid-vision")
    archs = sandwich(space, random.Random(0), step=0, n_random=2, extremes="global")
    assert archs[0] == space.largest() and archs[1] == space.smallest() and len(archs) == 4


def test_per_kind_extremes_walk_every_pair_of_kinds():
    space = load("hybrid-vision")
    largest, smallest = Counter(), Counter()
    for step in range(12):  # 3 mixer kinds x 2 ffn kinds, twice
        archs = sandwich(space, random.Random(0), step=step, n_random=1)
        assert len(archs) == 3
        for arch, seen in zip(archs[:2], (largest, smallest), strict=True):
            space.validate(arch)
            kinds = {(layer.mixer.kind, layer.ffn.kind) for _, _, layer in arch.layers()}
            assert len(kinds) == 1  # every layer of one pair of kinds
            seen[kinds.pop()] += 1
        assert archs[0].depths == space.largest().depths and archs[1].depths == space.smallest().depths
        assert archs[0].widths == space.largest().widths and archs[1].widths == space.smallest().widths
    pairs = {(m, f) for m in ("conv", "attention", "ssm") for f in ("mlp", "moe")}
    assert set(largest) == set(smallest) == pairs
    assert set(largest.values()) == set(smallest.values()) == {2}
    assert sandwich(space, random.Random(0), step=0, n_random=0)[0] != space.largest()
    with pytest.raises(NasError, match="extremes"):
        TrainConfig(extremes="biggest")


def test_fewer_extremes_train_the_same_fair_random_subnets(tmp_path, cli):
    space = load("hybrid-vision")
    for step in range(3):
        plain = sandwich(space, random.Random(step), step=step, n_random=3, extremes="none")
        assert plain == sandwich(space, random.Random(step), step=step, n_random=3)[2:]  # the same random ones
    teacher_only = sandwich(space, random.Random(0), step=1, n_random=2, extremes="largest")
    assert teacher_only == [sandwich(space, random.Random(0), step=1, n_random=2)[0],
                            *sandwich(space, random.Random(0), step=1, n_random=2)[2:]]
    with pytest.raises(NasError, match="no largest subnet to distill from"):
        TrainConfig(extremes="none")
    with pytest.raises(NasError, match="random_subnets must be at least 1"):
        TrainConfig(extremes="none", distill=False, random_subnets=0)
    refused = cli("supernet", "train", "hybrid-vision", "--dataset", "digits", "--extremes", "none",
                  "--out", str(tmp_path / "n.ckpt"))
    assert refused.code == 2 and "--no-distill" in refused.err and not (tmp_path / "n.ckpt").exists()
    done = cli("supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "1", "--limit", "128",
               "--batch-size", "64", "--extremes", "none", "--no-distill", "--out", str(tmp_path / "n.ckpt"))
    assert done.code == 0, done
    assert "epoch 1: loss" in done.out  # a log that is not a terminal gets a line per epoch
    assert checkpoint.load(tmp_path / "n.ckpt")[1].train_config["extremes"] == "none"


def test_a_sampler_of_its_own_trains_only_the_subnets_it_gives(digits):
    """A few-shot sub-supernet (experiments/few_shot_ranking.py) trains only its part of the space."""
    from nas.space import Layer, NetArch, Stage
    from nas.supernet.train import TrainState, run_epochs

    space, data = load("hybrid-vision"), digits.limit(128)
    config = TrainConfig(epochs=1, batch_size=64)
    state = TrainState.start(space, data, config, torch.device("cpu"))
    net, info = state.net, state.info
    attention = next(m for m in space.stages[0].mixers if m.kind == "attention")

    def attention_first(arch: NetArch) -> NetArch:
        first = arch.stages[0]
        return NetArch((Stage(first.width, (Layer(attention, first.layers[0].ffn), *first.layers[1:])), *arch.stages[1:]))

    before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("stages.0.0.mixers.")}
    state.sampler = lambda s: [attention_first(a) for a in s.subnets_of_the_sandwich()]
    run_epochs(state, lambda n, i: None)
    after = net.state_dict()
    moved = {k.split(".")[4] for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved == {"attention"} and info.step == 2


def test_fair_sampling_gives_each_kind_equal_updates_per_position():
    space = load("hybrid-vision")
    rng = random.Random(0)
    counts: Counter = Counter()
    for slot in range(600):
        arch = fair_subnet(space, rng, slot)
        for i, j, layer in arch.layers():
            if j == 0:  # every subnet has each stage's first layer
                counts[i, layer.mixer.kind] += 1
                counts[i, layer.ffn.kind] += 1
    for i in range(len(space.stages)):
        assert counts[i, "conv"] == counts[i, "attention"] == counts[i, "ssm"] == 200
        assert counts[i, "mlp"] == counts[i, "moe"] == 300


def test_fair_sampling_covers_every_pair_and_transition_of_kinds():
    """The default recipe's sandwich over the steps of a short run (300 steps, 2 random subnets
    each) trains every (mixer, ffn) pair at every layer position and every within-stage
    sequence of two layers' kinds: the round-robin it replaced tied the positions together and
    never trained conv->ssm, attention->conv or ssm->attention inside a stage, nor MLP beside
    MoE, and its 3,440 subnets of a default run held 60 of mcu-vision's 74,088 kind patterns."""
    space = load("mcu-vision")
    config = TrainConfig()
    rng = random.Random(config.seed)
    kinds = lambda layer: (layer.mixer.kind, layer.ffn.kind)  # noqa: E731
    pairs: Counter = Counter()
    transitions: Counter = Counter()
    patterns = set()
    for step in range(300):
        for arch in sandwich(space, rng, step, config.random_subnets, config.extremes, config.seed)[2:]:
            patterns.add(tuple(kinds(layer) for _, _, layer in arch.layers()))
            for stage in arch.stages:
                for j, layer in enumerate(stage.layers):
                    pairs[j, kinds(layer)] += 1
                    if j:
                        transitions[kinds(stage.layers[j - 1]), kinds(layer)] += 1
    every = [(m, f) for m in ("conv", "attention", "ssm") for f in ("mlp", "moe")]
    assert {(j, pair) for j in range(2) for pair in every} <= set(pairs)
    assert set(transitions) == {(a, b) for a in every for b in every}  # all 36, mixed ffns within a stage too
    assert min(transitions.values()) >= 5
    assert len(patterns) > 500  # of 600 subnets: nearly every one a pattern of its own


def test_checkpoint_loads_weights_only_and_learns(digits_ckpt, digits):
    payload = torch.load(digits_ckpt, weights_only=True)
    assert payload["format"] == "nas-supernet" and payload["epoch"] == 1
    net, info = checkpoint.load(digits_ckpt)
    assert info.space.name == "hybrid-vision" and info.dataset == "digits"
    # One epoch on 1,295 digits: far above the 10% of chance for both extremes.
    assert accuracy(net, info.space.largest(), digits.x_test, digits.y_test) > 0.5
    assert accuracy(net, info.space.smallest(), digits.x_test, digits.y_test) > 0.3
    assert set(info.final) >= {"test_acc_largest", "test_acc_smallest"}


def test_resume_continues_to_the_requested_epochs(tmp_path, digits):
    space = load("hybrid-vision")
    out = tmp_path / "r.ckpt"
    small = digits.limit(256)
    train(space, small, TrainConfig(epochs=1, batch_size=64), out)
    first = checkpoint.load(out)[1]
    info = train(space, small, TrainConfig(epochs=2, batch_size=64), out, resume=True)
    assert info.epoch == 2 and len(info.history) == 2
    assert info.history[0] == first.history[0]
    assert info.step == 2 * first.step


def test_resume_keeps_the_checkpoints_recipe_unless_told(tmp_path, cli):
    out = tmp_path / "r.ckpt"
    first = cli("supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "1", "--limit", "128",
                "--batch-size", "64", "--extremes", "global", "--no-distill", "--out", str(out))
    assert first.code == 0, first
    again = cli("supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "2", "--resume", "--out", str(out))
    assert again.code == 0, again
    assert "with its own recipe, except epochs=2" in again.out
    assert "digits: 128 train" in again.out  # the checkpoint's --limit, not the command line's (none)
    info = checkpoint.load(out)[1]
    assert info.epoch == 2 and info.step == 4  # 128 examples at 64 a step, two epochs
    assert {k: info.train_config[k] for k in ("extremes", "batch_size", "limit", "distill")} == {
        "extremes": "global", "batch_size": 64, "limit": 128, "distill": False}


def test_resumed_config_fills_in_what_older_checkpoints_lack():
    saved = {k: v for k, v in vars(TrainConfig(batch_size=32)).items() if k != "extremes"}
    assert resumed_config(saved).extremes == "global"  # how every checkpoint without the option was trained
    assert resumed_config(saved, extremes="per-kind", epochs=5, lr=None) == TrainConfig(batch_size=32, epochs=5)
    with pytest.raises(NasError, match="unknown training options: batch"):
        resumed_config(saved, batch=3)


def test_resume_refuses_another_space(tmp_path, digits):
    out = tmp_path / "r.ckpt"
    train(load("hybrid-vision"), digits.limit(64), TrainConfig(epochs=1, batch_size=64), out)
    with pytest.raises(NasError, match="trained on space 'hybrid-vision'"):
        train(load("mcu-vision"), digits.limit(64), TrainConfig(epochs=2), out, resume=True)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupted_checkpoints_are_reported(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(NasError, match="corrupted or not a supernet checkpoint"):
        checkpoint.load(path)


def test_truncated_checkpoint_is_reported(tmp_path, digits_ckpt):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(digits_ckpt.read_bytes()[:5000])
    with pytest.raises(NasError, match="corrupted"):
        checkpoint.load(path)


def test_a_plain_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(NasError, match="not a nas supernet checkpoint"):
        checkpoint.load(path)


def test_bad_training_options():
    with pytest.raises(NasError, match="epochs=0"):
        TrainConfig(epochs=0)

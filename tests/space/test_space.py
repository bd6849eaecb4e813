"""Search spaces: loading, arch strings and JSON, validation messages, sampling operators."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from nas.errors import NasError
from nas.space import Arch, ChoiceArch, ChoiceSpace, NetArch, NetSpace, load, loads, shipped_spaces

NET_SPACES = ["hybrid-vision", "hybrid-seq", "mcu-vision"]


def test_shipped_spaces_are_listed():
    assert set(NET_SPACES + ["toy-choice"]) <= set(shipped_spaces())


@pytest.mark.parametrize("name", NET_SPACES + ["toy-choice"])
def test_sampled_archs_round_trip_through_string_and_json(name):
    space = load(name)
    rng = random.Random(1)
    for _ in range(200):
        arch = space.sample(rng)
        text = arch.to_str()
        assert Arch.from_str(text) == arch
        assert space.parse(text) == arch
        assert Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
        assert space.parse(json.dumps(arch.to_json())) == arch
        assert hash(Arch.from_str(text)) == hash(arch)
        assert arch.key == Arch.from_str(text).key


def test_arch_is_immutable_and_hashable():
    arch = load("hybrid-vision").largest()
    with pytest.raises(AttributeError):
        arch.stages = ()  # type: ignore[misc]
    assert len({arch, Arch.from_str(arch.to_str())}) == 1


def test_arch_string_is_readable():
    arch = Arch.from_str("32:conv3+mlp2,attn2+moe4k1/48:ssm16x2+mlp4")
    assert isinstance(arch, NetArch)
    assert arch.depths == (2, 1) and arch.widths == (32, 48)
    layer = arch.stages[0].layers[1]
    assert (layer.mixer.kind, layer.mixer.heads, layer.ffn.kind, layer.ffn.experts, layer.ffn.top_k) == (
        "attention", 2, "moe", 4, 1)
    assert arch.stages[1].layers[0].mixer.state == 16 and arch.stages[1].layers[0].mixer.expand == 2


@pytest.mark.parametrize(
    "text, needle",
    [
        ("32:conv3+mlp2/48:lstm4+mlp2", "unknown mixer 'lstm4'"),
        ("32:conv3+mlp2/48:conv3+ffn9", "unknown ffn 'ffn9'"),
        ("32:conv3/48:conv3+mlp2", "expected MIXER+FFN"),
        ("x:conv3+mlp2", "expected WIDTH:MIXER+FFN"),
        ("32:conv3x+mlp2", "unknown mixer"),  # tokens must match whole, never partially
        ("", "empty arch"),
        ("{not json", "does not parse"),
    ],
)
def test_malformed_arch_strings_are_rejected_with_the_reason(text, needle):
    with pytest.raises(NasError, match=re.escape(needle)):
        Arch.from_str(text)


def test_validation_names_the_field_and_allowed_values():
    space = load("hybrid-vision")
    good = space.smallest().to_str()
    with pytest.raises(NasError, match=r"stage 0 width: 20 is not allowed \(allowed: 16, 32, 48\)"):
        space.parse(good.replace("16:", "20:", 1))
    with pytest.raises(NasError, match=r"stage 0 layer 0 mixer: 'conv9' is not allowed \(allowed: conv3, conv5"):
        space.parse(good.replace("conv3", "conv9", 1))
    with pytest.raises(NasError, match=r"stage 0 depth: 4 is not allowed \(allowed: 1, 2, 3\)"):
        space.parse("16:conv3+mlp2,conv3+mlp2,conv3+mlp2,conv3+mlp2/48:conv3+mlp2/64:conv3+mlp2")


def test_an_arch_from_another_space_is_rejected():
    seq = load("hybrid-seq").sample(random.Random(0))
    with pytest.raises(NasError, match="not allowed|stages"):
        load("hybrid-vision").parse(seq.to_str())
    with pytest.raises(NasError, match="plain arch"):
        load("hybrid-vision").parse("layers=2,units=32,activation=relu,dropout=0.1")
    with pytest.raises(NasError, match="network arch"):
        load("toy-choice").parse(load("hybrid-vision").largest().to_str())


def _write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("name: x\nstages: [\n", "YAML syntax error"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nstages:\n  - {depth: [1], widht: [8]}\n",
         "field 'stages[0].widht': unknown key (allowed: depth, width, mixers, ffns, downsample)"),
        ("name: x\ntask: {kind: audio, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nstages: [{depth: 1, width: 8}]\n",
         "field 'task.kind': 'audio' is not allowed (allowed: image, sequence, text)"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8], num_classes: 10}\nstages: [{depth: 1, width: 8}]\n",
         "task.input_shape"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nstages: [{depth: [0], width: 8}]\n",
         "at least 1"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nmixers: {conv: {kernel: [4]}}\nstages: [{depth: 1, width: 8}]\n",
         "kernels must be odd"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nmixers: {lstm: {units: [4]}}\nstages: [{depth: 1, width: 8}]\n",
         "field 'mixers.lstm': unknown key (allowed: conv, attention, ssm)"),
        ("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\nmixers: {ssm: {state: [4], expand: [1]}}\nblocks: {ssm_head_dim: 16}\nstages: [{depth: 1, width: 8}]\n",
         "not a multiple of blocks.ssm_head_dim"),
        ("name: x\nkind: choice\nchoices: {units: []}\n", "choices.units"),
        ("name: x\nkind: grid\n", "'kind': 'grid' is not allowed"),
    ],
)
def test_malformed_yaml_names_file_and_field(tmp_path, yaml_text, needle):
    path = _write(tmp_path, yaml_text)
    with pytest.raises(NasError) as info:
        load(path)
    assert str(info.value).startswith(path)
    assert needle in str(info.value)


def test_unknown_space_name_lists_the_shipped_ones():
    with pytest.raises(NasError, match="shipped: hybrid-lm, hybrid-seq, hybrid-vision"):
        load("no-such-space")


def _tiny_space() -> NetSpace:
    return loads(
        """
name: tiny
task: {kind: sequence, dataset: gunpoint, input_shape: [1, 16], num_classes: 2}
blocks: {attention_head_dim: 4, ssm_head_dim: 4}
mixers: {conv: {kernel: [3]}, attention: {heads: [1]}}
ffns: {mlp: {ratio: [2]}, moe: {experts: [2], top_k: [1, 2]}}
stages:
  - {depth: [1, 2], width: [4, 8]}
  - {depth: [1], width: [8]}
"""
    )


def _enumerate(space: NetSpace) -> set[NetArch]:
    from nas.space import Layer, Stage

    per_stage = []
    for spec in space.stages:
        options = []
        layer_options = [Layer(m, f) for m in spec.mixers for f in spec.ffns]
        for d in spec.depths:
            for w in spec.widths:
                for layers in itertools.product(layer_options, repeat=d):
                    options.append(Stage(w, layers))
        per_stage.append(options)
    return {NetArch(stages) for stages in itertools.product(*per_stage)}


def test_size_counts_every_distinct_arch():
    space = _tiny_space()
    everything = _enumerate(space)
    assert space.size() == len(everything) == (2 * 6 + 2 * 36) * 6
    rng = random.Random(0)
    assert {space.sample(rng) for _ in range(20000)} == everything


@pytest.mark.parametrize("name", NET_SPACES + ["toy-choice"])
def test_mutation_and_crossover_stay_valid_and_change_something(name):
    space = load(name)
    rng = random.Random(3)
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        child = space.mutate(a, rng)
        assert child != a
        assert space.validate(child) == child
        cross = space.crossover(a, b, rng)
        assert space.validate(cross) == cross


@pytest.mark.parametrize("name", NET_SPACES + ["toy-choice"])
def test_encode_decode_round_trip(name):
    space = load(name)
    rng = random.Random(4)
    params = {p.name: p for p in space.params()}
    for _ in range(200):
        arch = space.sample(rng)
        values = space.encode(arch)
        assert set(values) == set(params)
        for key, value in values.items():
            assert value in params[key].choices
        assert space.decode(values) == arch


def test_sampling_is_fair_across_block_kinds():
    space = load("hybrid-vision")
    rng = random.Random(5)
    counts: dict[str, int] = {}
    for _ in range(3000):
        for _, _, layer in space.sample(rng).layers():
            counts[layer.mixer.kind] = counts.get(layer.mixer.kind, 0) + 1
    total = sum(counts.values())
    # conv has 3 options, attention 3 and ssm 4: kinds are still drawn a third each.
    for kind in ("conv", "attention", "ssm"):
        assert abs(counts[kind] / total - 1 / 3) < 0.02


def test_largest_and_smallest_are_extremes():
    space = load("hybrid-vision")
    largest, smallest = space.largest(), space.smallest()
    assert largest.widths == (48, 80, 128) and largest.depths == (3, 3, 2)
    assert smallest.widths == (16, 48, 64) and smallest.depths == (1, 1, 1)


def test_plain_choice_space():
    space = load("toy-choice")
    assert isinstance(space, ChoiceSpace)
    assert space.size() == 4 * 4 * 3 * 3
    arch = space.parse("layers=2,units=64,activation=gelu,dropout=0.1")
    assert isinstance(arch, ChoiceArch)
    assert arch.as_dict() == {"layers": 2, "units": 64, "activation": "gelu", "dropout": 0.1}
    with pytest.raises(NasError, match=r"arch units: 65 is not allowed \(allowed: 16, 32, 64, 128\)"):
        space.parse("layers=2,units=65,activation=gelu,dropout=0.1")
    with pytest.raises(NasError, match="missing choice 'dropout'"):
        space.parse("layers=2,units=64,activation=gelu")
    with pytest.raises(NasError, match="unknown choice 'depth'"):
        space.parse("depth=2,units=64,activation=gelu,dropout=0.1")

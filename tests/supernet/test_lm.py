"""Language models: the text corpus and its splits, the causal blocks, incremental decoding with
state, training on bits per byte, generation and its bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import load_dataset
from nas.errors import NasError
from nas.space import load, loads
from nas.supernet.model import Supernet, SupernetConfig

TINY_LM = """
name: tiny-lm
task: {kind: text, dataset: gcide, input_shape: [32], num_classes: 256}
blocks: {attention_head_dim: 8, ssm_head_dim: 8, ssm_conv: 3, moe_ratio: 2}
mixers:
  conv: {kernel: [3, 5]}
  attention: {heads: [1, 2]}
  ssm: {state: [4, 8], expand: [1, 2]}
ffns:
  mlp: {ratio: [2]}
  moe: {experts: [2, 3], top_k: [1, 2]}
stages:
  - {depth: [1, 3], width: [16, 24]}
recipe: {epochs: 1, batch_size: 8, limit: 64}
"""


@pytest.fixture(scope="module")
def gcide_text(tmp_path_factory) -> Path:
    """300 KB of GCIDE (the Debian package dict-gcide, which make setup installs) as a text file."""
    from nas import textdata

    try:
        corpus = textdata.gcide()
    except NasError as exc:
        pytest.skip(str(exc))
    path = tmp_path_factory.mktemp("text") / "gcide-300k.txt"
    path.write_bytes(corpus.text[5_000_000:5_300_000])
    return path


@pytest.fixture(scope="module")
def tiny_lm():
    return loads(TINY_LM)


def test_hybrid_lm_ships_a_causal_text_space_with_its_own_recipe():
    space = load("hybrid-lm")
    assert space.task.kind == "text" and space.settings.causal and len(space.stages) == 1
    assert {m.kind for m in space.stages[0].mixers} == {"conv", "attention", "ssm"}
    assert {f.kind for f in space.stages[0].ffns} == {"mlp", "moe"}
    assert space.recipe["batch_size"] == 16 and "training defaults" in dict(space.describe())


@pytest.mark.parametrize(("change", "needle"), [
    ("stages:\n  - {depth: [1], width: [16]}\n  - {depth: [1], width: [16]}\n", "a text space has one stage"),
    ("stages:\n  - {depth: [1], width: [16], downsample: true}\n", "no downsampling"),
    ("stem: {channels: 8}\n", "a text space has no stem"),
    ("recipe: {epochs: 0}\n", "recipe.epochs"),
    ("recipe: {steps: 3}\n", "recipe.steps': unknown key"),
])
def test_text_space_yaml_errors_name_the_field(change, needle):
    text = TINY_LM.split("stages:")[0].replace("recipe:", "#") + (
        change if change.startswith("stages") else change + "stages:\n  - {depth: [1], width: [16]}\n")
    with pytest.raises(NasError, match=needle):
        loads(text)
    with pytest.raises(NasError, match="num_classes is 256"):
        loads(TINY_LM.replace("num_classes: 256", "num_classes: 100"))


def test_text_dataset_splits_by_blocks_and_keeps_its_vocabulary(gcide_text):
    from nas import textdata

    data = load_dataset(f"text:{gcide_text}", "text", context=32)
    assert data.is_text and data.x_train.shape[1:] == (32,) and data.x_train.dtype == np.uint8
    # targets are the inputs shifted by one byte, within a window
    assert (data.x_val[:, 1:] == data.y_val[:, :-1]).all()
    text = textdata.decode(data.x_test[0], data.vocab)
    assert text.decode("ascii").isprintable() or b"\n" in text
    held = (len(data.x_val) + len(data.x_test)) * 32
    assert 0.1 * 300_000 < held < 0.3 * 300_000  # one block in 8 each for a small text
    assert len(data.vocab) == len(set(gcide_text.read_bytes())) and "vocabulary" in data.summary()
    with pytest.raises(NasError, match="is text"):
        load_dataset(f"text:{gcide_text}", "image")
    with pytest.raises(NasError, match="is not text"):
        load_dataset("digits", "text")


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "is empty"), (bytes(range(256)) * 400, "binary"), (b"short text " * 10, "at least 65,536"),
])
def test_text_files_that_cannot_train_a_model_are_refused(tmp_path, content, needle):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(NasError, match=needle):
        load_dataset(f"text:{path}", "text")
    with pytest.raises(NasError, match="does not exist"):
        load_dataset(f"text:{tmp_path / 'none.txt'}", "text")


def test_every_mixer_is_causal_and_extraction_keeps_the_outputs(tiny_lm):
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.from_space(tiny_lm, 60)).eval()
    x = torch.randint(0, 60, (3, 32))
    later = x.clone()
    later[:, 20:] = torch.randint(0, 60, (3, 12))
    archs = [tiny_lm.largest(), tiny_lm.smallest(), *(tiny_lm.uniform(m, f, True) for m in ("conv", "attention", "ssm")
                                                       for f in ("mlp", "moe"))]
    with torch.no_grad():
        for arch in archs:
            out = net(x, arch)
            assert out.shape == (3, 32, 60)
            assert torch.equal(net(later, arch)[:, :20], out[:, :20]), arch.to_str()  # the past never sees the future
            assert not torch.equal(net(later, arch)[:, 20:], out[:, 20:])
            torch.testing.assert_close(net.extract(arch, (32,))(x), out)


def test_decoding_with_state_gives_the_logits_of_the_whole_sequence(tiny_lm):
    torch.manual_seed(1)
    net = Supernet(SupernetConfig.from_space(tiny_lm, 60)).eval()
    x = torch.randint(0, 60, (2, 32))
    rng = random.Random(0)
    for arch in [tiny_lm.largest(), tiny_lm.smallest(), *tiny_lm.sample_unique(rng, 12)]:
        sub = net.extract(arch, (32,))
        with torch.no_grad():
            full = sub(x)
            logits, states = sub.decode(x[:, :20])
            torch.testing.assert_close(logits, full[:, :20], atol=2e-5, rtol=1e-4)
            for t in range(20, 32):
                step, states = sub.decode(x[:, t : t + 1], states)
                torch.testing.assert_close(step[:, 0], full[:, t], atol=2e-5, rtol=1e-4)
        # the state a decode keeps: the KV cache grows with the tokens seen, conv and SSM state do not
        for layer, state in zip(arch.stages[0].layers, states, strict=True):
            if layer.mixer.kind == "attention":
                assert state[0].shape == (2, layer.mixer.heads, 32, 8)
            elif layer.mixer.kind == "conv":
                assert state[0].shape == (2, arch.stages[0].width, layer.mixer.kernel - 1)
            else:
                assert state[1].shape[-1] == layer.mixer.state


def test_a_text_supernet_trains_on_bits_per_byte_and_generates(tmp_path, gcide_text, tiny_lm):
    from nas.supernet import checkpoint
    from nas.supernet.generate import generate
    from nas.supernet.recipe import TrainConfig
    from nas.supernet.train import train

    data = load_dataset(f"text:{gcide_text}", tiny_lm.task)
    out = tmp_path / "lm.ckpt"
    info = train(tiny_lm, data, TrainConfig(**tiny_lm.recipe), out)
    bpb = info.final["test_bpb_largest"]
    assert math.log2(len(data.vocab)) * 0.8 < bpb < math.log2(len(data.vocab)) * 1.1  # 8 steps: near uniform
    assert "val_bpb_smallest" in info.history[0]
    net, loaded = checkpoint.load(out)
    assert loaded.vocab == data.vocab
    sub = net.extract(tiny_lm.largest(), loaded.input_shape)
    a = generate(sub, b"The ", 12, loaded.vocab, 32)
    b = generate(sub, b"The ", 12, loaded.vocab, 32)
    assert a == b and len(a.text) == 12 and set(a.text) <= set(loaded.vocab)
    with torch.no_grad():  # greedy: each byte is the argmax after the prompt and the bytes before it
        ids = torch.as_tensor([loaded.vocab.index(c) for c in b"The " + a.text[:-1]])[None]
        assert sub(ids)[0, -1].argmax().item() == a.tokens[-1]
    with pytest.raises(NasError, match="more than the context of 32"):
        generate(sub, b"The ", 40, loaded.vocab, 32)
    with pytest.raises(NasError, match="byte 0xff"):
        generate(sub, b"The \xff", 4, loaded.vocab, 32)


def test_the_exported_prefill_and_step_pair_generates_as_pytorch_does(tiny_lm):
    from nas.supernet.generate import generate
    from nas.supernet.lm_onnx import export_pair, greedy_onnx, pair_metadata, state_names

    torch.manual_seed(2)
    net = Supernet(SupernetConfig.from_space(tiny_lm, 60)).eval()
    vocab = bytes(range(60, 120))
    prompt = np.array([3, 14, 15, 9, 26, 5, 35, 8], dtype=np.uint8)
    for arch in [tiny_lm.largest(), *tiny_lm.sample_unique(random.Random(1), 3)]:
        sub = net.extract(arch, (32,)).eval()
        prefill, step = export_pair(sub, vocab, 32)
        meta = pair_metadata(step)
        assert meta["nas.graph"] == "step" and bytes(json_list(meta["nas.vocab"])) == vocab
        assert json_list(meta["nas.states"]) == state_names(arch)
        want = generate(sub, bytes(vocab[i] for i in prompt), 24, vocab, 32).tokens
        assert greedy_onnx(prefill, step, prompt, 24) == want, arch.to_str()


def json_list(text: str) -> list:
    return json.loads(text)


@pytest.fixture(scope="module")
def tiny_lm_ckpt(tmp_path_factory, gcide_text, tiny_lm) -> Path:
    from nas.supernet.recipe import TrainConfig
    from nas.supernet.train import train

    root = tmp_path_factory.mktemp("lmckpt")
    (root / "tiny-lm.yaml").write_text(TINY_LM.replace("dataset: gcide", f"dataset: text:{gcide_text}"))
    space = load(str(root / "tiny-lm.yaml"))
    out = root / "tiny-lm.ckpt"
    train(space, load_dataset(f"text:{gcide_text}", space.task), TrainConfig(**space.recipe), out)
    return out


def test_state_memory_grows_with_the_context_for_attention_only(tiny_lm):
    from nas.latency.lm import state_bytes

    attn = tiny_lm.uniform("attention", "mlp", largest=True)
    conv = tiny_lm.uniform("conv", "mlp", largest=True)
    ssm = tiny_lm.uniform("ssm", "mlp", largest=True)
    assert state_bytes(tiny_lm, attn, 32) == 2 * state_bytes(tiny_lm, attn, 16) == 4 * 3 * 2 * 2 * 8 * 32
    assert state_bytes(tiny_lm, conv, 32) == state_bytes(tiny_lm, conv, 8) == 4 * 3 * 24 * 4
    # ssm: conv inputs (inner x (ssm_conv - 1)) and the scan state (heads x head_dim x state)
    assert state_bytes(tiny_lm, ssm, 32) == state_bytes(tiny_lm, ssm, 2) == 4 * 3 * (48 * 2 + 48 * 8)


def test_decode_and_prefill_latency_models_sum_measured_units(tiny_lm):
    from nas.latency import lm
    from nas.latency.measure import MeasureConfig, Meter

    net = Supernet(SupernetConfig.from_space(tiny_lm, 60)).eval()
    cost = lm.OnnxCpuCost(Meter(MeasureConfig(warmup=2, repeats=5, guard=False, min_window_ms=1.0)))
    archs = [tiny_lm.largest(), tiny_lm.smallest()]
    for mode, length in (("decode", 32), ("prefill", 16)):
        unit = lm.unit_graph(net, tiny_lm, "24/attn2", mode, length)
        if mode == "decode":  # the KV cache of the tokens before comes in, one longer goes out
            assert unit.feeds["state0"].shape == (1, 2, 31, 8)
        assert cost(unit) > 0
        model = lm.LmLatency("cpu", tiny_lm.name, mode, length,
                             {k: cost(lm.unit_graph(net, tiny_lm, k, mode, length))
                              for k in {k for a in archs for k in lm.unit_keys(a)}})
        measured = [cost(lm.whole_graph(net, a, mode, length)) for a in archs]
        model.fit_overhead(archs, measured)
        again = lm.LmLatency.from_json(model.to_json(), "test")
        np.testing.assert_allclose(again.predict(archs), model.predict(archs))
        assert again.metric == f"cpu_{mode}_ms" and (model.predict(archs) > 0).all()
    built = lm.build(tiny_lm, net, cost, "decode", 32, n_fit=3)  # every unit of the space, three passes
    assert set(built.units) == set(lm.all_unit_keys(tiny_lm)) and built.meta["passes"] == 3
    checked = lm.validate(tiny_lm, net, built, cost, n=2)  # held-out subnets, none of the fit's, two passes
    assert checked["n"] == 2 and checked["speed_vs_build"] > 0 and 0 <= checked["within_10pct"] <= 1
    assert all(r["pass1_ms"] > 0 and r["pass2_ms"] > 0 for r in checked["rows"])
    assert not {r["arch"] for r in checked["rows"]} & {row["arch"] for row in built.fit}
    with pytest.raises(NasError, match="no unit"):
        model.predict([tiny_lm.uniform("ssm", "moe", largest=False)])


def test_a_tiny_graph_is_timed_in_windows_of_fixed_duration():
    """A decode step takes tens of microseconds: 50 runs would be over in a millisecond, so the
    meter runs it until a window lasts ``min_window_ms``."""
    from nas.latency.measure import MeasureConfig, Meter

    calls = []
    Meter(MeasureConfig(warmup=2, repeats=5, guard=False, retries=0, min_window_ms=5.0)).time(
        lambda: calls.append(sum(range(200))))
    assert len(calls) > 3 * 5 + 2 * 3  # more than three windows of five runs and their warm-ups


def test_mcu_and_gpu_costs_of_a_language_model(tiny_lm):
    """The MCU board's cost model runs on the step graphs (state in and out, several inputs) and the
    composed units track the whole graphs; the gpu cost's timing loop runs its modules (here on the
    CPU: no GPU in the tests)."""
    from nas.graph import analyze
    from nas.latency import lm
    from nas.latency.measure import MeasureConfig, Meter

    net = Supernet(SupernetConfig.from_space(tiny_lm, 60)).eval()
    from nas.latency.targets import get_target

    cost = get_target("mcu-m7").lm_cost()
    assert cost.passes == 1 and cost.target == "mcu-m7"
    step = lm.whole_graph(net, tiny_lm.largest(), "decode", 32)
    stats = analyze(step.data, step.feeds)
    state = sum(v.size for k, v in step.feeds.items() if k != "token")
    assert stats.peak_activation_bytes >= state  # the state is live in SRAM for the whole step
    model = lm.build(tiny_lm, net, cost, "decode", 32, n_fit=6)
    assert model.metric == "mcu-m7_decode_ms" and model.meta["passes"] == 1
    checked = lm.validate(tiny_lm, net, model, cost, n=8)
    assert checked["speed_vs_build"] == 1.0 and checked["median_rel_error"] < 0.15 and checked["kendall_tau"] > 0.5
    timed = lm.CudaCost(Meter(MeasureConfig(warmup=1, repeats=3)), device="cpu")
    assert timed(lm.unit_graph(net, tiny_lm, "24/ssm8x1", "decode", 32)) > 0
    assert timed(step) > 0 and len(timed.cvs) == 6
    with pytest.raises(NasError, match="no GPU|unknown target"):
        get_target("gpu" if not torch.cuda.is_available() else "tpu").lm_cost()


def test_language_model_bad_input_is_one_line(cli, tmp_path, tiny_lm_ckpt, gcide_text):
    from tests.conftest import assert_one_line_error

    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.bin"
    empty.write_bytes(b"")
    binary.write_bytes(bytes(range(256)) * 1000)
    for path, needle in ((empty, "is empty"), (binary, "binary")):
        assert_one_line_error(cli("supernet", "train", "hybrid-lm", "--dataset", f"text:{path}",
                                  "--out", str(tmp_path / "x.ckpt")), needle)
    assert_one_line_error(cli("supernet", "train", "hybrid-lm", "--dataset", "fashion-mnist", "--out",
                              str(tmp_path / "y.ckpt")), "is not text")
    ckpt = str(tiny_lm_ckpt)
    assert_one_line_error(cli("subnet", "generate", ckpt, "largest", "--prompt", "caf\u00e9"), "byte 0xc3")
    assert_one_line_error(cli("subnet", "generate", ckpt, "largest", "--prompt", "The", "--tokens", "100"),
                          "more than the context of 32")
    assert_one_line_error(cli("subnet", "generate", ckpt, "largest", "--prompt", ""), "prompt is empty")
    assert_one_line_error(cli("latency", "build", "hybrid-lm", "--target", "cpu", "--context", "4096"),
                          "longer than the context of 128")
    assert_one_line_error(cli("latency", "build", "hybrid-lm", "--target", "tpu"), "unknown target")
    assert_one_line_error(cli("subnet", "export", ckpt, "largest", "-o", str(tmp_path / "m.onnx"), "--int8"),
                          "exports in float")
    assert_one_line_error(cli("subnet", "generate", ckpt, "largest", "--prompt", "The", "--onnx",
                              str(tmp_path / "none.onnx")), "export the pair first")
    result = cli("subnet", "generate", ckpt, "smallest", "--prompt", "The ", "--tokens", "8")
    assert result.code == 0 and result.out.startswith("The ")


def test_a_language_model_search_lands_bits_per_byte_decode_latency_and_state_in_the_store(
        cli, tmp_path, tiny_lm_ckpt, monkeypatch):
    from nas.latency import lm
    from nas.latency.measure import MeasureConfig, Meter
    from nas.runner import SearchConfig, search
    from nas.store import Store
    from nas.supernet import checkpoint

    net, info = checkpoint.load(tiny_lm_ckpt)
    space = info.space
    cost = lm.OnnxCpuCost(Meter(MeasureConfig(warmup=2, repeats=5, guard=False)))
    for mode, length in (("prefill", 32), ("decode", 32)):  # the prompt is min(64, context)
        model = lm.build(space, net, cost, mode, length, n_fit=3)
        lm.save(model, lm.model_path(tmp_path / "profiles", "cpu", space, mode, length))
    monkeypatch.setenv("NAS_PROFILES", str(tmp_path / "profiles"))
    db = f"sqlite:///{tmp_path / 'lm.db'}"
    result = search(SearchConfig(strategy="random", budget=6, targets=("cpu",), workers=0, db=db, experiment="lm",
                                 supernet=str(tiny_lm_ckpt), constraints=("state_kb<=6",), val_examples=20))
    assert result.objectives == ["bpb", "cpu_decode_ms"] and result.total == 6
    rows = Store(db).evaluations("lm")
    assert all(r.metrics["state_kb"] <= 6 for r in rows)
    assert {"bpb", "accuracy", "cpu_decode_ms", "cpu_prefill_ms", "state_kb", "params"} <= set(rows[0].metrics)
    assert all(0 < r.metrics["bpb"] < 8 for r in rows)
    shown = cli("results", "lm", "--db", db)
    assert shown.code == 0 and "bpb" in shown.out
    from tests.dashboard._pages import run_page

    for page in ("experiments", "explorer", "arch"):  # the dashboard browses it like any search
        at = run_page(page, db, monkeypatch, **({"arch": rows[0].arch} if page == "arch" else {}))
        assert not at.exception and not at.error, (page, at.exception, at.error)
    spec = json.loads(run_page("explorer", db, monkeypatch).get("plotly_chart")[0].proto.spec)
    assert {"bpb", "cpu_decode_ms"} <= {spec["layout"]["xaxis"]["title"]["text"], spec["layout"]["yaxis"]["title"]["text"]}


def test_a_language_model_is_calibrated_on_stand_alone_bits_per_byte_and_searched_by_it(
        tmp_path, tiny_lm_ckpt, monkeypatch):
    """``nas supernet calibrate`` on a text checkpoint fits stand-alone test bits per byte (no
    proxies: they score images), and a search with it reports that estimate as ``bpb``, the
    supernet's own beside it."""
    from nas.latency import lm
    from nas.latency.measure import MeasureConfig, Meter
    from nas.runner import SearchConfig, search
    from nas.store import Store
    from nas.supernet import checkpoint
    from nas.supernet.calibrate import calibrate

    calibration, path = calibrate(tiny_lm_ckpt, k=4, steps=15, out=tmp_path / "c.json", device="cpu", limit=400)
    assert calibration.target == "bpb" and len(calibration.rows) == 4
    assert all(0 < r["bpb"] < 8 and "log_synflow" not in r["features"] for r in calibration.rows)
    net, info = checkpoint.load(tiny_lm_ckpt)
    cost = lm.OnnxCpuCost(Meter(MeasureConfig(warmup=1, repeats=5, guard=False)))
    for mode in ("prefill", "decode"):
        lm.save(lm.build(info.space, net, cost, mode, 32, n_fit=3), lm.model_path(tmp_path / "p", "cpu", info.space, mode, 32))
    monkeypatch.setenv("NAS_PROFILES", str(tmp_path / "p"))
    db = f"sqlite:///{tmp_path / 'cal.db'}"
    search(SearchConfig(strategy="random", budget=3, targets=("cpu",), workers=0, db=db, experiment="cal",
                        supernet=str(tiny_lm_ckpt), val_examples=20, accuracy=f"calibrated:{path}"))
    rows = Store(db).evaluations("cal")
    assert all({"bpb", "supernet_bpb"} <= set(r.metrics) and r.metrics["bpb"] != r.metrics["supernet_bpb"] for r in rows)

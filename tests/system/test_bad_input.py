"""Bad input everywhere: every case ends with exit status 2, one line naming what is wrong, no
traceback, and the store exactly as it was."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nas.store import Store
from tests.conftest import DATA, assert_one_line_error

TINY = str(DATA / "tiny-vision.yaml")


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits_ckpt):
    """One folder of malformed inputs, plus a store with one experiment in it."""
    from nas.latency.reference_models import reference_onnx

    root = tmp_path_factory.mktemp("bad")
    (root / "syntax.yaml").write_text("name: x\nstages: [\n")
    (root / "typo.yaml").write_text("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\n"
                                    "stages:\n  - {depth: [1], widht: [8]}\n")
    (root / "kernel.yaml").write_text("name: x\ntask: {kind: image, dataset: d, input_shape: [1, 8, 8], num_classes: 10}\n"
                                      "mixers: {conv: {kernel: [2]}}\nstages: [{depth: 1, width: 8}]\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "empty.ckpt").write_bytes(b"")
    (root / "junk.ckpt").write_bytes(b"\x80\x04 not a checkpoint")
    (root / "cut.ckpt").write_bytes(Path(digits_ckpt).read_bytes()[:3000])
    _bad_checkpoints(root, Path(digits_ckpt))
    (root / "junk.onnx").write_bytes(b"definitely not protobuf")
    (root / "fc.onnx").write_bytes(reference_onnx("fc_autoencoder_toycar"))
    (root / "data.txt").write_text("1,2,3")
    (root / "junk.db").write_bytes(b"not sqlite" * 100)
    for name, header, rows in [
        ("nocols.csv", ["arch"], [["a"]]),
        ("nonnum.csv", ["arch", "latency_ms"], [["layers=1,units=16,activation=relu,dropout=0.0", "slow"]]),
        ("negative.csv", ["arch", "latency_ms"], [["layers=1,units=16,activation=relu,dropout=0.0", "-3"]]),
        ("kitcols.csv", ["space", "kind", "key"], [["tiny-vision", "unit", "x"]]),
        ("kitkind.csv", ["space", "kind", "key", "role", "median_ms"], [["tiny-vision", "layer", "x", "", "1"]]),
    ]:
        with open(root / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    (root / "empty.csv").write_text("")
    db = str(root / "nas.db")
    store = Store(db)
    space_id = store.ensure_space("toy", "h", "choice", "name: toy")
    store.create_experiment("existing", space_id, "random", ["cpu"], [{"name": "accuracy", "direction": "max"}], [], 5, 0,
                            {}, {})
    return root, db, str(digits_ckpt)


def _bad_checkpoints(root: Path, good: Path) -> None:
    """Checkpoints of every wrong kind: a text file, a zip that is not a checkpoint, another
    program's torch.save, ours with fields missing, ours with weights of another shape."""
    import zipfile

    import torch

    (root / "text.ckpt").write_text("e" * 101 + "\nthis is a text file, not a checkpoint\n")
    with zipfile.ZipFile(root / "other.zip.ckpt", "w") as z:
        z.writestr("readme.txt", "a zip of something else")
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 4}, root / "foreign.ckpt")
    torch.save(torch.zeros(2, 2), root / "tensor.ckpt")
    payload = torch.load(good, weights_only=True)
    torch.save({k: v for k, v in payload.items() if k not in ("input_shape", "mean")}, root / "missing.ckpt")
    torch.save({**payload, "num_classes": "ten"}, root / "typed.ckpt")
    torch.save({**payload, "model": {"stem.conv1.weight": torch.zeros(1)}}, root / "weights.ckpt")
    torch.save({**payload, "space_yaml": "name: [unclosed"}, root / "space.ckpt")


def _cases():
    c = []

    def case(needle, *args):
        c.append(pytest.param(args, needle, id=f"{len(c):02d}-{needle[:30]}"))

    # search space YAML and names
    case("YAML syntax error", "space", "show", "{root}/syntax.yaml")
    case("unknown key", "space", "show", "{root}/typo.yaml")
    case("kernels must be odd", "space", "show", "{root}/kernel.yaml")
    case("must be a YAML mapping", "space", "show", "{root}/list.yaml")
    case("unknown search space", "space", "show", "no-such-space")
    case("does not exist", "space", "show", "{root}/missing.yaml")
    case("-n must be at least 1", "space", "sample", "hybrid-vision", "-n", "0")
    case("Invalid value", "space", "sample", "hybrid-vision", "-n", "many")
    # arch strings
    case("unknown mixer 'lstm3'", "space", "check", "hybrid-vision", "16:lstm3+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    case("'conv9' is not allowed", "space", "check", "hybrid-vision", "16:conv9+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    case("arch has 2 stages", "space", "check", "hybrid-vision", "16:conv3+mlp2/48:conv3+mlp2")
    case("expected MIXER+FFN", "space", "check", "hybrid-vision", "16:conv3/48:conv3+mlp2/64:conv3+mlp2")
    case("plain arch", "space", "check", "hybrid-vision", "layers=1,units=16,activation=relu,dropout=0.0")
    case("empty arch", "space", "check", "hybrid-vision", " ")
    case("does not parse", "space", "check", "hybrid-vision", "{{bad json")
    case("not allowed", "subnet", "export", "{ckpt}", "16:conv3+mlp2/40:conv3+mlp2/64:conv3+mlp2", "-o", "{root}/m.onnx")
    # checkpoints
    case("does not exist", "subnet", "export", "{root}/none.ckpt", "largest", "-o", "{root}/m.onnx")
    case("corrupted", "subnet", "export", "{root}/empty.ckpt", "largest", "-o", "{root}/m.onnx")
    case("corrupted", "subnet", "export", "{root}/junk.ckpt", "largest", "-o", "{root}/m.onnx")
    case("corrupted", "supernet", "info", "{root}/cut.ckpt")
    case("corrupted", "subnet", "export", "{root}/text.ckpt", "largest", "-o", "{root}/m.onnx")
    case("corrupted", "subnet", "export", "{root}/other.zip.ckpt", "largest", "-o", "{root}/m.onnx")
    case("not a nas supernet checkpoint", "subnet", "export", "{root}/foreign.ckpt", "largest", "-o", "{root}/m.onnx")
    case("not a nas supernet checkpoint", "supernet", "info", "{root}/tensor.ckpt")
    case("incomplete or damaged", "subnet", "export", "{root}/missing.ckpt", "largest", "-o", "{root}/m.onnx")
    case("incomplete or damaged", "supernet", "info", "{root}/typed.ckpt")
    case("does not match its space", "subnet", "export", "{root}/weights.ckpt", "largest", "-o", "{root}/m.onnx")
    case("YAML syntax error", "search", "--supernet", "{root}/space.ckpt", "--target", "mcu-m7", "--db", "{db}")
    case("must end in .onnx", "subnet", "export", "{ckpt}", "largest", "-o", "{root}/m.txt")
    case("is a folder", "subnet", "export", "{ckpt}", "largest", "-o", "{root}")
    case("already exists", "supernet", "train", "hybrid-vision", "--dataset", "digits", "--out", "{ckpt}")
    # datasets
    case("unknown dataset 'mnist'", "supernet", "train", "hybrid-vision", "--dataset", "mnist", "--out", "{root}/t.ckpt")
    case("does not exist", "supernet", "train", "hybrid-vision", "--dataset", "{root}/none.npz", "--out", "{root}/t.ckpt")
    case("unknown UCR problem", "supernet", "train", "hybrid-seq", "--dataset", "ucr:Nope", "--out", "{root}/t.ckpt")
    case("cannot load dataset callable", "supernet", "train", "hybrid-vision", "--dataset", "no_module_here:load",
         "--out", "{root}/t.ckpt")
    case("epochs=0", "supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "0", "--out", "{root}/t.ckpt")
    case("extremes='biggest'", "supernet", "train", "hybrid-vision", "--dataset", "digits", "--extremes", "biggest",
         "--out", "{root}/t.ckpt")
    # targets, ONNX files, kit CSVs
    case("unknown target 'tpu'", "latency", "build", TINY, "--target", "tpu")
    case("no GPU", "latency", "build", TINY, "--target", "gpu")
    case("not a valid ONNX model", "latency", "predict", "{root}/junk.onnx", "--target", "mcu-m7")
    case("not a valid ONNX model", "latency", "measure", "{root}/junk.onnx")
    case("does not exist", "latency", "measure", "{root}/none.onnx")
    case("cannot be measured", "latency", "measure", "{root}/fc.onnx", "--target", "mcu-m7")
    case("holds no nas arch", "latency", "predict", "{root}/fc.onnx", "--target", "gpu")
    case("lacks the column(s) latency_ms", "latency", "import", "{root}/nocols.csv", "--target", "dev", "--space", "toy-choice")
    case("is not a number", "latency", "import", "{root}/nonnum.csv", "--target", "dev", "--space", "toy-choice")
    case("must be a positive number", "latency", "import", "{root}/negative.csv", "--target", "dev", "--space", "toy-choice")
    case("lacks the column(s) role, median_ms", "latency", "import", "{root}/kitcols.csv", "--target", "dev")
    case("has no data rows", "latency", "import", "{root}/empty.csv", "--target", "dev", "--space", "toy-choice")
    case("built-in target", "latency", "import", "{root}/nonnum.csv", "--target", "cpu", "--space", "toy-choice")
    case("not a usable target name", "latency", "import", "{root}/nonnum.csv", "--target", "../evil", "--space", "toy-choice")
    case("--input-shape", "latency", "build", "hybrid-vision", "--target", "mcu-m7", "--input-shape", "1,x,8")
    # search options and database URLs
    case("unknown strategy", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--strategy", "sa", "--db", "{db}")
    case("does not parse", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--constraint", "cpu_ms=<2", "--db", "{db}")
    case("--budget must be at least 1", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--budget", "0", "--db", "{db}")
    case("already exists", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--experiment", "existing", "--db", "{db}")
    case("no experiment 'ghost'", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--resume", "--experiment", "ghost", "--db", "{db}")
    case("cannot reach the store", "results", "x", "--db", "postgresql://postgres@127.0.0.1:5999/none")
    case("unsupported database", "results", "x", "--db", "mysql://root@127.0.0.1/x")
    case("not a database URL", "results", "x", "--db", "postgresql://:@:/x:y")
    case("file is not a database", "results", "x", "--db", "{root}/junk.db")
    case("does not exist", "results", "x", "--db", "{root}/missing.db")
    case("--format must be", "results", "existing", "--db", "{db}", "--format", "xml")
    case("no experiment 'nope'", "results", "nope", "--db", "{db}")
    # the dashboard's port and address
    case("--port must be between", "dashboard", "--db", "{db}", "--port", "70000")
    case("--port must be between", "dashboard", "--db", "{db}", "--port", "0")
    case("not an address", "dashboard", "--db", "{db}", "--host", "no.such.host.invalid")
    case("does not exist", "dashboard", "--db", "{root}/missing.db")
    # clusters and usage errors
    case("does not exist", "cluster", "up", "{root}/cluster.yaml")
    case("No such command", "spaces")
    case("No such option", "space", "show", "hybrid-vision", "--colour")
    case("Missing argument", "subnet", "export")
    return c


CASES = _cases()


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("args, needle", CASES)
def test_bad_input(cli, files, args, needle, digits_profiles, monkeypatch):
    monkeypatch.setenv("NAS_PROFILES", str(digits_profiles))  # the checkpoint's 8x8 profiles: the search gets far
    root, db, ckpt = files
    before = Store(db, readonly=True).row_counts()
    result = cli(*(a.format(root=root, db=db, ckpt=ckpt) for a in args))
    assert_one_line_error(result, needle)
    assert Store(db, readonly=True).row_counts() == before

"""What an attacker tried (issue "Trust on a fresh machine"): every hostile input is one line and
exit 2 (or works, where it is valid), ends in seconds, and leaves the store's file byte-identical.
A case is a row of CASES: add one per new finding."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.store import Store
from tests.conftest import DATA, assert_one_line_error

TINY = str(DATA / "tiny-vision.yaml")
LIMIT_S = 20  # a hang guard; the measured times are in the test's report (the slowest, the lock, waits 5 s)

BOMB = """name: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
task: *g
stages: *g
"""
TASK = "task: {kind: image, dataset: digits, input_shape: [1, 8, 8], num_classes: 10}\n"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _digest(db: str) -> str:
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = Path(db + suffix)
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, search_env):
    """Every hostile file, a store holding one small real search, and a foreign SQLite database."""
    import torch

    from nas.runner import SearchConfig, search
    from nas.space import load

    root = tmp_path_factory.mktemp("hostile")
    (root / "bomb.yaml").write_text(BOMB)
    (root / "width.yaml").write_text("name: w\n" + TASK + "stages:\n  - {depth: [1], width: [100000]}\n")
    (root / "kernel.yaml").write_text("name: k\n" + TASK + "mixers: {conv: {kernel: [100001]}}\n"
                                      "stages:\n  - {depth: [1], width: [16]}\n")
    (root / "depth.yaml").write_text("name: d\n" + TASK + "stages:\n  - {depth: [100000], width: [16]}\n")
    (root / "huge-choice.yaml").write_text("name: c\nkind: choice\nchoices: {x: {low: 0, high: 1000000000000}}\n")
    (root / "nul-name.yaml").write_text('name: "a\\0b"\nkind: choice\nchoices: {x: [1, 2]}\n')
    (root / "cr-name.yaml").write_text('name: "a\\rb"\nkind: choice\nchoices: {x: [1, 2]}\n')
    ckpt = Path(search_env["hybrid-vision"])
    payload = torch.load(ckpt, weights_only=True)
    torch.save({**payload, "space_yaml": BOMB}, root / "bomb.ckpt")
    (root / "latin1.json").write_bytes('{"stages": "\xe9"}'.encode("latin-1"))
    space = load("toy-choice")
    archs = [a.to_str() for a in space.sample_unique(__import__("random").Random(0), 12)]
    _write_csv(root / "dup.csv", ["arch", "latency_ms"], [[a, 1.0 + i] for i, a in enumerate(archs)] + [[archs[0], 9.0]])
    _write_csv(root / "tiny.csv", ["arch", "latency_ms"], [[archs[0], "1e-320"]] + [[a, 1.0] for a in archs[1:]])
    _write_csv(root / "huge.csv", ["arch", "latency_ms"], [[archs[0], "1e308"]] + [[a, 1.0] for a in archs[1:]])
    _write_csv(root / "rows.csv", ["arch", "latency_ms"], [[archs[i % 12], 1.0] for i in range(25_000)])
    with open(root / "bom.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        w.writerows([a, 1.0 + i / 10] for i, a in enumerate(archs))
    kit = [["space", "kind", "key", "role", "median_ms", "cv"]]
    tiny = load(TINY)
    kit += [["tiny-vision", "arch", a.to_str(), "fit", 1.0 + i, "abc" if i == 0 else "0.01"]
            for i, a in enumerate(tiny.sample_unique(__import__("random").Random(1), 6))]
    _write_csv(root / "kit-cv.csv", kit[0], kit[1:])
    kit_tiny = [row[:] for row in kit]
    kit_tiny[1][4], kit_tiny[1][5] = "1e-320", "0.01"
    _write_csv(root / "kit-tiny.csv", kit_tiny[0], kit_tiny[1:])
    (root / "results-file").write_text("a file, not a folder")
    with sqlite3.connect(root / "foreign.db") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    db = str(root / "nas.db")
    search(SearchConfig(strategy="random", budget=3, targets=("mcu-m7",), workers=0, db=db, experiment="done",
                        supernet=str(ckpt), val_examples=100))
    odd = str(root / "odd#store%?.db")
    search(SearchConfig(strategy="random", budget=2, targets=("mcu-m7",), workers=0, db=odd, experiment="odd",
                        supernet=str(ckpt), val_examples=100))
    return root, db, str(ckpt), str(search_env["mcu-vision"])


def _cases():
    c = []

    def case(needle, *args, works=False):
        c.append(pytest.param(args, needle, works, id=f"{len(c):02d}-{needle[:40]}"))

    long_arch = "16:" + ",".join(["conv3+mlp2"] * 40) + "/48:conv3+mlp2/64:conv3+mlp2"
    nested = "{\"stages\": " + "[" * 20_000 + "]" * 20_000 + "}"
    # search spaces: alias bombs, sizes, names
    case("aliases (*name) are not allowed", "space", "show", "{root}/bomb.yaml")
    case("aliases (*name) are not allowed", "supernet", "info", "{root}/bomb.ckpt")
    case("values must be at most 4096", "space", "show", "{root}/width.yaml")
    case("values must be at most 63", "space", "show", "{root}/kernel.yaml")
    case("values must be at most 64", "space", "show", "{root}/depth.yaml")
    case("more than 1,000,000 values", "space", "show", "{root}/huge-choice.yaml")
    case("printable characters", "space", "show", "{root}/nul-name.yaml")
    case("printable characters", "space", "show", "{root}/cr-name.yaml")
    # arch strings and files
    case("expected WIDTH:MIXER+FFN", "space", "check", "hybrid-vision", "1\u00b2:conv3+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    case("unknown mixer", "space", "check", "hybrid-vision", "16:conv\u0663+mlp2/48:conv3+mlp2/64:conv3+mlp2")
    case("arch JSON is not a network arch", "space", "check", "hybrid-vision",
         '{"stages": [{"width": 1e400, "layers": []}]}')
    case("arch JSON does not parse", "space", "check", "hybrid-vision", nested)
    case("arch JSON does not parse", "space", "check", "hybrid-vision", '{"stages": ' + "9" * 5000 + "}")
    case("not UTF-8", "space", "check", "hybrid-vision", "{root}/latin1.json")
    case("expected WIDTH:MIXER+FFN", "latency", "predict", "x" * 300, "--target", "mcu-m7")
    case("no known space accepts", "latency", "predict", long_arch, "--target", "mcu-m7")
    case("", "space", "check", "hybrid-vision", "largest", works=True)
    case("", "latency", "predict", "smallest", "--space", "hybrid-vision", "--target", "mcu-m7", works=True)
    case("pass --space", "latency", "predict", "largest", "--target", "mcu-m7")
    # latency imports
    case("not a latency in milliseconds", "latency", "import", "{root}/tiny.csv", "--target", "dev", "--space", "toy-choice")
    case("not a latency in milliseconds", "latency", "import", "{root}/huge.csv", "--target", "dev", "--space", "toy-choice")
    case("with another time", "latency", "import", "{root}/dup.csv", "--target", "dev", "--space", "toy-choice")
    case("more than 20,000 rows", "latency", "import", "{root}/rows.csv", "--target", "dev", "--space", "toy-choice")
    case("column 'cv' is not a number", "latency", "import", "{root}/kit-cv.csv", "--target", "dev", "--space", TINY)
    case("not a latency in milliseconds", "latency", "import", "{root}/kit-tiny.csv", "--target", "dev", "--space", TINY)
    case("", "latency", "import", "{root}/bom.csv", "--target", "bom-dev", "--space", "toy-choice",
         "--out", "{root}/profiles", works=True)
    # outputs
    case("cannot write kit output", "latency", "kit", TINY, "-o", "/proc/self/kit.zip")
    case("is a file", "bench", "{root}/dup.csv", "--space", "toy-choice", "--objective", "latency_ms:min",
         "--out", "{root}/results-file")
    # stores
    case("database of something else", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{root}/foreign.db")
    case("", "results", "odd", "--db", "{root}/odd#store%?.db", works=True)
    case("resume it with the same", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--experiment", "done", "--resume", "--budget", "5", "--val-examples", "50")
    case("resume it with the same", "search", "--supernet", "{mcu}", "--target", "mcu-m7", "--db", "{db}",
         "--experiment", "done", "--resume", "--budget", "5", "--val-examples", "100")
    case("resume it with the same", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--experiment", "done", "--resume", "--budget", "5", "--val-examples", "100",
         "--objective", "accuracy:max", "--objective", "params:min")
    case("1 to 200 printable characters", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--experiment", "e" * 10_000)
    case("look unsatisfiable", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--constraint", "sram_kb<=0.0001")
    case("unknown target 'table:ok'", "latency", "build", "hybrid-vision", "--target", "table:ok")
    # accuracy calibration
    case("--steps must be at least 1", "supernet", "calibrate", "{mcu}", "--steps", "0")
    case("does not exist", "supernet", "calibrate", "{root}/no.ckpt")
    case("cannot write calibration output", "supernet", "calibrate", "{mcu}", "--out", "/proc/self/c.json")
    case("not a supernet checkpoint", "supernet", "calibrate", "{root}/results-file")
    case("--accuracy must be supernet, calibrated", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--accuracy", "oracle")
    case("is not JSON", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--accuracy", "calibrated:{root}/dup.csv")
    case("leave out --finetune-steps", "search", "--supernet", "{ckpt}", "--target", "mcu-m7", "--db", "{db}",
         "--accuracy", "calibrated", "--finetune-steps", "5")
    # the dashboard
    case("not an address of this machine", "dashboard", "--db", "{db}", "--host", "8.8.8.8")
    return c


CASES = _cases()


def _fill(arg: str, places: dict[str, str]) -> str:
    for key, value in places.items():  # not str.format: JSON arguments hold braces
        arg = arg.replace(key, value)
    return arg


@pytest.mark.parametrize("args, needle, works", CASES)
def test_hostile_input(cli, hostile, args, needle, works, monkeypatch, digits_profiles):
    monkeypatch.setenv("NAS_PROFILES", str(digits_profiles))
    root, db, ckpt, mcu = hostile
    before = _digest(db)
    started = time.time()
    places = {"{root}": str(root), "{db}": db, "{ckpt}": ckpt, "{mcu}": mcu}
    result = cli(*(_fill(a, places) for a in args))
    elapsed = time.time() - started
    assert elapsed < LIMIT_S, f"{elapsed:.1f} s"
    if works:
        assert result.code == 0, result
    else:
        assert_one_line_error(result, needle)
        assert "\n\n" not in result.out and not result.out.strip(), result  # no blank line or bar before it
    assert _digest(db) == before


def test_odd_characters_in_a_store_path_name_one_file(hostile):
    root, *_ = hostile
    assert not (root / "odd").exists()  # the old URI cut the path at '#' and created this
    assert Store(str(root / "odd#store%?.db"), readonly=True).experiment("odd").evaluations == 2


def test_a_locked_store_is_one_line_in_seconds_and_left_as_it_was(cli, hostile, monkeypatch):
    root, db, ckpt, _ = hostile
    monkeypatch.setattr(Store, "sqlite_open_wait_s", 1.0)  # 5 s by default; the behaviour is the same
    locked = str(root / "locked.db")
    Store(locked).close()
    before = _digest(locked)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({locked!r}, isolation_level=None)\n"
        "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (("results", "x", "--db", locked),
                     ("search", "--supernet", ckpt, "--target", "mcu-m7", "--db", locked, "--budget", "2")):
            started = time.time()
            result = cli(*args)
            assert time.time() - started < 10
            assert_one_line_error(result, "locked by another process")
    finally:
        holder.kill()
        holder.wait()
    assert _digest(locked) == before


def test_a_kit_written_onto_a_symlink_replaces_the_link_and_never_writes_through_it(cli, tmp_path):
    link = tmp_path / "kit.zip"
    target = tmp_path / "elsewhere.zip"
    target.write_bytes(b"keep me")
    link.symlink_to(target)
    result = cli("latency", "kit", TINY, "-o", str(link), "--fit", "5", "--validate", "2")
    assert result.code == 0, result
    assert not link.is_symlink() and link.stat().st_size > 1000
    assert target.read_bytes() == b"keep me"


def test_sigterm_ends_a_search_as_interrupted(hostile, tmp_path, digits_profiles):
    _, _, ckpt, _ = hostile
    db = str(tmp_path / "term.db")
    env = {**os.environ, "NAS_PROFILES": str(digits_profiles)}
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--supernet", ckpt, "--target", "mcu-m7",
                             "--db", db, "--experiment", "term", "--budget", "500", "--workers", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    from tests._faults import stored

    deadline = time.time() + 120
    while stored(db) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.terminate()
    code = proc.wait(timeout=60)
    assert code == 143, proc.stderr.read()
    exp = Store(db, readonly=True).experiment("term")
    assert exp.status == "interrupted" and exp.evaluations >= 3


def test_the_dashboard_warns_beyond_loopback_and_takes_its_server_down_on_sigterm(hostile):
    import socket

    _, db, _, _ = hostile
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--db", db, "--host", "0.0.0.0", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "warning: --host 0.0.0.0 serves the dashboard beyond this machine" in proc.stderr.readline()
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the dashboard never listened")
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    deadline = time.time() + 15
    while time.time() < deadline:  # the Streamlit child went down with it
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    pytest.fail("the Streamlit server kept listening after nas dashboard was terminated")


def test_an_alias_bomb_as_a_cluster_config_is_one_line(cli, tmp_path):
    bomb = tmp_path / "cluster.yaml"
    bomb.write_text(BOMB.replace("name: bomb", "cluster_name: bomb\nprovider: {type: local}"))
    started = time.time()
    result = cli("cluster", "up", str(bomb))
    assert time.time() - started < 10
    assert_one_line_error(result, "more than 100,000 values")


def test_an_arch_json_file_is_an_arch_everywhere(cli, tmp_path):
    from nas.space import load

    arch = load("hybrid-vision").largest()
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_json()))
    assert cli("space", "check", "hybrid-vision", str(path)).out.strip() == arch.to_str()
    predicted = cli("latency", "predict", str(path), "--target", "mcu-m7", "--json")
    assert predicted.code == 0 and json.loads(predicted.out)["arch"] == arch.to_str()

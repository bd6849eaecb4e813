"""Shared fixtures: small real data, a briefly trained supernet checkpoint, CLI runner."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits():
    from nas.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory, digits) -> Path:
    """A hybrid-vision supernet trained for one epoch on digits (a few seconds)."""
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    out = tmp_path_factory.mktemp("ckpt") / "hv-digits.ckpt"
    train(load("hybrid-vision"), digits, TrainConfig(epochs=1, batch_size=64), out)
    return out


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-400:]!r}, err={self.err[-400:]!r})"


@pytest.fixture
def cli(capsys):
    """Run ``nas`` in-process: cli("space", "show", "x") -> CliResult."""
    from nas.cli import run

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def assert_one_line_error(result: CliResult, needle: str = "") -> None:
    """Exit status 2, exactly one line on stderr starting with 'error:', no traceback."""
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2, result
    assert len(lines) == 1, result
    assert lines[0].startswith("error: "), result
    assert "Traceback" not in result.err + result.out
    assert needle.lower() in lines[0].lower(), (needle, lines[0])


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_up() -> bool:
    import sqlalchemy as sa

    try:
        with sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3}).connect():
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    if not _postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"nas_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg_url")


SPACES = ("hybrid-vision", "mcu-vision")


@pytest.fixture(scope="session")
def digits_profiles(tmp_path_factory) -> Path:
    """mcu-m7 profiles at the digits input shape (1x8x8) for both spaces, in their own folder."""
    from nas.latency import build_profile, save_profile
    from nas.space import load

    root = tmp_path_factory.mktemp("profiles")
    for name in SPACES:
        save_profile(build_profile(load(name), "mcu-m7", input_shape=(1, 8, 8)), root)
    return root


@pytest.fixture(scope="session")
def search_env(tmp_path_factory, digits_profiles, digits):
    """Checkpoints of both spaces trained briefly on digits, with NAS_PROFILES pointing at their profiles."""
    from nas.space import load
    from nas.supernet.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("search")
    ckpts = {}
    for name in SPACES:
        ckpts[name] = folder / f"{name}.ckpt"
        train(load(name), digits.limit(512), TrainConfig(epochs=1, batch_size=64), ckpts[name])
    old = os.environ.get("NAS_PROFILES")
    os.environ["NAS_PROFILES"] = str(digits_profiles)
    yield ckpts
    if old is None:
        os.environ.pop("NAS_PROFILES", None)
    else:
        os.environ["NAS_PROFILES"] = old


@pytest.fixture(scope="session")
def ray_local(search_env):
    """One local Ray for the session (the driver reuses it instead of starting its own)."""
    import ray

    from nas.runner.ray_pool import start_ray

    start_ray(2, None)
    yield
    ray.shutdown()



@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory, search_env, ray_local) -> str:
    """A store holding one finished real search (mcu-vision, nsga2, 12 evaluations, mcu-m7) with its profiles."""
    from nas.latency import load_profile
    from nas.runner import SearchConfig, search
    from nas.space import load
    from nas.store import Store

    db = str(tmp_path_factory.mktemp("seeded") / "nas.db")
    search(SearchConfig(strategy="nsga2", budget=12, targets=("mcu-m7",), workers=2, db=db, experiment="seeded",
                        supernet=str(search_env["mcu-vision"]), val_examples=100, constraints=("sram_kb<=8",)))
    # a validated profile too, so the Targets page has a predicted-vs-measured plot
    profile, _ = load_profile("mcu-m7", load("mcu-vision"), input_shape=(1, 8, 8))
    data = profile.to_json()
    data["validation"] = {"n": 3, "within_10pct": 1.0, "kendall_tau": 1.0, "mape": 1.0, "rmse_ms": 0.01}
    data["validation_rows"] = [{"arch": f"a{i}", "measured_ms": 1.0 + i, "predicted_ms": 1.02 + i} for i in range(3)]
    Store(db).save_profile(data)
    return db

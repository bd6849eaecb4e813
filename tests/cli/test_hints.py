"""Hints that name a command name the space the way the user gave it: a YAML path for a space of
their own, so the suggested command works as printed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DATA, assert_one_line_error

TINY = DATA / "tiny-vision.yaml"


def test_a_missing_profile_names_the_yaml_path(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_PROFILES", str(tmp_path / "profiles"))
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "myspace.yaml"
    mine.write_text(TINY.read_text().replace("name: tiny-vision", "name: my-space"))
    result = cli("latency", "predict", "8:conv3+mlp2/16:conv3+mlp2", "--target", "mcu-m7", "--space", str(mine))
    assert_one_line_error(result, f"'nas latency build {mine} --target mcu-m7'")
    # ... and the command it names works
    assert cli("latency", "build", str(mine), "--target", "mcu-m7").code == 0
    assert cli("latency", "predict", "8:conv3+mlp2/16:conv3+mlp2", "--target", "mcu-m7", "--space", str(mine)).code == 0


def test_a_space_known_only_by_its_embedded_yaml_gets_a_placeholder_not_a_wrong_name():
    import pytest

    from nas.errors import NasError
    from nas.latency import load_profile
    from nas.space import loads

    space = loads(TINY.read_text().replace("name: tiny-vision", "name: my-space"))
    with pytest.raises(NasError, match=r"nas latency build <my-space.yaml> --target cpu"):
        load_profile("cpu", space, [Path("/nonexistent")])

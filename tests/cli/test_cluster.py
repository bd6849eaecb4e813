"""nas cluster: the example configs are valid Ray launcher configs; commands are built safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, assert_one_line_error

CONFIGS = sorted((REPO / "experiments" / "cluster").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_example_configs_follow_rays_schema(config):
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load(config.read_text()), schema)


def test_there_is_a_local_and_a_cloud_config():
    providers = {yaml.safe_load(c.read_text())["provider"]["type"] for c in CONFIGS}
    assert {"local", "aws"} <= providers


def test_up_down_and_submit_build_ray_commands(cli):
    config = str(CONFIGS[0])
    assert cli("cluster", "up", config, "--dry-run").out.strip().endswith(f"up {config} -y")
    assert cli("cluster", "down", config, "--dry-run").out.strip().endswith(f"down {config} -y")
    out = cli("cluster", "submit", config, "--dry-run", "--", "search", "--supernet", "a b; rm -rf /.ckpt").out
    # the whole remote command is one quoted argument, with the odd path kept as one argument inside it
    assert "'nas search --supernet '\"'\"'a b; rm -rf /.ckpt'\"'\"' --address auto'" in out


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "does not exist"),
        ("cluster_name: [\n", "YAML syntax error"),
        ("provider: {type: local}\n", "'cluster_name' is required"),
        ("cluster_name: x\nprovider: {}\n", "'provider.type' is required"),
    ],
)
def test_bad_cluster_configs(cli, tmp_path, content, needle):
    path = tmp_path / "cluster.yaml"
    if content is not None:
        path.write_text(content)
    assert_one_line_error(cli("cluster", "up", path), needle)


def test_submit_needs_a_command(cli):
    assert_one_line_error(cli("cluster", "submit", str(CONFIGS[0]), "--dry-run"), "nothing to submit")

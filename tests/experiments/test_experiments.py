"""The experiments stay runnable: every script imports as a module of the ``experiments`` package,
parses its own command line, and the ones with a smoke mode run it end to end."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import experiments

SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_"))


def test_every_experiment_is_found():
    assert {"bench_graph", "search_efficiency", "gpu_check", "driver_throughput"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_experiment_imports_and_parses_its_command_line(name, monkeypatch, capsys):
    module = importlib.import_module(f"experiments.{name}")
    assert module.__doc__ and "python -m experiments." + name in module.__doc__, "its docstring says how to run it"
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_graph_smoke_runs_every_strategy_through_the_search_path(monkeypatch, capsys):
    pytest.importorskip("nas_bench_graph")
    from experiments import bench_graph

    monkeypatch.setattr(sys, "argv", ["bench_graph", "--smoke", "--scenarios", "table-cheap", "--jobs", "1"])
    bench_graph.main()
    out = capsys.readouterr().out
    assert "6 to go" in out and "proteins" in out and "'datasets': 2" in out

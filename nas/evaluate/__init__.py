"""Evaluation: one arch in, one record of metrics out.

- :class:`SupernetEvaluator`: accuracy of the subnet with inherited supernet weights on the
  held-out (validation) split, latency on each requested target from its predictor, and
  params, MACs, peak SRAM and flash (int8) from per-unit tables.
- :class:`CallableEvaluator` and :class:`TableEvaluator`: a user's own evaluation, for any
  space, plain-choice ones included.

``cheap(arch)`` returns what costs microseconds (everything but accuracy); the search driver
uses it to screen out candidates that break a constraint before spending an evaluation.
"""

from typing import TYPE_CHECKING, Any

from nas.evaluate._base import CallableEvaluator, Evaluator, TableEvaluator, read_table

if TYPE_CHECKING:
    from nas.evaluate.supernet import EvaluatorPayload, SupernetEvaluator


def __getattr__(name: str) -> Any:
    # The supernet evaluator pulls in torch; a user's own evaluator (a plain space, a table) never does.
    if name in ("SupernetEvaluator", "EvaluatorPayload"):
        from nas.evaluate import supernet

        return getattr(supernet, name)
    raise AttributeError(f"module 'nas.evaluate' has no attribute {name!r}")


__all__ = ["CallableEvaluator", "Evaluator", "EvaluatorPayload", "SupernetEvaluator", "TableEvaluator", "read_table"]

"""Evaluation: one arch in, one record of metrics out.

- :class:`SupernetEvaluator`: accuracy of the subnet with inherited supernet weights on the
  held-out (validation) split, latency on each requested target from its predictor, and
  params, MACs, peak SRAM and flash (int8) from per-unit tables.
- :class:`CallableEvaluator` and :class:`TableEvaluator`: a user's own evaluation, for any
  space, plain-choice ones included.

``cheap(arch)`` returns what costs microseconds (everything but accuracy); the search driver
uses it to screen out candidates that break a constraint before spending an evaluation.
"""

from nas.evaluate._base import CallableEvaluator, Evaluator, TableEvaluator, read_table
from nas.evaluate.supernet import SupernetEvaluator

__all__ = ["CallableEvaluator", "Evaluator", "SupernetEvaluator", "TableEvaluator", "read_table"]

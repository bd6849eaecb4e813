"""Hardware-aware neural architecture search: spaces, a weight-sharing supernet,
measured latency models, multi-objective search on Ray, a SQL store and ONNX export.

Importing ``nas`` is cheap: the heavy parts (torch, ray, optuna) load with the
sub-package that needs them.
"""

from nas.errors import NasError

__version__ = "0.1.0"
__all__ = ["NasError", "__version__"]

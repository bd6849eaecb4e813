"""The weight-sharing supernet: model, extraction, training, checkpoints and ONNX export.

The model classes load on first use (they pull in torch); ``nas.supernet.recipe`` does not.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.supernet.model import Subnet, Supernet, SupernetConfig

_MODEL = ("Subnet", "Supernet", "SupernetConfig")


def __getattr__(name: str) -> Any:
    if name in _MODEL:
        from nas.supernet import model

        return getattr(model, name)
    raise AttributeError(f"module 'nas.supernet' has no attribute {name!r}")


__all__ = ["Subnet", "Supernet", "SupernetConfig"]

"""The weight-sharing supernet: model, extraction, training, checkpoints and ONNX export."""

from nas.supernet.model import Subnet, Supernet, SupernetConfig

__all__ = ["Subnet", "Supernet", "SupernetConfig"]

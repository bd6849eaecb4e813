"""Where model code runs: the device a user names (``--device``), checked once, in one line when
it is not here."""

from __future__ import annotations

import torch

from nas.errors import NasError


def resolve_device(text: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; one line when it is not here."""
    text = (text or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise NasError(f"--device {text}: no GPU is present here (torch.cuda.is_available() is False)")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NasError(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if text == "meta":
        return torch.device("meta")
    raise NasError(f"--device {text!r} is not a device (auto, cpu, cuda or cuda:N)")

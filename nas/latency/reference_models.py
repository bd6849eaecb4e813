"""The MLPerf Tiny v1.0 reference models, built as the calibration data describes them.

Int8 on the boards, BatchNorm folded (so each conv carries a bias), ReLU after each conv or
dense layer unless said otherwise. Used to calibrate and check the MCU cost model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResNet8(nn.Module):
    """resnet8_cifar10: 32x32x3 input, three residual stacks (16, 32, 64), avg pool, dense 10."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.s1a, self.s1b = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.s2a, self.s2b = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.Conv2d(32, 32, 3, padding=1)
        self.s2s = nn.Conv2d(16, 32, 1, stride=2)
        self.s3a, self.s3b = nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.Conv2d(64, 64, 3, padding=1)
        self.s3s = nn.Conv2d(32, 64, 1, stride=2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(x + self.s1b(F.relu(self.s1a(x))))
        x = F.relu(self.s2s(x) + self.s2b(F.relu(self.s2a(x))))
        x = F.relu(self.s3s(x) + self.s3b(F.relu(self.s3a(x))))
        x = F.avg_pool2d(x, 8).flatten(1)
        return F.softmax(self.fc(x), dim=-1)


class DsCnn(nn.Module):
    """dscnn_speech_commands: 49x10x1 MFCC, conv 10x4 s2 (64), 4 x (dw3x3, pw 64), pool, dense 12."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 64, (10, 4), stride=2, padding=(5, 1))
        self.dw = nn.ModuleList(nn.Conv2d(64, 64, 3, padding=1, groups=64) for _ in range(4))
        self.pw = nn.ModuleList(nn.Conv2d(64, 64, 1) for _ in range(4))
        self.fc = nn.Linear(64, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))  # (64, 25, 5)
        for dw, pw in zip(self.dw, self.pw, strict=True):
            x = F.relu(pw(F.relu(dw(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.softmax(self.fc(x), dim=-1)


class FcAutoencoder(nn.Module):
    """fc_autoencoder_toycar: 640 -> 4 x dense 128 -> dense 8 -> 4 x dense 128 -> dense 640."""

    def __init__(self) -> None:
        super().__init__()
        sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


REFERENCE_MODELS = {
    "resnet8_cifar10": (ResNet8, (1, 3, 32, 32)),
    "dscnn_speech_commands": (DsCnn, (1, 1, 49, 10)),
    "fc_autoencoder_toycar": (FcAutoencoder, (1, 640)),
}


def reference_onnx(name: str) -> bytes:
    """The reference model ``name`` as ONNX (random weights: only shapes matter to the cost model)."""
    from nas.supernet.to_onnx import to_onnx

    make, shape = REFERENCE_MODELS[name]
    torch.manual_seed(0)
    return to_onnx(make().eval(), torch.randn(*shape))

"""Elastic blocks: each shares the leading slice of its largest weights and takes its sizes as arguments."""

from nas.blocks.attention import AttentionMixer
from nas.blocks.conv import ConvMixer
from nas.blocks.mlp import MlpFfn
from nas.blocks.moe import MoeFfn
from nas.blocks.ssm import SsmMixer, selective_scan, selective_scan_quadratic, selective_scan_ref

__all__ = [
    "AttentionMixer",
    "ConvMixer",
    "MlpFfn",
    "MoeFfn",
    "SsmMixer",
    "selective_scan",
    "selective_scan_quadratic",
    "selective_scan_ref",
]

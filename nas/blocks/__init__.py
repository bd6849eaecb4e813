"""Elastic blocks: each shares the leading slice of its largest weights and takes its sizes as
arguments. One module per block kind, registered with ``@register_block`` (see ``_registry``)."""

from nas.blocks._registry import (
    Aux,
    block_class,
    build_block,
    register_block,
    registered_block,
    unregister_block,
)
from nas.blocks.attention import AttentionMixer
from nas.blocks.conv import ConvMixer
from nas.blocks.mlp import MlpFfn
from nas.blocks.moe import MoeFfn
from nas.blocks.ssm import SsmMixer, selective_scan, selective_scan_quadratic, selective_scan_ref

__all__ = [
    "AttentionMixer",
    "Aux",
    "ConvMixer",
    "MlpFfn",
    "MoeFfn",
    "SsmMixer",
    "block_class",
    "build_block",
    "register_block",
    "registered_block",
    "selective_scan",
    "selective_scan_quadratic",
    "selective_scan_ref",
    "unregister_block",
]

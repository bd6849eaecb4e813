"""Search spaces and architectures.

>>> from nas import space
>>> s = space.load("hybrid-vision")
>>> a = s.sample(random.Random(0))          # doctest: +SKIP
>>> s.parse(a.to_str()) == a                 # doctest: +SKIP
True
"""

from nas.space._arch import (
    FFN_KINDS,
    MIXER_KINDS,
    Arch,
    ChoiceArch,
    Ffn,
    Layer,
    Mixer,
    NetArch,
    Stage,
    parse_ffn,
    parse_ffn_or_mixer,
    parse_mixer,
)
from nas.space._base import Param, SearchSpace
from nas.space._choice import ChoiceSpace
from nas.space._load import load, loads, shipped_spaces, spaces_dir
from nas.space._net import BlockSettings, NetSpace, StageSpec, Task, layer_cost

__all__ = [
    "FFN_KINDS",
    "MIXER_KINDS",
    "Arch",
    "BlockSettings",
    "ChoiceArch",
    "ChoiceSpace",
    "Ffn",
    "Layer",
    "Mixer",
    "NetArch",
    "NetSpace",
    "Param",
    "SearchSpace",
    "Stage",
    "StageSpec",
    "Task",
    "layer_cost",
    "load",
    "parse_ffn",
    "parse_ffn_or_mixer",
    "parse_mixer",
    "loads",
    "shipped_spaces",
    "spaces_dir",
]

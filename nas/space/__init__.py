"""Search spaces and architectures.

>>> from nas import space
>>> s = space.load("hybrid-vision")
>>> a = s.sample(random.Random(0))          # doctest: +SKIP
>>> s.parse(a.to_str()) == a                 # doctest: +SKIP
True
"""

from nas.space._arch import (
    Arch,
    ChoiceArch,
    Ffn,
    Layer,
    Mixer,
    NetArch,
    Op,
    Stage,
    parse_ffn,
    parse_ffn_or_mixer,
    parse_mixer,
)
from nas.space._base import Param, SearchSpace, read_arch_file, space_hash
from nas.space._choice import ChoiceSpace
from nas.space._kinds import (
    BlockKind,
    block_kind,
    colours,
    describe_kinds,
    kind_names,
    kinds,
    register_kind,
    registered,
    unregister_kind,
)
from nas.space._load import load, loads, shipped_spaces, space_ref, spaces_dir
from nas.space._net import (
    BlockSettings,
    NetSpace,
    StageSpec,
    Task,
    downsampled,
    layer_cost,
    stage_grids,
)
from nas.space._units import Unit, UnitCache, all_units, arch_units

__all__ = [
    "Unit",
    "UnitCache",
    "all_units",
    "arch_units",
    "space_hash",
    "Arch",
    "BlockKind",
    "BlockSettings",
    "ChoiceArch",
    "ChoiceSpace",
    "Ffn",
    "Layer",
    "Mixer",
    "NetArch",
    "NetSpace",
    "Op",
    "Param",
    "SearchSpace",
    "Stage",
    "StageSpec",
    "Task",
    "block_kind",
    "colours",
    "describe_kinds",
    "downsampled",
    "kind_names",
    "kinds",
    "layer_cost",
    "load",
    "loads",
    "parse_ffn",
    "parse_ffn_or_mixer",
    "parse_mixer",
    "read_arch_file",
    "register_kind",
    "registered",
    "shipped_spaces",
    "space_ref",
    "spaces_dir",
    "stage_grids",
    "unregister_kind",
]

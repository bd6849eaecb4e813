"""What a block kind is, in one table: its role, arch-string token, YAML fields and rules, cost
ordering and colour. Torch-free.

Everything that needs to know the kinds reads this table: the arch parser
(:mod:`nas.space._arch`), the YAML reader (:mod:`nas.space._load`), the ordering of options
into the largest and smallest subnets, the latency predictor's unit families and the
dashboard's colours. The supernet finds the module of a kind in the block registry of
:mod:`nas.blocks`. Adding a kind is one :func:`register_kind` entry and one block file::

    register_kind(BlockKind(
        "pool", "mixer", token="pool{size}", fields=("size",),
        cost=lambda op, width, settings: op.size * width, colour="#9467bd",
        description="average pooling over a window of SIZE tokens"))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.errors import NasError

if TYPE_CHECKING:
    from nas.space._arch import Op
    from nas.space._net import BlockSettings

ROLES = ("mixer", "ffn")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class BlockKind:
    """One kind of mixer or ffn.

    - ``name``: the YAML key under ``mixers:``/``ffns:`` and ``Op.kind`` (``attention``);
    - ``token``: the arch-string form with one ``{field}`` per field (``attn{heads}``);
    - ``fields``: the elastic dimensions, each an integer choice list in YAML;
    - ``cost(op, width, settings)``: active multiply-accumulates per token, used only to order
      options (the largest and smallest subnets), never as a metric;
    - ``minimum``/``odd``: per-field value rules; ``allows(op)`` drops combinations of field
      values that do not exist (MoE's top-k above its expert count); ``fits(op, width,
      settings)`` says why a width cannot take the op, or None;
    - ``colour``: the dashboard's colour for it; ``marked``: drawn with a distinct symbol.
    """

    name: str
    role: str
    token: str
    fields: tuple[str, ...]
    cost: Callable[[Op, int, BlockSettings], float]
    colour: str
    description: str = ""
    minimum: Mapping[str, int] = field(default_factory=dict)
    odd: tuple[str, ...] = ()
    allows: Callable[[Op], bool] | None = None
    fits: Callable[[Op, int, BlockSettings], str | None] | None = None
    marked: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise NasError(f"block kind {self.name!r}: role must be mixer or ffn, got {self.role!r}")
        if not self.name.isidentifier():
            raise NasError(f"block kind {self.name!r}: the name must be an identifier (it is a YAML key)")
        if tuple(_PLACEHOLDER.findall(self.token)) != self.fields or not self.token[0].isalpha():
            raise NasError(f"block kind {self.name!r}: token {self.token!r} must start with a letter and hold "
                           f"{', '.join('{' + f + '}' for f in self.fields)} in that order")

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("".join(r"([0-9]{1,6})" if i % 2 else re.escape(part)
                                  for i, part in enumerate(_PLACEHOLDER.split(self.token))))

    @property
    def form(self) -> str:
        """The token for people: ``attn<heads>``, ``ssm<state>x<expand>``."""
        return _PLACEHOLDER.sub(lambda m: f"<{m[1]}>", self.token)

    def format(self, values: tuple[int, ...]) -> str:
        return self.token.format(**dict(zip(self.fields, values, strict=True)))


def _conv_cost(op: Op, w: int, s: BlockSettings) -> float:
    return op.kernel * op.kernel * w + w * w


def _ssm_cost(op: Op, w: int, s: BlockSettings) -> float:
    inner = op.expand * w
    return 2 * w * inner + inner * (2 * op.state) + inner * w + inner * s.ssm_conv


def _ssm_fits(op: Op, w: int, s: BlockSettings) -> str | None:
    if (op.expand * w) % s.ssm_head_dim:
        return f"width {w} x ssm expand {op.expand} is not a multiple of blocks.ssm_head_dim ({s.ssm_head_dim})"
    return None


_KINDS: dict[str, BlockKind] = {}


def register_kind(kind: BlockKind) -> BlockKind:
    """Add a kind to the table (its token must not be taken by another kind)."""
    if kind.name in _KINDS:
        raise NasError(f"block kind {kind.name!r} is already registered")
    probe = kind.format(tuple(1 for _ in kind.fields))
    for other in _KINDS.values():
        if other.pattern.fullmatch(probe) or kind.pattern.fullmatch(other.format(tuple(1 for _ in other.fields))):
            raise NasError(f"block kind {kind.name!r}: token {kind.token!r} clashes with {other.name!r}'s {other.token!r}")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    _KINDS.pop(name, None)


@contextmanager
def registered(kind: BlockKind) -> Iterator[BlockKind]:
    """The kind in the table while inside (tests, experiments with a kind of their own)."""
    register_kind(kind)
    try:
        yield kind
    finally:
        unregister_kind(kind.name)


def block_kind(name: str, role: str | None = None) -> BlockKind:
    kind = _KINDS.get(name)
    if kind is None or (role is not None and kind.role != role):
        known = ", ".join(kind_names(role)) if role else ", ".join(_KINDS)
        raise NasError(f"unknown {role or 'block'} kind {name!r} (known: {known})")
    return kind


def kinds(role: str | None = None) -> tuple[BlockKind, ...]:
    """Registered kinds (of ``role``), in registration order."""
    return tuple(k for k in _KINDS.values() if role is None or k.role == role)


def kind_names(role: str | None = None) -> tuple[str, ...]:
    return tuple(k.name for k in kinds(role))


def forms(role: str | None = None) -> str:
    """The token forms of the kinds, for error messages: ``conv<kernel>, attn<heads>, ...``."""
    return ", ".join(k.form for k in kinds(role))


def colours() -> dict[str, str]:
    return {k.name: k.colour for k in _KINDS.values()}


def describe_kinds() -> list[dict[str, Any]]:
    """One row per kind for ``nas space kinds`` and the docs."""
    return [{"kind": k.name, "role": k.role, "token": k.form, "fields": ", ".join(k.fields),
             "description": k.description} for k in _KINDS.values()]


# The shipped kinds. Their blocks are in nas/blocks/ (conv.py, attention.py, ssm.py, mlp.py, moe.py).
register_kind(BlockKind(
    "conv", "mixer", token="conv{kernel}", fields=("kernel",), cost=_conv_cost, colour="#d62728", odd=("kernel",),
    description="depthwise convolution over a KERNEL (x KERNEL) window, then a pointwise linear"))
register_kind(BlockKind(
    "attention", "mixer", token="attn{heads}", fields=("heads",), colour="#2ca02c",
    cost=lambda op, w, s: 4 * w * op.heads * s.attention_head_dim,
    description="multi-head self-attention with HEADS heads of blocks.attention_head_dim"))
register_kind(BlockKind(
    "ssm", "mixer", token="ssm{state}x{expand}", fields=("state", "expand"), cost=_ssm_cost, colour="#1f77b4",
    fits=_ssm_fits, description="selective state-space scan (Mamba-2 style), state size STATE, expansion EXPAND"))
register_kind(BlockKind(
    "mlp", "ffn", token="mlp{ratio}", fields=("ratio",), colour="#7f7f7f",
    cost=lambda op, w, s: 2 * w * op.ratio * w, description="two-layer MLP with hidden size RATIO x width"))
register_kind(BlockKind(
    "moe", "ffn", token="moe{experts}k{top_k}", fields=("experts", "top_k"), colour="#ff7f0e",
    cost=lambda op, w, s: w * op.experts + op.top_k * 2 * w * s.moe_ratio * w, minimum={"experts": 2},
    allows=lambda op: op.top_k <= op.experts, marked=True,
    description="top-K routed mixture of EXPERTS MLP experts with a fixed capacity"))

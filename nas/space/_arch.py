"""Architectures as immutable values with one canonical, round-tripping string form.

A network arch reads like ``32:conv3+mlp2,attn2+moe4k1/48:ssm16x2+mlp4``: stages are
separated by ``/``, each stage is ``WIDTH:LAYER,LAYER,...`` (its depth is the number of
layers) and each layer is ``MIXER+FFN``. Tokens are parsed with a table of known forms,
and anything else is rejected with a message, never skipped.

A plain-choice arch reads like ``act=gelu,layers=2,units=64`` in the space's order.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import NasError

MIXER_KINDS = ("conv", "attention", "ssm")
FFN_KINDS = ("mlp", "moe")


@dataclass(frozen=True, order=True)
class Mixer:
    """A token mixer choice: ``conv`` (kernel), ``attention`` (heads) or ``ssm`` (state, expand)."""

    kind: str
    kernel: int = 0
    heads: int = 0
    state: int = 0
    expand: int = 0

    @property
    def token(self) -> str:
        if self.kind == "conv":
            return f"conv{self.kernel}"
        if self.kind == "attention":
            return f"attn{self.heads}"
        return f"ssm{self.state}x{self.expand}"

    def to_json(self) -> dict[str, Any]:
        fields = {"conv": ("kernel",), "attention": ("heads",), "ssm": ("state", "expand")}
        return {"kind": self.kind, **{f: getattr(self, f) for f in fields[self.kind]}}


@dataclass(frozen=True, order=True)
class Ffn:
    """A channel ffn choice: ``mlp`` (hidden ratio) or ``moe`` (experts, top-k)."""

    kind: str
    ratio: int = 0
    experts: int = 0
    top_k: int = 0

    @property
    def token(self) -> str:
        if self.kind == "mlp":
            return f"mlp{self.ratio}"
        return f"moe{self.experts}k{self.top_k}"

    def to_json(self) -> dict[str, Any]:
        fields = {"mlp": ("ratio",), "moe": ("experts", "top_k")}
        return {"kind": self.kind, **{f: getattr(self, f) for f in fields[self.kind]}}


# The token table: one regex and one constructor per known form.
_MIXER_TOKENS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"conv(\d+)"), lambda m: Mixer("conv", kernel=int(m[1]))),
    (re.compile(r"attn(\d+)"), lambda m: Mixer("attention", heads=int(m[1]))),
    (re.compile(r"ssm(\d+)x(\d+)"), lambda m: Mixer("ssm", state=int(m[1]), expand=int(m[2]))),
)
_FFN_TOKENS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"mlp(\d+)"), lambda m: Ffn("mlp", ratio=int(m[1]))),
    (re.compile(r"moe(\d+)k(\d+)"), lambda m: Ffn("moe", experts=int(m[1]), top_k=int(m[2]))),
)
MIXER_FORMS = "convK, attnH, ssmNxE"
FFN_FORMS = "mlpR, moeEkK"


def parse_mixer(token: str) -> Mixer:
    for pattern, make in _MIXER_TOKENS:
        m = pattern.fullmatch(token)
        if m:
            return make(m)
    raise NasError(f"unknown mixer {token!r} (known forms: {MIXER_FORMS})")


def parse_ffn(token: str) -> Ffn:
    for pattern, make in _FFN_TOKENS:
        m = pattern.fullmatch(token)
        if m:
            return make(m)
    raise NasError(f"unknown ffn {token!r} (known forms: {FFN_FORMS})")


def parse_ffn_or_mixer(token: str) -> Mixer | Ffn:
    """A mixer or ffn option from its token (``conv5``, ``moe4k2``, ...)."""
    try:
        return parse_mixer(token)
    except NasError:
        try:
            return parse_ffn(token)
        except NasError:
            raise NasError(f"unknown op {token!r} (known forms: {MIXER_FORMS}, {FFN_FORMS})") from None


class Arch:
    """Base of the two arch forms; ``Arch.from_str`` and ``Arch.from_json`` pick the right one."""

    kind: ClassVar[str]

    def to_str(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def key(self) -> str:
        """A short stable hash of the canonical string (store key, file names)."""
        return hashlib.sha256(self.to_str().encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return self.to_str()

    @staticmethod
    def from_str(text: str) -> Arch:
        text = text.strip()
        if not text:
            raise NasError("empty arch string")
        if text.startswith("{"):
            try:
                return Arch.from_json(json.loads(text))
            except json.JSONDecodeError as exc:
                raise NasError(f"arch JSON does not parse: {exc.msg} at column {exc.colno}") from None
        if "=" in text:
            return ChoiceArch.from_str(text)
        return NetArch.from_str(text)

    @staticmethod
    def from_json(data: Any) -> Arch:
        if not isinstance(data, dict):
            raise NasError("arch JSON must be an object")
        if "stages" in data:
            return NetArch.from_json(data)
        if "values" in data:
            return ChoiceArch.from_json(data)
        raise NasError("arch JSON needs a 'stages' list (network arch) or a 'values' object (plain arch)")


@dataclass(frozen=True)
class Layer:
    mixer: Mixer
    ffn: Ffn

    @property
    def token(self) -> str:
        return f"{self.mixer.token}+{self.ffn.token}"


@dataclass(frozen=True)
class Stage:
    width: int
    layers: tuple[Layer, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class NetArch(Arch):
    """A subnet of a network space: per stage a width and its layers (depth = len(layers))."""

    stages: tuple[Stage, ...]
    kind: ClassVar[str] = "net"

    def to_str(self) -> str:
        return "/".join(
            f"{s.width}:" + ",".join(layer.token for layer in s.layers) for s in self.stages
        )

    @classmethod
    def from_str(cls, text: str) -> NetArch:
        stages = []
        for i, part in enumerate(text.strip().split("/")):
            width_text, sep, layers_text = part.partition(":")
            if not sep or not width_text.isdigit():
                raise NasError(
                    f"arch stage {i}: expected WIDTH:MIXER+FFN,... (for example 32:conv3+mlp2), got {part!r}"
                )
            layers = []
            for j, tok in enumerate(layers_text.split(",")):
                mixer_tok, plus, ffn_tok = tok.partition("+")
                if not plus:
                    raise NasError(f"arch stage {i} layer {j}: expected MIXER+FFN, got {tok!r}")
                try:
                    layers.append(Layer(parse_mixer(mixer_tok), parse_ffn(ffn_tok)))
                except NasError as exc:
                    raise NasError(f"arch stage {i} layer {j}: {exc}") from None
            stages.append(Stage(int(width_text), tuple(layers)))
        return cls(tuple(stages))

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [
                {
                    "width": s.width,
                    "layers": [{"mixer": la.mixer.to_json(), "ffn": la.ffn.to_json()} for la in s.layers],
                }
                for s in self.stages
            ]
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetArch:
        try:
            stages = []
            for s in data["stages"]:
                layers = []
                for la in s["layers"]:
                    m, f = dict(la["mixer"]), dict(la["ffn"])
                    mixer = Mixer(**m)
                    ffn = Ffn(**f)
                    # Re-parse the tokens so JSON obeys exactly the string grammar.
                    layers.append(Layer(parse_mixer(mixer.token), parse_ffn(ffn.token)))
                stages.append(Stage(int(s["width"]), tuple(layers)))
        except (KeyError, TypeError, ValueError) as exc:
            raise NasError(f"arch JSON is not a network arch: {exc!r}") from None
        return cls(tuple(stages))

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(s.width for s in self.stages)

    def layers(self) -> list[tuple[int, int, Layer]]:
        """(stage index, layer index, layer) for every layer, in order."""
        return [(i, j, la) for i, s in enumerate(self.stages) for j, la in enumerate(s.layers)]

    def block_mix(self) -> dict[str, float]:
        """Share of each mixer kind and of MoE ffns among the layers (dashboard colours)."""
        layers = [la for _, _, la in self.layers()]
        n = max(len(layers), 1)
        mix = {k: sum(la.mixer.kind == k for la in layers) / n for k in MIXER_KINDS}
        mix["moe"] = sum(la.ffn.kind == "moe" for la in layers) / n
        return mix


def _value_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass(frozen=True)
class ChoiceArch(Arch):
    """A point of a plain-choice space: named values, kept in the space's declared order."""

    values: tuple[tuple[str, Any], ...]
    kind: ClassVar[str] = "choice"

    def to_str(self) -> str:
        return ",".join(f"{k}={_value_str(v)}" for k, v in self.values)

    @classmethod
    def from_str(cls, text: str) -> ChoiceArch:
        values = []
        for item in text.strip().split(","):
            name, eq, raw = item.partition("=")
            if not eq or not name:
                raise NasError(f"plain arch: expected NAME=VALUE, got {item!r}")
            values.append((name.strip(), _parse_scalar(raw.strip())))
        return cls(tuple(values))

    def to_json(self) -> dict[str, Any]:
        return {"values": dict(self.values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChoiceArch:
        values = data.get("values")
        if not isinstance(values, dict):
            raise NasError("plain arch JSON needs a 'values' object")
        return cls(tuple((str(k), v) for k, v in values.items()))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _parse_scalar(raw: str) -> Any:
    """Parse a value the way the space's YAML would have typed it (int, float, bool, str)."""
    if raw in ("true", "false"):
        return raw == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw

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

from nas.errors import NasError, first_line, quoted
from nas.space._kinds import block_kind, forms, kind_names, kinds


class Op:
    """One option of a block kind: its kind and the values of the kind's fields, read by name
    (``Mixer("conv", kernel=5).kernel == 5``). Immutable and hashable; what a kind is (token,
    fields, rules) lives in the table of :mod:`nas.space._kinds`."""

    role: ClassVar[str] = ""
    __slots__ = ("kind", "values", "token", "_hash")
    kind: str
    values: tuple[int, ...]
    token: str  # the arch-string form: conv5, moe4k2

    def __init__(self, kind: str, **values: int) -> None:
        spec = block_kind(kind, self.role)
        unknown = sorted(set(values) - set(spec.fields))
        missing = [f for f in spec.fields if f not in values]
        if unknown or missing:
            raise NasError(f"{self.role} {kind!r} takes the fields {', '.join(spec.fields)}"
                           f"{'; unknown: ' + ', '.join(unknown) if unknown else ''}"
                           f"{'; missing: ' + ', '.join(missing) if missing else ''}")
        numbers = tuple(int(values[f]) for f in spec.fields)
        for name, value in (("kind", kind), ("values", numbers), ("token", spec.format(numbers)),
                            ("_hash", hash((self.role, kind, numbers)))):
            object.__setattr__(self, name, value)

    @classmethod
    def make(cls, kind: str, values: tuple[int, ...]) -> Op:
        """From the kind and its field values in the table's order."""
        return cls(kind, **dict(zip(block_kind(kind, cls.role).fields, values, strict=True)))

    def __getattr__(self, name: str) -> int:
        if name.startswith("_") or name in Op.__slots__:  # not set yet (unpickling)
            raise AttributeError(name)
        fields = block_kind(self.kind).fields
        if name not in fields:
            raise AttributeError(f"{self.role} {self.kind!r} has no field {name!r} (fields: {', '.join(fields)})")
        return self.values[fields.index(name)]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return (type(self).make, (self.kind, self.values))

    def _key(self) -> tuple[str, str, tuple[int, ...]]:
        return (self.role, self.kind, self.values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and self._key() == other._key()

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Op) -> bool:
        return self._key() < other._key()

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={v}" for f, v in self.as_dict().items())
        return f"{type(self).__name__}({self.kind!r}{', ' if fields else ''}{fields})"

    def as_dict(self) -> dict[str, int]:
        return dict(zip(block_kind(self.kind).fields, self.values, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.as_dict()}


class Mixer(Op):
    """A token mixer option (conv, attention, ssm, or any registered mixer kind)."""

    role = "mixer"
    __slots__ = ()


class Ffn(Op):
    """A channel ffn option (mlp, moe, or any registered ffn kind)."""

    role = "ffn"
    __slots__ = ()


def _parse(token: str, cls: type[Op]) -> Op:
    for spec in kinds(cls.role):
        m = spec.pattern.fullmatch(token)
        if m:
            return cls.make(spec.name, tuple(int(v) for v in m.groups()))
    raise NasError(f"unknown {cls.role} {token!r} (known forms: {forms(cls.role)})")


def parse_mixer(token: str) -> Mixer:
    return _parse(token, Mixer)  # type: ignore[return-value]


def parse_ffn(token: str) -> Ffn:
    return _parse(token, Ffn)  # type: ignore[return-value]


def parse_ffn_or_mixer(token: str) -> Mixer | Ffn:
    """A mixer or ffn option from its token (``conv5``, ``moe4k2``, ...)."""
    try:
        return parse_mixer(token)
    except NasError:
        try:
            return parse_ffn(token)
        except NasError:
            raise NasError(f"unknown op {token!r} (known forms: {forms()})") from None


class Arch:
    """Base of the two arch forms; ``Arch.from_str`` and ``Arch.from_json`` pick the right one."""

    kind: ClassVar[str]

    def to_str(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def block_mix(self) -> dict[str, float]:
        """Share of the layers using each block kind (none for a plain arch)."""
        return {}

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
        if len(text) > MAX_ARCH_CHARS:
            raise NasError(f"arch text of {len(text):,} characters is too long (at most {MAX_ARCH_CHARS:,})")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise NasError(f"arch JSON does not parse: {exc.msg} at column {exc.colno}") from None
            except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting past the stack
                raise NasError(f"arch JSON does not parse: {first_line(exc, 120)}") from None
            return Arch.from_json(data)
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
            if not sep or not _DIGITS.fullmatch(width_text):
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
                    for value in (*m.values(), *f.values()):
                        if not isinstance(value, (str, int)) or isinstance(value, bool):
                            raise ValueError(f"field values must be integers, got {quoted(value)}")
                    layers.append(Layer(Mixer(m.pop("kind"), **m), Ffn(f.pop("kind"), **f)))
                width = s["width"]
                if not isinstance(width, int) or isinstance(width, bool):
                    raise ValueError(f"a stage's width must be an integer, got {quoted(width)}")
                stages.append(Stage(width, tuple(layers)))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise NasError(f"arch JSON is not a network arch: {quoted(exc)}") from None
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
        """Share of the layers using each block kind (dashboard colours)."""
        layers = [la for _, _, la in self.layers()]
        n = max(len(layers), 1)
        mix = {k: sum(la.mixer.kind == k for la in layers) / n for k in kind_names("mixer")}
        mix.update({k: sum(la.ffn.kind == k for la in layers) / n for k in kind_names("ffn")})
        return mix


MAX_ARCH_CHARS = 100_000  # far above any real arch (a 64-layer stage is about 1,000 characters)
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses



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

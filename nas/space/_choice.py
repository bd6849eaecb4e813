"""Plain-choice spaces: named categorical and integer choices, for users' own evaluators."""

from __future__ import annotations

import random
from typing import Any

from nas.errors import NasError
from nas.space._arch import Arch, ChoiceArch, _value_str
from nas.space._base import Param, SearchSpace, allowed


class ChoiceSpace(SearchSpace):
    """A product of named choices with no supernet behind it.

    Each parameter is either an integer range (``low``..``high`` by ``step``) or a list of
    categorical values; the evaluator is the user's (a Python callable or a table).
    """

    kind = "choice"

    def __init__(
        self,
        name: str,
        choices: dict[str, tuple[Any, ...]],
        description: str = "",
        source_text: str = "",
    ) -> None:
        self.name = name
        self.choices = choices
        self.description = description
        self.source_text = source_text

    def validate(self, arch: Arch) -> ChoiceArch:
        if not isinstance(arch, ChoiceArch):
            raise NasError(f"space {self.name!r} takes plain archs (NAME=VALUE,...), got a network arch")
        given = dict(arch.values)
        unknown = [k for k in given if k not in self.choices]
        if unknown:
            raise NasError(
                f"arch: unknown choice {unknown[0]!r} for space {self.name!r} (choices: {allowed(list(self.choices))})"
            )
        values = []
        for name, options in self.choices.items():
            if name not in given:
                raise NasError(f"arch: missing choice {name!r} (allowed: {allowed(options)})")
            # Match by string form so that "3" and 3 name the same declared value.
            by_text = {_value_str(o): o for o in options}
            text = _value_str(given[name])
            if text not in by_text:
                raise NasError(f"arch {name}: {given[name]!r} is not allowed (allowed: {allowed(options)})")
            values.append((name, by_text[text]))
        return ChoiceArch(tuple(values))

    def sample(self, rng: random.Random) -> ChoiceArch:
        return ChoiceArch(tuple((k, rng.choice(v)) for k, v in self.choices.items()))

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.3) -> ChoiceArch:
        arch = self.validate(arch)
        mutable = [k for k, v in self.choices.items() if len(v) > 1]
        if not mutable:
            return arch
        values = dict(arch.values)
        for k in mutable:
            if rng.random() < prob:
                values[k] = rng.choice([o for o in self.choices[k] if o != values[k]])
        if ChoiceArch(tuple(values.items())) == arch:
            k = rng.choice(mutable)
            values[k] = rng.choice([o for o in self.choices[k] if o != values[k]])
        return ChoiceArch(tuple(values.items()))

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> ChoiceArch:
        va, vb = dict(self.validate(a).values), dict(self.validate(b).values)
        return ChoiceArch(tuple((k, rng.choice((va[k], vb[k]))) for k in self.choices))

    def size(self) -> int:
        n = 1
        for v in self.choices.values():
            n *= len(v)
        return n

    def params(self) -> list[Param]:
        return [Param.of(k, v) for k, v in self.choices.items()]

    def encode(self, arch: Arch) -> dict[str, Any]:
        return dict(self.validate(arch).values)

    def decode(self, values: dict[str, Any]) -> ChoiceArch:
        return self.validate(ChoiceArch(tuple((k, values.get(k)) for k in self.choices)))

    def describe(self) -> list[tuple[str, str]]:
        rows = [(k, allowed(v)) for k, v in self.choices.items()]
        rows.append(("subnets", f"{self.size():,}"))
        return rows

"""The interface every search space offers, and the flat parameter view that samplers use."""

from __future__ import annotations

import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import NasError
from nas.space._arch import Arch


@dataclass(frozen=True)
class Param:
    """One flat parameter of a space: an integer range with a step, or a categorical list."""

    name: str
    choices: tuple[Any, ...]
    kind: str  # "int" (choices form an arithmetic progression) or "categorical"

    @property
    def low(self) -> int:
        return int(self.choices[0])

    @property
    def high(self) -> int:
        return int(self.choices[-1])

    @property
    def step(self) -> int:
        return int(self.choices[1] - self.choices[0]) if len(self.choices) > 1 else 1

    @staticmethod
    def of(name: str, choices: tuple[Any, ...]) -> Param:
        ints = all(isinstance(c, int) and not isinstance(c, bool) for c in choices)
        if ints and len(choices) > 1:
            steps = {b - a for a, b in zip(choices, choices[1:], strict=False)}
            if len(steps) == 1 and steps.pop() > 0:
                return Param(name, tuple(choices), "int")
        return Param(name, tuple(choices), "categorical")


class SearchSpace(ABC):
    """A named set of architectures: parse and validate, sample, mutate, cross over, encode.

    Strategies see a space only through this interface, so a plain-choice space (a user's own
    evaluator) and a network space (the supernet) search, store and display the same way.
    """

    name: str
    description: str
    kind: str
    source_text: str  # the YAML the space was loaded from (stored with experiments)
    ref: str = ""  # the name or path it was loaded by (see nas.space.space_ref)

    @abstractmethod
    def validate(self, arch: Arch) -> Arch:
        """Return the arch in canonical form, or raise NasError naming the field and allowed values."""

    def parse(self, text: str) -> Arch:
        """Parse an arch string or JSON text and validate it against this space."""
        return self.validate(Arch.from_str(text))

    def resolve(self, text: str) -> Arch:
        """An arch as the commands take one (ARCH): a canonical string, JSON text, a ``.json``
        file, or ``largest`` / ``smallest``, validated against this space."""
        text = text.strip()
        if text in ("largest", "smallest"):
            extremes = self.extremes()
            if not extremes:
                raise NasError(f"space {self.name!r} is a plain space of choices: it has no {text} subnet, give an arch")
            return extremes[0] if text == "largest" else extremes[-1]
        if text.endswith(".json") and "{" not in text:
            text = read_arch_file(text)
        return self.parse(text)

    @abstractmethod
    def sample(self, rng: random.Random) -> Arch: ...

    @abstractmethod
    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.3) -> Arch:
        """A neighbour of ``arch`` that differs from it in at least one choice."""

    @abstractmethod
    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch: ...

    @abstractmethod
    def size(self) -> int:
        """The number of distinct architectures."""

    @abstractmethod
    def params(self) -> list[Param]:
        """The flat, fixed-length parameter view used by Optuna samplers."""

    @abstractmethod
    def encode(self, arch: Arch) -> dict[str, Any]: ...

    @abstractmethod
    def decode(self, values: dict[str, Any]) -> Arch: ...

    @abstractmethod
    def describe(self) -> list[tuple[str, str]]:
        """(field, allowed values) rows for ``nas space show``."""

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """``archs`` as numeric rows for a model (a latency table's forest, a search's accuracy
        surrogate): the flat parameters, integers as they are and each choice one-hot."""
        columns: list[tuple[str, dict[Any, int] | None]] = [
            (p.name, None if p.kind == "int" else {c: i for i, c in enumerate(p.choices)}) for p in self.params()]
        out = np.zeros((len(archs), sum(1 if index is None else len(index) for _, index in columns)))
        for r, arch in enumerate(archs):
            values = self.encode(arch)
            col = 0
            for name, index in columns:
                if index is None:
                    out[r, col] = float(values[name])
                    col += 1
                else:
                    out[r, col + index[values[name]]] = 1.0
                    col += len(index)
        return out

    def extremes(self) -> list[Arch]:
        """Named corner archs (a network space's largest and smallest subnets); none by default."""
        return []

    enumerable = 200_000  # spaces up to this size can be listed whole

    def listing(self) -> list[Arch] | None:
        """Every arch of the space, in a fixed order, when there are at most ``enumerable`` of
        them (None for a larger space). Combinations the space refuses are left out."""
        if self.size() > self.enumerable:
            return None
        names = [p.name for p in self.params()]
        every: dict[Arch, None] = {}
        for values in itertools.product(*(p.choices for p in self.params())):
            try:
                every[self.decode(dict(zip(names, values, strict=True)))] = None
            except NasError:
                continue  # a combination that is not an arch of the space
        return list(every)

    def untaken(self, taken: Collection[Arch], rng: random.Random) -> Arch | None:
        """A random arch not in ``taken``, found by listing the space when it is small enough;
        None when there is none (or the space is too large to list)."""
        listed = self.listing()
        left = [a for a in listed or () if a not in taken]
        return rng.choice(left) if left else None

    def sample_unique(self, rng: random.Random, n: int, exclude: set[Arch] | None = None) -> list[Arch]:
        """Up to ``n`` distinct random archs not in ``exclude`` (fewer if the space is that small)."""
        seen = set(exclude or ())
        out: list[Arch] = []
        tries = 0
        while len(out) < n and tries < 50 * n + 100:
            tries += 1
            a = self.sample(rng)
            if a not in seen:
                seen.add(a)
                out.append(a)
        return out


def read_arch_file(path_text: str) -> str:
    """The text of an arch ``.json`` file, with one-line errors for a missing, unreadable or huge file."""
    from pathlib import Path

    from nas.space._arch import MAX_ARCH_CHARS

    path = Path(path_text)
    try:
        if not path.is_file():
            raise NasError(f"arch file {path_text!r} does not exist")
        if path.stat().st_size > MAX_ARCH_CHARS:
            raise NasError(f"arch file {path_text!r} is larger than {MAX_ARCH_CHARS:,} bytes: not an arch")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NasError(f"arch file {path_text!r} is not UTF-8 text") from None
    except OSError as exc:
        raise NasError(f"cannot read arch file {path_text!r}: {exc.strerror or exc}") from None


def allowed(values: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def check_in(field: str, value: Any, choices: tuple[Any, ...] | list[Any]) -> None:
    if value not in choices:
        raise NasError(f"{field}: {value!r} is not allowed (allowed: {allowed(choices)})")


def space_hash(space: SearchSpace) -> str:
    """The identity of a space's definition (its YAML, whitespace aside): profiles, checkpoints and
    experiments are tied to the exact space they were made for."""
    import hashlib

    canonical = "\n".join(line.rstrip() for line in space.source_text.strip().splitlines() if line.strip())
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

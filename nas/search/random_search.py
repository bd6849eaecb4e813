"""Random search: uniform draws from the space (every block kind equally likely)."""

from __future__ import annotations

from collections.abc import Mapping

from nas.search._base import Strategy
from nas.space import Arch


class RandomSearch(Strategy):
    name = "random"

    def propose(self) -> Arch:
        return self.space.sample(self.rng)

    def learn(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        pass

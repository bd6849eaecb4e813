"""Property-based tests: every sampled, mutated or crossed-over arch is valid and its string round-trips."""

from __future__ import annotations

import contextlib
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from nas.space import Arch, load

SPACES = {name: load(name) for name in ("hybrid-vision", "hybrid-seq", "mcu-vision", "toy-choice")}
space_names = st.sampled_from(sorted(SPACES))
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _check(space, arch) -> None:
    assert space.validate(arch) == arch
    text = arch.to_str()
    assert Arch.from_str(text) == arch and space.parse(text) == arch
    assert space.parse(json.dumps(arch.to_json())) == arch
    assert space.decode(space.encode(arch)) == arch


@settings(max_examples=300, deadline=None)
@given(space_names, seeds)
def test_sampled_archs_are_valid_and_round_trip(name, seed):
    space = SPACES[name]
    _check(space, space.sample(random.Random(seed)))


@settings(max_examples=300, deadline=None)
@given(space_names, seeds, seeds, st.floats(min_value=0.0, max_value=1.0))
def test_mutated_and_crossed_archs_are_valid_and_round_trip(name, seed_a, seed_b, prob):
    space = SPACES[name]
    rng = random.Random(seed_a ^ seed_b)
    a, b = space.sample(random.Random(seed_a)), space.sample(random.Random(seed_b))
    child = space.mutate(a, rng, prob)
    assert child != a
    _check(space, child)
    _check(space, space.crossover(a, b, rng))
    _check(space, space.crossover(child, b, rng))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes_the_parser(text):
    from nas.errors import NasError

    for space in SPACES.values():
        with contextlib.suppress(NasError):
            space.parse(text)

"""The Architecture value: round trips, validation, sampling determinism, genomes, encodings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch import Architecture
from nas.errors import SpaceError
from nas.spaces import canonical, cardinalities, decode, encode, load_space

SPACES = {name: load_space(name) for name in ("hybrid-tiny", "hybrid-cifar", "ofa-mbv3")}


@pytest.mark.parametrize("name", SPACES)
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_round_trips(name, seed):
    space = SPACES[name]
    arch = space.sample(np.random.default_rng(seed))
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_str(arch.to_str()) == arch
    assert decode(space, encode(space, arch)) == arch
    assert hash(Architecture.from_str(str(arch))) == hash(arch)
    assert space.contains(arch)


@pytest.mark.parametrize("name", SPACES)
def test_same_seed_same_samples_and_mutations(name):
    space = SPACES[name]

    def run(seed):
        rng = np.random.default_rng(seed)
        a = [space.sample(rng) for _ in range(20)]
        b = [space.mutate(x, rng) for x in a]
        c = [space.crossover(x, y, rng) for x, y in zip(a, b)]
        return a, b, c

    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("name", SPACES)
def test_mutation_changes_the_architecture_and_stays_inside(name):
    space = SPACES[name]
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        b = space.mutate(a, rng, prob=0.05)
        assert b != a and space.contains(b)
        assert space.contains(space.crossover(a, b, rng))


def test_largest_and_smallest_are_extremes():
    from nas import costs

    for space in SPACES.values():
        big, small = space.largest(), space.smallest()
        rng = np.random.default_rng(1)
        macs = [costs.macs(space, space.sample(rng)) for _ in range(50)]
        assert costs.macs(space, small) <= min(macs) <= max(macs) <= costs.macs(space, big)


def test_canonical_genome_ignores_inactive_slots():
    space = SPACES["hybrid-cifar"]
    rng = np.random.default_rng(3)
    card = cardinalities(space)
    for _ in range(20):
        genes = rng.integers(card)
        arch = decode(space, genes)
        assert (canonical(space, genes)[0] == encode(space, arch)).all()


def test_validation_names_the_bad_part():
    space = SPACES["hybrid-tiny"]
    arch = space.largest()
    bad = Architecture.from_str(arch.to_str().replace("r16", "r20"))
    with pytest.raises(SpaceError, match="resolution 20"):
        space.validate(bad)
    bad = Architecture.from_str(arch.to_str().replace("w24", "w25"))
    with pytest.raises(SpaceError, match="width 25"):
        space.validate(bad)
    bad = Architecture.from_str("r16 | w12: at_h1_m2 | w24: at_h2_m2")
    with pytest.raises(SpaceError, match="kind 'attn' not allowed"):
        space.validate(bad)


@pytest.mark.parametrize(
    "text", ["", "w8: ir_k3_e1", "r16 | w8 ir_k3_e1", "r16 | w8: zz_k3", "r16 | w8: ir_q3_e1"]
)
def test_bad_strings_raise_space_error(text):
    with pytest.raises(SpaceError):
        Architecture.from_str(text)


def test_bad_json_raises_space_error():
    with pytest.raises(SpaceError, match="not valid JSON"):
        Architecture.from_json("{")
    with pytest.raises(SpaceError, match="missing or malformed"):
        Architecture.from_json('{"stages": []}')

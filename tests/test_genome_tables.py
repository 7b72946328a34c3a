"""Vectorised genome costs and one-hot equal the per-architecture functions exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import costs
from nas.spaces import decode, load_space, shipped_spaces
from nas.spaces.tables import CostRule, GenomeTables
from nas.units import arch_units
from predictors.encoders import OneHotEncoder
from predictors.genome_onehot import GenomeOneHot

SPACES = {n: load_space(n) for n in shipped_spaces()}
TABLES = {n: (GenomeTables(s), GenomeOneHot(s)) for n, s in SPACES.items()}


@pytest.mark.parametrize("name", sorted(SPACES))
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None)
def test_batch_costs_and_one_hot_are_exact(name, seed):
    space = SPACES[name]
    tables, onehot = TABLES[name]
    rng = np.random.default_rng(seed)
    genes = rng.integers(tables.cardinalities, size=(16, len(tables.cardinalities)))
    archs = [decode(space, g) for g in genes]
    got = tables.costs(genes)
    for k, arch in enumerate(archs):
        c = costs.costs(space, arch)
        assert (got["macs"][k], got["params"][k], got["memory"][k]) == (
            c.macs,
            c.params,
            c.peak_memory_bytes,
        )
    assert np.array_equal(onehot.transform(genes), OneHotEncoder(space).transform(archs))


def test_custom_additive_rule_counts_units():
    space = SPACES["hybrid-cifar"]
    tables = GenomeTables(space, {"units": CostRule(lambda u: 1.0)})
    rng = np.random.default_rng(0)
    genes = rng.integers(tables.cardinalities, size=(50, len(tables.cardinalities)))
    expected = [len(arch_units(space, decode(space, g))) for g in genes]
    assert tables.costs(genes)["units"].tolist() == expected


def test_bad_combine_rule():
    with pytest.raises(ValueError, match="combine"):
        CostRule(lambda u: 1.0, "mean")

"""Architecture encoders: fixed length, additive one-hot, skipped layers as zeros, every space."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from nas.spaces import load_space, shipped_spaces
from predictors.encoders import OneHotEncoder, OrdinalEncoder


@pytest.mark.parametrize("name", shipped_spaces())
@pytest.mark.parametrize("cls", [OneHotEncoder, OrdinalEncoder])
def test_fixed_length_and_distinct(name, cls):
    space = load_space(name)
    rng = np.random.default_rng(0)
    archs = list({space.sample(rng) for _ in range(40)})
    enc = clone(cls(space, stats=("macs", "params")))
    X = enc.fit_transform(archs)
    assert X.shape == (len(archs), enc.n_features) == (len(archs), len(enc.get_feature_names_out()))
    assert np.isfinite(X).all()
    assert len({row.tobytes() for row in X}) == len(archs)


@pytest.mark.parametrize("name", shipped_spaces())
def test_one_hot_is_the_sum_of_its_decisions(name):
    space = load_space(name)
    enc = OneHotEncoder(space)
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = space.sample(rng)
        expected = np.zeros(enc.n_features)
        expected[enc.columns_of_resolution(arch.resolution)] += 1
        for i, stage in enumerate(arch.stages):
            expected[enc.columns_of_width(i, stage.width)] += 1
            expected[enc.columns_of_depth(i, stage.depth)] += 1
            for j, layer in enumerate(stage.layers):
                expected[enc.columns_of_layer(i, j, layer)] += 1
        assert np.array_equal(enc.transform([arch])[0], expected)


def test_skipped_layers_are_zero():
    space = load_space("hybrid-cifar")
    names = OneHotEncoder(space).get_feature_names_out()
    small = space.smallest()
    row = OneHotEncoder(space).transform(small)[0]
    last_slot = [k for k, n in enumerate(names) if n.startswith("s3.l3.")]
    assert small.stages[3].depth < 4 and row[last_slot].sum() == 0
    ordinal = OrdinalEncoder(space)
    names = ordinal.get_feature_names_out()
    row = ordinal.transform(small)[0]
    assert row[[k for k, n in enumerate(names) if n.startswith("s3.l3.")]].sum() == 0

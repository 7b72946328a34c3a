"""Search-space YAML loading: shipped spaces, counts, and one clear error per bad file."""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest

from nas.errors import SpaceError
from nas.spaces import load_space, shipped_spaces
from nas.spaces.ops import stage_layer_choices

VALID = textwrap.dedent(
    """
    name: mine
    in_channels: 3
    num_classes: 10
    resolutions: [16, 32]
    stem: {width: 8}
    stages:
      - widths: [8, 16]
        depths: [1, 2]
        stride: 2
        blocks:
          conv: {kernels: [3], expands: [2]}
          attn: {heads: [1], mlp_ratios: [2], head_dim: 8}
    head: {width: 16}
    """
)


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_shipped_spaces_load_and_hash_differs():
    names = shipped_spaces()
    assert {"hybrid-tiny", "hybrid-cifar", "ofa-mbv3"} <= set(names)
    hashes = {load_space(n).hash() for n in names}
    assert len(hashes) == len(names)


def test_hybrid_cifar_has_at_least_1e12_subnets_and_all_kinds():
    space = load_space("hybrid-cifar")
    assert space.size() >= 10**12
    kinds = {k for s in space.stages for k in s.kinds}
    assert kinds == {"conv", "attn", "mixer"}
    assert space.stages[0].kinds == ("conv",)


def test_ofa_mbv3_matches_the_published_space():
    space = load_space("ofa-mbv3")
    elastic = [s for s in space.stages if len(s.depths) > 1]
    assert len(elastic) == 5
    for s in elastic:
        conv = s.block("conv")
        assert s.depths == (2, 3, 4) and conv.kernels == (3, 5, 7) and conv.expands == (3, 4, 6)
    assert space.resolutions[0] == 128 and space.resolutions[-1] == 224


def test_size_counts_distinct_subnets_exactly_on_tiny(tmp_path):
    space = load_space("hybrid-tiny")
    count = 0
    for s in space.stages:
        n = len(stage_layer_choices(s))
        count = (count or len(space.resolutions)) * len(s.widths) * sum(n**d for d in s.depths)
    assert space.size() == count
    # every sample is distinct-counted: sampling many times never leaves the space
    rng = np.random.default_rng(0)
    seen = {space.sample(rng) for _ in range(3000)}
    assert all(space.contains(a) for a in seen)
    assert len(seen) <= space.size()


def test_user_yaml_path_works(tmp_path):
    space = load_space(write(tmp_path, VALID))
    assert space.name == "mine" and space.size() == 2 * 2 * (2 + 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("kernels: [3]", "kernels: [4]"), "even"),
        (("conv: {", "convolution: {"), "unknown field"),
        (("widths: [8, 16]", "widths: []"), "empty choice list"),
        (("resolutions: [16, 32]", "resolutions: [1, 32]"), "vanish"),
        (("stride: 2", "stride: 3"), "allowed: 1, 2"),
        (("head: {width: 16}", ""), "missing field 'head'"),
        (("depths: [1, 2]", "depths: [1, two]"), "not an integer"),
        (("mlp_ratios: [2]", "mlp_ratios: [-2]"), "must be > 0"),
        (("stem: {width: 8}", "stem: {width: 8, act: swishy}"), "unknown activation"),
        (("stride: 2", "stride: 2\n    colour: red"), "unknown field(s) ['colour']"),
    ],
)
def test_bad_yaml_gives_one_clear_error_naming_file_and_field(tmp_path, change, message):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="malformed YAML"):
        load_space(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SpaceError, match="shipped spaces"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(SpaceError, match="expected a mapping"):
        load_space(write(tmp_path, "- a list\n- not a space"))


def test_all_layer_choices_enumerated():
    space = load_space("hybrid-tiny")
    stage = space.stages[1]
    choices = stage_layer_choices(stage)
    expected = sum(len(list(itertools.product(*b.option_choices().values()))) for b in stage.blocks)
    assert len(choices) == expected == len(set(choices))

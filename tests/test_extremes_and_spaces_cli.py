"""Exact cost ranges (DP over stages) against enumeration, and the ``nas spaces`` command."""

from __future__ import annotations

import itertools

import numpy as np

from nas import costs
from nas.arch import Architecture, Stage
from nas.cli import main
from nas.spaces import load_space
from nas.spaces.extremes import cost_ranges
from nas.spaces.ops import stage_layer_choices


def all_archs(space):
    def stages(spec):
        for w in spec.widths:
            for d in spec.depths:
                for layers in itertools.product(stage_layer_choices(spec), repeat=d):
                    yield Stage(w, tuple(layers))

    for res in space.resolutions:
        for combo in itertools.product(*(list(stages(s)) for s in space.stages)):
            yield Architecture(res, combo)


def test_cost_ranges_equal_exhaustive_enumeration():
    space = load_space("hybrid-tiny")
    table = np.array(
        [
            (c.macs, c.params, c.peak_memory_bytes)
            for c in (costs.costs(space, a) for a in all_archs(space))
        ]
    )
    assert len(table) == space.size()
    ranges = cost_ranges(space)
    for k, name in enumerate(("macs", "params", "memory")):
        assert ranges[name] == (table[:, k].min(), table[:, k].max())


def test_nas_spaces_lists_counts(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("hybrid-tiny", "hybrid-cifar", "ofa-mbv3"):
        assert name in out
    assert "6.720e+03" in out


def test_nas_spaces_name_and_bad_name(capsys, tmp_path):
    assert main(["spaces", "hybrid-tiny"]) == 0
    assert "6,720 distinct subnets" in capsys.readouterr().out
    assert main(["spaces", str(tmp_path / "missing.yaml")]) == 2
    assert "not a shipped space" in capsys.readouterr().err

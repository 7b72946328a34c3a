"""The metric vocabulary: aliases, unit kinds and cost multiples defined once, and what reads it."""

from __future__ import annotations

import numpy as np
import pytest

from nas.costs import costs
from nas.metrics import ALIASES, VOCABULARY, canonical, cost_base, known_names
from nas.search.constraints import metric_kind
from nas.search.mp import normalize_constraints
from nas.spaces import load_space


def test_every_name_and_alias_has_one_kind():
    for name, m in known_names().items():
        assert metric_kind(name) == m.kind
    for alias, target in ALIASES.items():
        assert canonical(alias) == target and target in VOCABULARY


def test_cost_multiples_match_the_exact_costs():
    space = load_space("hybrid-tiny")
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng) for _ in range(5)]:
        values = costs(space, arch).as_dict()
        for name in ("macs", "flops", "params", "memory", "param_memory", "peak_memory"):
            base, scale = cost_base(name)
            assert values[canonical(name)] == scale * values[base]


def test_milp_bounds_use_the_vocabulary():
    bounds = normalize_constraints(["peak_memory<=64KB", "param_memory<=40KB", "latency<=2"])
    assert bounds == {"memory": 64 * 1024, "params": 10 * 1024, "latency_ms": 2.0}
    with pytest.raises(Exception, match="unknown metric"):
        metric_kind("colour")

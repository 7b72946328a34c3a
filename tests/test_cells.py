"""The cell engine: the cells of a space rebuild every subnet's units, and one cost type serves
tables, extremes and the MILP."""

from __future__ import annotations

import numpy as np
import pytest

from nas.arch import Architecture
from nas.errors import UserError
from nas.search.mp import MILPSearch
from nas.spaces import load_space
from nas.spaces.cells import CostRule, cost_rules, space_cells
from nas.units import arch_units
from tests.conftest import SHIPPED


def units_from_cells(space, arch: Architecture) -> list:
    cells = space_cells(space)
    r = space.resolutions.index(arch.resolution)
    out = list(cells.stem[r])
    p = 0
    for i, (spec, stage) in enumerate(zip(space.stages, arch.stages)):
        w = spec.widths.index(stage.width)
        for j, layer in enumerate(stage.layers):
            out += cells.slot(i, j, r, p, w, cells.choices[i].index(layer))
        p = w
    return out + list(cells.head[r, p])


@pytest.mark.parametrize("name", SHIPPED)
def test_cells_rebuild_every_sampled_subnet(name: str) -> None:
    space = load_space(name)
    rng = np.random.default_rng(0)
    for arch in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(30)]:
        assert units_from_cells(space, arch) == arch_units(space, arch), arch


def test_walk_visits_every_cell_once() -> None:
    space = load_space("hybrid-tiny")
    cells = space_cells(space)
    seen = [index for index, _ in cells.walk()]
    expected = len(cells.stem) + len(cells.head) + sum(map(len, cells.first))
    expected += sum(map(len, cells.rest))
    assert len(seen) == len(set(seen)) == expected


def test_one_cost_rule_type_with_offset_and_max() -> None:
    space = load_space("hybrid-tiny")
    arch = space.largest()
    units = arch_units(space, arch)
    rules = cost_rules()
    assert rules["memory"].combine == "max" and rules["macs"].combine == "sum"
    shifted = CostRule(rules["params"].unit_cost, offset=2.5)
    assert shifted(space, arch) == 2.5 + sum(u.params() for u in units)
    with pytest.raises(ValueError, match="'sum' or 'max'"):
        CostRule(lambda u: 1.0, "mean")
    with pytest.raises(UserError, match="maximum"):
        MILPSearch(space, costs={"peak_units": CostRule(lambda u: 1.0, "max")})

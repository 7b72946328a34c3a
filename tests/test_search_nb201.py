"""Search on the real NAS-Bench-201 table (skipped when ../shared/benchmarks is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.benchmarks import nb201

try:
    TABLE = nb201.load()
except FileNotFoundError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"NB201 table not available: {exc}", allow_module_level=True)

from nas.benchmarks.nb201_problem import cell_features, make_problem
from nas.benchmarks.search_nb201 import normalised_hv
from nas.search import (
    GuidedParetoSearch,
    GuidedSearch,
    InfeasibleError,
    RandomSearch,
    check_feasibility,
)

VALID, TEST = nb201.VALID_COLUMN, nb201.TEST_COLUMN


def test_features_are_small_counts_and_separate_cells() -> None:
    f = cell_features(TABLE.genes)
    assert f.shape == (15625, 238)
    assert f.min() >= 0 and f.max() <= 6 and np.array_equal(f, np.round(f))
    assert len(np.unique(f, axis=0)) == 15625  # the one-hot part alone is injective


def test_feasibility_report_uses_exact_table_minima() -> None:
    lat = TABLE.column("lat_ms_pixel3")
    problem = make_problem(TABLE, [f"max:{VALID}"], [f"lat_ms_pixel3<={lat.min() / 2}"])
    report = check_feasibility(problem)
    assert report.checks[0].best_achievable == lat.min()
    with pytest.raises(InfeasibleError, match="smallest achievable lat_ms_pixel3"):
        GuidedSearch(problem, seed=0).run(20)


def test_guided_single_objective_respects_a_constraint() -> None:
    bound = float(np.median(TABLE.column("lat_ms_pixel3")))
    problem = make_problem(TABLE, [f"max:{VALID}"], [f"lat_ms_pixel3<={bound!r}"])
    guided = GuidedSearch(problem, seed=0).run(100)
    rand = RandomSearch(problem, seed=0).run(100)
    assert len(np.unique(guided.genes, axis=0)) == 100
    assert guided.metrics["lat_ms_pixel3"][guided.best] <= bound
    # the constraint model steers proposals: half the table is infeasible, random hits it half the time
    start = GuidedSearch(problem).n_init  # proposals after the random start
    assert guided.feasible[start:].mean() > rand.feasible.mean() + 0.1
    assert guided.metrics[VALID][guided.best] > rand.metrics[VALID][rand.best]


def test_guided_pareto_front_on_pixel3() -> None:
    lat = TABLE.column("lat_ms_pixel3")
    bound = float(np.median(lat))
    problem = make_problem(TABLE, [f"max:{VALID}", "min:lat_ms_pixel3"], [f"lat_ms_pixel3<={bound!r}"])
    result = GuidedParetoSearch(problem, seed=0).run(200)
    front = result.front
    assert (result.metrics["lat_ms_pixel3"][front] <= bound).all()
    hv = normalised_hv(result.metrics[VALID], result.metrics["lat_ms_pixel3"], bound)
    table_hv = normalised_hv(TABLE.column(VALID), lat, bound)
    assert 0.9 * table_hv < hv <= table_hv + 1e-12


@pytest.mark.long
def test_benchmark_quick_run(tmp_path) -> None:
    from nas.benchmarks import search_nb201

    out = tmp_path / "search.md"
    assert search_nb201.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Search on NAS-Bench-201\n\nReproduce: `")
    assert "ours: guided" in text and out.with_suffix(".csv").is_file()

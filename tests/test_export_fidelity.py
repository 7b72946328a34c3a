"""What is exported is what was predicted (issue 13), on hybrid-tiny.

- One export path: a unit's profiled graph (the unit exported alone, as ``nas profile`` times it)
  and the same unit inside a file written by the export function of ``nas export`` run the same
  operators after ONNX Runtime's optimisation; the only differences are the NCHWc layout reorders
  at the ends of a run of convolutions, which are named.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch import Architecture
from nas.cli import main
from nas.export.formats import export_model
from nas.export.pipeline import onnx_settings
from nas.latency import LatencyTable, TableEntry, TableMeta, TimingProtocol
from nas.latency.onnx_units import (
    compare_unit_graphs,
    describe_units,
    mispredicted_units,
    unit_times_in_file,
    units_in_file,
)
from nas.latency.space_units import build_network
from nas.onnx_graph import LAYOUT_OPS
from nas.search.picks import MIN_GAP, pick_choices
from nas.spaces import load_space
from nas.units import arch_keys, arch_units
from tests.conftest import train_tiny_run

torch.set_num_threads(1)
SPACE = load_space("hybrid-tiny")
# stem, conv, transition, attention and head units: every unit family of the space but the mixer
ARCH = Architecture.from_str("r16 | w8: ir_k3_e1 | w24: at_h2_m2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """ARCH exported to ONNX by the export function ``nas export`` calls, with the export
    settings ``nas export`` takes from an onnxruntime table profiled with the default protocol."""
    protocol = TimingProtocol(runtime="onnxruntime")
    meta = TableMeta.for_protocol(protocol, batch=1, dtype="float32", space_name=SPACE.name,
                                  space_hash=SPACE.hash())
    net, x = build_network(SPACE, ARCH, 1, np.random.default_rng(0))
    out = tmp_path_factory.mktemp("export")
    files = export_model(net, x, out, formats="onnx", standalone_check=False,
                         **onnx_settings(LatencyTable(meta)))
    return files["onnx"]


def test_every_node_of_the_exported_file_belongs_to_a_unit(exported: Path) -> None:
    nodes, owner = units_in_file(SPACE, ARCH, exported)
    assert len(owner) == len(nodes) > 0
    n_units = len(arch_units(SPACE, ARCH))
    assert None not in owner
    assert owner == sorted(owner), "units run in execution order"
    assert set(owner) <= set(range(n_units)) and {0, n_units - 1} <= set(owner)


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_profiled_unit_graphs_equal_the_units_inside_the_exported_file(exported: Path) -> None:
    graphs = compare_unit_graphs(SPACE, ARCH, exported)
    assert [g.key for g in graphs] == [u.key for u in arch_units(SPACE, ARCH)]
    differences = [d for g in graphs for d in g.differences()]
    assert differences == [], "\n".join(differences)
    # the layout reorders are the only difference, and they are told apart, not hidden
    for g in graphs:
        assert [op for op in g.alone if op not in LAYOUT_OPS] == [
            op for op in g.in_file if op not in LAYOUT_OPS]
    with_reorders = [g for g in graphs if g.layout_differences() != (0, 0)]
    assert with_reorders and any("Conv" in g.alone for g in with_reorders)
    named = graphs[0].differences(ignore=frozenset())
    if graphs[0].layout_differences()[0] != graphs[0].layout_differences()[1]:
        assert named and all("Reorder" in d for d in named)


# ----- choices worth exporting -----

def _pareto_of(acc: np.ndarray, lat: np.ndarray, bound: float | None) -> set[int]:
    ok = [i for i in range(acc.size) if bound is None or lat[i] <= bound]
    return {i for i in ok if not any(
        (acc[j] >= acc[i] and lat[j] < lat[i]) or (acc[j] > acc[i] and lat[j] <= lat[i])
        for j in ok)}


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.tuples(st.floats(0.1, 1.0), st.floats(0.05, 10.0)), min_size=1,
                       max_size=30),
       k=st.integers(1, 6), use_bound=st.booleans())
def test_picks_are_distinct_pareto_choices_under_the_bound(points, k, use_bound) -> None:
    acc = np.array([a for a, _ in points])
    lat = np.array([t for _, t in points])
    bound = float(np.median(lat)) if use_bound else None
    picks = pick_choices(acc, lat, k, bound=bound)
    pareto = _pareto_of(acc, lat, bound)
    assert len(picks) == min(k, len({(acc[i], lat[i]) for i in pareto}))
    assert len({p.index for p in picks}) == len(picks)
    assert all(p.index in pareto for p in picks)
    if picks:
        assert acc[picks[0].index] == max(acc[i] for i in pareto)
        assert picks[0].role == "most accurate"
    close = [(p, q) for n, p in enumerate(picks) for q in picks[:n]
             if abs(lat[p.index] - lat[q.index]) / min(lat[p.index], lat[q.index]) < MIN_GAP]
    # two picks within 3% in latency only when the front had nothing else
    assert all(p.role == "nothing else" for p, _ in close)
    assert all(p.reason for p in picks)
    assert picks == pick_choices(acc, lat, k, bound=bound)  # same input, same picks


def test_three_picks_are_best_fastest_near_it_and_the_knee() -> None:
    # a front with near-copies of the best (one kernel apart) and a clear knee at 2.0 ms
    lat = np.array([1.0, 2.0, 2.5, 3.0, 3.85, 3.95, 4.0, 5.0])
    acc = np.array([0.70, 0.86, 0.87, 0.88, 0.895, 0.899, 0.90, 0.95])
    picks = pick_choices(acc, lat, 3, bound=4.5, acc_tolerance=0.01)
    assert [p.role for p in picks] == ["most accurate", "fastest near the best", "knee"]
    assert [p.index for p in picks] == [6, 4, 1]  # 5.0 ms is over the bound; 3.95 is a copy
    assert "under the 4.5 ms bound" in picks[0].reason and "knee" in picks[2].reason
    spread = pick_choices(acc, lat, 5, bound=4.5)
    assert {p.role for p in spread[3:]} == {"spread"}
    lats = sorted(lat[p.index] for p in spread)
    assert all(b / a - 1 >= MIN_GAP for a, b in pairwise(lats))


def test_a_front_of_near_copies_says_it_had_nothing_else() -> None:
    picks = pick_choices([0.9, 0.89], [1.0, 0.99], 2)
    assert [p.role for p in picks] == ["most accurate", "nothing else"]
    assert "no other choice" in picks[1].reason


# ----- nas latency validate --exported -----

@pytest.fixture(scope="module")
def run_exports(tmp_path_factory) -> tuple[Path, Path]:
    """ARCH exported by `nas export` from a 1-epoch run, and a torch latency table of its units
    (short protocol)."""
    run = tmp_path_factory.mktemp("run") / "run"
    train_tiny_run(run)
    root = tmp_path_factory.mktemp("exports")
    rc = main(["export", "--run", str(run), "--arch", ARCH.to_str(), "--out",
               str(root / ARCH.arch_id()), "--formats", "pt,torchscript,onnx",
               "--no-measure", "--no-standalone-check", "--quiet"])
    assert rc == 0
    protocol = TimingProtocol(threads=1, warmup=2, repeats=5, rounds=2, min_time_per_round=0.01)
    meta = TableMeta.for_protocol(protocol, batch=1, dtype="float32", space_name=SPACE.name,
                                  space_hash=SPACE.hash())
    table = LatencyTable(meta)
    for i, key in enumerate(dict.fromkeys(arch_keys(SPACE, ARCH))):
        table.record(key, TableEntry(0.05 + i / 100, 0.01, 0.05 + i / 100, 10))
    return root, table.save(root.parent / "lut.csv")


def test_validate_exported_times_every_file_against_the_prediction(run_exports, capsys) -> None:
    root, lut = run_exports
    out = root.parent / "report" / "v.md"
    rc = main(["latency", "validate", "--space", "hybrid-tiny", "--table", str(lut),
               "--exported", str(root), "--runtimes", "eager,torchscript,pt2,onnxruntime",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    for runtime in ("eager", "torchscript", "pt2", "onnxruntime"):
        assert f"{runtime}: table vs exported files" in printed
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert len(rows) == 2
    header = rows[0].split(",")
    table = LatencyTable.load(lut)
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        assert cells["arch_id"] == ARCH.arch_id()
        assert float(cells["predicted_ms"]) == pytest.approx(
            table.lookup(arch_keys(SPACE, ARCH)).sum(), rel=1e-5)
        assert all(float(cells[f"{r}_{p}_ms"]) > 0 for r in ("eager", "onnxruntime")
                   for p in ("pass1", "pass2"))
    text = out.read_text()
    assert "Reproduce: `nas latency validate" in text and "--exported" in text
    assert "| onnxruntime | 1 |" in text


def test_validate_exported_refuses_a_folder_without_exports(tmp_path, capsys, run_exports) -> None:
    _, lut = run_exports
    rc = main(["latency", "validate", "--space", "hybrid-tiny", "--table", str(lut),
               "--exported", str(tmp_path)])
    assert rc == 2
    assert "no export folder" in capsys.readouterr().err


def test_profiler_inside_the_file_names_the_mispredicted_unit(exported: Path) -> None:
    """Per-unit kernel times from ONNX Runtime's profiler inside the exported file: a unit whose
    table entry is far below its time in the file is named; units over-predicted are not."""
    units = arch_units(SPACE, ARCH)
    protocol = TimingProtocol(runtime="onnxruntime")
    meta = TableMeta.for_protocol(protocol, batch=1, dtype="float32", space_name=SPACE.name,
                                  space_hash=SPACE.hash())
    table = LatencyTable(meta)
    wrong = 3  # the attention unit: its entry says 1 ns
    for i, unit in enumerate(units):
        ms = 1e-6 if i == wrong else 50.0
        table.record(unit.key, TableEntry(ms, 0.0, ms, 1))
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    times = unit_times_in_file(SPACE, ARCH, exported, table, x, runs=10)
    assert [t.key for t in times] == [u.key for u in units]
    assert all(t.in_file_ms > 0 for t in times)
    named = mispredicted_units(times)
    assert [t.key for t in named] == [units[wrong].key]
    assert units[wrong].key in describe_units(named)

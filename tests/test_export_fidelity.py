"""What is exported is what was predicted (issue 13), on hybrid-tiny.

- One export path: a unit's profiled graph (the unit exported alone, as ``nas profile`` times it)
  and the same unit inside a file written by the export function of ``nas export`` run the same
  operators after ONNX Runtime's optimisation; the only differences are the NCHWc layout reorders
  at the ends of a run of convolutions, which are named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch import Architecture
from nas.export.formats import export_model
from nas.export.pipeline import onnx_settings
from nas.latency import LatencyTable, TableMeta, TimingProtocol
from nas.latency.onnx_units import compare_unit_graphs, units_in_file
from nas.latency.space_units import build_network
from nas.onnx_graph import LAYOUT_OPS
from nas.spaces import load_space
from nas.units import arch_units

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

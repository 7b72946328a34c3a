"""Units inside an exported ONNX file: which optimised nodes each unit runs, and how long they take.

A latency table times every unit alone (:mod:`nas.latency.space_profile`); ``nas export`` writes
the whole network. Both go through :func:`nas.onnx_graph.export_onnx`, so the two graphs should
hold the same operators. This module checks that and localises a misprediction:

- :func:`units_in_file`: the nodes ONNX Runtime runs for an exported network (after its graph
  optimisations), grouped by unit (stem, every block, head) through the module scope the
  ``torch.export``-based exporter records on each node;
- :func:`compare_unit_graphs`: for every unit of the architecture, its own profiled graph (the
  unit exported alone, exactly as ``nas profile`` times it) against the same unit's nodes in the
  file, after optimisation; each difference is named (``ReorderInput``/``ReorderOutput``, the
  NCHWc layout conversions at the ends of a run of convolutions, are reported apart);
- :func:`unit_times_in_file`: per unit, the kernel time ONNX Runtime's profiler measures inside
  the exported file, beside the table's entry for that unit; :func:`mispredicted_units` names the
  units whose time in the file exceeds the table's most.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.arch import Architecture
from nas.latency.space_units import build_unit
from nas.latency.table import LatencyTable
from nas.onnx_graph import (
    DEFAULT_EXPORTER,
    DEFAULT_OPSET,
    LAYOUT_OPS,
    Node,
    export_onnx,
    node_scopes,
    optimized_nodes,
    ort_session,
)
from nas.spaces.schema import SearchSpace
from nas.units import Unit, arch_units


@dataclass(frozen=True)
class UnitGraph:
    """One unit's operators after ONNX Runtime's optimisation: alone and inside the file."""

    index: int
    key: str
    alone: tuple[str, ...]
    in_file: tuple[str, ...]

    def differences(self, ignore: frozenset[str] = LAYOUT_OPS) -> list[str]:
        """Each difference of the two operator sequences (outside ``ignore``), named."""
        a = [op for op in self.alone if op not in ignore]
        b = [op for op in self.in_file if op not in ignore]
        out = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if tag != "equal":
                out.append(f"{self.key}: {tag} alone {a[i1:i2]} -> in file {b[j1:j2]}")
        return out

    def layout_differences(self) -> tuple[int, int]:
        """How many layout reorders the unit runs alone and inside the file."""
        return (sum(op in LAYOUT_OPS for op in self.alone),
                sum(op in LAYOUT_OPS for op in self.in_file))


def unit_of_scope(scope: str | None, n_units: int) -> int | None:
    """Unit index of a module path of the exported network (``stem``, ``blocks.3``, ``head``)."""
    if scope is None:
        return None
    top = scope.split(".")
    if top[0] == "stem":
        return 0
    if top[0] == "head":
        return n_units - 1
    if top[0] == "blocks" and len(top) > 1 and top[1].isdigit():
        return 1 + int(top[1])
    return None


def units_in_file(space: SearchSpace, arch: Architecture, onnx_path: str | os.PathLike,
                  threads: int = 1) -> tuple[list[Node], list[int | None]]:
    """The optimised nodes of ``onnx_path`` and the unit index of each (``None``: unassigned)."""
    n_units = len(arch_units(space, arch))
    nodes = optimized_nodes(onnx_path, threads)
    scopes = node_scopes(onnx_path, nodes)
    return nodes, [unit_of_scope(s, n_units) for s in scopes]


def unit_alone_ops(unit: Unit, *, batch: int = 1, opset: int = DEFAULT_OPSET,
                   exporter: str = DEFAULT_EXPORTER, dynamic_batch: bool = True) -> list[str]:
    """The operators ONNX Runtime runs for ``unit`` exported alone, as ``nas profile`` times it."""
    module, x = build_unit(unit, batch, np.random.default_rng(0))
    with tempfile.TemporaryDirectory(prefix="nas-unit-graph-") as tmp:
        path = Path(tmp) / "unit.onnx"
        export_onnx(module, x, path, opset=opset, exporter=exporter, dynamic_batch=dynamic_batch)
        return [n.op_type for n in optimized_nodes(path)]


def compare_unit_graphs(space: SearchSpace, arch: Architecture, onnx_path: str | os.PathLike, *,
                        batch: int = 1, opset: int = DEFAULT_OPSET,
                        exporter: str = DEFAULT_EXPORTER,
                        dynamic_batch: bool = True) -> list[UnitGraph]:
    """Every unit of ``arch``: its operators alone and inside the exported file ``onnx_path``."""
    units = arch_units(space, arch)
    nodes, owner = units_in_file(space, arch, onnx_path)
    unassigned = [n.name for n, u in zip(nodes, owner) if u is None]
    if unassigned:
        raise ValueError(f"{onnx_path}: nodes {unassigned[:5]} belong to no unit (exported "
                         "without module scopes: the legacy exporter?)")
    out = []
    for i, unit in enumerate(units):
        in_file = tuple(n.op_type for n, u in zip(nodes, owner) if u == i)
        alone = tuple(unit_alone_ops(unit, batch=batch, opset=opset, exporter=exporter,
                                     dynamic_batch=dynamic_batch))
        out.append(UnitGraph(i, unit.key, alone, in_file))
    return out


@dataclass(frozen=True)
class UnitTime:
    """One unit: the table's entry and the kernel time measured inside the exported file (ms)."""

    index: int
    key: str
    table_ms: float
    in_file_ms: float

    @property
    def excess_ms(self) -> float:
        return self.in_file_ms - self.table_ms


def unit_times_in_file(space: SearchSpace, arch: Architecture, onnx_path: str | os.PathLike,
                       table: LatencyTable, x: np.ndarray, *, runs: int = 50,
                       threads: int = 1, call_overhead_ms: float = 0.0) -> list[UnitTime]:
    """Per unit, the median over ``runs`` calls of the summed kernel times ONNX Runtime's profiler
    records for the unit's nodes inside ``onnx_path``, beside the table's entry for the unit less
    the per-call overhead it paid when timed alone (``call_overhead_ms``, kernel times have none)."""
    units = arch_units(space, arch)
    nodes, owner = units_in_file(space, arch, onnx_path, threads)
    kernel = kernel_ms_by_group(onnx_path, {n.name: u for n, u in zip(nodes, owner)}, x,
                                runs=runs, threads=threads)
    entries = table.lookup(u.key for u in units)
    return [UnitTime(i, u.key, max(float(entries[i]) - call_overhead_ms, 1e-6),
                     kernel.get(i, 0.0)) for i, u in enumerate(units)]


def kernel_ms_by_group(onnx_path: str | os.PathLike, group_of_node: dict[str, int | None],
                       x: np.ndarray, *, runs: int = 50, warmup: int = 5, threads: int = 1,
                       before_call: Callable[[], object] | None = None) -> dict[int, float]:
    """Per group of optimised nodes (``group_of_node``: node name -> group, ``None``: none), the
    median over ``runs`` calls of the summed kernel times ONNX Runtime's profiler records for the
    group's nodes in ``onnx_path`` (ms; ``warmup`` profiled calls first, dropped).
    ``before_call`` runs before every call, outside the kernels (e.g. a cache-flushing write)."""
    total = warmup + runs
    with tempfile.TemporaryDirectory(prefix="nas-ort-profile-") as tmp:
        session = ort_session(onnx_path, threads, profile_prefix=str(Path(tmp) / "prof"))
        feeds = {session.get_inputs()[0].name: x}
        for _ in range(total):
            if before_call is not None:
                before_call()
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_run: dict[int, list[float]] = {}
    run_index: dict[str, int] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        node = e["name"][: -len("_kernel_time")]
        group = group_of_node.get(node)
        if group is None:
            continue
        k = run_index.get(node, 0)
        run_index[node] = k + 1
        per_run.setdefault(group, [0.0] * total)
        if k < total:
            per_run[group][k] += float(e["dur"]) / 1e3  # us -> ms
    return {g: float(np.median(v[warmup:])) for g, v in per_run.items()}


def mispredicted_units(times: Sequence[UnitTime], *, tolerance: float = 0.10,
                       top: int = 3) -> list[UnitTime]:
    """Up to ``top`` units whose time inside the file exceeds the table's entry by more than
    ``tolerance`` (relative), largest excess in ms first."""
    over = [t for t in times if t.in_file_ms > t.table_ms * (1 + tolerance)]
    return sorted(over, key=lambda t: -t.excess_ms)[:top]


def describe_units(times: Sequence[UnitTime]) -> str:
    """``conv:...: 0.031 ms in the file vs 0.024 ms in the table (+29%)`` for each, joined."""
    return "; ".join(
        f"{t.key}: {t.in_file_ms:.3f} ms in the file vs {t.table_ms:.3f} ms in the table "
        f"({100 * (t.in_file_ms / t.table_ms - 1):+.0f}%)" for t in times)

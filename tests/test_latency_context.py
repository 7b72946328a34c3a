"""The context experiment's tools (issue 13), on hybrid-tiny: per-group kernel times from ONNX
Runtime's profiler, with an untimed cache-flushing write before every call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.benchmarks.latency_context import Flush
from nas.latency.onnx_units import kernel_ms_by_group
from nas.latency.space_units import build_network
from nas.onnx_graph import export_onnx, optimized_nodes
from nas.spaces import load_space

SPACE = load_space("hybrid-tiny")


def test_kernel_times_by_group_with_a_flush_before_every_call(tmp_path: Path) -> None:
    net, x = build_network(SPACE, SPACE.smallest(), 1, np.random.default_rng(0))
    path = tmp_path / "net.onnx"
    export_onnx(net, x, path, exporter="legacy")  # fast; the grouping does not depend on it
    nodes = optimized_nodes(path)
    half = len(nodes) // 2
    groups = {n.name: (0 if i < half else 1) for i, n in enumerate(nodes)}
    groups[nodes[-1].name] = None  # a node of no group is left out
    calls = []
    flush = Flush(1 << 20)

    def before() -> None:
        calls.append(1)
        flush()

    warm = kernel_ms_by_group(path, groups, x.numpy(), runs=6, warmup=2)
    cold = kernel_ms_by_group(path, groups, x.numpy(), runs=6, warmup=2, before_call=before)
    assert len(calls) == 8  # every profiled call, warm-up included
    assert set(warm) == set(cold) == {0, 1}
    assert all(v > 0 for v in [*warm.values(), *cold.values()])
    assert float(flush.buffer[0]) == 8.0  # the write really happened before each call

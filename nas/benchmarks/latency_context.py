"""Benchmark: why does the sum of units alone under-predict whole networks, more the larger they are?

Reproduce::

    .venv/bin/python -m nas.benchmarks.latency_context --space hybrid-cifar --n 4 --rounds 3

A designed experiment on ONNX Runtime (1 thread, thread-CPU clock, every ratio measured in one
run). For N random subnets of the validation stream (with ``--extremes`` also the space's
smallest and largest) and every unit of each:

- ``net``: the whole network, one call per sample;
- ``alone``: each unit exported alone (as ``nas profile`` times it), summed over the network;
- ``alone, cold``: the same unit calls, each preceded (outside the timer) by a write over a
  buffer as large as the network's weights: the caches hold what the other layers of the
  network would have left in them, not the unit's own weights;
- ``kernels``: ONNX Runtime's profiler: the summed kernel time of the network's nodes inside the
  network, of the ``build_unit`` units alone, and of the network's OWN modules (same weights)
  cut out one by one and fed the activation the network gives them, warm and cold (the
  weight-sized write before each call). Same weights and inputs, so what differs between "in
  net" and "cut" is only the context; "cut, cold" tests whether that context is the caches.

All timings of one network are interleaved in rounds (seeded shuffle); each is the median of its
calls. Writes ``results/benchmarks/latency_context.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.benchmarks.command import reproduce_command
from nas.io import atomic_write_text
from nas.latency.environment import load_summary, machine_summary
from nas.latency.onnx_units import kernel_ms_by_group, units_in_file
from nas.latency.space_profile import calibration_archs, validation_archs
from nas.latency.space_units import arch_features, build_network, build_unit, unit_kind
from nas.onnx_graph import export_onnx, optimized_nodes, ort_session
from nas.spaces import load_space
from nas.spaces.schema import SearchSpace
from nas.units import arch_units

OUT = Path("results/benchmarks/latency_context.md")


class Flush:
    """A write over ``nbytes`` of memory: evicts what a cache held, as other layers would."""

    def __init__(self, nbytes: int) -> None:
        self.buffer = np.zeros(max(int(nbytes) // 4, 16_384), dtype=np.float32)

    def __call__(self) -> None:
        self.buffer += 1.0


def time_calls(call: Callable[[], object], n: int, before: Callable[[], object] | None) -> list[int]:
    """``n`` single calls timed with the thread-CPU clock (ns); ``before`` runs untimed first."""
    out = []
    for _ in range(n):
        if before is not None:
            before()
        t0 = time.thread_time_ns()
        call()
        out.append(time.thread_time_ns() - t0)
    return out


def _session(module: Any, x: Any, path: Path) -> tuple[Any, dict[str, np.ndarray], Path]:
    export_onnx(module, x, path)
    session = ort_session(path, 1)
    return session, {session.get_inputs()[0].name: x.numpy()}, path


def measure_network(space: SearchSpace, arch: Architecture, tmp: Path, *, rounds: int,
                    calls: int, seed: int, rng: np.random.Generator) -> dict[str, Any]:
    """Every quantity of the module docstring for one network (ms)."""
    units = arch_units(space, arch)
    net, x = build_network(space, arch, 1, np.random.default_rng([seed, 1]))
    weight_bytes = 4 * int(arch_features(space, [arch])["params"][0])
    flush = Flush(weight_bytes)
    net_session, net_feeds, net_path = _session(net, x, tmp / "net.onnx")
    unit_sessions = []
    for i, unit in enumerate(units):
        module, ux = build_unit(unit, 1, np.random.default_rng([seed, 2, i]))
        unit_sessions.append(_session(module, ux, tmp / f"unit{i}.onnx"))
    items: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        "net": (lambda: net_session.run(None, net_feeds), None)}
    for i, (s, feeds, _) in enumerate(unit_sessions):
        items[f"alone{i}"] = (lambda s=s, f=feeds: s.run(None, f), None)
        items[f"cold{i}"] = (lambda s=s, f=feeds: s.run(None, f), flush)
    for call, _ in items.values():
        for _ in range(10):
            call()
    samples: dict[str, list[int]] = {k: [] for k in items}
    keys = list(items)
    for _ in range(rounds):
        for k in rng.permutation(keys):
            call, before = items[k]
            samples[k] += time_calls(call, calls, before)
    med = {k: float(np.median(v)) / 1e6 for k, v in samples.items()}
    nodes, owner = units_in_file(space, arch, net_path)
    k_in = kernel_ms_by_group(net_path, {n.name: u for n, u in zip(nodes, owner)},
                              net_feeds[next(iter(net_feeds))], runs=calls * rounds)
    k_alone, k_cut, k_cold = [], [], []
    for _, feeds, path in unit_sessions:
        group = {n.name: 0 for n in optimized_nodes(path)}
        k_alone.append(kernel_ms_by_group(path, group, feeds[next(iter(feeds))],
                                          runs=calls * rounds).get(0, 0.0))
    # the network's own modules, cut out and fed the activation the network gives them
    h = x
    with torch.no_grad():
        for i, module in enumerate([net.stem, *net.blocks, net.head]):
            path = tmp / f"cut{i}.onnx"
            export_onnx(module, h, path)
            group = {n.name: 0 for n in optimized_nodes(path)}
            k_cut.append(kernel_ms_by_group(path, group, h.numpy(), runs=calls * rounds)
                         .get(0, 0.0))
            k_cold.append(kernel_ms_by_group(path, group, h.numpy(), runs=calls * rounds,
                                             before_call=flush).get(0, 0.0))
            h = module(h)
    kinds = [unit_kind(u.key) for u in units]
    by_kind: dict[str, list[float]] = {}
    for i, kind in enumerate(kinds):
        row = by_kind.setdefault(kind, [0.0, 0.0])
        row[0] += k_in.get(i, 0.0) - k_cut[i]
        row[1] += k_in.get(i, 0.0) - k_cold[i]
    return {
        "arch": arch.to_str(), "params": weight_bytes // 4, "n_units": len(units),
        "net": med["net"], "alone": sum(med[f"alone{i}"] for i in range(len(units))),
        "cold": sum(med[f"cold{i}"] for i in range(len(units))),
        "k_net": sum(k_in.values()), "k_alone": sum(k_alone), "k_cut": sum(k_cut),
        "k_cold": sum(k_cold),
        "kernel_gap_by_kind": by_kind,
    }


def report(rows: list[dict[str, Any]], command: str, load: tuple[float, float], space: str,
           seconds: float) -> str:
    lines = [
        f"# Context experiment: units alone vs inside the network ({space}, ONNX Runtime)", "",
        f"Reproduce: `{command}`", "",
        f"Measured on {machine_summary()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.0f} min; "
        f"{load_summary(*load)}. 1 intra-op thread, thread-CPU clock, every number of a row "
        "measured in the same interleaved run; medians of single calls, ms.", "",
        "Thread-clock columns (ms per call): `net` the whole network; `alone` the sum of its "
        "units each exported and timed alone (`build_unit`, as `nas profile` times them: the "
        "table's model); `alone, cold` the same calls, each preceded (untimed) by a write over "
        "a buffer the size of the network's weights.", "",
        "Kernel columns (ONNX Runtime's profiler, summed node kernel time, wall clock with the "
        "profiler's per-node cost: comparable with each other, not with the thread-clock "
        "columns): `in net` the network's nodes; `alone` the `build_unit` units; `cut` the "
        "network's own modules (same weights) exported one by one and fed the activation the "
        "network gives them; `cut, cold` the same with the weight-sized write before each call.",
        "",
        "| network (params, weight MiB) | units | net | alone | alone, cold | net / alone | "
        "net / alone, cold | kernels: in net | kernels: alone | kernels: cut | kernels: cut, "
        "cold | in net / cut | in net / cut, cold |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['params'] / 1e6:.2f} M, {4 * r['params'] / 2**20:.1f} | {r['n_units']} | "
            f"{r['net']:.3f} | {r['alone']:.3f} | {r['cold']:.3f} | {r['net'] / r['alone']:.2f} "
            f"| {r['net'] / r['cold']:.2f} | {r['k_net']:.3f} | {r['k_alone']:.3f} | "
            f"{r['k_cut']:.3f} | {r['k_cold']:.3f} | {r['k_net'] / r['k_cut']:.2f} | "
            f"{r['k_net'] / r['k_cold']:.2f} |")
    lines += ["", "Kernel time in the network less the same module's cut out (warm / cold), by "
              "unit kind (ms):", "", "| network (params) | by kind: in net - cut (in net - cut, "
              "cold) |", "| --- | --- |"]
    for r in rows:
        kinds = ", ".join(f"{k} {v[0]:+.3f} ({v[1]:+.3f})" for k, v in sorted(
            r["kernel_gap_by_kind"].items(), key=lambda kv: -abs(kv[1][0])))
        lines.append(f"| {r['params'] / 1e6:.2f} M | {kinds} |")
    params = np.array([r["params"] for r in rows], dtype=float)
    gap = np.array([r["net"] / r["alone"] - 1 for r in rows])
    kernel_gap = np.array([r["k_net"] / r["k_cut"] - 1 for r in rows])
    if len(rows) >= 3:
        lines += ["", f"Correlation with parameter count (Pearson r over {len(rows)} networks): "
                  f"net / alone - 1: {np.corrcoef(params, gap)[0, 1]:+.2f}; kernels in net / "
                  f"cut - 1: {np.corrcoef(params, kernel_gap)[0, 1]:+.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--n", type=int, default=3, help="random networks (validation stream)")
    parser.add_argument("--extremes", action="store_true",
                        help="also the space's smallest and largest networks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="calls per item per round")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    command = reproduce_command("nas.benchmarks.latency_context", argv)
    space = load_space(args.space)
    archs = validation_archs(space, args.n, args.seed, exclude=calibration_archs(space, 20, 0))
    if args.extremes:
        archs += [space.smallest(), space.largest()]
    archs.sort(key=lambda a: float(arch_features(space, [a])["params"][0]))
    start, load0 = time.monotonic(), os.getloadavg()[0]
    rows = []
    rng = np.random.default_rng(args.seed)
    for i, arch in enumerate(archs):
        with tempfile.TemporaryDirectory(prefix="nas-context-") as tmp:
            row = measure_network(space, arch, Path(tmp), rounds=args.rounds, calls=args.calls,
                                  seed=args.seed, rng=rng)
        rows.append(row)
        print(f"{i + 1}/{len(archs)} {row['params'] / 1e6:.2f}M net {row['net']:.3f} alone "
              f"{row['alone']:.3f} cold {row['cold']:.3f} kernels {row['k_net']:.3f}/"
              f"{row['k_alone']:.3f}/{row['k_cut']:.3f}/{row['k_cold']:.3f}", file=sys.stderr,
              flush=True)
        text = report(rows, command, (load0, os.getloadavg()[0]), space.name,
                      time.monotonic() - start)
        atomic_write_text(args.out, text)  # after each network: a partial report survives
    header = ["arch", "params", "n_units", "net", "alone", "cold", "k_net", "k_alone", "k_cut",
              "k_cold"]
    csv = [",".join(header)] + [",".join(f'"{r[h]}"' if h == "arch" else f"{r[h]:.6g}"
                                         for h in header) for r in rows]
    atomic_write_text(args.out.with_suffix(".csv"), "\n".join(csv) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

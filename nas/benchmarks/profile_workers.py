"""Benchmark: ``nas profile`` with its ONNX exports made ahead in worker processes, against all in
the calling process: wall time, and whether the tables agree as closely as two tables made the
same way.

Reproduce::

    .venv/bin/python -m nas.benchmarks.profile_workers --space hybrid-cifar

Three fresh tables of the space, made one after another with the settings of ``nas run``'s profile
stage (ONNX Runtime, 1 thread, 5 rounds, 20 calibration subnets): ``--workers N``, then
``--workers 1``, then ``--workers N`` again. The two N tables measure how closely the device
repeats itself; the 1 table is compared with each of them. Agreement is read on the units (the
per-key medians) and on the predictions of ``--archs`` random subnets (sums of units, then each
table's calibration). Writes ``results/benchmarks/profile_workers.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from nas.benchmarks.command import reproduce_command, write_report
from nas.latency.environment import machine_summary
from nas.latency.export_pool import default_export_workers
from nas.latency.space_profile import validation_archs
from nas.latency.space_units import predict_latency
from nas.latency.table import LatencyTable
from nas.spaces import load_space

OUT = Path("results/benchmarks/profile_workers.md")
PROFILE = ["--latency-device", "onnxruntime", "--no-progress"]


def profile(space: str, out: Path, workers: int, settings: list[str]) -> float:
    """Wall seconds of ``nas profile`` of ``space`` into a fresh table ``out``."""
    from nas.cli import main

    start = time.perf_counter()
    code = main(["profile", "--space", space, "--out", str(out), "--workers", str(workers),
                 *settings])
    if code != 0:
        raise SystemExit(f"nas profile --workers {workers} exited {code}")
    return time.perf_counter() - start


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How closely ``b`` repeats ``a`` (both positive, same order)."""
    ratio = b / a
    return {
        "median ratio": float(np.median(ratio)),
        "within 5%": float(np.mean(np.abs(ratio - 1) <= 0.05)),
        "within 10%": float(np.mean(np.abs(ratio - 1) <= 0.10)),
        "kendall": float(kendalltau(a, b).statistic),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--workers", type=int, default=default_export_workers(),
                        help="export processes of the parallel tables (default: one per core, "
                             "at most 4)")
    parser.add_argument("--archs", type=int, default=200,
                        help="random subnets whose predictions are compared")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (5, as nas run)")
    parser.add_argument("--calibrate", type=int, default=20,
                        help="calibration subnets (20, as nas run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    settings = [*PROFILE, "--rounds", str(args.rounds), "--calibrate", str(args.calibrate)]
    if args.workers < 2:
        raise SystemExit("--workers must be >= 2 (1 is the baseline every run includes)")
    space = load_space(args.space)
    runs = [("A", args.workers), ("B", 1), ("C", args.workers)]
    seconds: dict[str, float] = {}
    tables: dict[str, LatencyTable] = {}
    with tempfile.TemporaryDirectory(prefix="nas-profile-workers-") as tmp:
        for name, workers in runs:
            path = Path(tmp) / f"{name}.csv"
            seconds[name] = profile(args.space, path, workers, settings)
            tables[name] = LatencyTable.load(path)
            print(f"table {name} (--workers {workers}): {seconds[name]:.0f} s", flush=True)
    keys = sorted(tables["A"].keys())
    units = {n: tables[n].lookup(keys) for n in tables}
    archs = validation_archs(space, args.archs, seed=7)
    predicted = {n: predict_latency(tables[n], space, archs) for n in tables}
    pairs = [("A", "C", f"N={args.workers} vs N={args.workers} (the device's repeatability)"),
             ("A", "B", f"N={args.workers} (first) vs 1"),
             ("C", "B", f"N={args.workers} (second) vs 1")]
    serial = seconds["B"]
    parallel = (seconds["A"] + seconds["C"]) / 2
    lines = [
        f"# `nas profile` with ONNX exports made ahead in {args.workers} worker processes",
        "",
        f"Command: `{reproduce_command('nas.benchmarks.profile_workers', argv)}`",
        "",
        f"Machine: {machine_summary()}, load average (1 min) {os.getloadavg()[0]:.1f} when the "
        "report was written. Each table: `nas profile --space "
        f"{args.space} {' '.join(settings)} --workers W` ({len(keys)} units; 5 rounds and 20 "
        "calibration subnets are the settings of `nas run`'s profile stage).",
        "",
        "The dynamo exporter spends about half a second of single-threaded Python per unit; the "
        "workers export a chunk's units at once, then this process times them one at a time "
        "while the workers wait (`nas.latency.export_pool`).",
        "",
        "## Wall time",
        "",
        "| table | --workers | wall s |",
        "| --- | ---: | ---: |",
        *(f"| {n} | {w} | {seconds[n]:.0f} |" for n, w in runs),
        "",
        f"Speed-up: **{serial / parallel:.2f}x** (mean of A and C against B).",
        "",
        f"## Agreement: units ({len(keys)}) and predictions of {len(archs)} random subnets",
        "",
        "| pair | units: median ratio | within 5% | within 10% | Kendall | subnets: median ratio "
        "| within 5% | within 10% | Kendall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b, label in pairs:
        u, p = agreement(units[a], units[b]), agreement(predicted[a], predicted[b])
        lines.append(
            f"| {label} | {u['median ratio']:.3f} | {100 * u['within 5%']:.0f}% | "
            f"{100 * u['within 10%']:.0f}% | {u['kendall']:.3f} | {p['median ratio']:.3f} | "
            f"{100 * p['within 5%']:.0f}% | {100 * p['within 10%']:.0f}% | {p['kendall']:.3f} |"
        )
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

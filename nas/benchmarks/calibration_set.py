"""Benchmark: which subnets a latency table's calibration is fitted on, uniform ones alone or half
spread over the space's FLOPs range (:func:`nas.latency.space_profile.calibration_archs`).

Reproduce (a table of the space, fp32, e.g. the one ``nas run`` writes)::

    .venv/bin/nas profile --space hybrid-cifar --latency-device onnxruntime --out T.csv
    .venv/bin/python -m nas.benchmarks.calibration_set --table T.csv

Measures, end to end and interleaved in one call (so both calibrations see the same device
state): K uniform calibration subnets (the rule before), the K subnets of the current rule, and
two test sets from seed streams neither rule draws from: ``--n-test`` uniform subnets and
``--n-test`` stratified by FLOPs (the small and large networks a bounded search visits, the
extremes themselves excluded). Both calibrations are fitted on the same unit medians of the
table; each test set reports the share within +/-10%, the median absolute error, the median ratio
and Kendall tau, and the smallest fifth of the stratified set (by FLOPs) on its own. Writes
``results/benchmarks/calibration_set.md``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from nas.arch import Architecture
from nas.benchmarks.command import reproduce_command, write_report
from nas.costs import flops as arch_flops
from nas.latency.environment import machine_summary
from nas.latency.export_pool import ExportPool, default_export_workers
from nas.latency.space_profile import (
    CALIBRATION_STREAM,
    calibrate_table,
    calibration_archs,
    distinct_archs,
    measure_networks,
    protocol_of,
    validation_archs,
)
from nas.latency.space_units import predict_latency
from nas.latency.table import LatencyTable
from nas.sample.draw import draw_architectures
from nas.spaces import load_space

OUT = Path("results/benchmarks/calibration_set.md")
TEST_SEED = 17  # seed of both test sets: the validation stream and a FLOPs draw of its own


def errors(predicted: np.ndarray, measured: np.ndarray) -> str:
    ratio = predicted / measured
    tau = kendalltau(predicted, measured).statistic if len(ratio) > 2 else float("nan")
    return (f"{100 * np.mean(np.abs(ratio - 1) <= 0.10):.0f}% | "
            f"{100 * np.median(np.abs(ratio - 1)):.1f}% | {np.median(ratio):.3f} | {tau:.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, type=Path, help="an fp32 latency table (CSV)")
    parser.add_argument("--space", default=None, help="its space (default: the table's)")
    parser.add_argument("--k", type=int, default=20, help="calibration subnets per rule (20)")
    parser.add_argument("--n-test", type=int, default=40, help="subnets per test set (40)")
    parser.add_argument("--seed", type=int, default=0, help="calibration seed (0)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    table = LatencyTable.load(args.table)
    space = load_space(args.space or table.meta.space_name)
    rules = {
        "uniform (before)": distinct_archs(
            space, args.k, np.random.default_rng([args.seed, CALIBRATION_STREAM])),
        "half FLOPs-stratified, half uniform (now)": calibration_archs(space, args.k, args.seed),
    }
    stratified = draw_architectures(space, args.n_test + 2, strategy="flops",
                                    seed=TEST_SEED)[2:]  # the first two are the extremes
    tests = {
        "uniform": validation_archs(space, args.n_test, seed=TEST_SEED),
        "FLOPs-stratified": stratified,
    }
    flops = np.array([arch_flops(space, a) for a in stratified])
    smallest = list(np.argsort(flops)[: max(3, len(stratified) // 5)])
    groups: dict[str, list[Architecture]] = {**rules, **tests}
    archs = [a for group in groups.values() for a in group]
    with ExportPool(default_export_workers()) as pool:
        measured_all = measure_networks(space, archs, protocol_of(table), seed=args.seed,
                                        rng=np.random.default_rng([args.seed, 5]),
                                        export_pool=pool)
    measured: dict[str, np.ndarray] = {}
    start = 0
    for name, group in groups.items():
        measured[name] = measured_all[start:start + len(group)]
        start += len(group)
    lines = [
        "# Calibration subnets: uniform alone, or half spread over the FLOPs range",
        "",
        f"Command: `{reproduce_command('nas.benchmarks.calibration_set', argv)}`",
        "",
        f"Machine: {machine_summary()}, load average (1 min) {os.getloadavg()[0]:.1f} when the "
        f"report was written. Table: {space.name}, {len(table)} units, "
        f"{table.meta.runtime}, {table.meta.threads} thread(s), batch "
        f"{table.meta.batch}. All {len(archs)} networks measured end to end in one interleaved "
        "call; both calibrations fitted on the same unit medians (leave-one-out model choice, "
        "as `nas profile`).",
        "",
        "| calibration set | chosen model | test set | within +/-10% | median abs. error | "
        "median ratio | Kendall |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for rule, cal_archs in rules.items():
        fitted = copy.deepcopy(table)
        calibration = calibrate_table(fitted, space, cal_archs, measured[rule].tolist(),
                                      seed=args.seed)
        chosen = fitted.meta.notes["calibration_set"]["chosen"]
        for test, test_archs in tests.items():
            predicted = predict_latency(fitted, space, test_archs)
            lines.append(f"| {rule} | {chosen} | {test} ({len(test_archs)}) | "
                         f"{errors(predicted, measured[test])} |")
        predicted = predict_latency(fitted, space, [stratified[i] for i in smallest])
        lines.append(f"| {rule} | {chosen} | smallest fifth of the stratified ({len(smallest)}) "
                     f"| {errors(predicted, measured['FLOPs-stratified'][smallest])} |")
        lines.append(f"| | `{calibration.to_dict()['formula']}` | | | | | |")
    lines += [
        "",
        "Measured latency ranges (ms): " + "; ".join(
            f"{name} {measured[name].min():.3f}-{measured[name].max():.3f}" for name in groups),
    ]
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

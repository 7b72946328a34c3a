"""Benchmark: an INT8 table's calibration with and without per-kind switch scales, no device needed.

Reproduce::

    python -m nas.benchmarks.int8_calibration --space hybrid-tiny \
        --table results/latency/int8-hybrid-tiny.csv \
        --validation results/benchmarks/latency_int8_hybrid-tiny.csv \
        --validation results/benchmarks/latency_int8_hybrid-tiny_seed2.csv --k 20 --k 40

A table made by ``nas profile --precisions fp32,int8`` stores the end-to-end times of its
calibration subnets; ``nas latency validate`` writes a CSV of other subnets measured end to end.
This refits the calibration on the first K stored subnets two ways and scores both on the
validation subnets (which play no part in either fit or choice):

- ``without switch scales``: the candidates ``nas profile`` chose from before the int8 terms
  (scale, per-layer, per-kind, each with or without a weight term);
- ``with switch scales``: those plus each with ``int8_excess_<kind>`` (what the table says
  switching a kind's units to int8 costs), the rule ``nas profile`` applies now.

Leave-one-out error on the K calibration subnets chooses within each rule, as ``nas profile``
does. Writes ``results/benchmarks/int8_calibration.md``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Architecture
from nas.benchmarks.command import reproduce_command
from nas.benchmarks.int8_switch_cost import load_int8_table
from nas.io import atomic_write_text
from nas.latency.space_profile import fit_space_calibration, stored_calibration_archs
from nas.latency.space_units import arch_features, predict_latency
from nas.latency.table import LatencyTable
from nas.spaces.schema import SearchSpace
from nas.units import arch_keys
from predictors.metrics import kendall_tau

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / "int8_calibration.md"
RULES = ("without switch scales", "with switch scales")


class _NoSwitchScales(LatencyTable):
    """The same table, its calibration features without the int8 switch terms."""

    def int8_excess_features(self, keys_per_arch: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        return {}


def read_validation(path: str | Path) -> tuple[list[Architecture], np.ndarray]:
    """Architectures and pass-1 measured ms of a ``nas latency validate`` CSV."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    archs = [Architecture.from_str(r["arch"]) for r in rows]
    return archs, np.array([float(r["measured_ms"]) for r in rows])


def score(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = (predicted - measured) / measured
    return {"within10": float(np.mean(np.abs(rel) <= 0.10)),
            "median_abs": float(np.median(np.abs(rel))), "mean_signed": float(np.mean(rel)),
            "kendall": float(kendall_tau(measured, predicted))}


def run(space: SearchSpace, table: LatencyTable, archs: Sequence[Architecture],
        measured: np.ndarray, ks: Sequence[int]) -> list[dict[str, object]]:
    """Per K and rule: the chosen calibration, its leave-one-out error and its validation scores."""
    cal_archs = stored_calibration_archs(table)
    cal_ms = np.asarray(table.meta.notes["calibration_set"]["measured_ms"], dtype=np.float64)
    rows: list[dict[str, object]] = []
    for k in ks:
        if k > len(cal_archs):
            raise SystemExit(f"--k {k}: the table stores {len(cal_archs)} calibration subnets")
        keys = [arch_keys(space, a) for a in cal_archs[:k]]
        for rule in RULES:
            fitted = table if rule == RULES[1] else _NoSwitchScales(table.meta, table.entries)
            cal, record = fit_space_calibration(fitted, keys, cal_ms[:k].tolist(),
                                                arch_features(space, cal_archs[:k]))
            fitted.set_calibration(cal)
            rows.append({"k": k, "rule": rule, "chosen": record["chosen"],
                         "loo": record["loo_rms_relative_error"].get(record["chosen"], float("nan")),
                         "formula": cal.to_dict()["formula"],
                         **score(predict_latency(fitted, space, archs), measured)})
    return rows


def report(sets: Sequence[tuple[str, int, Sequence[dict[str, object]]]], command: str) -> str:
    """One table per validation set (name, number of subnets, rows of :func:`run`)."""
    lines = ["# INT8 table calibration: with and without per-kind switch scales", "",
             f"Reproduce: `{command}`", "",
             "Fitted and chosen on the first K calibration subnets stored in the table only; "
             "scored on each validation CSV's subnets (pass-1 times), none of which is a "
             "calibration subnet."]
    for name, n_val, rows in sets:
        lines += ["", f"## {name} ({n_val} subnets)", "",
                  "| K | rule | chosen model | leave-one-out RMS | within +/-10% "
                  "| median abs. error | mean signed error | Kendall tau |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['k']} | {r['rule']} | {r['chosen']} | {float(r['loo']):.1%} "  # type: ignore[arg-type]
                         f"| {float(r['within10']):.0%} | {float(r['median_abs']):.1%} "  # type: ignore[arg-type]
                         f"| {float(r['mean_signed']):+.1%} | {float(r['kendall']):.3f} |")  # type: ignore[arg-type]
    lines += ["", "Formulas (the same for every validation set):", ""]
    lines += [f"- K={r['k']}, {r['rule']}: `{r['formula']}`" for r in sets[0][2]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--space", default="hybrid-tiny")
    parser.add_argument("--table", required=True, help="a table with int8 entries")
    parser.add_argument("--validation", required=True, action="append",
                        help="a CSV of nas latency validate (repeatable: one table each)")
    parser.add_argument("--k", type=int, action="append", help="calibration subnets (repeatable; "
                        "default: all the table stores)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    command = reproduce_command("nas.benchmarks.int8_calibration", argv)
    space, table = load_int8_table(args.space, args.table)
    ks = args.k or [len(stored_calibration_archs(table))]
    sets = []
    for path in args.validation:
        archs, measured = read_validation(path)
        sets.append((Path(path).name, len(archs), run(space, table, archs, measured, ks)))
    atomic_write_text(args.out, report(sets, command))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

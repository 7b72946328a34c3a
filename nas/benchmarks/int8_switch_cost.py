"""Benchmark: what switching the layers of one kind to INT8 costs inside a network, against the table.

Reproduce::

    python -m nas.benchmarks.int8_switch_cost --space hybrid-tiny \
        --table results/latency/int8-hybrid-tiny.csv --n 12

A latency table with int8 entries (``nas profile --precisions fp32,int8``) prices a mixed network
as its units at their precisions plus the quantize/dequantize boundaries. Where a validation
misses, this says which precision switch the table misprices. For each gene kind (the stem, each
block kind, the head): ``--n`` random mixed-precision subnets of the validation seed stream that
have at least one int8 gene of that kind, each paired with the same subnet with those genes fp32.
Both of a pair are built with the same weights and timed in the same interleaved rounds (the
table's own protocol), so the measured difference is the switch's cost in the network, free of
the machine's drift; the table's difference is what it predicts for the switch.

Writes ``results/benchmarks/int8_switch_cost.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Architecture
from nas.benchmarks.command import reproduce_command
from nas.io import atomic_write_text
from nas.latency.environment import load_summary, machine_summary
from nas.latency.space_profile import (
    VALIDATION_STREAM,
    measure_networks,
    protocol_of,
    space_for_table,
    stored_calibration_archs,
    table_precisions,
)
from nas.latency.space_units import predict_latency
from nas.latency.table import LatencyTable
from nas.precision import FP32, INT8
from nas.spaces import load_space
from nas.spaces.schema import SearchSpace

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / "int8_switch_cost.md"


def load_int8_table(space_name: str, path: str | Path) -> tuple[SearchSpace, LatencyTable]:
    """The table at ``path`` and the space at its precisions; a table without int8 entries is
    refused in one line."""
    table = LatencyTable.load(path)
    if INT8 not in table_precisions(table):
        raise SystemExit(f"{path}: not an INT8 table (nas profile --precisions fp32,int8 makes one)")
    return space_for_table(load_space(space_name), table), table


def gene_kinds(arch: Architecture) -> list[str]:
    """The kind of each precision gene of ``arch``, in :meth:`Architecture.precisions` order."""
    return ["stem", *(layer.kind for s in arch.stages for layer in s.layers), "head"]


def switched_off(arch: Architecture, kind: str) -> Architecture:
    """``arch`` with every int8 gene of ``kind`` set to fp32."""
    genes = [FP32 if k == kind else p for k, p in zip(gene_kinds(arch), arch.precisions())]
    return arch.with_precisions(genes)


def pairs(space: SearchSpace, kind: str, n: int, seed: int,
          exclude: Sequence[Architecture]) -> list[tuple[Architecture, Architecture]]:
    """``n`` (subnet with an int8 gene of ``kind``, the same with those genes fp32) pairs."""
    rng = np.random.default_rng([seed, VALIDATION_STREAM, len(kind)])
    seen = {a.to_str() for a in exclude}
    out: list[tuple[Architecture, Architecture]] = []
    for _ in range(200 * n):
        if len(out) == n:
            break
        arch = space.sample(rng)
        has = any(k == kind and p == INT8 for k, p in zip(gene_kinds(arch), arch.precisions()))
        if has and arch.to_str() not in seen:
            seen.add(arch.to_str())
            out.append((arch, switched_off(arch, kind)))
    return out


def run(space: SearchSpace, table: LatencyTable, n: int, seed: int) -> list[dict[str, object]]:
    """Per gene kind: predicted and measured switch costs and both networks' prediction errors."""
    protocol = protocol_of(table)
    draws = np.random.default_rng([seed, 11])  # which gene kinds the space has
    kinds = sorted({k for _ in range(200) for k in gene_kinds(space.sample(draws))},
                   key=lambda k: (k != "stem", k == "head", k))
    rows: list[dict[str, object]] = []
    for kind in kinds:
        found = pairs(space, kind, n, seed, stored_calibration_archs(table))
        if not found:
            continue
        mixed, plain = [a for a, _ in found], [b for _, b in found]
        pred = predict_latency(table, space, mixed + plain)
        meas = measure_networks(space, mixed + plain, protocol, batch=table.meta.batch,
                                seed=seed, rng=np.random.default_rng([seed, 7]))
        k = len(found)
        pm, pp, mm, mp = pred[:k], pred[k:], meas[:k], meas[k:]
        rows.append(dict(
            kind=kind, n=k,
            pred_switch_us=float(np.median(pm - pp) * 1e3),
            meas_switch_us=float(np.median(mm - mp) * 1e3),
            err_int8=float(np.median(pm / mm - 1)), err_fp32=float(np.median(pp / mp - 1)),
            within10_int8=float(np.mean(np.abs(pm / mm - 1) <= 0.1) * 100),
            within10_fp32=float(np.mean(np.abs(pp / mp - 1) <= 0.1) * 100),
        ))
        print(f"{kind}: {rows[-1]}", flush=True)
    return rows


def report(rows: list[dict[str, object]], command: str, table_path: str, header: str) -> str:
    lines = ["# What an INT8 switch costs inside a network, against the latency table", "",
             f"Reproduce: `{command}`", "", header, "",
             (__doc__ or "").split("\n\n")[3].replace("\n", " "), "",
             f"Table `{table_path}`. Times in microseconds (medians over the pairs); errors are "
             "prediction / measurement - 1 (medians).", "",
             "| int8 genes of kind | pairs | switch cost: table | switch cost: measured | "
             "table / measured | error, with the int8 genes | within +/-10% | error, the same "
             "network fp32 | within +/-10% |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ratio = (float(r["pred_switch_us"]) / float(r["meas_switch_us"])  # type: ignore[arg-type]
                 if float(r["meas_switch_us"]) > 0 else float("nan"))  # type: ignore[arg-type]
        lines.append(
            f"| {r['kind']} | {r['n']} | {r['pred_switch_us']:+.1f} | {r['meas_switch_us']:+.1f} | "
            f"{ratio:.2f} | {100 * float(r['err_int8']):+.1f}% | "  # type: ignore[arg-type]
            f"{r['within10_int8']:.0f}% | {100 * float(r['err_fp32']):+.1f}% | "  # type: ignore[arg-type]
            f"{r['within10_fp32']:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--space", default="hybrid-tiny")
    parser.add_argument("--table", required=True, help="a table with int8 entries")
    parser.add_argument("--n", type=int, default=12, help="pairs per gene kind (12)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report (what else ran, say); repeatable")
    args = parser.parse_args(argv)
    command = reproduce_command("nas.benchmarks.int8_switch_cost", argv)
    space, table = load_int8_table(args.space, args.table)
    start, t0 = os.getloadavg()[0], time.perf_counter()
    rows = run(space, table, args.n, args.seed)
    header = (f"Measured on {machine_summary()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{(time.perf_counter() - t0) / 60:.1f} min; "
              f"{load_summary(start, os.getloadavg()[0])}.")
    header = "\n".join([header, *args.note])
    atomic_write_text(args.out, report(rows, command, args.table, header))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the learned additive latency model on NAS-Bench-201's measured latencies.

For each device column ``lat_ms_*`` of ``../shared/benchmarks/nb201.csv.gz``, train on n random cells
(n = 10, 50, 100, 900; several seeds) and report the Spearman and Kendall rank correlation of predicted
vs measured latency over all other cells, beside FLOPs alone and the published numbers (HELP,
NeurIPS 2021). Writes ``results/benchmarks/latency_nb201.md`` and ``.csv``.

Reproduce: ``.venv/bin/python -m nas.benchmarks.latency_nb201`` (about 10 minutes on one core;
``--seeds 2 --devices lat_ms_pixel2`` for a quick look).

NB201 FLOPs, computed analytically (CIFAR-10 network, C=16, N=5 cells per stage). One multiply-add
counts 2 FLOPs; BN, ReLU, additions of node inputs and ``none`` (a multiplication by zero) count 0::

    stem      conv3x3 3->16 at 32x32                              2 * 9*3*16*32*32
    cells     5 per stage, stages (C, HW) = (16, 32x32), (32, 16x16), (64, 8x8); per edge:
                nor_conv_3x3  ReLU-Conv3x3 C->C-BN                  2 * 9*C*C*HW
                nor_conv_1x1  ReLU-Conv1x1 C->C-BN                  2 * C*C*HW
                avg_pool_3x3  9 adds per output element             9 * C*HW
                skip_connect, none                                  0
    reduce    ResNet block C->2C, stride 2, output HW' = HW/4:
                conv3x3 C->2C stride 2 + conv3x3 2C->2C             2 * 9*(2C*C + 2C*2C)*HW'
                shortcut avgpool 2x2 (4 adds per output) + conv1x1  4*C*HW' + 2 * C*2C*HW'
    head      global average pool (64*8*8 adds) + linear 64->10     64*64 + 2*64*10

C*C*HW is 262,144 in every stage, so a cell's FLOPs depend only on its counts of conv3x3, conv1x1
and avg-pool edges: ``FLOPs = fixed + 15 * 2 * 262144 * (9 n_conv3 + n_conv1) + pool terms``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr
from threadpoolctl import threadpool_limits

from nas.benchmarks import nb201
from nas.io import atomic_write_text
from nas.latency.additive import AdditiveLatencyModel

STAGES: tuple[tuple[int, int], ...] = ((16, 32), (32, 16), (64, 8))  # (channels, resolution)
CELLS_PER_STAGE = 5
N_CLASSES = 10
SIZES: tuple[int, ...] = (10, 50, 100, 900)
HELP_TEST_DEVICES: tuple[str, ...] = (
    "lat_ms_titan_rtx_256",
    "lat_ms_gold_6226",
    "lat_ms_fpga",
    "lat_ms_pixel2",
    "lat_ms_raspi4",
    "lat_ms_eyeriss",
)
PUBLISHED = {  # HELP (NeurIPS 2021) README Table 3, mean Spearman over its 6 NB201 test devices
    "FLOPs alone": 0.787,
    "BRP-NAS, 900 samples": 0.789,
    "BRP-NAS, 3,200 samples": 0.805,
    "HELP, 10 samples (meta-trained on 18 other devices)": 0.932,
}
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / "latency_nb201"


# -- FLOPs ------------------------------------------------------------------------------------
def op_flops_per_edge(op: str) -> tuple[float, float]:
    """(conv/linear FLOPs, pooling FLOPs) of one op on one edge, summed over all 15 cells."""
    conv, pool = 0.0, 0.0
    for c, r in STAGES:
        hw = r * r
        if op == "nor_conv_3x3":
            conv += CELLS_PER_STAGE * 2 * 9 * c * c * hw
        elif op == "nor_conv_1x1":
            conv += CELLS_PER_STAGE * 2 * c * c * hw
        elif op == "avg_pool_3x3":
            pool += CELLS_PER_STAGE * 9 * c * hw
    return conv, pool


def fixed_flops() -> tuple[float, float]:
    """(conv/linear FLOPs, pooling FLOPs) of the stem, reduction blocks and head."""
    c0, r0 = STAGES[0]
    conv = 2 * 9 * 3 * c0 * r0 * r0
    pool = 0.0
    for (c, _), (_, r_out) in itertools.pairwise(STAGES):
        hw_out = r_out * r_out
        conv += 2 * 9 * (2 * c * c + 2 * c * 2 * c) * hw_out + 2 * c * 2 * c * hw_out
        pool += 4 * c * hw_out
    c_last, r_last = STAGES[-1]
    conv += 2 * c_last * N_CLASSES
    pool += c_last * r_last * r_last
    return conv, pool


def choice_flops(include_pool: bool = True) -> np.ndarray:
    """FLOPs of each one-hot column (edge x op, in :func:`nb201.one_hot` order), shape (30,)."""
    per_op = np.array(
        [
            sum(op_flops_per_edge(op)) if include_pool else op_flops_per_edge(op)[0]
            for op in nb201.OPS
        ]
    )
    return np.tile(per_op, nb201.N_EDGES)


def cell_flops(genes: np.ndarray, include_pool: bool = True) -> np.ndarray:
    """Whole-network FLOPs of NB201 cells given as genes (n, 6)."""
    fixed = sum(fixed_flops()) if include_pool else fixed_flops()[0]
    return fixed + nb201.one_hot(genes) @ choice_flops(include_pool)


# -- feature sets and models ---------------------------------------------------------------------
def op_counts(genes: np.ndarray) -> np.ndarray:
    """Per-op counts (n, 5): how many edges use each operation."""
    genes = np.atleast_2d(genes)
    return np.stack([(genes == k).sum(axis=1) for k in range(len(nb201.OPS))], axis=1).astype(float)


def pairwise(genes: np.ndarray) -> np.ndarray:
    """One-hot of (edge i op, edge j op) pairs for i < j: (n, 15 * 25)."""
    genes = np.atleast_2d(genes)
    n_ops = len(nb201.OPS)
    cols = []
    for i in range(nb201.N_EDGES):
        for j in range(i + 1, nb201.N_EDGES):
            code = genes[:, i] * n_ops + genes[:, j]
            block = np.zeros((genes.shape[0], n_ops * n_ops))
            block[np.arange(genes.shape[0]), code] = 1.0
            cols.append(block)
    return np.hstack(cols)


@dataclass(frozen=True)
class Variant:
    name: str
    features: Callable[[np.ndarray], np.ndarray]
    model: Callable[[], AdditiveLatencyModel]
    min_n: int = 0


def _groups() -> np.ndarray:
    return np.tile(np.arange(len(nb201.OPS)), nb201.N_EDGES)


def variants() -> list[Variant]:
    prior = choice_flops() / 1e6  # MFLOPs per column
    groups = _groups()
    n_pair = 15 * len(nb201.OPS) ** 2
    return [
        Variant("one-hot, ridge to 0", nb201.one_hot, lambda: AdditiveLatencyModel()),
        Variant("op counts (5 features)", op_counts, lambda: AdditiveLatencyModel()),
        Variant(
            "one-hot, FLOPs prior",
            nb201.one_hot,
            lambda: AdditiveLatencyModel(prior=prior),
        ),
        Variant(
            "one-hot, shared-op prior",
            nb201.one_hot,
            lambda: AdditiveLatencyModel(groups=groups),
        ),
        Variant(
            "one-hot, FLOPs + shared-op prior",
            nb201.one_hot,
            lambda: AdditiveLatencyModel(prior=prior, groups=groups),
        ),
        Variant(
            "one-hot + pairwise, shared-op prior",
            lambda g: np.hstack([nb201.one_hot(g), pairwise(g)]),
            lambda: AdditiveLatencyModel(
                groups=np.concatenate([groups, np.full(n_pair, -1)]), nonnegative=False
            ),
            min_n=100,
        ),
    ]


# -- the benchmark ------------------------------------------------------------------------------
def rank_scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    return float(spearmanr(pred, true)[0]), float(kendalltau(pred, true)[0])


def run(
    table: nb201.NB201Table,
    devices: Sequence[str],
    sizes: Sequence[int],
    seeds: int,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """One row per (device, method, n, seed) with Spearman and Kendall over held-out cells."""
    genes = table.genes
    n_cells = genes.shape[0]
    flops = cell_flops(genes)
    rows = []
    feature_cache: dict[str, np.ndarray] = {}
    all_variants = variants()
    for v in all_variants:
        feature_cache[v.name] = v.features(genes)
    for d, device in enumerate(devices):
        t0 = time.perf_counter()
        y = table.column(device)
        rho, tau = rank_scores(flops, y)
        rows.append(
            dict(device=device, method="FLOPs alone", n=0, seed=-1, spearman=rho, kendall=tau)
        )
        for n in sizes:
            for seed in range(seeds):
                rng = np.random.default_rng([seed, n])
                train = rng.choice(n_cells, size=n, replace=False)
                test = np.setdiff1d(np.arange(n_cells), train)
                for v in all_variants:
                    if n < v.min_n:
                        continue
                    x = feature_cache[v.name]
                    model = v.model().fit(x[train], y[train])
                    rho, tau = rank_scores(model.predict(x[test]), y[test])
                    rows.append(
                        dict(
                            device=device, method=v.name, n=n, seed=seed, spearman=rho, kendall=tau
                        )
                    )
        log(f"[{d + 1}/{len(devices)}] {device}: {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean over seeds per (device, method, n), then mean over the given devices."""
    if devices is not None:
        frame = frame[frame["device"].isin(devices)]
    per_device = frame.groupby(["device", "method", "n"], as_index=False)[
        ["spearman", "kendall"]
    ].mean()
    return per_device.groupby(["method", "n"], as_index=False)[["spearman", "kendall"]].mean()


def _pivot(summary: pd.DataFrame, metric: str, methods: Sequence[str]) -> list[str]:
    sizes = sorted(n for n in summary["n"].unique() if n > 0)
    head = "| method | " + " | ".join(f"n={n}" for n in sizes) + " |"
    lines = [head, "|" + " --- |" * (len(sizes) + 1)]
    for method in methods:
        sub = summary[summary["method"] == method].set_index("n")[metric]
        if method == "FLOPs alone":
            cells = [f"{sub.loc[0]:.3f} (no training)"] + [""] * (len(sizes) - 1)
        else:
            cells = [f"{sub.loc[n]:.3f}" if n in sub.index else "-" for n in sizes]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def report(
    frame: pd.DataFrame, devices: Sequence[str], seeds: int, command: str, seconds: float
) -> str:
    methods = ["FLOPs alone", *[v.name for v in variants()]]
    methods = [m for m in methods if m in set(frame["method"])]
    all_summary = summarise(frame)
    help_devices = [d for d in HELP_TEST_DEVICES if d in devices]
    lines = [
        "# Latency prediction on NAS-Bench-201 (learned additive model)",
        "",
        f"Reproduce: `{command}` ({seconds / 60:.1f} min on one core of this machine).",
        "",
        "Data: `../shared/benchmarks/nb201.csv.gz`, all 15,625 cells with latency measured on "
        f"{len(devices)} device settings (the `lat_ms_*` columns; the task brief says 24, the file "
        "holds 27). For each device and each n, n cells are drawn at random (seeds "
        f"0..{seeds - 1}), the model is fitted on their measured latency, and the rank correlation of "
        "predicted vs measured latency is computed over ALL OTHER cells; numbers are means over seeds, "
        "then over devices.",
        "",
        "Methods (`nas.latency.additive.AdditiveLatencyModel`; alpha chosen by 5-fold CV on the n "
        "training cells from 0.01..1000; costs >= 0 unless said):",
        "- FLOPs alone: analytic network FLOPs (formula in `nas/benchmarks/latency_nb201.py`), no training.",
        "- one-hot, ridge to 0: 30 columns (6 edges x 5 ops), ridge shrinkage towards zero cost.",
        "- op counts: 5 features (how many edges use each op), i.e. one cost per op shared by all edges.",
        "- one-hot, FLOPs prior: per-choice costs shrunk towards `scale * FLOPs(choice)`, scale fitted.",
        "- one-hot, shared-op prior: per-choice costs shrunk towards one fitted cost per op.",
        "- one-hot, FLOPs + shared-op prior: both targets at once.",
        "- one-hot + pairwise: adds 375 (edge i op, edge j op) indicator columns shrunk to 0 "
        "(signed costs), n >= 100 only.",
        "",
        f"## Mean Spearman over HELP's 6 NB201 test devices ({', '.join(d[7:] for d in help_devices)})",
        "",
        *_pivot(summarise(frame, help_devices), "spearman", methods),
        "",
        "Published (HELP, NeurIPS 2021, Table 3, same 6 devices; their split and FLOPs count may "
        "differ): " + "; ".join(f"{k} {v:.3f}" for k, v in PUBLISHED.items()) + ".",
        "",
        f"## Mean Spearman over all {len(devices)} devices",
        "",
        *_pivot(all_summary, "spearman", methods),
        "",
        f"## Mean Kendall tau over all {len(devices)} devices",
        "",
        *_pivot(all_summary, "kendall", methods),
        "",
    ]
    lines += _per_device(frame, devices)
    return "\n".join(lines) + "\n"


def _per_device(frame: pd.DataFrame, devices: Sequence[str]) -> list[str]:
    per = frame.groupby(["device", "method", "n"])["spearman"].mean()
    picks = [("FLOPs alone", 0)]
    for n in sorted(n for n in frame["n"].unique() if n > 0):
        for method in ("op counts (5 features)", "one-hot, FLOPs + shared-op prior"):
            picks.append((method, n))
    picks = [(m, n) for m, n in picks if (devices[0], m, n) in per.index]
    short = {
        "FLOPs alone": "FLOPs",
        "op counts (5 features)": "counts",
        "one-hot, FLOPs + shared-op prior": "1hot+prior",
    }
    head = "| device | " + " | ".join(f"{short[m]}{'' if n == 0 else f' n={n}'}" for m, n in picks)
    lines = [
        "## Spearman per device (mean over seeds)",
        "",
        head + " |",
        "|" + " --- |" * (len(picks) + 1),
    ]
    for device in devices:
        cells = [f"{per.loc[(device, m, n)]:.3f}" for m, n in picks]
        lines.append(f"| {device[7:]} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--devices", nargs="+", default=None, help="lat_ms_* columns (default: all)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path without suffix")
    args = parser.parse_args(argv)
    table = nb201.load()
    devices = args.devices or table.latency_columns()
    t0 = time.perf_counter()
    with threadpool_limits(1):  # the machine is shared: one BLAS thread
        frame = run(table, devices, args.sizes, args.seeds, log=lambda s: print(s, file=sys.stderr))
    seconds = time.perf_counter() - t0
    command = ".venv/bin/python -m nas.benchmarks.latency_nb201" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    text = report(frame, devices, args.seeds, command, seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), text)
    atomic_write_text(args.out.with_suffix(".csv"), frame.to_csv(index=False))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

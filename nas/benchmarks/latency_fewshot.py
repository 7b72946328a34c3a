"""Benchmark: few-shot latency tables (:mod:`nas.latency.fewshot`) on a family of real devices.

Part 1, this machine: the devices of :mod:`nas.benchmarks.fewshot_devices` (torch eager and ONNX
Runtime x 1 and 2 threads x batch 1 and 32, and torch eager on a CUDA GPU at batch 1 and 64 when
their folders were measured there), each with its full unit table and 150 whole networks
of the space measured end to end. For each device in turn, the OTHER devices' full tables are the
priors; n = 5, 10, 20, 50 shots are drawn (seeded) from the first 50 networks and every method is
scored on the last 100 (never shots): Spearman, Kendall and the share within +/-10%, beside

- (a) MACs alone (ranking as is; within +/-10% after a relative least-squares line on the shots),
- (b) our additive model fitted on the shots alone (:class:`AdditiveLatencyModel` on the counts
  of every unit key, MACs per unit as the prior cost shape, units of one kind sharing a base cost),
- (c) the best single prior, rescaled (``a * prior + b``; the prior chosen by leave-one-out on
  the shots: the few-shot candidates restricted to one rigid prior),
- (d) the device's own full unit table with its calibration (the ceiling: it needed the device
  profiled unit by unit),

two restricted few-shot variants (a mix of whole priors; per-kind transfer only), and the
few-shot model on the shots ``nas latency suggest`` picks from the same 50 (one deterministic set).

Part 2, NAS-Bench-201 (``../shared/benchmarks/nb201.csv.gz``, 27 latency columns: 5 GPUs x batch
1/32/256, 4 server CPUs, 6 phones and boards, eyeriss, fpga): leave-one-device-out, all other columns as priors (each prior decomposed into per-op costs by an
additive fit on all its cells, plus the rest), n = 5, 10, 20 shots, tested on every other cell;
beside HELP's published 0.932 Spearman at 10 samples (mean over its 6 test devices, meta-trained
on the 18 others, which is the "HELP protocol" row here).

Reproduce: ``python -m nas.benchmarks.latency_fewshot`` (measures what is missing first: see
:mod:`nas.benchmarks.fewshot_devices`; ``--no-measure`` evaluates what is there).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from nas.benchmarks import nb201
from nas.benchmarks.command import reproduce_command
from nas.benchmarks.fewshot_devices import DEFAULT_WORK, DEVICES, benchmark_archs, read_networks
from nas.costs import unit_macs
from nas.io import atomic_write_text
from nas.latency.additive import AdditiveLatencyModel
from nas.latency.fewshot import (
    Candidate,
    arch_unit_counts,
    candidates,
    farthest_points,
    fit_transfer,
    prior_unit_costs,
    refine_units,
    suggestion_features,
    transfer_features,
    unit_kind_index,
)
from nas.latency.space_units import predict_latency, space_units
from nas.latency.table import LatencyTable
from nas.latency.validate import agreement, repeat_agreement
from nas.spaces import load_space
from nas.spaces.schema import SearchSpace

SHOTS: tuple[int, ...] = (5, 10, 20, 50)
NB201_SHOTS: tuple[int, ...] = (5, 10, 20)
POOL = 50  # shots come from the first POOL networks, the test set is the rest
SEEDS = 5
HELP_SPEARMAN_10 = 0.932
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / "latency_fewshot"

DEFAULT = "few-shot (default: transfer + per-unit refinement)"
FEWSHOT = "few-shot stage 1 only: transfer (auto)"
SUGGESTED = "few-shot default, shots picked by suggest"
MIX = "few-shot: mix of whole priors"
PER_KIND = "few-shot: per-kind transfer only"
MACS = "(a) MACs alone"
ADDITIVE = "(b) additive model on the shots alone"
BEST_PRIOR = "(c) best single prior, rescaled"
FULL = "(d) full unit table of the device"
METHODS = (DEFAULT, SUGGESTED, FEWSHOT, MIX, PER_KIND, BEST_PRIOR, ADDITIVE, MACS, FULL)


# ----- restricted candidate sets ----------------------------------------------------------------
def rigid_single(n_priors: int) -> list[Candidate]:
    return [c for c in candidates(n_priors) if c.rigid and len(c.priors) == 1]


def mix_only(n_priors: int) -> list[Candidate]:
    return [c for c in candidates(n_priors) if c.rigid and len(c.priors) == n_priors]


def per_kind_only(n_priors: int) -> list[Candidate]:
    return [c for c in candidates(n_priors) if not c.rigid]


VARIANTS: dict[str, Callable[[int], list[Candidate] | None]] = {
    FEWSHOT: lambda p: None,
    MIX: mix_only,
    PER_KIND: per_kind_only,
    BEST_PRIOR: rigid_single,
}


def line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Non-negative ``y ~= a x + b`` minimising squared relative error."""
    design = np.column_stack([x, np.ones_like(x)]) / y[:, None]
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    sol = nnls(design / scale, np.ones_like(y))[0] / scale
    return float(sol[0]), float(sol[1])


# ----- part 1: the device family ------------------------------------------------------------------
@dataclass
class Device:
    name: str
    table: LatencyTable
    latency_ms: np.ndarray  # (N,) in benchmark_archs order
    repeatability: dict[str, float] | None = None  # second pass over the last networks


def load_devices(space: SearchSpace, work: Path, n_networks: int) -> list[Device]:
    """Devices whose table and every benchmark network are measured (others are skipped)."""
    archs = [a.to_str() for a in benchmark_archs(space, n_networks)]
    out = []
    for name in DEVICES:
        folder = work / space.name / name
        measured = read_networks(folder / "networks.csv")
        if not (folder / "table.json").is_file() or any(a not in measured for a in archs):
            continue
        table = LatencyTable.load(folder / "table.csv", expected_space_hash=space.hash())
        if table.calibration is None:
            continue
        again = read_networks(folder / "repeat.csv")
        repeat = None
        if len(again) >= 2:
            repeat = repeat_agreement([measured[a] for a in again], list(again.values()))
        out.append(Device(name, table, np.array([measured[a] for a in archs]), repeat))
    return out


def run_family(
    space: SearchSpace,
    devices: Sequence[Device],
    n_networks: int,
    shots: Sequence[int],
    seeds: int,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """One row per (device, method, n, seed) with the test metrics."""
    archs = benchmark_archs(space, n_networks)
    test = np.arange(POOL, n_networks)
    counts = arch_unit_counts(space, archs)
    kinds = unit_kind_index(space)
    all_costs = prior_unit_costs([d.table for d in devices], space)  # (D, U)
    all_features = transfer_features(all_costs, kinds, counts)  # (N, D, K)
    macs_per_unit = np.array([unit_macs(u) for u in space_units(space).values()], dtype=float)
    macs = counts @ macs_per_unit
    used = counts.sum(axis=0) > 0  # unit keys of the benchmark networks (the rest: no data)
    additive_prior = macs_per_unit[used] / 1e6
    rows = []

    def record(device: str, method: str, n: int, seed: int, pred: np.ndarray, y: np.ndarray,
               chosen: str = "", rank_by: np.ndarray | None = None) -> None:
        """One row; ``rank_by``: the score the rank metrics use (default ``pred`` itself)."""
        m = agreement(pred, y)
        r = m if rank_by is None else agreement(rank_by, y)
        rows.append(dict(device=device, method=method, n=n, seed=seed, chosen=chosen,
                         spearman=r["spearman_rho"], kendall=r["kendall_tau"],
                         within10=m["within10_pct"], median_ape=m["median_ape_pct"]))

    for d, dev in enumerate(devices):
        t0 = time.perf_counter()
        y = dev.latency_ms
        others = [i for i in range(len(devices)) if i != d]
        features = all_features[:, others, :]
        costs = all_costs[others]
        names = [devices[i].name for i in others]
        record(dev.name, FULL, 0, -1, predict_latency(dev.table, space, [archs[i] for i in test]),
               y[test])
        spread = farthest_points(suggestion_features(features[:POOL]), POOL)
        for n in shots:
            if n < POOL:  # the shots 'nas latency suggest' would pick from the measured pool
                shot = np.array(spread[:n])
                fit = fit_transfer(features[shot], y[shot])
                refined = refine_units(counts[shot], y[shot], fit.unit_costs(costs, kinds), kinds)
                record(dev.name, SUGGESTED, n, 0,
                       counts[test] @ refined.unit_ms + refined.intercept_ms, y[test],
                       fit.candidate.label(names))
            for seed in range(seeds if n < POOL else 1):
                shot = np.random.default_rng([seed, n]).choice(POOL, size=n, replace=False)
                errors = None
                for method, restrict in VARIANTS.items():
                    fit = fit_transfer(features[shot], y[shot], only=restrict(len(others)),
                                       cv_errors=errors)
                    errors = errors or fit.cv_rms_relative
                    record(dev.name, method, n, seed, fit.predict(features[test]), y[test],
                           fit.candidate.label(names))
                    if method == FEWSHOT:  # stage 2 on top of the chosen transfer
                        refined = refine_units(counts[shot], y[shot],
                                               fit.unit_costs(costs, kinds), kinds)
                        record(dev.name, DEFAULT, n, seed,
                               counts[test] @ refined.unit_ms + refined.intercept_ms, y[test],
                               fit.candidate.label(names))
                a, b = line_fit(macs[shot], y[shot])
                # ranked by MACs as they are (a line of slope 0 on the shots ranks nothing)
                record(dev.name, MACS, n, seed, a * macs[test] + b, y[test], rank_by=macs[test])
                model = AdditiveLatencyModel(prior=additive_prior, groups=kinds[used])
                model.fit(counts[shot][:, used], y[shot])
                record(dev.name, ADDITIVE, n, seed, model.predict(counts[test][:, used]),
                       y[test])
        log(f"[{d + 1}/{len(devices)}] {dev.name}: {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows)


# ----- part 2: NAS-Bench-201 ------------------------------------------------------------------------
NB201_KINDS = (*nb201.OPS, "rest")


def nb201_features(table: nb201.NB201Table, devices: Sequence[str]) -> np.ndarray:
    """``(cells, P, 6)``: per prior device, the per-op costs of an additive fit on all its cells
    summed per op kind, and the rest (its measured latency minus those)."""
    genes = table.genes
    one_hot = nb201.one_hot(genes)
    op_of_col = np.tile(np.arange(len(nb201.OPS)), nb201.N_EDGES)
    out = np.zeros((genes.shape[0], len(devices), len(NB201_KINDS)))
    for p, name in enumerate(devices):
        y = table.column(name)
        coef = AdditiveLatencyModel(alpha=1e-6, nonnegative=True).fit(one_hot, y).coef_
        for k in range(len(nb201.OPS)):
            out[:, p, k] = one_hot[:, op_of_col == k] @ coef[op_of_col == k]
        out[:, p, -1] = y - out[:, p, :-1].sum(axis=1)
    return out


def run_nb201(
    table: nb201.NB201Table,
    shots: Sequence[int],
    seeds: int,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Leave-one-device-out over every latency column (priors: all others), and HELP's split
    (its 6 test devices, priors: the 18 others only)."""
    from nas.benchmarks.latency_nb201 import HELP_TEST_DEVICES, cell_flops

    devices = table.latency_columns()
    features = nb201_features(table, devices)
    flops = cell_flops(table.genes)
    n_cells = table.genes.shape[0]
    help_train = [i for i, d in enumerate(devices) if d not in HELP_TEST_DEVICES]
    rows = []
    for d, device in enumerate(devices):
        t0 = time.perf_counter()
        y = table.column(device)
        splits = {"leave-one-device-out": [i for i in range(len(devices)) if i != d]}
        if device in HELP_TEST_DEVICES:
            splits["HELP protocol (18 training devices)"] = help_train
        for n in shots:
            for seed in range(seeds):
                shot = np.random.default_rng([seed, n]).choice(n_cells, size=n, replace=False)
                test = np.setdiff1d(np.arange(n_cells), shot)
                for split, priors in splits.items():
                    f = features[:, priors, :]
                    errors = None
                    for method, restrict in VARIANTS.items():
                        fit = fit_transfer(f[shot], y[shot], only=restrict(len(priors)),
                                           cv_errors=errors)
                        errors = errors or fit.cv_rms_relative
                        m = agreement(fit.predict(f[test]), y[test])
                        rows.append(dict(device=device, split=split, method=method, n=n, seed=seed,
                                         spearman=m["spearman_rho"], kendall=m["kendall_tau"],
                                         within10=m["within10_pct"]))
                a, b = line_fit(flops[shot], y[shot])
                m = agreement(a * flops[test] + b, y[test])
                for split in splits:
                    rows.append(dict(device=device, split=split, method="FLOPs alone", n=n,
                                     seed=seed, spearman=m["spearman_rho"],
                                     kendall=m["kendall_tau"], within10=m["within10_pct"]))
        log(f"NB201 [{d + 1}/{len(devices)}] {device}: {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows)


# ----- report -----------------------------------------------------------------------------------------
def _per_device(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed mean and std per (device, method, n)."""
    return (frame.groupby(["device", "method", "n"])[["spearman", "kendall", "within10"]]
            .agg(["mean", "std"]).reset_index())


def _fmt(mean: float, std: float | None = None) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None and not np.isnan(std) else "")


def _metric_cells(per: pd.DataFrame) -> str:
    """``Spearman | Kendall | within`` cells: means over devices of the seed means (± the mean
    seed std)."""
    return (f"{_fmt(per[('spearman', 'mean')].mean(), per[('spearman', 'std')].mean())} | "
            f"{_fmt(per[('kendall', 'mean')].mean(), per[('kendall', 'std')].mean())} | "
            f"{per[('within10', 'mean')].mean():.1f}%")


def family_tables(frame: pd.DataFrame, devices: Sequence[Device]) -> list[str]:
    per = _per_device(frame)
    lines = ["### Mean over held-out devices (seed-mean per device; ± = mean seed std)", ""]
    lines.append("| method | n | Spearman | Kendall | within ±10% | worst device Spearman |")
    lines.append("|---|---|---|---|---|---|")
    for method in METHODS:
        for n in sorted(per[per["method"] == method]["n"].unique()):
            sub = per[(per["method"] == method) & (per["n"] == n)]
            lines.append(
                f"| {method} | {n if n else '-'} | {_metric_cells(sub)} | "
                f"{sub[('spearman', 'mean')].min():.3f} "
                f"({sub['device'].iloc[int(np.argmin(sub[('spearman', 'mean')].to_numpy()))]}) |"
            )
    lines += ["", "### Per held-out device, n = 10 and n = 20 (seed mean)", ""]
    header = "| device | full table ρ | full ±10% | " + " | ".join(
        f"{m.split(' ')[0] if m.startswith('(') else m} ρ@10" for m in (DEFAULT, BEST_PRIOR, MACS)
    ) + " | few-shot ±10% @20 | device repeats itself: ρ, ±10% | few-shot choice @10 (seed 0) |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for device in devices:
        dev = device.name
        rep = device.repeatability
        repeat = (f"{rep['spearman_rho']:.3f}, {rep['within10_pct']:.0f}% (n={rep['n']:.0f})"
                  if rep else "not measured")
        def val(method: str, n: int, metric: str, dev: str = dev) -> float:
            s = per[(per["device"] == dev) & (per["method"] == method) & (per["n"] == n)]
            return float(s[(metric, "mean")].iloc[0]) if len(s) else float("nan")

        chosen = frame[(frame["device"] == dev) & (frame["method"] == DEFAULT) & (frame["n"] == 10)
                       & (frame["seed"] == 0)]["chosen"]
        lines.append(
            f"| {dev} | {val(FULL, 0, 'spearman'):.3f} | {val(FULL, 0, 'within10'):.0f}% | "
            f"{val(DEFAULT, 10, 'spearman'):.3f} | {val(BEST_PRIOR, 10, 'spearman'):.3f} | "
            f"{val(MACS, 10, 'spearman'):.3f} | {val(DEFAULT, 20, 'within10'):.0f}% | {repeat} | "
            f"{chosen.iloc[0] if len(chosen) else '-'} |"
        )
    return lines


REPEATABLE_RHO = 0.9  # a device whose own second pass ranks worse cannot be predicted at 0.9


def target_lines(frame: pd.DataFrame, devices: Sequence[str],
                 repeat_rho: dict[str, float] | None = None) -> list[str]:
    """The issue's three targets over ``devices``; with ``repeat_rho`` (device -> Spearman of its
    own second pass), the same three again over the devices that repeat themselves at
    >= REPEATABLE_RHO (the others' measurements rank networks worse than the target asks)."""
    lines = _targets(frame, devices)
    if repeat_rho:
        steady = [d for d in devices if repeat_rho.get(d, 0.0) >= REPEATABLE_RHO]
        noisy = [f"{d} {repeat_rho[d]:.2f}" for d in devices
                 if d in repeat_rho and repeat_rho[d] < REPEATABLE_RHO]
        if noisy and steady:
            lines += ["", f"On the {len(steady)} devices that repeat themselves at Spearman >= "
                      f"{REPEATABLE_RHO} (left out: {', '.join(noisy)}):", "",
                      *_targets(frame, steady)]
    return lines


def _targets(frame: pd.DataFrame, devices: Sequence[str]) -> list[str]:
    per = _per_device(frame)

    def val(dev: str, method: str, n: int, metric: str) -> float:
        s = per[(per["device"] == dev) & (per["method"] == method) & (per["n"] == n)]
        return float(s[(metric, "mean")].iloc[0])

    rho10 = {d: val(d, DEFAULT, 10, "spearman") for d in devices}
    gap10 = {d: val(d, FULL, 0, "spearman") - rho10[d] for d in devices}
    w20 = {d: val(d, DEFAULT, 20, "within10") for d in devices}
    worst = min(rho10, key=rho10.get)
    widest = max(gap10, key=gap10.get)
    lowest = min(w20, key=w20.get)
    ok = lambda flag: "**met**" if flag else "**not met**"  # noqa: E731
    return [
        f"- n = 10, Spearman >= 0.9 on every held-out device: {ok(rho10[worst] >= 0.9)} "
        f"(lowest {rho10[worst]:.3f}, {worst}).",
        f"- n = 10, within 0.05 of the full table's Spearman on every device: "
        f"{ok(gap10[widest] <= 0.05)} (largest gap {gap10[widest]:+.3f}, {widest}).",
        f"- n = 20, >= 80% of test networks within ±10%: {ok(w20[lowest] >= 80)} "
        f"(lowest {w20[lowest]:.0f}%, {lowest}; mean {np.mean(list(w20.values())):.0f}%).",
    ]


def nb201_lines(frame: pd.DataFrame) -> list[str]:
    from nas.benchmarks.latency_nb201 import HELP_TEST_DEVICES

    lines = ["| split | devices | method | n | Spearman | Kendall | within ±10% |",
             "|---|---|---|---|---|---|---|"]
    for split, devs in (("HELP protocol (18 training devices)", "HELP's 6 test devices"),
                        ("leave-one-device-out", "HELP's 6 test devices"),
                        ("leave-one-device-out", f"all {frame['device'].nunique()}")):
        sub = frame[frame["split"] == split]
        if devs.startswith("HELP"):
            sub = sub[sub["device"].isin(HELP_TEST_DEVICES)]
        per = _per_device(sub)
        for method in (FEWSHOT, MIX, PER_KIND, BEST_PRIOR, "FLOPs alone"):
            for n in sorted(per[per["method"] == method]["n"].unique()):
                s = per[(per["method"] == method) & (per["n"] == n)]
                lines.append(f"| {split} | {devs} | {method} | {n} | {_metric_cells(s)} |")
    lines.append(f"| published | HELP's 6 test devices | HELP (meta-learned) | 10 | "
                 f"{HELP_SPEARMAN_10} | - | - |")
    return lines


def findings(family: pd.DataFrame | None, nb: pd.DataFrame | None) -> list[str]:
    """Comparisons the tables support, computed from them."""
    out = ["## Findings", ""]
    if family is not None:
        mean = family.groupby(["method", "n"])["spearman"].mean()

        def at(method: str, n: int) -> float:
            return float(mean.get((method, n), float("nan")))

        out.append(
            f"- This machine's family, mean Spearman at n = 10: few-shot {at(DEFAULT, 10):.3f} "
            f"(stage 1 alone {at(FEWSHOT, 10):.3f}), "
            f"additive on the shots alone {at(ADDITIVE, 10):.3f}, best prior rescaled "
            f"{at(BEST_PRIOR, 10):.3f}, MACs {at(MACS, 10):.3f}; full table "
            f"{at(FULL, 0):.3f}. At n = 50: few-shot {at(DEFAULT, 50):.3f} (stage 1 "
            f"{at(FEWSHOT, 50):.3f}), additive "
            f"{at(ADDITIVE, 50):.3f}."
        )
        out.append(
            f"- Suggested shots vs random shots (few-shot, mean Spearman): n = 5 "
            f"{at(SUGGESTED, 5):.3f} vs {at(DEFAULT, 5):.3f}, n = 10 {at(SUGGESTED, 10):.3f} vs "
            f"{at(DEFAULT, 10):.3f}, n = 20 {at(SUGGESTED, 20):.3f} vs {at(DEFAULT, 20):.3f}."
        )
    if nb is not None:
        from nas.benchmarks.latency_nb201 import HELP_TEST_DEVICES

        sub = nb[(nb["split"] == "HELP protocol (18 training devices)")
                 & nb["device"].isin(HELP_TEST_DEVICES)]
        rho = sub.groupby(["method", "n"])["spearman"].mean()
        out.append(
            f"- NAS-Bench-201, HELP's 6 test devices with its 18 training devices as priors, "
            f"n = 10: few-shot stage 1 {rho.get((FEWSHOT, 10), float('nan')):.3f} mean Spearman "
            "vs HELP's "
            f"published {HELP_SPEARMAN_10}; FLOPs {rho.get(('FLOPs alone', 10), float('nan')):.3f}."
        )
    return out


def write_report(
    out: Path,
    command: str,
    space: SearchSpace,
    devices: Sequence[Device],
    family: pd.DataFrame | None,
    nb: pd.DataFrame | None,
    missing: Sequence[str],
    notes: Sequence[str],
) -> Path:
    lines = [
        "# Few-shot latency tables",
        "",
        f"Command: `{command}`",
        "",
        (__doc__ or "").split("\n\n")[0],
        "",
        "## Part 1: a family of devices (this machine's CPU settings, and a GPU's where one was lent)",
        "",
    ]
    lines += list(notes)
    if family is not None and len(devices) >= 2:
        names = [d.name for d in devices]
        lines += [
            "",
            f"Space {space.name}; devices ({len(devices)}): {', '.join(names)}"
            + (f"; not measured: {', '.join(missing)}" if missing else "") + ".",
            f"Shots drawn from the first {POOL} networks ({int(family['seed'].max()) + 1} seeds for "
            f"n < {POOL}), test on "
            f"the other 100; the priors of a device are the other {len(devices) - 1} devices' "
            "full tables.",
            "",
            "### Targets",
            "",
            *target_lines(family, names, {d.name: d.repeatability["spearman_rho"]
                                          for d in devices if d.repeatability}),
            "",
            *family_tables(family, devices),
        ]
    else:
        lines += ["", "Fewer than 2 devices measured: nothing to evaluate."]
    lines += ["", *findings(family, nb)]
    if nb is not None:
        lines += ["", f"## Part 2: NAS-Bench-201, {nb['device'].nunique()} device settings "
                  "(latency columns)", "", *nb201_lines(nb)]
    text = "\n".join(lines) + "\n"
    return atomic_write_text(out.with_suffix(".md"), text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--n-networks", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--nb201-seeds", type=int, default=3)
    parser.add_argument("--no-family", action="store_true", help="NAS-Bench-201 part only")
    parser.add_argument("--no-measure", action="store_true",
                        help="evaluate the devices already measured in --work")
    parser.add_argument("--no-nb201", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report (e.g. the load while measuring); repeatable")
    args = parser.parse_args(argv)
    command = reproduce_command("nas.benchmarks.latency_fewshot", argv)
    space = load_space(args.space)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_measure:
        from nas.benchmarks.fewshot_devices import main as measure

        measure(["--space", space.name, "--work", str(args.work),
                 "--n-networks", str(args.n_networks)])
    load = os.getloadavg()
    devices = load_devices(space, args.work, args.n_networks)
    missing = [n for n in DEVICES if n not in {d.name for d in devices}]
    notes = [f"Load average (1/5/15 min) when evaluating: {load[0]:.1f} / {load[1]:.1f} / "
             f"{load[2]:.1f} on {os.cpu_count()} cores.", *args.note]
    family_csv = args.out.with_suffix(".csv")
    nb_csv = args.out.with_name(args.out.name + "_nb201.csv")
    family = nb = None
    if len(devices) >= 2 and not args.no_family:
        family = run_family(space, devices, args.n_networks, SHOTS, args.seeds)
        family.to_csv(family_csv, index=False)
    elif family_csv.is_file():  # a part skipped now is read from its last run's rows
        family = pd.read_csv(family_csv, keep_default_na=False, na_values=[""])
        notes.append(f"Part 1 rows read from {family_csv.name} (an earlier run of this module).")
    if not args.no_nb201:
        nb = run_nb201(nb201.load(), NB201_SHOTS, args.nb201_seeds)
        nb.to_csv(nb_csv, index=False)
    elif nb_csv.is_file():
        nb = pd.read_csv(nb_csv)
        notes.append(f"Part 2 rows read from {nb_csv.name} (an earlier run of this module).")
    path = write_report(args.out, command, space, devices, family, nb, missing, notes)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

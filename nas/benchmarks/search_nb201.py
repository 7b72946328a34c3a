"""Searchers on NAS-Bench-201, side by side in one run: ``python -m nas.benchmarks.search_nb201``.

1. Single objective: maximise CIFAR-10 validation accuracy (``c10valid_valid_accuracy``); the cell
   with the best validation accuracy among the first 50/100/200 queries is reported by its CIFAR-10
   test accuracy (``cifar10_test_acc``); mean over seeds; seconds per 1,000 queries.
2. Constrained, two objectives: maximise validation accuracy, minimise ``lat_ms_<device>``, subject
   to ``lat_ms_<device> <= median over the table``. Hypervolume of the feasible front with accuracy
   as a fraction (accuracy / 100, in [0, 1]) and latency divided by the bound; reference point
   (accuracy 0, latency = the bound), so the best possible value is below 1. Also the test accuracy
   of the front's best-validation member, after 200 and 1,000 evaluations.

Queries are unique genomes: a searcher never spends one on a genome it already evaluated (Optuna's
repeated suggestions are answered from the history for free). Searchers run one after another on one
core (BLAS limited to one thread), interleaved seed by seed so that load on the machine hits all alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from threadpoolctl import threadpool_limits

from nas.benchmarks import nb201
from nas.benchmarks.nb201_problem import make_problem
from nas.io import atomic_write_text
from nas.search import GuidedParetoSearch, Searcher, check_feasibility, hypervolume_2d
from nas.search.problem import Problem
from nas.search.registry import make_searcher

SINGLE_BUDGETS = (50, 100, 200)
MULTI_BUDGETS = (200, 1000)
DEVICES = ("lat_ms_pixel3", "lat_ms_raspi4", "lat_ms_titan_rtx_1")
SINGLE_TARGETS = {50: 94.15, 100: 94.33, 200: 94.36}
MULTI_TARGETS = {200: 0.805, 1000: 0.812}  # pixel3
MULTI_TIME_TARGET = 0.1  # s per 1,000 evaluations
SINGLE_SPEEDUP_TARGET = 10.0  # x less time per query than Optuna TPE

Factory = Callable[[Problem, int], Searcher]

# Built through the registry with the settings the committed numbers were measured with.
SINGLE_ALGOS: dict[str, Factory] = {
    "random": lambda p, s: make_searcher("random", p, seed=s, batch_size=32),
    "regularized evolution (P=20, S=5)": lambda p, s: make_searcher(
        "regularized_evolution", p, seed=s, population=20, sample_size=5, batch_size=1),
    "Optuna TPE (multivariate)": lambda p, s: make_searcher("optuna-tpe", p, seed=s),
    "Optuna NSGA-II (P=20)": lambda p, s: make_searcher("optuna-nsga2", p, seed=s, population=20),
    "ours: guided": lambda p, s: make_searcher("guided", p, seed=s),
}
MULTI_ALGOS: dict[str, Factory] = {
    "random": lambda p, s: make_searcher("random", p, seed=s, batch_size=32),
    "Optuna NSGA-II (P=20, set_constraint)": lambda p, s: make_searcher(
        "optuna-nsga2", p, seed=s, population=20),
    "ours: numpy NSGA-II (P=20)": lambda p, s: make_searcher("nsga2", p, seed=s, population=20),
    "ours: guided Pareto": lambda p, s: make_searcher("guided", p, seed=s),
}


def normalised_hv(accuracy: np.ndarray, latency: np.ndarray, bound: float) -> float:
    """HV of the feasible points: accuracy / 100 (maximised), latency / bound; reference (0, 1)."""
    ok = latency <= bound
    points = np.column_stack([-accuracy[ok] / 100.0, latency[ok] / bound])
    return hypervolume_2d(points, np.array([0.0, 1.0]))


def best_test(result_metrics: dict[str, np.ndarray], n: int, feasible: np.ndarray | None = None) -> float:
    """Test accuracy of the best-validation (feasible) genome among the first ``n``."""
    valid = result_metrics[nb201.VALID_COLUMN][:n].copy()
    if feasible is not None:
        valid[~feasible[:n]] = -np.inf
    return float(result_metrics[nb201.TEST_COLUMN][int(np.argmax(valid))])


def timed_run(factory: Factory, problem: Problem, seed: int, budget: int) -> tuple[object, float]:
    start = time.perf_counter()
    result = factory(problem, seed).run(budget)
    return result, time.perf_counter() - start


def run_single(table: nb201.NB201Table, seeds: int, log: Callable[[str], None]) -> pd.DataFrame:
    problem = make_problem(table, [f"max:{nb201.VALID_COLUMN}"])
    rows = []
    budget = max(SINGLE_BUDGETS)
    for seed in range(seeds):
        for name, factory in SINGLE_ALGOS.items():
            result, seconds = timed_run(factory, problem, seed, budget)
            row = {"part": "single", "algorithm": name, "seed": seed, "seconds": seconds,
                   "queries": len(result)}
            for b in SINGLE_BUDGETS:
                row[f"test@{b}"] = best_test(result.metrics, b)
            rows.append(row)
        log(f"single objective: seed {seed + 1}/{seeds} done")
    return pd.DataFrame(rows)


def run_multi(table: nb201.NB201Table, device: str, seeds: int,
              log: Callable[[str], None]) -> tuple[pd.DataFrame, dict[str, float]]:
    latency = table.column(device)
    bound = float(np.median(latency))
    problem = make_problem(
        table, [f"max:{nb201.VALID_COLUMN}", f"min:{device}"], [f"{device}<={bound!r}"]
    )
    valid = table.column(nb201.VALID_COLUMN)
    feasible = latency <= bound
    best = np.flatnonzero(feasible)[np.argmax(valid[feasible])]
    reference = {
        "bound": bound,
        "table_hv": normalised_hv(valid, latency, bound),
        "table_best_test": float(table.column(nb201.TEST_COLUMN)[best]),
        "min_latency": float(check_feasibility(problem).checks[0].best_achievable),
    }
    rows = []
    budget = max(MULTI_BUDGETS)
    for seed in range(seeds):
        for name, factory in MULTI_ALGOS.items():
            result, seconds = timed_run(factory, problem, seed, budget)
            lat = result.metrics[device]
            acc = result.metrics[nb201.VALID_COLUMN]
            row = {"part": device, "algorithm": name, "seed": seed, "seconds": seconds,
                   "queries": len(result)}
            for b in MULTI_BUDGETS:
                row[f"hv@{b}"] = normalised_hv(acc[:b], lat[:b], bound)
                row[f"test@{b}"] = best_test(result.metrics, b, feasible=result.feasible)
            rows.append(row)
        log(f"{device}: seed {seed + 1}/{seeds} done")
    return pd.DataFrame(rows), reference


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def single_table(df: pd.DataFrame, optimum: float) -> tuple[list[str], dict[str, float]]:
    lines = [
        "| algorithm | test acc @50 | @100 | @200 | optimum found @200 | s per 1,000 queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    per_k: dict[str, float] = {}
    for name, g in df.groupby("algorithm", sort=False):
        per_k[name] = g["seconds"].mean() / g["queries"].mean() * 1000.0
        hits = int((g["test@200"] >= optimum - 1e-9).sum())
        cells = " | ".join(f"{_fmt(g[f'test@{b}'].mean())} ± {_fmt(g[f'test@{b}'].std(ddof=1) / np.sqrt(len(g)))}"
                           for b in SINGLE_BUDGETS)
        lines.append(f"| {name} | {cells} | {hits}/{len(g)} | {per_k[name]:.3f} |")
    return lines, per_k


def multi_table(df: pd.DataFrame) -> tuple[list[str], dict[str, dict[str, float]]]:
    lines = [
        "| algorithm | HV @200 | HV @1000 | best feasible test acc @200 | @1000 | s per 1,000 evaluations |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    summary: dict[str, dict[str, float]] = {}
    for name, g in df.groupby("algorithm", sort=False):
        s = {f"hv@{b}": g[f"hv@{b}"].mean() for b in MULTI_BUDGETS}
        s["seconds_per_k"] = g["seconds"].mean() / g["queries"].mean() * 1000.0
        summary[name] = s
        lines.append(
            f"| {name} | {s['hv@200']:.4f} ± {g['hv@200'].std(ddof=1) / np.sqrt(len(g)):.4f} "
            f"| {s['hv@1000']:.4f} ± {g['hv@1000'].std(ddof=1) / np.sqrt(len(g)):.4f} "
            f"| {_fmt(g['test@200'].mean())} | {_fmt(g['test@1000'].mean())} | {s['seconds_per_k']:.3f} |"
        )
    return lines, summary


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks/search.md", help="report path (.md); a .csv goes next to it")
    parser.add_argument("--table", default=None, help="path of nb201.csv.gz (default: ../shared/benchmarks)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds for the single-objective part")
    parser.add_argument("--multi-seeds", type=int, default=10, help="seeds per device, two objectives")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 2 per device, pixel3 only (a smoke run)")
    args = parser.parse_args(argv)
    seeds, multi_seeds, devices = args.seeds, args.multi_seeds, DEVICES
    if args.quick:
        seeds, multi_seeds, devices = 3, 2, DEVICES[:1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.time()
    load_before = os.getloadavg()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    table = nb201.load(args.table)
    valid, test = table.column(nb201.VALID_COLUMN), table.column(nb201.TEST_COLUMN)
    optimum = float(test[np.argmax(valid)])
    with threadpool_limits(limits=1):
        single = run_single(table, seeds, log)
        multi = {}
        for device in devices:
            multi[device] = run_multi(table, device, multi_seeds, log)
    elapsed = time.time() - started

    out = [
        "# Search on NAS-Bench-201",
        "",
        f"Reproduce: `.venv/bin/python -m nas.benchmarks.search_nb201 --out {args.out}"
        + (" --quick" if args.quick else "") + "`"
        + ("" if (seeds, multi_seeds) == (20, 10) or args.quick else f" (with --seeds {seeds} --multi-seeds {multi_seeds})"),
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs shared with "
        f"other jobs (load average {load_before[0]:.1f} at start, {os.getloadavg()[0]:.1f} at the end); "
        f"one thread; Python {platform.python_version()}, numpy {np.__version__}, optuna {optuna.__version__}. "
        f"Whole run: {elapsed / 60:.1f} min. Data: {len(table.frame)} cells of `nb201.csv.gz`. "
        "Times are wall-clock seconds of `searcher.run(budget)` (evaluation is a table lookup, so "
        "they measure the searcher itself); on a loaded machine they vary by about 2x between runs, "
        "the ratios between searchers much less.",
        "",
        "## 1. Single objective",
        "",
        f"Select on `{nb201.VALID_COLUMN}`, report `{nb201.TEST_COLUMN}` of the selected cell, mean ± "
        f"standard error over {seeds} seeds (0..{seeds - 1}). The best-validation cell of the whole "
        f"table has test accuracy {optimum:.2f}; 'optimum found' counts the seeds whose selected cell "
        "has it.",
        "",
    ]
    lines, per_k = single_table(single, optimum)
    out += lines
    ours = single[single.algorithm == "ours: guided"]
    tpe_name = "Optuna TPE (multivariate)"
    speedup = per_k[tpe_name] / per_k["ours: guided"]
    out += ["", "Targets for ours (mean of the seeds):", ""]
    for b, target in SINGLE_TARGETS.items():
        value = ours[f"test@{b}"].mean()
        out.append(f"- @{b}: {value:.3f} vs target >= {target} — {_verdict(value >= target - 5e-4)}")
    out.append(f"- time per query: {speedup:.1f}x less than Optuna TPE vs target >= {SINGLE_SPEEDUP_TARGET}x "
               f"— {_verdict(speedup >= SINGLE_SPEEDUP_TARGET)}")
    out += [
        "",
        "## 2. Constrained, two objectives",
        "",
        "Maximise validation accuracy, minimise latency, subject to latency <= its median over the "
        "table. Hypervolume of the feasible front: accuracy / 100 and latency / bound, reference "
        "point (accuracy 0, latency = bound). 'Best feasible test acc' is the test accuracy of the "
        f"feasible cell with the best validation accuracy. Mean ± standard error over {multi_seeds} "
        "seeds; the numbers at 200 are the first 200 evaluations of the 1,000-evaluation run.",
        "",
    ]
    summaries = {}
    for device, (df, ref) in multi.items():
        out += [
            f"### {device} <= {ref['bound']:.4g} ms",
            "",
            f"Whole-table optimum: HV {ref['table_hv']:.4f}, best feasible test accuracy "
            f"{ref['table_best_test']:.2f}. Feasibility check before searching: smallest achievable "
            f"latency {ref['min_latency']:.4g} ms (feasible).",
            "",
        ]
        lines, summaries[device] = multi_table(df)
        out += [*lines, ""]
    if "lat_ms_pixel3" in summaries:
        s = summaries["lat_ms_pixel3"]["ours: guided Pareto"]
        out += ["Targets for ours on pixel3:", ""]
        for b, target in MULTI_TARGETS.items():
            out.append(f"- HV @{b}: {s[f'hv@{b}']:.4f} vs target >= {target} — {_verdict(s[f'hv@{b}'] >= target)}")
        out.append(f"- time: {s['seconds_per_k']:.3f} s per 1,000 evaluations vs target <= "
                   f"{MULTI_TIME_TARGET} — {_verdict(s['seconds_per_k'] <= MULTI_TIME_TARGET)}")
        out.append("")
    g = SINGLE_ALGOS["ours: guided"](make_problem(table, [f"max:{nb201.VALID_COLUMN}"]), 0)
    gp = GuidedParetoSearch(make_problem(table, [f"max:{nb201.VALID_COLUMN}", f"min:{DEVICES[0]}"]))
    out += [
        "## Notes",
        "",
        f"- 'ours: guided' (`nas.search.GuidedSearch`, defaults): Bayesian linear regression on cell "
        "features (one-hot operations, one-hot operation sequence per input-output path, structural "
        f"counts; `nas.benchmarks.nb201_problem.cell_features`), refitted every {g.batch_size} queries "
        f"after {g.n_init} random ones; each batch takes the {g.n_global} genomes best-predicted among "
        f"{g.global_pool} random ones (the whole batch for the first {g.n_explore} model-guided "
        f"queries) and the best-predicted neighbours (one gene changed) of the {g.n_centres} best "
        f"genomes of the current region; a region without improvement for {g.patience} queries has "
        "its best genome's untried neighbours evaluated, and if none is better it is a local optimum: "
        f"the search restarts from model-predicted genomes at least {g.tabu_radius} genes away.",
        f"- 'ours: guided Pareto' (`nas.search.GuidedParetoSearch`, defaults): the same surrogate for "
        f"both objectives and the constraint; each batch ({gp.batch_size}, or "
        f"{gp.batch_fraction:.0%} of the evaluations so far when more) is chosen greedily by predicted "
        "hypervolume improvement over the feasible front, among the front's neighbours and "
        f"{gp.global_pool} random genomes, then by predicted distance behind the front.",
        "- Optuna runs through `nas.search.OptunaSearch` (`study.ask`/`study.tell`, constraints with "
        "`trial.set_constraint`). A suggestion of an already-evaluated cell is told its stored values "
        "and does not count as a query, for every searcher alike.",
        f"- Per-seed numbers: `{Path(args.out).with_suffix('.csv').name}`.",
        "",
    ]
    report = "\n".join(out)
    atomic_write_text(args.out, report)
    frames = [single] + [df for df, _ in multi.values()]
    atomic_write_text(Path(args.out).with_suffix(".csv"), pd.concat(frames, ignore_index=True).to_csv(index=False))
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

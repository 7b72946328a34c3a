"""Benchmark: predictor-driven constrained search on hybrid-cifar (``nas search``'s engine).

Reproduce::

    .venv/bin/python -m nas.benchmarks.search_hybrid

Inputs (made by the package's own commands; the report names the exact ones):

- measured subnets: ``results/bench-samples.csv`` (``nas sample`` on a hybrid-cifar supernet
  trained on digits), on which a ridge on one-hot features is fitted here (``nas fit``'s
  :func:`~nas.sample.fit.fit_predictor`, seed 0): the additive predictor every algorithm uses;
- a CPU latency table: ``results/search-bench/lut-cpu.csv`` (``nas profile``, 1 thread).

Measured, all on the same predictor, table and constraints (L = median predicted latency and F =
median FLOPs of 1,000 random subnets):

1. speed: 20,000 evaluations of NSGA-II (max accuracy, min latency_ms; latency_ms <= L),
   regularised evolution (max accuracy; latency_ms <= L) and random search, wall and CPU seconds of
   the search loop (target: <= 10 s), seconds per 1,000 evaluations, the share spent evaluating;
   NSGA-II once with the searchers' History as shipped (see nas/search/space_search.py); and one
   ``nas search`` CLI run of 20,000 evaluations with every output written;
2. one objective: best predicted accuracy under latency_ms <= L after 200 / 1,000 / 5,000 / 20,000
   evaluations (regularised evolution, random; Optuna TPE at 200 / 1,000), against the certified
   MILP optimum;
3. two objectives (max accuracy, min FLOPs; latency_ms <= L, flops <= F): hypervolume of the
   feasible front (reference accuracy 0, FLOPs F; FLOPs divided by F, accuracy as a fraction)
   for NSGA-II, random and Optuna NSGA-II, against the MILP's swept fronts (20 and 50 bounds).

Budgets below 20,000 are prefixes of the 20,000-evaluation runs (a searcher's proposals do not
depend on its budget: a run of budget n is the first n evaluations of a longer one, as the resume
tests check). Writes ``results/benchmarks/search_hybrid.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.io import atomic_write_text
from nas.search.pareto import hypervolume_2d
from nas.search.result import SearchResult
from nas.search.space_search import run_search
from nas.spaces import SearchSpace, load_space

COMMAND = ".venv/bin/python -m nas.benchmarks.search_hybrid"
SPACE = "hybrid-cifar"
BUDGETS = (200, 1000, 5000, 20000)
OPTUNA_BUDGETS = (200, 1000)
SAMPLES = Path("results/bench-samples.csv")
LUT = Path("results/search-bench/lut-cpu.csv")
PROFILE_COMMAND = (".venv/bin/nas profile --space hybrid-cifar --out results/search-bench/lut-cpu.csv "
                   "--rounds 3 --min-round-ms 20")


@dataclass
class Setup:
    space: SearchSpace
    predictor: Any
    table: Any
    latency_bound: float
    flops_bound: float
    cv: dict[str, Any]
    latency_min: float


def prepare(samples: Path, lut: Path, workdir: Path) -> Setup:
    """Fit the ridge, load the table, and set the bounds (medians over 1,000 random subnets)."""
    from nas.latency.space_units import predict_latency
    from nas.latency.table import LatencyTable
    from nas.sample import draw_architectures
    from nas.sample.fit import fit_predictor
    from nas.sample.predictor import load_predictor_for
    from nas.search.space_problem import SpaceProblem

    space = load_space(SPACE)
    for path, how in ((samples, "measure subnets with 'nas sample'"), (lut, PROFILE_COMMAND)):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: {how}")
    fitted = fit_predictor(samples, model="ridge", seed=0, out=workdir / "ridge")
    predictor = load_predictor_for(space, workdir / "ridge")
    table = LatencyTable.load(lut, expected_space_hash=space.hash())
    archs = draw_architectures(space, 1000, seed=0)
    from nas import costs

    latency = predict_latency(table, space, archs)
    flops = np.array([costs.flops(space, a) for a in archs], dtype=np.float64)
    probe = SpaceProblem(space, ["min:latency_ms"], table=table)
    return Setup(space, predictor, table, float(np.median(latency)), float(np.median(flops)),
                 fitted.card["cv"], float(probe.achievable_range("latency_ms")[0]))


def search(setup: Setup, algo: str, objectives: Sequence[str], constraints: Sequence[str],
           budget: int, seed: int, **kw: Any) -> tuple[Any, float]:
    """One ``run_search`` in memory; returns the outcome and the CPU seconds of the whole call."""
    cpu = time.process_time()
    outcome = run_search(setup.space, objectives=objectives, constraints=constraints, algo=algo,
                         budget=budget, seed=seed, predictor=setup.predictor, table=setup.table,
                         progress=False, **kw)
    return outcome, time.process_time() - cpu


def best_accuracy(result: SearchResult, n: int) -> float:
    r = result.prefix(n)
    ok = r.feasible
    return float(r.metrics["accuracy"][ok].max()) if ok.any() else float("nan")


def hypervolume(result: SearchResult, n: int, flops_bound: float) -> float:
    r = result.prefix(n)
    ok = r.feasible
    pts = np.column_stack([r.metrics["flops"][ok] / flops_bound, -r.metrics["val_acc"][ok]])
    return hypervolume_2d(pts, np.array([1.0, 0.0]))


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


# ----- 1. speed --------------------------------------------------------------------------------------
def speed(setup: Setup, seeds: Sequence[int], budget: int, rows: list[dict[str, Any]]
          ) -> tuple[list[list[str]], dict[int, Any]]:
    lat = [f"latency_ms<={setup.latency_bound!r}"]
    cases = [
        ("NSGA-II", "evolution", ["max:accuracy", "min:latency_ms"]),
        ("regularised evolution", "evolution", ["max:accuracy"]),
        ("random", "random", ["max:accuracy", "min:latency_ms"]),
    ]
    table, re_runs = [], {}
    for label, algo, objectives in cases:
        walls, cpus, shares = [], [], []
        for seed in seeds:
            out, _ = search(setup, algo, objectives, lat, budget, seed)
            t = out.summary["timings"]
            walls.append(t["search_s"])
            cpus.append(t["search_cpu_s"])
            shares.append(t["evaluate_s"] / t["search_s"])
            rows.append({"section": "speed", "algorithm": label, "seed": seed, "budget": budget,
                         "search_s": t["search_s"], "search_cpu_s": t["search_cpu_s"],
                         "evaluate_s": t["evaluate_s"]})
            if label == "regularised evolution":
                re_runs[seed] = out.result
        table.append([label, str(len(seeds)), f"{np.mean(walls):.2f} (max {np.max(walls):.2f})",
                      f"{np.mean(cpus):.2f}", f"{np.mean(walls) / budget * 1000:.3f}",
                      f"{100 * np.mean(shares):.0f}%"])
    # NSGA-II with the History as shipped (membership by np.isin over the whole history)
    from nas.search import evolution
    from nas.search.space_problem import SpaceProblem

    problem = SpaceProblem(setup.space, ["max:accuracy", "min:latency_ms"], lat,
                           predictor=setup.predictor, table=setup.table)
    searcher = evolution.NSGA2(problem, seed=seeds[0])
    wall, cpu = time.perf_counter(), time.process_time()
    searcher.run(budget, check_feasibility=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append({"section": "speed", "algorithm": "NSGA-II, History as shipped", "seed": seeds[0],
                 "budget": budget, "search_s": wall, "search_cpu_s": cpu})
    table.append(["NSGA-II, History as shipped", "1", f"{wall:.2f}", f"{cpu:.2f}",
                  f"{wall / budget * 1000:.3f}", "-"])
    return table, re_runs


def cli_run(setup: Setup, workdir: Path, lut: Path, budget: int) -> tuple[str, dict[str, Any], float]:
    """``nas search`` end to end with every output, as a user runs it."""
    out = workdir / "cli"
    argv = [str(Path(sys.executable).parent / "nas"), "search", "--space", SPACE,
            "--predictor", str(workdir / "ridge"), "--lut", str(lut),
            "--objective", "max:accuracy", "--objective", "min:latency_ms",
            "--constraint", f"latency_ms<={setup.latency_bound:.4f}",
            "--budget", str(budget), "--seed", "0", "--out", str(out), "--no-progress"]
    wall = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    import json

    summary = json.loads((out / "search.json").read_text())
    shown = " ".join(a if " " not in a else repr(a) for a in argv[1:])
    return "nas " + shown.replace(str(workdir), "<tmp>"), summary, wall


# ----- 2. one objective --------------------------------------------------------------------------------
def one_objective(setup: Setup, seeds: Sequence[int], re_runs: dict[int, Any],
                  optuna_seeds: Sequence[int], rows: list[dict[str, Any]]
                  ) -> tuple[list[list[str]], dict[str, Any]]:
    lat = [f"latency_ms<={setup.latency_bound!r}"]
    t = time.perf_counter()
    mp, _ = search(setup, "mp", ["max:accuracy"], lat, 1, 0)
    mp_s = time.perf_counter() - t
    optimum = mp.best.metrics["accuracy"]
    rows.append({"section": "one objective", "algorithm": "MILP optimum", "seed": 0, "budget": 1,
                 "best_accuracy": optimum, "search_s": mp.summary["timings"]["search_s"]})
    runs = {"regularised evolution": [re_runs[s] for s in seeds]}
    runs["random"] = [search(setup, "random", ["max:accuracy"], lat, max(BUDGETS), s)[0].result
                      for s in seeds]
    optuna_runs, optuna_s = [], []
    for s in optuna_seeds:
        out, _ = search(setup, "optuna", ["max:accuracy"], lat, max(OPTUNA_BUDGETS), s,
                        sampler="tpe")
        optuna_runs.append(out.result)
        optuna_s.append(out.summary["timings"]["search_s"])
    runs["Optuna TPE"] = optuna_runs
    table = []
    for label, results in runs.items():
        cells = [label, str(len(results))]
        for n in BUDGETS:
            if n > len(results[0]):
                cells.append("-")
                continue
            values = [best_accuracy(r, n) for r in results]
            for s, v in zip(seeds if label != "Optuna TPE" else optuna_seeds, values):
                rows.append({"section": "one objective", "algorithm": label, "seed": s,
                             "budget": n, "best_accuracy": v})
            cells.append(f"{mean_std(values)} ({np.mean(values) - optimum:+.3f})")
        table.append(cells)
    table.append(["MILP (certified optimum)", "1", *[f"{optimum:.3f}"] * len(BUDGETS)])
    extra = {"mp_s": mp_s, "optimum": optimum, "mp_status": mp.summary["mp"]["statuses"],
             "optuna_per_1000": np.mean(optuna_s) / max(OPTUNA_BUDGETS) * 1000}
    return table, extra


# ----- 3. two objectives ----------------------------------------------------------------------------------
def two_objectives(setup: Setup, seeds: Sequence[int], optuna_seeds: Sequence[int],
                   rows: list[dict[str, Any]]) -> tuple[list[list[str]], dict[str, Any]]:
    cons = [f"latency_ms<={setup.latency_bound!r}", f"flops<={setup.flops_bound!r}"]
    objectives = ["max:accuracy", "min:flops"]
    fb = setup.flops_bound
    mp_hv = {}
    mp_s = {}
    for points in (20, 50):
        out, _ = search(setup, "mp", objectives, cons, points, 0, mp_points=points)
        mp_hv[points] = hypervolume(out.result, len(out.result), fb)
        mp_s[points] = out.summary["timings"]["search_s"]
        rows.append({"section": "two objectives", "algorithm": f"MILP {points} bounds", "seed": 0,
                     "budget": points, "hypervolume": mp_hv[points], "search_s": mp_s[points]})
    runs: dict[str, list[SearchResult]] = {}
    per_1000: dict[str, float] = {}
    for label, algo, kw, use_seeds, budget in (
        ("NSGA-II", "evolution", {}, seeds, max(BUDGETS)),
        ("random", "random", {}, seeds, max(BUDGETS)),
        ("Optuna NSGA-II", "optuna", {"sampler": "nsga2"}, optuna_seeds, max(OPTUNA_BUDGETS)),
    ):
        results, secs = [], []
        for s in use_seeds:
            out, _ = search(setup, algo, objectives, cons, budget, s, **kw)
            results.append(out.result)
            secs.append(out.summary["timings"]["search_s"])
        runs[label] = results
        per_1000[label] = float(np.mean(secs) / budget * 1000)
    reference = mp_hv[50]
    table = []
    for label, results in runs.items():
        cells = [label, str(len(results))]
        for n in BUDGETS:
            if n > len(results[0]):
                cells.append("-")
                continue
            values = [hypervolume(r, n, fb) for r in results]
            for s, v in zip(seeds if label != "Optuna NSGA-II" else optuna_seeds, values):
                rows.append({"section": "two objectives", "algorithm": label, "seed": s,
                             "budget": n, "hypervolume": v})
            cells.append(f"{mean_std(values, 4)} ({100 * np.mean(values) / reference:.1f}%)")
        cells.append(f"{per_1000[label]:.3f}")
        table.append(cells)
    for points in (20, 50):
        table.append([f"MILP, {points} swept FLOPs bounds", "1",
                      *[f"{mp_hv[points]:.4f} ({100 * mp_hv[points] / reference:.1f}%)"]
                      * len(BUDGETS), f"{mp_s[points]:.1f} s in all"])
    return table, {"reference": reference}


# ----- the report -------------------------------------------------------------------------------------------
def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=Path, default=SAMPLES)
    p.add_argument("--lut", type=Path, default=LUT)
    p.add_argument("--seeds", type=int, default=5, help="seeds of evolution and random (5)")
    p.add_argument("--optuna-seeds", type=int, default=3, help="seeds of the Optuna runs (3)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/search_hybrid.md"))
    args = p.parse_args(argv)
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    load0 = os.getloadavg()[0]
    seeds = list(range(args.seeds))
    optuna_seeds = list(range(args.optuna_seeds))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="search-hybrid-") as tmp:
        workdir = Path(tmp)
        setup = prepare(args.samples, args.lut, workdir)
        speed_rows, re_runs = speed(setup, seeds, max(BUDGETS), rows)
        cli_cmd, cli_summary, cli_wall = cli_run(setup, workdir, args.lut, max(BUDGETS))
        one, extra = one_objective(setup, seeds, re_runs, optuna_seeds, rows)
        two, two_info = two_objectives(setup, seeds, optuna_seeds, rows)
    elapsed = time.perf_counter() - start
    load1 = os.getloadavg()[0]
    report = render(args, setup, speed_rows, cli_cmd, cli_summary, cli_wall, one, extra, two,
                    two_info, elapsed, (load0, load1))
    atomic_write_text(args.out, report)
    csv_path = args.out.with_suffix(".csv")
    buf = pd.DataFrame(rows).to_csv(index=False)
    atomic_write_text(csv_path, buf)
    print(report)
    return 0


def render(args: argparse.Namespace, setup: Setup, speed_rows: list[list[str]], cli_cmd: str,
           cli_summary: dict[str, Any], cli_wall: float, one: list[list[str]],
           extra: dict[str, Any], two: list[list[str]], two_info: dict[str, Any],
           elapsed: float, loads: tuple[float, float]) -> str:
    import numpy
    import optuna
    import scipy

    cv = setup.cv
    t = cli_summary["timings"]
    budget = max(BUDGETS)
    lines = [
        "# Predictor-driven constrained search on hybrid-cifar",
        "",
        f"Reproduce: `{COMMAND}` ({elapsed / 60:.1f} min on this machine; every number below "
        f"comes from that one run; raw values in `{args.out.with_suffix('.csv').name}`).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end: wall times are "
        "inflated by contention; CPU seconds, the time this process itself ran, are the steadier "
        f"measure), Python {platform.python_version()}, NumPy {numpy.__version__}, SciPy "
        f"{scipy.__version__}, Optuna {optuna.__version__}.",
        "",
        "## Inputs",
        "",
        f"- **Predictor**: ridge on one-hot features (`predictors.RidgeOneHot`, additive), fitted "
        f"here with `nas fit`'s `fit_predictor(model='ridge', seed=0)` on `{args.samples}`: "
        f"{cv.get('folds')}-fold CV Kendall tau {cv['kendall_tau']['mean']:.3f} ± "
        f"{cv['kendall_tau']['std']:.3f}, RMSE {cv['rmse']['mean']:.4f} (val_acc fraction). The "
        "samples are 500 subnets of a hybrid-cifar supernet trained 8 epochs on scikit-learn's "
        "digits (`nas train --space hybrid-cifar --data digits --out results/bench-supernet`, "
        "`nas sample --run results/bench-supernet --n 500 --out results/bench-samples.csv`), "
        "validation accuracy measured on 269 images, so the predictor is weak; every algorithm "
        "searches the same one, which is what is compared.",
        f"- **Latency table**: `{args.lut}` from `{PROFILE_COMMAND}` (CPU, torch eager, 1 thread, "
        f"batch 1; {len(setup.table)} unit keys), calibration as stored: "
        f"`{setup.table.calibration.to_dict()['formula'] if setup.table.calibration else 'none'}`.",
        f"- **Bounds**: L = {setup.latency_bound:.4f} ms and F = {setup.flops_bound / 1e6:.3f} "
        "MFLOPs, the medians of predicted latency and FLOPs over 1,000 random subnets "
        "(`draw_architectures(space, 1000, seed=0)`).",
        "",
        "## 1. Speed: 20,000 predictor-driven evaluations",
        "",
        f"Search loop of `run_search` (ask, evaluate the batch: genome tables for FLOPs/params/"
        f"memory/latency, the predictor on one-hot genomes; tell), {budget:,} evaluations, "
        f"latency_ms <= L. Target: <= 10 s.",
        "",
        md_table(["algorithm", "seeds", "wall s", "CPU s", "wall s per 1,000", "evaluating"],
                 speed_rows),
        "",
        "NSGA-II: max accuracy, min latency_ms, population 20. Regularised evolution: max "
        "accuracy, population 50, tournaments of 10, batches of 10 (this module's default; the "
        "searcher's own default of population 20 and one child per batch runs 20,000 evaluations "
        "in about 10 s here because each batch of one pays the fixed cost of a predictor call). "
        "'History as shipped': the searchers' `History.contains` tests membership with "
        "`np.isin` over every evaluated genome, quadratic in the run length for spaces too big for "
        "its bitmap; `nas search` wraps it with a dictionary lookup (same genomes proposed).",
        "",
        f"The CLI end to end, with every output written (front.csv, evaluated.csv with "
        f"{budget:,} rows, pareto.png, front/*.json, search.json, state.json):",
        "",
        f"    {cli_cmd}",
        "",
        f"{cli_wall:.1f} s wall in all (interpreter start and imports included): search "
        f"{t['search_s']:.2f} s (CPU {t['search_cpu_s']:.2f} s), feasibility proof "
        f"{t['feasibility_s']:.2f} s, writing {t['write_s']:.2f} s; "
        f"{cli_summary['counts']['front']} architectures on the front.",
        "",
        "## 2. One objective: best predicted accuracy under latency_ms <= L",
        "",
        f"Best feasible predicted accuracy (percent) after n evaluations, mean ± std over seeds "
        f"(difference to the optimum). The MILP optimum is certified by HiGHS (status "
        f"{', '.join(extra['mp_status'])}) and took {extra['mp_s']:.2f} s wall including the "
        f"feasibility proof. Optuna TPE (multivariate, constrained with `set_constraint`): "
        f"{extra['optuna_per_1000']:.1f} s per 1,000 trials.",
        "",
        md_table(["algorithm", "seeds", *[f"n = {n:,}" for n in BUDGETS]], one),
        "",
        "## 3. Two objectives: accuracy and FLOPs under latency_ms <= L and flops <= F",
        "",
        f"Hypervolume of the feasible front (accuracy as a fraction, FLOPs / F; reference "
        f"accuracy 0, FLOPs F), mean ± std over seeds (percent of the 50-bound MILP front's "
        f"{two_info['reference']:.4f}, which is optimal at each of its 50 bounds but can miss "
        f"points between them, so a search can exceed 100%). Last column: wall seconds per 1,000 "
        f"evaluations.",
        "",
        md_table(["algorithm", "seeds", *[f"n = {n:,}" for n in BUDGETS], "s / 1,000"], two),
        "",
        "## Findings",
        "",
        f"- The table's stored calibration predicts {setup.latency_min:.3f} ms for the fastest "
        "subnet of the space (exact minimum over all subnets, by dynamic programming): it "
        "extrapolates below zero for subnets unlike its 20 calibration networks, so a search that "
        "minimises latency is drawn to them. `nas search` warns about it (search.json "
        "`warnings`); section 1 minimises latency only to time the loop, and sections 2 and 3 use "
        "latency as an upper bound, where the extrapolation at the fast end does not matter.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

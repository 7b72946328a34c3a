"""Benchmark of the accuracy predictors on NAS-Bench-201: learning curves of rank correlation.

For each predictor: train on n random cells for n in ``--sizes``, test on ``--test-size`` other
cells, repeat over ``--seeds`` random splits (the same splits for every predictor), and report mean
(and std) Kendall tau and Spearman. Predictors are fitted on the validation accuracy
(``c10valid_valid_accuracy``); the same predictions are also scored against the CIFAR-10 test
accuracy (``cifar10_test_acc``): the search protocol selects on validation and reports test.

Reproduce::

    .venv/bin/python -m nas.benchmarks.predictors_nb201 --seeds 20 --out results/benchmarks/predictors.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.base import BaseEstimator

from nas.benchmarks import nb201
from nas.benchmarks.nb201_features import cost_statistics, encode
from nas.io import atomic_write_text
from nas.latency.environment import cpu_model_name
from predictors import EnsemblePredictor, GBMPredictor, MLPPredictor, RidgeOneHot
from predictors.metrics import learning_curve

SIZES = (10, 20, 50, 100, 200, 500, 1000)
ZERO_COST = (("synflow", 0.737), ("jacob_cov", 0.731), ("snip", 0.596), ("grad_norm", 0.594),
             ("vote of three", 0.817))
TARGET_SPEARMAN = (100, 0.85)
TARGET_KENDALL = (1000, 0.80)
COMMAND = "python -m nas.benchmarks.predictors_nb201"
NEUTRAL = 0.01  # Spearman changes smaller than this are reported as neutral


@dataclass(frozen=True)
class Entry:
    """One benchmarked predictor: a factory, its feature set, and how it is run."""

    name: str
    features: str
    make: Callable[[], BaseEstimator]
    description: str
    slow: bool = False  # run on --slow-seeds only
    pretrain: bool = False  # FBNetV3: pretrain on free statistics of unmeasured cells


ENTRIES: tuple[Entry, ...] = (
    Entry("ridge-onehot", "onehot", RidgeOneHot,
          "RidgeOneHot on the raw 30 one-hot columns (the additive model the MILP search uses)"),
    Entry("ridge", "compact", RidgeOneHot, "RidgeOneHot on the compact NB201 features"),
    Entry("gbm", "compact", GBMPredictor, "GBMPredictor (sklearn GradientBoostingRegressor)"),
    Entry("mlp", "full", MLPPredictor, "MLPPredictor, default settings"),
    Entry("ensemble", "full",
          lambda: EnsemblePredictor([GBMPredictor(), MLPPredictor()], n_members=1),
          "EnsemblePredictor of one GBMPredictor and one MLPPredictor"),
    Entry("mlp+pretrain", "full", MLPPredictor,
          "MLPPredictor pretrained on free statistics of unmeasured cells (FBNetV3)",
          slow=True, pretrain=True),
    Entry("mlp-early-stopping", "full", lambda: MLPPredictor(early_stopping=True),
          "MLPPredictor with early stopping forced on at every size", slow=True),
)


def run(
    table: nb201.NB201Table,
    entries: tuple[Entry, ...],
    *,
    sizes: tuple[int, ...],
    test_size: int,
    seeds: int,
    slow_seeds: int,
    seed: int,
    pretrain_pool: int,
    target: str,
    log: Callable[[str], None],
) -> pd.DataFrame:
    """All learning curves as one frame (one row per predictor, seed and training size)."""
    y = table.column(target)
    extra = {"test": table.column(nb201.TEST_COLUMN)} if target != nb201.TEST_COLUMN else {}
    frames = []
    for entry in entries:
        X, _ = encode(table.genes, entry.features)
        fit_params = None
        if entry.pretrain:
            pool = np.random.default_rng(seed + 1).choice(len(y), pretrain_pool, replace=False)
            fit_params = {"X_pretrain": X[pool], "y_pretrain": cost_statistics(table.genes[pool])}
        n_seeds = min(seeds, slow_seeds) if entry.slow else seeds
        start, cpu = time.perf_counter(), time.process_time()
        frame = learning_curve(
            entry.make(), X, y, sizes, test_size=test_size, seeds=n_seeds,
            rng=np.random.default_rng(seed), fit_params=fit_params, score_against=extra,
        )
        elapsed = time.perf_counter() - start
        frame.insert(0, "predictor", entry.name)
        frame.insert(1, "features", entry.features)
        frame["total_s"] = elapsed
        frame["total_cpu_s"] = time.process_time() - cpu
        frames.append(frame)
        at = frame[frame.n_train == max(sizes)]
        log(f"{entry.name:>20}: {n_seeds} seeds in {elapsed:6.1f} s "
            f"({frame.total_cpu_s.iloc[0]:.1f} s CPU); n={max(sizes)}: "
            f"tau {at.kendall_tau.mean():.3f}, spearman {at.spearman.mean():.3f}")
    return pd.concat(frames, ignore_index=True)


def _table(results: pd.DataFrame, metric: str, names: list[str]) -> list[str]:
    sizes = sorted(results.n_train.unique())
    lines = ["| predictor | seeds | " + " | ".join(f"n={n}" for n in sizes) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in sizes) + " |"]
    for name in names:
        part = results[results.predictor == name]
        stats = part.groupby("n_train")[metric].agg(["mean", "std"])
        cells = [f"{stats.loc[n, 'mean']:.3f} ± {stats.loc[n, 'std']:.3f}" for n in sizes]
        lines.append(f"| {name} | {part.seed.nunique()} | " + " | ".join(cells) + " |")
    return lines


def _target_line(results: pd.DataFrame, metric: str, label: str, n: int, goal: float,
                 full_seeds: int) -> str:
    """Whether the best predictor run on all seeds reaches ``goal`` at training size ``n``."""
    part = results[results.n_train == n]
    part = part[part.groupby("predictor").seed.transform("nunique") == full_seeds]
    if part.empty:
        return f"- {label} >= {goal} at n={n}: not measured (n={n} not in --sizes)."
    means = part.groupby("predictor")[metric].mean()
    verdict = "**met**" if means.max() >= goal else "**missed**"
    return (f"- {label} >= {goal} at n={n}: best is {means.idxmax()} with {means.max():.3f} "
            f"(mean of {full_seeds} seeds): {verdict}.")


def report(results: pd.DataFrame, entries: tuple[Entry, ...], args: argparse.Namespace,
           command: str, wall_s: float) -> str:
    """The Markdown report."""
    names = [e.name for e in entries]
    main = [e.name for e in entries if not e.slow]
    full_seeds = int(results[results.predictor.isin(main)].seed.nunique())
    lines = [
        "# Accuracy predictors on NAS-Bench-201",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Generated {dt.date.today().isoformat()} by `nas/benchmarks/predictors_nb201.py` in "
        f"{wall_s:.0f} s wall ({results.groupby('predictor').total_cpu_s.first().sum():.0f} s CPU) "
        f"on one thread of {cpu_model_name()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, scikit-learn {sklearn.__version__}.",
        "",
        "## Protocol",
        "",
        f"- Data: `{args.table}`, all 15,625 NB201 cells. Predictors are fitted on "
        f"`{args.target}` (mean of 3 seeds).",
        f"- For each of {full_seeds} seeds, a random permutation gives a test set of "
        f"{args.test_size} cells and nested training sets of n cells drawn from the rest; every "
        "predictor sees the same splits (seeded `numpy.random.Generator`, "
        f"`--seed {args.seed}`). Cells in a training set are never in its test set.",
        f"- Predictors marked with fewer seeds ran on the first {args.slow_seeds} splits only "
        "(the same splits as the first seeds of the others) to keep the run short.",
        "- Kendall tau is tau-b (scipy); disconnected cells tie at 9.71 % accuracy.",
        "- Features (`nas/benchmarks/nb201_features.py`): `onehot` = raw 6 x 5 one-hot; "
        "`compact` (28) = disconnected flag, live op counts, longest conv path, open paths, "
        "per-path op counts; `full` (158) = one-hot of the *effective* cell (dead edges set to "
        "`none`) + everything in `compact` + BANANAS-style path encoding of the 4 input-output "
        "paths.",
        "",
        "| predictor | features | what |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {e.name} | {e.features} | {e.description} |" for e in entries]
    lines += [
        "",
        "## Targets",
        "",
        _target_line(results, "spearman", "Spearman", *TARGET_SPEARMAN, full_seeds),
        _target_line(results, "kendall_tau", "Kendall tau", *TARGET_KENDALL, full_seeds),
        "",
        "Zero-cost proxies (Abdelfattah et al., ICLR 2021; no training, Spearman with CIFAR-10 "
        "accuracy over all cells, from `../shared/benchmarks/README.md`): "
        + ", ".join(f"{name} {value:.3f}" for name, value in ZERO_COST) + ".",
        "",
        f"## Fitted on `{args.target}`, scored on held-out `{args.target}`",
        "",
        "Spearman (mean ± std over seeds):",
        "",
        *_table(results, "spearman", names),
        "",
        "Kendall tau (mean ± std over seeds):",
        "",
        *_table(results, "kendall_tau", names),
        "",
        "RMSE in accuracy points (mean ± std over seeds; disconnected cells at 9.71 % weigh "
        "heavily):",
        "",
        *_table(results, "rmse", names),
    ]
    if "spearman_test" in results:
        lines += [
            "",
            f"## Same predictions, scored on held-out `{nb201.TEST_COLUMN}`",
            "",
            "The predictors above (fitted on validation accuracy, never on test) ranked against "
            "the CIFAR-10 test accuracy of the same held-out cells.",
            "",
            "Spearman:",
            "",
            *_table(results, "spearman_test", names),
            "",
            "Kendall tau:",
            "",
            *_table(results, "kendall_tau_test", names),
        ]
    lines += ["", "## FBNetV3 pretraining and early stopping", ""]
    lines += _ablation(results, args)
    lines += ["", "## Time", "",
              "Wall and CPU seconds for all fits and predictions of a predictor (one thread; the "
              "machine is shared, so wall time can exceed CPU time).",
              "",
              "| predictor | seeds | fits | wall s | CPU s | mean fit s at n="
              + f"{max(results.n_train)} |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        part = results[results.predictor == name]
        big = part[part.n_train == part.n_train.max()].fit_s.mean()
        lines.append(f"| {name} | {part.seed.nunique()} | {len(part)} | "
                     f"{part.total_s.iloc[0]:.1f} | {part.total_cpu_s.iloc[0]:.1f} | {big:.2f} |")
    lines += ["", "Per-seed results: the CSV next to this file.", ""]
    return "\n".join(lines)


def _ablation(results: pd.DataFrame, args: argparse.Namespace) -> list[str]:
    """MLP variants on the splits they share (the first --slow-seeds)."""
    variants = [v for v in ("mlp", "mlp+pretrain", "mlp-early-stopping")
                if v in set(results.predictor)]
    if len(variants) < 2:
        return ["(not run)"]
    shared = results[results.predictor.isin(variants)]
    n_seeds = shared.groupby("predictor").seed.nunique().min()
    shared = shared[shared.seed < n_seeds]
    sizes = sorted(shared.n_train.unique())
    lines = [
        f"Spearman of MLP variants on the same {n_seeds} splits. Pretraining: "
        f"{args.pretrain_pool} random cells with their analytic MACs, parameters (nominal and "
        "effective), longest conv path and open-path count (no accuracy), "
        "`pretrain_epochs=30`, then the output layer is replaced and all weights fine-tuned. "
        "Early stopping: `early_stopping=True` (10 % held out, validation MSE averaged over 5 "
        "epochs, patience 50, then refit on all samples for the best epoch count) against the "
        "default `\"auto\"` (on only when the held-out split has >= 50 cells, i.e. n >= 500 "
        "here).",
        "",
        "| variant | " + " | ".join(f"n={n}" for n in sizes) + " |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " |",
    ]
    base = shared[shared.predictor == "mlp"].groupby("n_train").spearman.mean()
    verdicts = []
    for v in variants:
        means = shared[shared.predictor == v].groupby("n_train").spearman.mean()
        cells = []
        for n in sizes:
            delta = "" if v == "mlp" else f" ({means[n] - base[n]:+.3f})"
            cells.append(f"{means[n]:.3f}{delta}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
        if v != "mlp":
            verdicts.append(f"- {v}: " + _verdict({n: means[n] - base[n] for n in sizes}))
    return [*lines, "", f"Against the default MLP (a change of less than {NEUTRAL} is called "
            "neutral):", "", *verdicts]


def _verdict(deltas: dict[int, float]) -> str:
    """Plain words for per-size Spearman changes: where they help, hurt or do nothing."""
    groups = {"helps": [n for n, d in deltas.items() if d >= NEUTRAL],
              "hurts": [n for n, d in deltas.items() if d <= -NEUTRAL],
              "is neutral": [n for n, d in deltas.items() if abs(d) < NEUTRAL]}
    return "; ".join(f"{word} at n = {', '.join(map(str, ns))}" for word, ns in groups.items() if ns) + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="random splits per predictor")
    parser.add_argument("--slow-seeds", type=int, default=5,
                        help="splits for the slow MLP variants (pretraining, early stopping)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated training sizes")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split generator")
    parser.add_argument("--pretrain-pool", type=int, default=5000,
                        help="unmeasured cells used for FBNetV3 pretraining")
    parser.add_argument("--target", default=nb201.VALID_COLUMN, help="column the predictors fit")
    parser.add_argument("--only", default="", help="comma-separated predictor names to run")
    parser.add_argument("--table", default=str(nb201.default_path()), help="path of nb201.csv.gz")
    parser.add_argument("--out", default="results/benchmarks/predictors.md")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers; got {args.sizes!r}")
    known = {e.name for e in ENTRIES}
    only = [s for s in args.only.split(",") if s]
    if set(only) - known:
        parser.error(f"unknown predictors {sorted(set(only) - known)}; expected some of {sorted(known)}")
    entries = tuple(e for e in ENTRIES if not only or e.name in only)

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    try:
        table = nb201.load(args.table)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with threadpool_limits(1):
        results = run(table, entries, sizes=sizes, test_size=args.test_size, seeds=args.seeds,
                      slow_seeds=args.slow_seeds, seed=args.seed,
                      pretrain_pool=args.pretrain_pool, target=args.target,
                      log=lambda msg: print(msg, file=sys.stderr, flush=True))
    wall = time.perf_counter() - start
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".csv"), results.to_csv(index=False, float_format="%.5f"))
    atomic_write_text(out, report(results, entries, args, command, wall))
    print(f"wrote {out} and {out.with_suffix('.csv')} ({wall:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

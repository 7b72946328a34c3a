"""Benchmark: accuracy predictors on hybrid-cifar subnets measured from a supernet trained on digits.

Reproduce (one command; each step reuses what exists, resumes what is unfinished)::

    .venv/bin/python -m nas.benchmarks.predictors_hybrid

which is the same as::

    .venv/bin/nas train --space hybrid-cifar --data digits --out results/bench-supernet --threads 1
    .venv/bin/nas sample --run results/bench-supernet --n 500 --out results/bench-samples.csv
    # then the held-out evaluation below (nas predictors evaluate --samples ... shows the curve)

Steps: (1) the supernet (``nas train`` defaults); (2) 500 uniformly drawn subnets measured on the
validation split (``nas sample``); (3) optionally, the wall time of ``--timing`` subnets measured
with 1 and with 2 local workers (and that both write the same numbers); (4) measurement noise:
``--noise`` subnets re-measured with other BN-recalibration batches, the ceiling a predictor of
*measured* accuracy can reach; (5) every predictor x encoding trained on ``--train`` subnets and
scored on ``--test`` held-out ones, over ``--seeds`` random splits shared by all; (6) the learning
curve; (7) a gzipped copy of the samples (with its sidecar) for others to reuse. Writes
``results/benchmarks/predictors_hybrid.md`` and ``.csv``. One torch thread throughout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas.io import atomic_write, atomic_write_json, atomic_write_text
from nas.latency.environment import cpu_model_name
from nas.sample.curve import evaluate_on_splits, held_out_splits
from nas.sample.fit import load_training_data, make_encoder, make_estimator
from nas.sample.measure import sample_subnets
from nas.sample.store import read_samples, sidecar_path
from nas.train import TrainConfig, load_supernet, train
from nas.train.rundir import RunPaths

SPACE = "hybrid-cifar"
MODELS = ("ridge", "gbm", "mlp", "ensemble")
ENCODINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "onehot": ("onehot", ()),
    "ordinal": ("ordinal", ()),
    "onehot+stats": ("onehot", ("macs", "params", "memory")),
    "ordinal+stats": ("ordinal", ("macs", "params", "memory")),
}
CURVE_SIZES = (10, 20, 50, 100, 200, 300)
TARGET_TAU = 0.8


# ----- steps 1-2: supernet and samples -----
def ensure_supernet(run_dir: Path) -> dict:
    """Train with ``nas train``'s defaults unless a finished run is there; returns summary.json."""
    paths = RunPaths(run_dir)
    if not (paths.summary.is_file() and json.loads(paths.summary.read_text()).get("complete")):
        config = TrainConfig(space=SPACE, data="digits", threads=1)
        train(config, run_dir, resume=paths.config.exists(), progress=True)
    return json.loads(paths.summary.read_text())


def worker_timing(run_dir: Path, n: int) -> list[dict]:
    """Wall time of measuring the first ``n`` subnets with 1 and 2 local workers (fresh files)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        contents = []
        for workers in (1, 2):
            path = Path(tmp) / f"w{workers}.csv"
            start = time.perf_counter()
            sample_subnets(run_dir, path, n=n, workers=workers, progress=False)
            wall = time.perf_counter() - start
            rows = read_samples(path).rows
            contents.append({r["arch_id"]: {k: v for k, v in r.items() if k != "seconds"}
                             for r in rows})
            out.append({"workers": workers, "n": n, "wall_s": wall,
                        "sum_eval_s": float(sum(float(r["seconds"]) for r in rows)),
                        "loadavg": os.getloadavg()[0]})
        for rec in out:
            rec["same_content_as_1_worker"] = contents[0] == contents[out.index(rec)]
    return out


# ----- step 4: measurement noise -----
def _measure_twice(run, arch, arch_id: str, halves: tuple[np.ndarray, np.ndarray]) -> dict:
    """Recalibrate with another seed; accuracy on the whole validation split and on two halves."""
    from nas.data import Split
    from nas.sample.measure import arch_seed
    from nas.train import evaluate_model, recalibrated_subnet

    model = recalibrated_subnet(run.supernet, arch, run.splits.train,
                                seed=arch_seed(arch_id, 1))
    kw = {"resolution": arch.resolution, "in_channels": run.space.in_channels}
    val = run.splits.val
    full = evaluate_model(model, val, **kw)
    a, b = (evaluate_model(model, Split(val.x[h], val.y[h]), **kw)["acc"] for h in halves)
    return {"val_acc_2": full["acc"], "val_loss_2": full["loss"], "acc_half_a": a,
            "acc_half_b": b}


def remeasure(run_dir: Path, samples: Path, arch_ids: list[str], cache: Path) -> pd.DataFrame:
    """Re-measure subnets with other recalibration batches (seed 1), also on two fixed random
    halves of the validation split; cached in ``cache`` (JSON) so a rerun only adds what is new."""
    from nas.arch import Architecture

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    rows = {r["arch_id"]: r for r in read_samples(samples).rows}
    todo = [a for a in arch_ids if a not in done]
    if todo:
        run = load_supernet(run_dir)
        order = np.random.default_rng(0).permutation(len(run.splits.val))
        halves = (np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :]))
        for k, arch_id in enumerate(todo):
            arch = Architecture.from_json(rows[arch_id]["arch_json"])
            done[arch_id] = _measure_twice(run, arch, arch_id, halves)
            if k % 10 == 9 or k == len(todo) - 1:
                atomic_write_json(cache, done)
    return pd.DataFrame([{"arch_id": a, "val_acc": float(rows[a]["val_acc"]),
                          "val_loss": float(rows[a]["val_loss"]), **done[a]} for a in arch_ids])


def noise_ceiling(noise: pd.DataFrame) -> dict[str, float]:
    """Split-half reliability of measured accuracy and the Kendall tau it allows.

    Pearson r between the two halves' accuracies, stepped up to the whole split by the
    Spearman-Brown formula ``R = 2r / (1 + r)``; a perfect predictor of each subnet's expected
    accuracy correlates with one measurement at most ``sqrt(R)``, which for bivariate normal
    values is a Kendall tau of ``2/pi * arcsin(sqrt(R))``. Both halves share one recalibration,
    so this ignores recalibration noise: the true ceiling is lower still.
    """
    r = float(np.corrcoef(noise.acc_half_a, noise.acc_half_b)[0, 1])
    reliability = 2 * r / (1 + r) if r > 0 else 0.0
    return {"r_half": r, "reliability": reliability,
            "tau_ceiling": float(2 / np.pi * np.arcsin(np.sqrt(reliability)))}


# ----- steps 5-6: predictors -----
def predictor_table(samples: Path, *, train_n: int, test: int, seeds: int,
                    sizes: tuple[int, ...]
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """(rows at n=train_n for every model x encoding, learning-curve rows, the same for a
    val_loss target, baselines)."""
    from predictors.metrics import kendall_tau, spearman

    data = load_training_data(samples, "val_acc")
    splits = held_out_splits(len(data.y), test, seeds, seed=0)
    frames = []
    for name, (kind, stats) in ENCODINGS.items():
        X = make_encoder(data.space, kind, stats).transform(data.archs)
        df = evaluate_on_splits(X, data.y, MODELS, [train_n], splits)
        df.insert(1, "encoding", name)
        frames.append(df)
        print(f"  {name}: done", file=sys.stderr, flush=True)
    table = pd.concat(frames, ignore_index=True)
    X = make_encoder(data.space, "onehot").transform(data.archs)
    curve = evaluate_on_splits(X, data.y, MODELS, [s for s in sizes if s <= len(data.y) - test],
                               splits)
    curve.insert(1, "encoding", "onehot")
    loss = load_training_data(samples, "val_loss")
    loss_table = evaluate_on_splits(X, loss.y, MODELS, [train_n], splits)
    loss_table.insert(1, "encoding", "onehot")
    loss_table.insert(2, "target", "val_loss")
    rows = read_samples(samples).rows
    base = {}
    for stat in ("macs", "params", "memory", "val_loss"):
        v = np.array([float(r[stat]) for r in rows])
        sign = -1.0 if stat == "val_loss" else 1.0
        base[stat] = {
            "kendall_tau": [kendall_tau(data.y[t], sign * v[t]) for t, _ in splits],
            "spearman": [spearman(data.y[t], sign * v[t]) for t, _ in splits],
        }
    ridge = make_estimator("ridge").fit(X, data.y)
    names = make_encoder(data.space, "onehot").get_feature_names_out()
    top = np.argsort(-np.abs(ridge.coef_))[:8]
    base["top_ridge"] = [(str(names[i]), float(ridge.coef_[i])) for i in top]
    return table, curve, loss_table, base


# ----- step 7: a reusable copy -----
def publish_samples(samples: Path, dest: Path) -> tuple[Path, int]:
    """Gzip (deterministically: mtime 0) the samples and copy the sidecar beside the copy."""
    data = samples.read_bytes()

    def write(f) -> None:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(data)

    atomic_write(dest, write)
    shutil.copyfile(sidecar_path(samples), sidecar_path(dest))
    return dest, dest.stat().st_size


# ----- the report -----
def _ms(values) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.3f} ± {a.std():.3f}"


def build_report(*, command: str, summary: dict, samples_meta: dict, rows: list[dict],
                 timing: list[dict], noise: pd.DataFrame | None, table: pd.DataFrame,
                 curve: pd.DataFrame, loss_table: pd.DataFrame, base: dict,
                 args: argparse.Namespace,
                 published: tuple[Path, int] | None, elapsed: float) -> str:
    from predictors.metrics import kendall_tau

    acc = np.array([float(r["val_acc"]) for r in rows])
    secs = np.array([float(r["seconds"]) for r in rows])
    macs = np.array([float(r["macs"]) for r in rows])
    final = summary.get("final", {})
    draws = samples_meta.get("draws", [])
    ev = samples_meta.get("evaluation", {})
    lines = [
        "# Accuracy predictors on hybrid-cifar subnets (supernet trained on digits)",
        "",
        "Reproduce (each step reuses what exists and resumes what is unfinished):",
        "",
        "```bash",
        f"{command}",
        "# which runs, in order:",
        f".venv/bin/nas train --space {SPACE} --data digits --out {args.run} --threads 1",
        f".venv/bin/nas sample --run {args.run} --n {args.n} --out {args.samples}"
        + (f" --workers {args.workers}" if args.workers != 1 else ""),
        "# then, e.g., the learning curve alone:",
        f".venv/bin/nas predictors evaluate --samples {args.samples} --sizes "
        f"{','.join(map(str, CURVE_SIZES))} --test {args.test} --seeds {args.seeds}",
        "```",
        "",
        f"Generated {time.strftime('%Y-%m-%d')} in {elapsed:.0f} s (this invocation; the supernet "
        "and samples were reused if present) on "
        f"{cpu_model_name()}, {os.cpu_count()} logical CPUs shared with other users, torch "
        f"{torch.__version__}, one torch thread, Python {platform.python_version()}.",
        "",
        "## Setup",
        "",
        f"- Supernet: `{SPACE}` trained by `nas train` with its defaults ({summary.get('epochs')} "
        f"epochs, sandwich rule, in-place distillation) in {summary.get('train_s', float('nan')):.0f} s "
        f"of training; validation accuracy largest {100 * final.get('val_acc_largest', float('nan')):.2f} %, "
        f"smallest {100 * final.get('val_acc_smallest', float('nan')):.2f} %.",
        f"- Samples: {len(rows)} distinct subnets drawn uniformly (`space.sample`, draws "
        f"{[(d.get('strategy'), d.get('seed'), d.get('n')) for d in draws]}), each extracted, BN "
        f"recalibrated on {ev.get('recal_batches')} training batches of "
        f"{ev.get('recal_batch_size')} (seeded per subnet), and evaluated on the validation split "
        "(269 images: one image is 0.37 points). The test split is never used.",
        f"- Measured accuracy: mean {100 * acc.mean():.2f} %, std {100 * acc.std():.2f} points, "
        f"range {100 * acc.min():.2f}-{100 * acc.max():.2f} %, {len(np.unique(acc))} distinct "
        f"values. FLOPs {2 * macs.min() / 1e6:.1f}-{2 * macs.max() / 1e6:.1f} M.",
        f"- Measuring time per subnet (`seconds` column, one thread): mean {secs.mean():.2f} s, "
        f"median {np.median(secs):.2f} s, total {secs.sum() / 60:.1f} min for {len(rows)}.",
        "",
    ]
    if timing:
        lines += [
            "## Local workers on this machine",
            "",
            f"The first {timing[0]['n']} subnets measured into fresh files with `--workers 1` and "
            "`--workers 2` (wall time includes loading the run and starting the worker processes):",
            "",
            "| workers | wall s | sum of per-subnet s | 1-min load average | same numbers as 1 worker |",
            "| ---: | ---: | ---: | ---: | --- |",
        ]
        for t in timing:
            lines.append(f"| {t['workers']} | {t['wall_s']:.1f} | {t['sum_eval_s']:.1f} | "
                         f"{t['loadavg']:.1f} | {'yes' if t['same_content_as_1_worker'] else 'NO'} |")
        lines += [
            "",
            "With 2 cores shared by several users, a second worker only helps when a core is idle; "
            "the samples above were measured with the setting in the reproduce command.",
            "",
        ]
    ceiling = None
    if noise is not None and len(noise):
        t_acc = kendall_tau(noise.val_acc, noise.val_acc_2)
        t_loss = kendall_tau(noise.val_loss, noise.val_loss_2)
        ceiling = noise_ceiling(noise)
        n_val = len(noise)
        lines += [
            "## Measurement noise: the ceiling",
            "",
            f"{n_val} of the held-out subnets (split 0) measured again, same weights:",
            "",
            "- With other BN recalibration batches (seed 1), same validation images: Kendall tau "
            f"between the two measurements **{t_acc:.3f}** for accuracy ({t_loss:.3f} for loss); "
            f"mean |difference| {100 * np.abs(noise.val_acc - noise.val_acc_2).mean():.2f} points.",
            "- On two fixed random halves of the validation split (134/135 images): Pearson r of "
            f"the two accuracies {ceiling['r_half']:.3f}, so the whole split's accuracy has "
            f"split-half reliability {ceiling['reliability']:.3f} (Spearman-Brown). Even a perfect "
            "predictor of each subnet's expected accuracy would reach about Kendall tau "
            f"**{ceiling['tau_ceiling']:.2f}** against one measurement (bivariate normal: "
            "2/pi asin(sqrt(reliability))), and less with the recalibration noise above.",
            "",
        ]
    # Held-out table.
    g = table.groupby(["model", "encoding"], sort=False)
    best_tau = -1.0
    best_name = ""
    lines += [
        f"## {args.train} training subnets, {args.test} held-out subnets, {args.seeds} splits",
        "",
        "Kendall tau (tau-b) and Spearman of predicted vs measured validation accuracy on the "
        "held-out subnets, mean ± std over the splits (the same splits for every row). "
        f"Target: Kendall tau >= {TARGET_TAU}.",
        "",
        "Models are those of `nas fit --model` with their defaults: `ridge` = RidgeOneHot "
        "(alpha by leave-one-out CV), `gbm` = GBMPredictor (400 trees, depth 4), `mlp` = "
        "MLPPredictor (128-128), `ensemble` = 3 GBMPredictor + 3 MLPPredictor with their own "
        "seeds. Encodings: `onehot` (additive, what the MILP search consumes), `ordinal`, and "
        "either with log10 MACs, params and peak memory appended (`+stats`).",
        "",
        "| model | encoding | Kendall tau | Spearman | RMSE (points) | fit s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (model, enc), df in g:
        tau = df.kendall_tau.mean()
        if tau > best_tau:
            best_tau, best_name = tau, f"{model} on {enc}"
        lines.append(f"| {model} | {enc} | {_ms(df.kendall_tau)} | {_ms(df.spearman)} | "
                     f"{100 * df.rmse.mean():.2f} | {df.fit_s.mean():.2f} |")
    lines += ["", "Baselines, no training (the same held-out sets):", "",
              "| ranking by | Kendall tau | Spearman |", "| --- | ---: | ---: |"]
    for stat, v in base.items():
        if stat == "top_ridge":
            continue
        label = "lower val_loss (measured, not a predictor)" if stat == "val_loss" else f"larger {stat}"
        lines.append(f"| {label} | {_ms(v['kendall_tau'])} | {_ms(v['spearman'])} |")
    met = best_tau >= TARGET_TAU
    lines += ["", f"Best: {best_name}, Kendall tau {best_tau:.3f}: target "
              f"{'**met**' if met else '**not met**'}"
              + (f" (noise ceiling about {ceiling['tau_ceiling']:.2f}, see above)." if ceiling
                 else "."), ""]
    lines += [
        "The same predictors (one-hot) fitted on `val_loss` and scored on the held-out subnets' "
        "`val_loss`: a continuous measurement with far less noise (see above), so this shows how "
        "much of the architecture-to-quality map the predictors learn when the label is not "
        "rounded to 1/269:",
        "",
        "| model | Kendall tau (val_loss) | Spearman (val_loss) |",
        "| --- | ---: | ---: |",
    ]
    for model, df in loss_table.groupby("model", sort=False):
        lines.append(f"| {model} | {_ms(df.kendall_tau)} | {_ms(df.spearman)} |")
    lines.append("")
    # Learning curve.
    sizes = sorted(curve.n_train.unique())
    lines += [
        "## Learning curve (one-hot encoding)",
        "",
        "Kendall tau on the held-out subnets, mean ± std over the splits; training sets nested.",
        "",
        "| model | " + " | ".join(f"n={s}" for s in sizes) + " |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " |",
    ]
    for model, df in curve.groupby("model", sort=False):
        cells = [_ms(df[df.n_train == s].kendall_tau) for s in sizes]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Spearman:", "",
              "| model | " + " | ".join(f"n={s}" for s in sizes) + " |",
              "| --- | " + " | ".join("---:" for _ in sizes) + " |"]
    for model, df in curve.groupby("model", sort=False):
        cells = [_ms(df[df.n_train == s].spearman) for s in sizes]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
    by_size = curve.groupby(["n_train", "model"]).kendall_tau.mean().unstack()
    best_per_size = ", ".join(f"n={n}: {row.idxmax()}" for n, row in by_size.iterrows())
    last = by_size.iloc[-1]
    lines += [
        "## Findings",
        "",
        f"- The target (Kendall tau >= {TARGET_TAU} on measured accuracy) is out of reach of any "
        "predictor on this supernet and data: accuracy on 269 validation images is too coarse "
        "and noisy (see the ceiling). A validation split of N images has sqrt(269/N) times this "
        "binomial noise (0.23x at 5,000, e.g. CIFAR-10 through `--data cifar10:PATH`).",
        "- Size does not predict accuracy here: MACs, params and memory rank the held-out subnets "
        f"at Kendall tau {np.mean(base['macs']['kendall_tau']):.2f}, "
        f"{np.mean(base['params']['kendall_tau']):.2f} and "
        f"{np.mean(base['memory']['kendall_tau']):.2f}. The largest and smallest subnets, which "
        f"the sandwich rule trains at every step, reach {100 * final.get('val_acc_largest', 0):.1f} % "
        f"and {100 * final.get('val_acc_smallest', 0):.1f} %, the random subnets "
        f"{100 * acc.mean():.1f} % on average: which choices a subnet makes matters more than "
        "its size. Largest ridge coefficients (one-hot, all samples, points of accuracy): "
        + ", ".join(f"`{n}` {100 * c:+.2f}" for n, c in base["top_ridge"]) + ".",
        f"- Best model by mean Kendall tau per training size: {best_per_size}. At "
        f"n={by_size.index[-1]}, the additive ridge model the MILP search uses scores "
        f"{last['ridge']:.3f} against {last.max():.3f} for the best.",
        "- MLP pretraining on free statistics (FBNetV3) is not evaluated here: the statistics "
        "carry no signal on this supernet (previous point); see `predictors.md` for NAS-Bench-201.",
        "",
    ]
    if published:
        path, size = published
        lines += [
            "## Reusing the samples",
            "",
            f"`{path}` ({size / 1024:.0f} KiB) is a gzipped copy of the {len(rows)} samples, with "
            f"its sidecar `{sidecar_path(path)}` (space definition, supernet checkpoint hash, "
            "evaluation settings). `nas fit --samples` and `nas predictors evaluate --samples` "
            "read the `.csv.gz` directly.",
            "",
        ]
    lines += ["Every number per split is in `results/benchmarks/predictors_hybrid.csv`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="results/bench-supernet")
    p.add_argument("--samples", default="results/bench-samples.csv")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--timing", type=int, default=0,
                   help="also time this many subnets with 1 and 2 workers (0: skip)")
    p.add_argument("--noise", type=int, default=100,
                   help="held-out subnets to re-measure for the noise ceiling (0: skip)")
    p.add_argument("--out", default="results/benchmarks/predictors_hybrid.md")
    p.add_argument("--publish", default="results/benchmarks/predictors_hybrid_samples.csv.gz",
                   help="gzipped copy of the samples ('' to skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    run_dir, samples = Path(args.run), Path(args.samples)
    print("1/6 supernet", file=sys.stderr, flush=True)
    summary = ensure_supernet(run_dir)
    print("2/6 samples", file=sys.stderr, flush=True)
    sample_subnets(run_dir, samples, n=args.n, workers=args.workers)
    table = read_samples(samples)
    timing = []
    if args.timing:
        print("3/6 worker timing", file=sys.stderr, flush=True)
        timing = worker_timing(run_dir, args.timing)
    noise = None
    if args.noise:
        print("4/6 measurement noise", file=sys.stderr, flush=True)
        test0 = held_out_splits(len(table.rows), args.test, 1, seed=0)[0][0][: args.noise]
        ids = [table.rows[i]["arch_id"] for i in test0]
        noise = remeasure(run_dir, samples, ids, samples.with_suffix(".remeasured.json"))
    print("5/6 predictors", file=sys.stderr, flush=True)
    held, curve, loss_table, base = predictor_table(samples, train_n=args.train, test=args.test,
                                        seeds=args.seeds, sizes=CURVE_SIZES)
    published = None
    if args.publish:
        print("6/6 publish", file=sys.stderr, flush=True)
        published = publish_samples(samples, Path(args.publish))
    out = Path(args.out)
    command = ".venv/bin/python -m nas.benchmarks.predictors_hybrid" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else "")
    report = build_report(command=command.strip(), summary=summary, samples_meta=table.meta,
                          rows=table.rows, timing=timing, noise=noise, table=held, curve=curve,
                          loss_table=loss_table, base=base, args=args, published=published,
                          elapsed=time.perf_counter() - start)
    atomic_write_text(out, report)
    both = pd.concat([held.assign(part="held_out", target="val_acc"),
                      curve.assign(part="curve", target="val_acc"),
                      loss_table.assign(part="held_out")], ignore_index=True)
    atomic_write_text(out.with_suffix(".csv"), both.to_csv(index=False))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how batch size, learning rate, distillation, sandwich size and epochs move the
accuracy of inherited subnets (hybrid-cifar on digits, sandwich rule). The sweep behind the
defaults of ``nas train``.

Reproduce::

    .venv/bin/python -m nas.benchmarks.supernet_sweep

Each variant is a full set of training settings (every setting it changes is named, so a
variant means the same run whatever the defaults are). Its supernet is trained into
``--runs-dir/<variant>`` with one thread, validated only at the end, and a finished run is reused.
Then the 7 subnets of :mod:`nas.benchmarks.supernet_digits` (largest, smallest, 5 random) and
10 more random subnets (architecture seed 1) are evaluated with inherited weights, BN
recalibrated, on the validation split. Writes ``results/benchmarks/supernet_sweep.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from nas.benchmarks.supernet_digits import pick_archs, run_finished
from nas.errors import UserError
from nas.io import atomic_write_json, atomic_write_text
from nas.latency.environment import cpu_model_name
from nas.train import TrainConfig, evaluate_subnet, load_supernet, train
from nas.train.rundir import RunPaths

SPACE = "hybrid-cifar"
# Every variant is the settings ``nas train`` had before this sweep plus its own changes, named in
# full, so a variant means the same run whatever the defaults are now.
BEFORE = {"batch_size": 64, "lr": 2e-3, "epochs": 12, "distill_weight": 0.5, "sandwich_n": 2}
BS16 = {"batch_size": 16, "lr": 3e-3}
VARIANTS: dict[str, dict] = {
    "bs64-lr2e-3": {},
    "bs64-lr5e-3": {"lr": 5e-3},
    "bs64-lr1e-2": {"lr": 1e-2},
    "bs32-lr2e-3": {"batch_size": 32},
    "bs16-lr2e-3": {"batch_size": 16},
    "bs8-lr2e-3": {"batch_size": 8},
    "bs16-lr2e-3-n1": {"batch_size": 16, "sandwich_n": 1},
    "bs16-lr3e-3": {**BS16},
    "bs16-lr5e-3": {"batch_size": 16, "lr": 5e-3},
    "bs16-lr3e-3-10ep": {**BS16, "epochs": 10},
    "bs16-lr3e-3-15ep": {**BS16, "epochs": 15},
    "bs16-lr3e-3-n3": {**BS16, "sandwich_n": 3},
    "bs16-lr3e-3-kd1": {**BS16, "distill_weight": 1.0},
    "bs16-lr3e-3-kd0.25": {**BS16, "distill_weight": 0.25},
    "bs16-lr3e-3-nokd": {**BS16, "distill": "none"},
    "bs16-lr3e-3-kd0.25-15ep": {**BS16, "distill_weight": 0.25, "epochs": 15},  # the new defaults
}
SWEPT = ("epochs", "batch_size", "lr", "sandwich_n", "distill", "distill_weight")


def variant_config(overrides: dict) -> TrainConfig:
    return TrainConfig(
        **{
            "space": SPACE,
            "data": "digits",
            "threads": 1,
            "eval_every": 100,
            **BEFORE,
            **overrides,
        }
    )


def ensure_trained(run_dir: Path, config: TrainConfig) -> dict:
    """Train (or resume, or reuse) one variant; returns its ``summary.json``."""
    paths = RunPaths(run_dir)
    if not run_finished(run_dir, config):
        train(config, run_dir, resume=paths.config.exists(), progress=False, echo=True)
    return json.loads(paths.summary.read_text())


def subnets() -> tuple[list, list]:
    """The 7 subnets of the supernet_digits benchmark and 10 more random ones."""
    return [a for _, a in pick_archs(0, 5)], [a for _, a in pick_archs(1, 10)[2:]]


def evaluate_variant(run_dir: Path, main: list, extra: list) -> tuple[list, list, int]:
    """Accuracies of ``main`` and ``extra`` with the run's weights, and its training-set size.
    Kept in ``run_dir/sweep_eval.json`` (keyed by architecture and checkpoint time) for reuse."""
    cache_path = run_dir / "sweep_eval.json"
    stamp = RunPaths(run_dir).checkpoint.stat().st_mtime_ns
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if cache.get("checkpoint_mtime_ns") != stamp:
        cache = {"checkpoint_mtime_ns": stamp, "acc": {}}
    run = None

    def acc(arch) -> float:
        nonlocal run
        key = arch.to_str()
        if key not in cache["acc"]:
            run = run or load_supernet(run_dir)
            cache["acc"][key] = evaluate_subnet(run.supernet, arch, run.splits, recal_batches=8)[
                "acc"
            ]
        return cache["acc"][key]

    main_acc, extra_acc = [acc(a) for a in main], [acc(a) for a in extra]
    if run is not None:
        cache["n_train"] = len(run.splits.train)
        atomic_write_json(cache_path, cache)
    return main_acc, extra_acc, cache["n_train"]


def build_report(rows: list[dict], command: str) -> str:
    best = max(rows, key=lambda r: r["mean17"])
    lines = [
        "# Supernet training settings on digits: what moves inherited accuracy",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Space `{SPACE}`, data `digits` (1258 train / 269 val images; one image = 0.37 points), "
        "schedule `sandwich`. Each variant is the settings `nas train` had before this sweep "
        f"({', '.join(f'{k} {v:g}' for k, v in BEFORE.items())}) plus the changes its name "
        "and row show; every other setting is the default of `nas train` (listed in "
        "[supernet_digits.md](supernet_digits.md)). The last row is the new default. "
        f"Machine: {cpu_model_name()}, "
        f"{os.cpu_count()} logical CPUs shared with other users, torch {torch.__version__}, one "
        "thread per run (two runs at a time, so CPU times include some contention).",
        "",
        "Accuracy: validation split, inherited weights, BN recalibrated on 8 batches of 64. "
        "`mean 7` is over the 7 subnets of the supernet_digits benchmark (largest, smallest, "
        "5 random); `mean 10` over 10 more random subnets (architecture seed 1); `mean 17` "
        "over all of them. Each row is one training run (seed 0): differences below about one "
        "point are within the noise of one seed and 269 validation images.",
        "",
        "| variant | " + " | ".join(SWEPT) + " | steps | train CPU (s) | largest | smallest "
        "| mean 7 | mean 10 | mean 17 |",
        "| --- | " + " | ".join("---:" for _ in SWEPT) + " | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for r in rows:
        c = r["config"]
        cells = " | ".join(f"{c[k]:g}" if isinstance(c[k], float) else str(c[k]) for k in SWEPT)
        bold = "**" if r is best else ""
        lines.append(
            f"| {r['name']} | {cells} | {r['steps']} | {r['train_cpu_s']:.0f} | "
            f"{100 * r['main'][0]:.2f} | {100 * r['main'][1]:.2f} | "
            f"{100 * np.mean(r['main']):.2f} | {100 * np.mean(r['extra']):.2f} | "
            f"{bold}{100 * r['mean17']:.2f}{bold} |"
        )
    lines += [
        "",
        "`steps` = optimizer steps (epochs x batches per epoch); `train CPU` excludes the final "
        "validation.",
        "",
        "Reading: the number of optimizer steps matters most. At the same epochs, batch 16 "
        "instead of 64 (4x the steps for about 1.4x the CPU) lifts the mean of 17 subnets by "
        "about 8 points; batch 8 (at lr 2e-3) gains another point over batch 16 at the same lr but "
        "not over batch 16 at 3e-3. AdamW's peak learning rate has a narrow optimum "
        "(3e-3 at batch 16; 5e-3 and above destabilises the all-attention largest subnet). "
        "Pure distillation (weight 1) from the in-place teacher, which is still learning, costs "
        "8 points; weight 0.25, 0.5 or labels only are within noise of each other. A third "
        "random subnet per step costs 30% more CPU and gains nothing; 15 epochs instead of 12 "
        "gain about one point.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", default="results/bench-supernet-sweep")
    p.add_argument("--out", default="results/benchmarks/supernet_sweep.md")
    p.add_argument("--only", default="", help="comma list of variants to train now (no report)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    only = [v.strip() for v in args.only.split(",") if v.strip()]
    unknown = sorted(set(only) - set(VARIANTS))
    if unknown:
        raise UserError(f"--only {unknown}: expected variants among {sorted(VARIANTS)}")
    runs = Path(args.runs_dir)
    for name in only or VARIANTS:
        ensure_trained(runs / name, variant_config(VARIANTS[name]))
    if only:
        print(f"trained {only}; run again without --only to write the report")
        return 0
    main_archs, extra_archs = subnets()
    rows = []
    for name, overrides in VARIANTS.items():
        config = variant_config(overrides)
        summary = ensure_trained(runs / name, config)
        main_acc, extra_acc, n_train = evaluate_variant(runs / name, main_archs, extra_archs)
        rows.append(
            {
                "name": name,
                "config": config.to_dict(),
                "steps": config.epochs * (n_train // config.batch_size),
                "train_cpu_s": summary["train_cpu_s"],
                "main": main_acc,
                "extra": extra_acc,
                "mean17": float(np.mean(main_acc + extra_acc)),
            }
        )
        print(f"{name}: mean 17 = {100 * rows[-1]['mean17']:.2f}", file=sys.stderr)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m nas.benchmarks.supernet_sweep", *given])
    atomic_write_text(Path(args.out), build_report(rows, command))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: once-for-all training of hybrid-cifar on digits; inherited vs from-scratch accuracy.

Reproduce::

    .venv/bin/python -m nas.benchmarks.supernet_digits

Trains the supernet with each schedule (sandwich, progressive, delayed) using ``nas train``'s
default settings, and the same 7 architectures (largest, smallest, 5 random) from scratch with the
same settings and epoch budget (schedule ``fixed``: only that subnet's weights are used, no
distillation). Every accuracy is on the validation split, BN recalibrated on training batches
(:func:`nas.train.evaluate_subnet`). Each training run is a normal run folder under
``--runs-dir``; a finished run is reused and an unfinished one resumed, so the benchmark can be
run in parts (``--only sandwich`` ...) and then once more to write the report
(``results/benchmarks/supernet_digits.md`` and ``.csv``). Runs with one torch thread by default.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.arch import Architecture
from nas.costs import costs
from nas.errors import UserError
from nas.io import atomic_write_json, atomic_write_text
from nas.latency.environment import cpu_model_name
from nas.spaces import load_space
from nas.train import TrainConfig, evaluate_subnet, load_supernet, step_archs, train
from nas.train.loop import SAMPLER_STREAM
from nas.train.rundir import RunPaths

SCHEDULES = ("sandwich", "progressive", "delayed")
BUDGET_S = 300.0
SPACE = "hybrid-cifar"


def pick_archs(seed: int, n_random: int) -> list[tuple[str, Architecture]]:
    space = load_space(SPACE)
    rng = np.random.default_rng(seed)
    out = [("largest", space.largest()), ("smallest", space.smallest())]
    out += [(f"random {i + 1}", space.sample(rng)) for i in range(n_random)]
    return out


def run_finished(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a complete run of ``config`` (threads and device may differ)."""
    paths = RunPaths(run_dir)
    if not paths.summary.is_file() or not paths.config.is_file():
        return False
    saved = TrainConfig.from_dict(json.loads(paths.config.read_text())["train"])
    return not saved.differences(config) and json.loads(paths.summary.read_text())["complete"]


def _trained_threads(run_dir: Path) -> int | None:
    """The torch threads the run was trained with, from its ``config.json`` (None: all cores)."""
    return json.loads(RunPaths(run_dir).config.read_text())["train"].get("threads")


def ensure_run(run_dir: Path, config: TrainConfig, *, progress: bool) -> dict:
    """Train (or resume, or reuse) one run; returns its timing record (``bench.json``)."""
    record_path = run_dir / "bench.json"
    if run_finished(run_dir, config) and record_path.is_file():
        return {**json.loads(record_path.read_text()), "threads": _trained_threads(run_dir)}
    resume = RunPaths(run_dir).config.exists()
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(config, run_dir, resume=resume, progress=progress, echo=True)
    summary = json.loads(RunPaths(run_dir).summary.read_text())
    record = {
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu_start,
        "resumed_from": result.resumed_from,
        "epochs": len(result.history),
        "threads": _trained_threads(run_dir),
        **{k: summary[k] for k in ("train_s", "train_cpu_s", "eval_s", "eval_cpu_s")},
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    atomic_write_json(record_path, record)
    return record


def slot_updates(config: TrainConfig, steps_per_epoch: int) -> dict[tuple[int, int, str], int]:
    """How many steps trained each (stage, layer slot, kind): a replay of the run's seeded subnet
    sampler (the schedule is a pure function of it), no training needed."""
    space = load_space(config.space)
    sampler = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(SAMPLER_STREAM,))
    )
    counts: dict[tuple[int, int, str], int] = {}
    for epoch in range(config.epochs):
        for _ in range(steps_per_epoch):
            archs = step_archs(
                config.schedule,
                space,
                epoch,
                config.epochs,
                sampler,
                sandwich_n=config.sandwich_n,
                delay_fraction=config.delay_fraction,
                phase_fractions=config.phase_fractions,
            )
            for arch in archs:
                for i, stage in enumerate(arch.stages):
                    for j, layer in enumerate(stage.layers):
                        key = (i, j, layer.kind)
                        counts[key] = counts.get(key, 0) + 1
    return counts


def coverage_lines(base: TrainConfig, steps_per_epoch: int, schedules: list[str]) -> list[str]:
    space = load_space(SPACE)
    hybrid = [i for i, st in enumerate(space.stages) if len(st.kinds) > 1]
    width = max(space.stages[i].max_depth for i in hybrid)
    lines = [
        "## How often each layer slot was trained",
        "",
        "Subnet-steps that trained each (stage, layer slot, kind) of the hybrid stages, counted by "
        f"replaying each run's seeded sampler ({base.epochs} epochs x {steps_per_epoch} steps). "
        "Weights that few subnets use stay under-trained: random subnets are built from them.",
        "",
        "| schedule | stage | kind | " + " | ".join(f"slot {j + 1}" for j in range(width)) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in range(width)) + " |",
    ]
    for schedule in schedules:
        counts = slot_updates(replace(base, schedule=schedule), steps_per_epoch)
        for i in hybrid:
            st = space.stages[i]
            for kind in st.kinds:
                cells = [
                    str(counts.get((i, j, kind), 0)) if j < st.max_depth else ""
                    for j in range(width)
                ]
                lines.append(f"| {schedule} | {st.name} | {kind} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _fmt_acc(x: float) -> str:
    return f"{100 * x:.2f}"


def build_report(
    *,
    base: TrainConfig,
    archs: list[tuple[str, Architecture]],
    timing: dict[str, dict],
    acc: dict[str, list[float]],
    steps_per_epoch: int,
    sizes: dict[str, int],
    runs_dir: str,
    command: str,
    threads: int,
) -> tuple[str, str]:
    space = load_space(SPACE)
    n_val = sizes["val"]
    scheds = [k for k in SCHEDULES if k in acc]
    cols = ["scratch", *scheds]
    lines = [
        "# Once-for-all supernet on digits: inherited vs from-scratch accuracy",
        "",
        f"Reproduce: `{command}`",
        "",
        f"The command trains {len(timing)} runs into `{runs_dir}/` (a finished "
        "run is reused, an unfinished one resumed; `--only NAME` trains a part), "
        f"{sum(r['train_cpu_s'] + r['eval_cpu_s'] for r in timing.values()) / 60:.0f} CPU-minutes "
        "in all here, then evaluates every subnet. A reused run keeps the thread count it was "
        "trained with (the timing table shows it): here each run was trained by "
        "`--only NAME [--threads 2]` first, then this command wrote the report.",
        "",
        f"Space `{SPACE}` (hash {space.hash()}), data `digits` (scikit-learn, 8x8 images resized "
        f"to each subnet's resolution; {sizes['train']} train / {sizes['val']} val / "
        f"{sizes['test']} test images, split seed "
        f"{base.data_seed}). Machine: {cpu_model_name()}, {os.cpu_count()} logical CPUs shared with "
        f"other users, torch {torch.__version__}; torch threads per run as in the timing table "
        f"(`--threads`, {threads} for the command above).",
        "",
        "Settings (the defaults of `nas train` unless the command above sets them): "
        f"{base.epochs} epochs, batch {base.batch_size}, {base.optimizer} lr {base.lr:g} "
        f"(weight decay {base.weight_decay:g}), {base.warmup_epochs:g} warm-up epoch then cosine, "
        f"label smoothing {base.label_smoothing:g}, gradient clip {base.grad_clip:g}, "
        f"translation augmentation {'on' if base.augment else 'off'}, sandwich rule with "
        f"n = {base.sandwich_n} random subnets, in-place distillation `{base.distill}` "
        f"(T = {base.temperature:g}, weight {base.distill_weight:g} against "
        f"{1 - base.distill_weight:g} for the labels), residual branches zero-initialised "
        f"({'on' if base.zero_init_residual else 'off'}), channels-last inputs, seed "
        f"{base.seed}. Delayed: largest "
        f"only for the first {base.delay_fraction:g} of the epochs. Progressive: phases "
        f"largest / operator (resolution, kernel, SE, layer kind) / depth / width start at "
        f"{', '.join(f'{f:g}' for f in (0.0, *base.phase_fractions))} of the epochs. "
        "Scratch: the same settings and epochs, schedule `fixed` (that subnet only, labels only).",
        "",
        f"Accuracy: validation split ({n_val} images; one image = {100 / n_val:.2f} points), BN "
        f"statistics recalibrated on {base.recal_batches} training batches of 64 for every entry "
        "(scratch included). The test split is not used.",
        "",
        "## Training time",
        "",
        "Wall time is what a user waits; CPU time is the process's own CPU time summed over its "
        "threads (with one thread: what the run would take on an idle core; other users' "
        "processes stretch the wall time but not the CPU time). The 1-minute load average "
        "before and after each run shows how many runnable processes shared the 2 cores.",
        "",
        "| run | threads | epochs | train wall (s) | wall s / epoch | train CPU (s) | CPU s / epoch "
        "| validation wall / CPU (s) | total wall / CPU (s) | within 5 min: wall / core-s "
        "| load avg before / after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | --- |",
    ]
    for name, rec in timing.items():
        e, threads_used = rec["epochs"], rec["threads"] or os.cpu_count() or 1
        wall, cpu = rec["train_s"] + rec["eval_s"], rec["train_cpu_s"] + rec["eval_cpu_s"]
        cpu_ok = cpu <= BUDGET_S * threads_used  # the core-seconds its threads get in 5 minutes
        lines.append(
            f"| {name} | {threads_used} | {e} | {rec['train_s']:.0f} | {rec['train_s'] / e:.1f} | "
            f"{rec['train_cpu_s']:.0f} | {rec['train_cpu_s'] / e:.1f} | "
            f"{rec['eval_s']:.0f} / {rec['eval_cpu_s']:.0f} | "
            f"{wall:.0f} / {cpu:.0f} | "
            f"{'yes' if wall <= BUDGET_S else 'no'} / {'yes' if cpu_ok else 'no'} | "
            f"{rec['loadavg_before'][0]:.1f} / {rec['loadavg_after'][0]:.1f}"
            + (f" (resumed after epoch {rec['resumed_from']})" if rec.get("resumed_from") else "")
            + " |"
        )
    lines += [
        "",
        "Total = training + the per-epoch validation of the largest and smallest subnets (each "
        "BN recalibrated), over all epochs of the run. `core-s`: the total CPU time is within "
        "the 300 core-seconds per thread that 5 minutes give.",
        "",
        "## Validation accuracy (%)",
        "",
        "| subnet | MMACs | params (k) | scratch | " + " | ".join(scheds) + " | architecture |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in scheds) + " | --- |",
    ]
    for i, (name, arch) in enumerate(archs):
        c = costs(space, arch)
        vals = " | ".join(_fmt_acc(acc[k][i]) for k in cols)
        lines.append(
            f"| {name} | {c.macs / 1e6:.1f} | {c.params / 1e3:.0f} | {vals} | `{arch.to_str()}` |"
        )
    from scipy.stats import kendalltau

    mean = {k: float(np.mean(acc[k])) for k in cols}
    tau = {k: float(kendalltau(acc[k], acc["scratch"]).statistic) for k in scheds}
    gap = {k: mean[k] - mean["scratch"] for k in scheds}
    spread = {k: acc[k][0] - acc[k][1] for k in cols}
    lines += [
        "| **mean** | | | " + " | ".join(f"**{_fmt_acc(mean[k])}**" for k in cols) + " | |",
        "| mean inherited - scratch | | | | "
        + " | ".join(f"{100 * gap[k]:+.2f}" for k in scheds)
        + " | |",
        "| largest - smallest | | | "
        + " | ".join(f"{100 * spread[k]:+.2f}" for k in cols)
        + " | |",
        "| Kendall tau with scratch | | | | "
        + " | ".join(f"{tau[k]:.2f}" for k in scheds)
        + " | |",
        "",
        "## Against the targets",
        "",
    ]
    for k in scheds:
        ok = gap[k] >= -0.015
        lines.append(
            f"- {k}: inherited weights average {_fmt_acc(mean[k])}% vs {_fmt_acc(mean['scratch'])}% "
            f"from scratch ({100 * gap[k]:+.2f} points; target: no worse than -1.50) -> "
            f"{'met' if ok else 'NOT met'}; largest - smallest spread {100 * spread[k]:+.2f} points; "
            f"rank agreement with scratch over the {len(archs)} subnets: Kendall tau {tau[k]:.2f}."
        )
    lo, hi = min(acc["scratch"]), max(acc["scratch"])
    lines.append(
        f"- ranking: the scratch accuracies span only {100 * (hi - lo):.2f} points (about "
        f"{round((hi - lo) * n_val)} of {n_val} validation images), so a rank correlation over "
        f"these {len(archs)} subnets mostly measures noise; the absolute gap is the number "
        "that matters here."
    )
    for k in scheds:
        rec = timing.get(k)
        if rec:
            lines.append(
                f"- time, {k}: {rec['train_s'] + rec['eval_s']:.0f} s of wall time "
                f"(budget {BUDGET_S:.0f} s) with {rec['threads'] or os.cpu_count()} torch thread(s): "
                f"{rec['train_s']:.0f} s training + {rec['eval_s']:.0f} s per-epoch validation, "
                f"{rec['train_cpu_s'] + rec['eval_cpu_s']:.0f} s of CPU; load average of "
                f"{rec['loadavg_before'][0]:.1f} -> {rec['loadavg_after'][0]:.1f} on 2 cores."
            )
    lines.append("")
    lines += coverage_lines(base, steps_per_epoch, scheds)
    rows = []
    for i, (name, arch) in enumerate(archs):
        c = costs(space, arch)
        rows.append(
            {
                "subnet": name,
                "arch": arch.to_str(),
                "macs": c.macs,
                "params": c.params,
                **{f"val_acc_{k}": acc[k][i] for k in cols},
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return "\n".join(lines) + "\n", buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", default="results/bench-supernet-digits")
    p.add_argument("--out", default="results/benchmarks/supernet_digits.md")
    p.add_argument(
        "--only",
        default="",
        help="comma list of runs to train now: "
        "sandwich,progressive,delayed,scratch (default: all, then the report)",
    )
    p.add_argument("--epochs", type=int, default=None, help="default: nas train's default")
    p.add_argument("--random", type=int, default=5, help="random subnets besides the extremes")
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the random subnets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--schedules", default=",".join(SCHEDULES), help="comma list of schedules to compare"
    )
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = TrainConfig(space=SPACE, data="digits", threads=args.threads)
    if args.epochs is not None:
        base = replace(base, epochs=args.epochs)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    if not schedules or set(schedules) - set(SCHEDULES):
        raise UserError(f"--schedules {args.schedules!r}: expected a comma list of {SCHEDULES}")
    unknown = only - {*SCHEDULES, "scratch"}
    if unknown:
        raise UserError(
            f"--only {sorted(unknown)}: expected sandwich, progressive, delayed, scratch"
        )
    runs = Path(args.runs_dir)
    archs = pick_archs(args.arch_seed, args.random)
    progress = not args.no_progress
    timing: dict[str, dict] = {}
    for schedule in schedules:
        if not only or schedule in only:
            timing[schedule] = ensure_run(
                runs / schedule, replace(base, schedule=schedule), progress=progress
            )
    scratch_cfgs = [
        replace(base, schedule="fixed", arch=arch.to_str(), sandwich_n=0) for _, arch in archs
    ]
    if not only or "scratch" in only:
        for (name, arch), cfg in zip(archs, scratch_cfgs):
            print(f"scratch: {name} {arch}", file=sys.stderr)
            timing[f"scratch {name}"] = ensure_run(
                runs / f"scratch-{arch.arch_id()}", cfg, progress=progress
            )
    if only:
        print(f"trained {sorted(only)}; run again without --only to write the report")
        return 0
    acc: dict[str, list[float]] = {}
    for schedule in schedules:
        run = load_supernet(runs / schedule)
        acc[schedule] = [
            evaluate_subnet(run.supernet, arch, run.splits, recal_batches=base.recal_batches)["acc"]
            for _, arch in archs
        ]
    acc["scratch"] = []
    for _, arch in archs:
        run = load_supernet(runs / f"scratch-{arch.arch_id()}")
        acc["scratch"].append(
            evaluate_subnet(run.supernet, arch, run.splits, recal_batches=base.recal_batches)["acc"]
        )
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-progress"]
    command = " ".join(
        [".venv/bin/python -m nas.benchmarks.supernet_digits", *map(shlex.quote, given)]
    )
    md, table = build_report(
        base=base,
        archs=archs,
        timing=timing,
        acc=acc,
        steps_per_epoch=len(run.splits.train) // base.batch_size,
        sizes={k: len(getattr(run.splits, k)) for k in ("train", "val", "test")},
        runs_dir=str(runs),
        command=command,
        threads=args.threads,
    )
    out = Path(args.out)
    atomic_write_text(out, md)
    atomic_write_text(out.with_suffix(".csv"), table)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

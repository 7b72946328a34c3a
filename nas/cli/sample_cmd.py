"""``nas sample``: measure the validation accuracy of many subnets of a trained supernet."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nas.cli.options import deprecated_alias
from nas.errors import UserError
from nas.sample.draw import DEFAULT_BINS, STRATEGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="measure validation accuracy of many subnets (BN recalibrated), resumable",
        description=(
            "Draw N distinct subnets of a trained supernet's space, recalibrate each one's "
            "BatchNorm on training batches, and measure its validation accuracy and loss (never "
            "the test split). Writes one CSV row per subnet (arch_id, arch, arch_json, macs, "
            "flops, params, memory, latency_ms, val_acc, val_loss, seconds), each flushed to disk "
            "as it is measured, plus a JSON sidecar naming the space, supernet and settings. "
            "Rerunning the same command skips the subnets already in the file, so an interrupted "
            "run resumes; a file measured on another space or supernet is refused."
        ),
    )
    p.add_argument("--run", required=True, help="run folder written by 'nas train'")
    p.add_argument("--n", type=int, required=True, help="number of distinct subnets to draw")
    p.add_argument("--out", required=True, help="samples CSV (its sidecar: same name, .json)")
    p.add_argument("--strategy", choices=STRATEGIES, default="uniform",
                   help="uniform (space.sample) or flops (equal counts per log-FLOPs bin, "
                        "largest and smallest included); default uniform")
    p.add_argument("--bins", type=int, default=DEFAULT_BINS,
                   help=f"flops strategy: number of log-FLOPs bins ({DEFAULT_BINS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn list (0)")
    p.add_argument("--table", dest="lut", default=None,
                   help="latency table (CSV of 'nas profile'); adds predicted latency_ms")
    p.add_argument("--workers", type=int, default=1,
                   help="parallel evaluations: local processes, or Ray CPUs with --ray-address local")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per evaluation (1); results are identical for any "
                        "--workers at equal --threads")
    p.add_argument("--ray-address", default=None,
                   help="run as Ray tasks: 'local' (a new local instance), 'auto' or HOST:PORT "
                        "(see docs/ray.md)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--recal-batches", type=int, default=8,
                   help="BN recalibration batches per subnet (8)")
    p.add_argument("--recal-batch-size", type=int, default=64, help="their batch size (64)")
    p.add_argument("--eval-seed", type=int, default=0,
                   help="base seed of the per-subnet recalibration batches (0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true",
                   help="start even when the memory estimate exceeds the memory available here")
    deprecated_alias(p, "sample", "--lut", "--table", dest="lut")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.locks import output_lock

    with output_lock(args.out, folder=False, command="nas sample"):
        return _run_locked(args)


def check_sampling_memory(args: argparse.Namespace) -> None:
    """Refuse before loading the run when its supernet, once per worker, cannot fit here; a run
    folder without a readable space is left to sample_subnets to report."""
    from nas import budget
    from nas.train.rundir import RunPaths, read_space

    try:
        space = read_space(RunPaths(Path(args.run)).space)
    except UserError:
        return
    estimate = budget.sampling_estimate(space, args.recal_batch_size, max(1, args.workers))
    budget.check_memory(estimate, force=args.force)


def _run_locked(args: argparse.Namespace) -> int:
    from nas.sample.measure import EvalSettings, sample_subnets

    check_sampling_memory(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = EvalSettings(
        recal_batches=args.recal_batches,
        recal_batch_size=args.recal_batch_size,
        seed=args.eval_seed,
        threads=args.threads,
    )
    result = sample_subnets(
        args.run,
        args.out,
        n=args.n,
        strategy=args.strategy,
        seed=args.seed,
        bins=args.bins,
        lut=args.lut,
        settings=settings,
        workers=args.workers,
        ray_address=args.ray_address,
        device=args.device,
        progress=not args.no_progress,
    )
    print(
        f"{result.path}: measured {result.measured}, skipped {result.skipped} already measured "
        f"({result.total_rows} rows in the file) in {result.seconds:.1f} s"
    )
    return 0

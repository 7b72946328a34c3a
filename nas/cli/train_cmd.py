"""``nas train``: train a once-for-all supernet into a run folder (or resume one)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from nas.arch import Architecture
from nas.errors import UserError
from nas.train.config import DISTILL, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig

# CLI option -> TrainConfig field (every option defaults to None: "not given", so that --resume
# can start from the run's saved settings and only override what is given).
_OPTIONS: dict[str, dict] = {
    "space": {"help": "search space: a shipped name (hybrid-cifar, ...) or a YAML path"},
    "data": {
        "help": "data spec: digits (default), fashion-mnist[:PATH], idx:PATH, cifar10:PATH, "
        "cifar100:PATH, folder:PATH, npz:PATH"
    },
    "data_seed": {"type": int, "help": "seed of the train/val/test split (default 0)"},
    "epochs": {"type": int, "help": "training epochs (default 15)"},
    "batch_size": {"type": int, "help": "training batch size (default 16)"},
    "schedule": {"choices": SCHEDULES, "help": "which subnets each step trains (default sandwich)"},
    "sandwich_n": {"type": int, "help": "random subnets per step besides largest/smallest (2)"},
    "delay_fraction": {"type": float, "help": "delayed: fraction of epochs on the largest (0.5)"},
    "phase_fractions": {
        "type": lambda s: tuple(float(v) for v in s.split(",")),
        "help": "progressive: where the operator,depth,width phases start (0.25,0.5,0.75)",
    },
    "arch": {
        "help": "fixed: the one architecture to train (short string, JSON, or a JSON file)",
    },
    "optimizer": {"choices": OPTIMIZERS, "help": "adamw (default) or sgd"},
    "lr": {"type": float, "help": "peak learning rate (default 3e-3 adamw, 0.05 sgd)"},
    "weight_decay": {"type": float, "help": "weight decay (default 0.05 adamw, 4e-5 sgd)"},
    "warmup_epochs": {"type": float, "help": "linear warm-up epochs before the cosine (1)"},
    "label_smoothing": {"type": float, "help": "label smoothing of the largest's loss (0.1)"},
    "grad_clip": {"type": float, "help": "gradient-norm clip, 0 for none (5.0)"},
    "distill": {"choices": DISTILL, "help": "in-place distillation loss (soft_ce)"},
    "temperature": {"type": float, "help": "distillation temperature (1.0)"},
    "distill_weight": {
        "type": float,
        "help": "weight of distillation vs labels for the other subnets (0.25)",
    },
    "augment": {
        "action": argparse.BooleanOptionalAction,
        "help": "random translation of training images (default on)",
    },
    "zero_init_residual": {
        "action": argparse.BooleanOptionalAction,
        "help": "start every residual branch at zero, as BigNAS (default on)",
    },
    "channels_last": {
        "action": argparse.BooleanOptionalAction,
        "help": "channels-last input layout, 2-3x faster CPU convolutions (default on)",
    },
    "seed": {"type": int, "help": "seed of init, dropout, subnet sampling and batches (0)"},
    "device": {"help": "cpu (default), cuda or cuda:N"},
    "precision": {
        "choices": PRECISIONS,
        "help": "fp32 (default), or bf16: forward passes and losses under bfloat16 autocast",
    },
    "threads": {"type": int, "help": "torch CPU threads (default: torch's choice)"},
    "eval_every": {"type": int, "help": "validate largest/smallest every N epochs (1)"},
    "recal_batches": {"type": int, "help": "BN recalibration batches before validation (8)"},
}


def arch_argument(text: str) -> str:
    """An architecture given as a short string, JSON text or a JSON file -> its short string."""
    path = Path(text)
    if len(text) < 4096 and path.suffix == ".json" and path.is_file():
        text = path.read_text()
    if text.strip().startswith("{"):
        return Architecture.from_json(text).to_str()
    return Architecture.from_str(text).to_str()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a once-for-all supernet (sandwich rule, in-place distillation)",
        description=(
            "Train a weight-sharing supernet over a search space. Writes config.json, space.yaml, "
            "checkpoint.pt (each epoch, atomic), metrics.csv, train.log and summary.json into "
            "--out. With --resume, continue the run in --out from its last checkpoint, with its "
            "saved settings (options given again must agree)."
        ),
    )
    p.add_argument("--out", required=True, help="run folder, e.g. results/my-run/")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true",
                   help="start even when the memory estimate exceeds the memory available here")
    # Data-parallel training over Ray Train workers (nas.train.distributed); not a TrainConfig
    # setting: it decides where the run executes, and a run may be resumed with other workers.
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="data-parallel Ray Train workers (default 1: this process, no Ray); --batch-size "
        "stays the global batch, split across the workers",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray for --workers: 'local' (default with --workers > 1: a new local instance of "
        "--workers CPUs), 'auto' or HOST:PORT (a cluster; --out must be shared by all nodes). "
        "See docs/ray.md",
    )
    for name, kw in _OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kw)
    p.add_argument("--amp", dest="precision", action="store_const", const="bf16", default=None,
                   help="mixed precision: the same as --precision bf16")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig for ``args``: the run's saved settings (with --resume) or the defaults,
    overridden by the options given."""
    from nas.train.rundir import RunPaths, read_config

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name in _OPTIONS}
    given = {k: v for k, v in given.items() if v is not None}
    if "arch" in given:
        given["arch"] = arch_argument(given["arch"])
    paths = RunPaths(Path(args.out))
    if args.resume and paths.config.exists():
        saved, _ = read_config(paths.root)
        base = saved.to_dict()
        if given.get("optimizer", base["optimizer"]) != base["optimizer"]:
            base.pop("lr"), base.pop("weight_decay")
        return TrainConfig.from_dict({**base, **given}, where="--resume")
    if "space" not in given:
        raise UserError("--space is required (a shipped space name or a YAML path)")
    return TrainConfig(**given)


def run(args: argparse.Namespace) -> int:
    from nas.locks import output_lock

    with output_lock(args.out, folder=True, command="nas train"):
        return _run_locked(args)


def check_training_memory(config: TrainConfig, *, force: bool) -> None:
    """Refuse a supernet that cannot fit here, before building it (nas.budget); a space that does
    not load is left to train() to report (or, with --resume, to read from the run)."""
    from nas import budget
    from nas.spaces import load_space

    try:
        space = load_space(config.space)
    except UserError:
        return
    estimate = budget.training_estimate(space, config.batch_size, config.optimizer)
    budget.check_memory(estimate, force=force)


def _run_locked(args: argparse.Namespace) -> int:
    from nas.train import train

    config = build_config(args)
    check_training_memory(config, force=args.force)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected a positive number of workers")
    if args.ray_address is not None or (args.workers or 1) > 1:
        return _run_distributed(args, config)
    result = train(config, args.out, resume=args.resume, progress=not args.no_progress, echo=True)
    last = result.history[-1] if result.history else {}
    accs = {
        k[len("val_acc_") :]: v for k, v in last.items() if k.startswith("val_acc_") and v != ""
    }
    summary = ", ".join(f"{k} {100 * v:.2f}%" for k, v in accs.items())
    print(
        f"{result.run_dir}: {len(result.history)} epochs"
        + (f"; validation accuracy {summary}" if summary else ""),
        file=sys.stdout,
    )
    return 0


def _run_distributed(args: argparse.Namespace, config: TrainConfig) -> int:
    """``--workers`` / ``--ray-address``: the same loop, data-parallel over Ray Train workers."""
    from nas.train.distributed import train_distributed

    workers = 1 if args.workers is None else args.workers
    print(
        f"training on {workers} Ray Train worker(s) ({args.ray_address or 'local'}); "
        f"progress: {Path(args.out) / 'train.log'}",
        file=sys.stderr,
    )
    result = train_distributed(
        config, args.out, workers=workers, address=args.ray_address, resume=args.resume
    )
    last = result.history[-1] if result.history else {}
    accs = {
        k[len("val_acc_") :]: v for k, v in last.items() if k.startswith("val_acc_") and v != ""
    }
    summary = ", ".join(f"{k} {100 * v:.2f}%" for k, v in accs.items())
    print(
        f"{result.run_dir}: {len(result.history)} epochs on {workers} workers in "
        f"{result.wall_s:.1f}s" + (f"; validation accuracy {summary}" if summary else ""),
        file=sys.stdout,
    )
    return 0

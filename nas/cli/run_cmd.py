"""``nas run``: the whole job on the embedded default data (see :mod:`nas.pipeline`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nas.cli import types as argtypes
from nas.errors import UserError
from nas.locks import output_lock
from nas.pipeline import PRESETS, STAGES, Pipeline, RunPlan
from nas.report import summary_rows

# a data spec of this kind without --preset selects the preset of the same name
DATA_PRESETS = {"fashion-mnist": "fashion-mnist"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="train, profile, sample, fit, search, export and verify: the whole job",
        description="Train the supernet on digits, profile this CPU, measure subnets, fit a "
        "predictor, search under latency and memory bounds derived from the space, export the "
        "front's best three, re-measure them on the device and write report.md (beside the best "
        "of random search at the same number of measured subnets). Rerunning the same command "
        "continues where it stopped. Presets: default (hybrid-cifar on digits, ~11 min), quick "
        "(hybrid-tiny, ~1 min), fashion-mnist (hybrid-fmnist on Fashion-MNIST under 100K "
        "parameters, exports fine-tuned 10 epochs, 95 min measured on 2 shared cores; chosen by --data fashion-mnist).",
    )
    p.add_argument("--out", help="run folder (default results/run-<date>-<time>)")
    p.add_argument(
        "--quick", action="store_true", help="a small run (hybrid-tiny, few epochs): minutes"
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="settings to start from (default: "
        "'quick' with --quick, the --data kind's preset, else 'default')",
    )
    p.add_argument("--space", help="search space (default: the preset's)")
    p.add_argument("--data", help="data spec (default: the preset's; digits for 'default')")
    p.add_argument("--epochs", type=argtypes.positive_int, help="supernet training epochs")
    p.add_argument("--samples", type=argtypes.positive_int, help="subnets measured for the predictor")
    p.add_argument("--budget", type=argtypes.positive_int, help="predictor evaluations of the search")
    p.add_argument(
        "--device", choices=("onnxruntime", "cpu"), help="latency runtime (default onnxruntime)"
    )
    p.add_argument("--latency-bound", type=argtypes.positive_float, help="latency bound in ms (default: derived)")
    p.add_argument(
        "--params-bound",
        type=argtypes.positive_float,
        help="parameter-count bound (default: the preset's; none for 'default')",
    )
    p.add_argument(
        "--finetune",
        type=argtypes.non_negative_int,
        metavar="EPOCHS",
        help="fine-tune each exported model "
        "EPOCHS epochs from its inherited weights (default: the preset's; 0: none)",
    )
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument(
        "--workers",
        type=argtypes.parallel,
        help="local processes for measuring subnets (default: the preset's, 1 for 'default')",
    )
    p.add_argument(
        "--ray-address", help="run the fan-out stages on a Ray cluster (auto or host:port)"
    )
    p.add_argument("--rerun", choices=STAGES, help="redo this stage and every later one")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def plan_from_args(args: argparse.Namespace) -> RunPlan:
    overrides = {
        k: v
        for k, v in {
            "space": args.space,
            "data": args.data,
            "epochs": args.epochs,
            "samples": args.samples,
            "budget": args.budget,
            "device": args.device,
            "latency_bound_ms": args.latency_bound,
            "params_bound": args.params_bound,
            "finetune_epochs": args.finetune,
            "workers": args.workers,
        }.items()
        if v is not None
    }
    overrides.update(seed=args.seed, ray_address=args.ray_address)
    return RunPlan.preset(preset_name(args), **overrides)


def preset_name(args: argparse.Namespace) -> str:
    """--preset, else 'quick' for --quick, else the preset of the --data kind, else 'default'."""
    if args.preset is not None:
        if args.quick and args.preset != "quick":
            raise UserError(f"--quick and --preset {args.preset} disagree; give one of them")
        return args.preset
    if args.quick:
        return "quick"
    kind = (args.data or "").partition(":")[0].strip().lower()
    return DATA_PRESETS.get(kind, "default")


def run(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    out = Path(args.out or f"results/run-{time.strftime('%Y%m%d-%H%M%S')}")
    start = time.perf_counter()
    with output_lock(out, folder=True, command="nas run"):
        stages = Pipeline(plan, out, progress=not args.no_progress).run(rerun=args.rerun)
    rows = summary_rows(stages)
    bound = stages["export"]["bound_ms"]
    print(
        f"\n{plan.space} on {plan.data}: {len(rows)} exported models, latency bound {bound:.3f} ms"
    )
    print(
        f"{'arch id':14} {'val acc':>8} {'test acc':>9} {'pred ms':>8} {'meas ms':>8}  architecture"
    )
    for e in rows:
        meas = "-" if e["measured_ms"] is None else f"{e['measured_ms']:.3f}"
        print(
            f"{e['arch_id']:14} {100 * (e['val_acc'] or 0):7.2f}% {100 * (e['test_acc'] or 0):8.2f}% "
            f"{e['predicted_ms']:8.3f} {meas:>8}  {e['arch']}"
        )
    print(f"\nreport: {out / 'report.md'}  ({time.perf_counter() - start:.0f} s)")
    return 0

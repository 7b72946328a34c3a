"""``nas run``: the whole job on the embedded default data (see :mod:`nas.pipeline`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nas.cli.options import deprecated_alias
from nas.errors import UserError
from nas.pipeline import PRESETS, STAGES, RunPlan, read_run_config

# a data spec of this kind without --preset selects the preset of the same name
DATA_PRESETS = {"fashion-mnist": "fashion-mnist"}


def preset_defaults(field: str) -> str:
    """``(default: default 15, quick 10, fashion-mnist 4)``: a setting's value in each preset."""
    values = {name: getattr(RunPlan.preset(name), field) for name in PRESETS}
    if len(set(map(str, values.values()))) == 1:
        return f"(default: {next(iter(values.values()))})"
    return "(default: " + ", ".join(f"{n} {v}" for n, v in values.items()) + ")"


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
        "parameters, exports fine-tuned 10 epochs, 95 min measured on 2 shared cores; chosen by --data fashion-mnist). "
        "Settings come from the preset, then --config, then the options given.",
        epilog="Examples: nas run --quick --out results/run-quick;  nas run --config run.yaml "
        "(keys: any setting of nas.RunPlan, e.g. space: hybrid-tiny, epochs: 5, constraints: "
        "['flops<=2M']);  nas run --quick --constraint 'params<=20K' (or params:le:20K) "
        "--objective max:val_acc --objective min:flops",
    )
    p.add_argument("--config", metavar="RUN.YAML",
                   help="YAML file of settings (RunPlan fields and preset); options given override it")
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
    p.add_argument("--space", help="search space " + preset_defaults("space"))
    p.add_argument("--data", help="data spec (default: the preset's; digits for 'default')")
    p.add_argument("--epochs", type=int, help="supernet training epochs " + preset_defaults("epochs"))
    p.add_argument("--n-samples", dest="samples", type=int,
                   help="how many subnets are measured for the predictor "
                   + preset_defaults("samples"))
    deprecated_alias(p, "run", "--samples", "--n-samples", dest="samples", type=int)
    p.add_argument("--budget", type=int,
                   help="predictor evaluations of the search " + preset_defaults("budget"))
    p.add_argument(
        "--latency-device", dest="device", choices=("onnxruntime", "cpu"),
        help="where latency is measured: onnxruntime (CPU) or cpu (torch eager) (default "
        "onnxruntime)",
    )
    deprecated_alias(p, "run", "--device", "--latency-device", dest="device",
                     choices=("onnxruntime", "cpu"))
    p.add_argument("--objective", action="append", metavar="[max:|min:]METRIC",
                   help="search objective, repeatable; max:val_acc must be one (default: "
                   "max:val_acc and min:latency_ms)")
    p.add_argument("--constraint", action="append", metavar="'METRIC<=VALUE'",
                   help="search constraint beyond the derived latency and memory bounds, "
                   "repeatable; quoted, or shell-safe METRIC:le:VALUE (e.g. 'flops<=2M', "
                   "params:le:20K)")
    p.add_argument("--latency-bound", type=float, help="latency bound in ms (default: derived)")
    p.add_argument(
        "--params-bound",
        type=float,
        help="parameter-count bound (default: the preset's; none for 'default')",
    )
    p.add_argument(
        "--finetune",
        type=int,
        metavar="EPOCHS",
        help="fine-tune each exported model "
        "EPOCHS epochs from its inherited weights (default: the preset's; 0: none)",
    )
    p.add_argument("--seed", type=int, help="seed of every stage (default: the preset's, 0)")
    p.add_argument(
        "--workers",
        type=int,
        help="local processes for measuring subnets (default: the preset's, 1 for 'default')",
    )
    p.add_argument(
        "--ray-address", help="run the fan-out stages on a Ray cluster (auto or host:port)"
    )
    p.add_argument("--rerun", choices=STAGES, help="redo this stage and every later one")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (off anyway when stderr is not a terminal)")
    p.set_defaults(func=run)


def plan_from_args(args: argparse.Namespace) -> RunPlan:
    config = read_run_config(args.config) if args.config else {}
    if args.preset is None and "preset" in config:
        args.preset = config["preset"]
    config.pop("preset", None)
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
            "seed": args.seed,
            "ray_address": args.ray_address,
            "objectives": tuple(args.objective) if args.objective else None,
            "constraints": tuple(args.constraint) if args.constraint else None,
        }.items()
        if v is not None
    }
    try:
        return RunPlan.preset(preset_name(args), **{**config, **overrides})
    except TypeError as exc:  # a config value of the wrong shape
        raise UserError(f"--config {args.config}: {exc}") from None


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
    from nas.pipeline import run_pipeline
    from nas.report import summary_rows

    plan = plan_from_args(args)
    out = Path(args.out or f"results/run-{time.strftime('%Y%m%d-%H%M%S')}")
    start = time.perf_counter()
    stages = run_pipeline(plan, out, rerun=args.rerun, progress=False if args.no_progress else None)
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
    from nas.runs import read_run, weak_run_warnings

    for warning in weak_run_warnings(read_run(out)):
        print(f"warning: {warning}")
    print(f"\nreport: {out / 'report.md'}  ({time.perf_counter() - start:.0f} s)")
    return 0

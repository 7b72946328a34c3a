"""``nas predictors``: learning curves of predictors on measured subnets, and saved cards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.errors import UserError
from nas.io import atomic_write_text
from nas.sample.options import DEFAULT_SIZES, FEATURES, MODELS, TARGETS, parse_stats


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None


def _models(text: str) -> list[str]:
    names = list(MODELS) if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"models {bad or text!r}: expected 'all' or any of "
                                         f"{', '.join(MODELS)}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predictors", help="evaluate predictors (learning curves), show cards")
    sub = p.add_subparsers(dest="predictors_command", required=True, metavar="ACTION")
    ev = sub.add_parser(
        "evaluate",
        help="learning curve: held-out Kendall tau and Spearman per training size",
        description=(
            "For each model and each of --seeds random splits of the samples, hold out --test "
            "subnets and train on nested sets of each size in --sizes from the rest; print Kendall "
            "tau and Spearman on the held-out subnets (mean ± std over seeds). Sizes that do not "
            "fit beside the test set are skipped (and named)."
        ),
    )
    ev.add_argument("--samples", required=True, help="samples CSV (with its .json sidecar)")
    ev.add_argument("--model", type=_models, default=list(MODELS),
                    help="'all' (default) or a comma-separated list of " + ", ".join(MODELS))
    ev.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES),
                    help="training sizes (10,20,50,100,200,500)")
    ev.add_argument("--test", type=int, default=200, help="held-out subnets per split (200)")
    ev.add_argument("--seeds", type=int, default=5, help="random splits (5)")
    ev.add_argument("--target", choices=TARGETS, default="val_acc", help="column to predict")
    ev.add_argument("--features", choices=FEATURES, default="onehot", help="encoding (onehot)")
    ev.add_argument("--stats", default="", help="free statistics, e.g. macs,params")
    ev.add_argument("--seed", type=int, default=0, help="seed of the splits and models (0)")
    ev.add_argument("--out", default=None,
                    help="write every (model, seed, size) row to this CSV and the table beside "
                         "it as .md")
    ev.set_defaults(func=run_evaluate)
    show = sub.add_parser("show", help="print the card of a saved predictor")
    show.add_argument("directory", help="predictor folder written by 'nas fit'")
    show.set_defaults(func=run_show)


def run_evaluate(args: argparse.Namespace) -> int:
    from nas.sample.curve import markdown_table, predictor_learning_curve, summarize

    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: expected at least 1")
    curve, dropped = predictor_learning_curve(
        args.samples, models=args.model, sizes=args.sizes, test=args.test, seeds=args.seeds,
        target=args.target, features=args.features, stats=parse_stats(args.stats), seed=args.seed,
    )
    table = markdown_table(summarize(curve))
    n_rows = int(curve.groupby(["model", "seed"]).size().iloc[0]) if len(curve) else 0
    head = (f"Learning curve on {args.samples}: target {args.target}, {args.features} features, "
            f"{args.test} held-out subnets, {args.seeds} seeds ({n_rows} sizes)")
    print(head)
    if dropped:
        print(f"skipped sizes {dropped}: they do not fit beside {args.test} test rows")
    print(table)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".csv":
            raise UserError(f"--out {out}: expected a .csv path (the table goes beside it as .md)")
        atomic_write_text(out, curve.to_csv(index=False))
        atomic_write_text(out.with_suffix(".md"), f"{head}\n\n{table}\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from predictors.persistence import read_card

    card = read_card(args.directory)
    card = {k: v for k, v in card.items() if k not in ("feature_names", "estimator")}
    print(json.dumps(card, indent=2, sort_keys=True))
    return 0

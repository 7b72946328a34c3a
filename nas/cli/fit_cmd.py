"""``nas fit``: fit a predictor on a samples CSV (cross-validated) and save it with its card."""

from __future__ import annotations

import argparse
import sys

from nas.sample.options import DEFAULT_FOLDS, FEATURES, MODELS, TARGETS, parse_stats


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit an accuracy/latency predictor on measured subnets and save it",
        description=(
            "Fit a predictor (ridge on one-hot features, gradient boosting, MLP, or an ensemble) "
            "on a samples CSV written by 'nas sample'. Reports K-fold cross-validated Kendall "
            "tau, Spearman and RMSE, refits on all rows and saves the predictor in --out with a "
            "JSON card (space name and hash, encoder, feature names, training size, CV metrics, "
            "model parameters). Loading never executes code from the files."
        ),
    )
    p.add_argument("--samples", required=True, help="samples CSV (with its .json sidecar)")
    p.add_argument("--out", required=True, help="predictor folder to write")
    p.add_argument("--target", choices=TARGETS, default="val_acc", help="column to predict (val_acc)")
    p.add_argument("--model", choices=MODELS, default="ridge", help="estimator (ridge)")
    p.add_argument("--features", choices=FEATURES, default="onehot",
                   help="architecture encoding (onehot: additive, what the MILP search uses)")
    p.add_argument("--stats", default="",
                   help="free statistics appended as log10 features, e.g. macs,params,memory")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and the CV folds (0)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                   help=f"cross-validation folds ({DEFAULT_FOLDS})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.sample.fit import fit_predictor

    result = fit_predictor(
        args.samples,
        target=args.target,
        model=args.model,
        features=args.features,
        stats=parse_stats(args.stats),
        seed=args.seed,
        folds=args.folds,
        out=args.out,
    )
    card = result.card
    cv = card["cv"]
    if card.get("n_dropped"):
        print(f"nas fit: left out {card['n_dropped']} row(s) of {args.samples} with no finite "
              f"{card['target']} (NaN, inf or empty); fitted on the other {card['n_train']}",
              file=sys.stderr)
    print(f"{card['model']['name']} on {card['encoder']['kind']} features "
          f"({len(card['feature_names'])}), {card['n_train']} samples of {card['space_name']}, "
          f"target {card['target']}")
    print(f"{cv['folds']}-fold CV: Kendall tau {cv['kendall_tau']['mean']:.3f} "
          f"± {cv['kendall_tau']['std']:.3f}, Spearman {cv['spearman']['mean']:.3f} "
          f"± {cv['spearman']['std']:.3f}, RMSE {cv['rmse']['mean']:.4g}")
    print(f"saved to {result.path}")
    return 0

"""Benchmark: does an accuracy predictor that sees the precision policy rank mixed-precision subnets
better than the fp32 predictor the quantization search used?

Reproduce (the samples: ``nas sample --precisions fp32,int8``, each policy's accuracy measured
through its ONNX Runtime QDQ graph; resumable)::

    nas sample --run results/fmnist/supernet --n 150 --precisions fp32,int8 --seed 0 \\
        --out results/quant/samples_policy.csv
    python -m nas.benchmarks.policy_predictor --samples results/quant/samples_policy.csv \\
        --fp32-predictor results/fmnist/predictor --out results/benchmarks/policy_predictor.md

For each split seed, the samples are split at random into a training part and a held-out part
(``--holdout``); ridge and gradient-boosting predictors on the one-hot features of the space WITH
its precision genes (``nas fit``'s encoders and estimators) are fitted on the training part, and
Kendall tau against the measured validation accuracy is computed on the held-out part, beside the
fp32 predictor's (fitted on fp32 samples: it scores the architecture and ignores the policy).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
from scipy import stats

MODELS = ("ridge", "gbm")


def evaluate(samples: str, fp32_predictor: str | None, holdout: float,
             seeds: int) -> tuple[dict[str, list[float]], int, int]:
    """Held-out Kendall tau per predictor and split seed; sizes of the two parts."""
    from sklearn.base import clone

    from nas.sample.fit import load_training_data, make_encoder, make_estimator
    from nas.sample.predictor import load_predictor_for

    data = load_training_data(samples, "val_acc")
    encoder = make_encoder(data.space, "onehot")
    X = encoder.transform(data.archs)
    fp32 = load_predictor_for(data.space, fp32_predictor) if fp32_predictor else None
    n_test = max(2, round(holdout * len(data.y)))
    out: dict[str, list[float]] = {f"policy-aware {m}": [] for m in MODELS}
    if fp32 is not None:
        out["fp32 predictor (policy ignored)"] = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(data.y))
        test, train = order[:n_test], order[n_test:]
        for m in MODELS:
            model = clone(make_estimator(m, seed)).fit(X[train], data.y[train])
            tau = stats.kendalltau(model.predict(X[test]), data.y[test]).statistic
            out[f"policy-aware {m}"].append(float(tau))
        if fp32 is not None:
            pred = fp32.predict([data.archs[i] for i in test])
            out["fp32 predictor (policy ignored)"].append(
                float(stats.kendalltau(pred, data.y[test]).statistic))
    return out, len(data.y) - n_test, n_test


def main(argv: list[str] | None = None) -> int:
    from nas.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", required=True, help="samples CSV of 'nas sample --precisions'")
    p.add_argument("--fp32-predictor", default=None, help="predictor folder fitted on fp32 samples")
    p.add_argument("--holdout", type=float, default=0.3, help="held-out share (0.3)")
    p.add_argument("--seeds", type=int, default=5, help="random splits (5)")
    p.add_argument("--out", default="results/benchmarks/policy_predictor.md")
    args = p.parse_args(argv)
    taus, n_train, n_test = evaluate(args.samples, args.fp32_predictor, args.holdout, args.seeds)
    command = (f"python -m nas.benchmarks.policy_predictor --samples {args.samples}"
               + (f" --fp32-predictor {args.fp32_predictor}" if args.fp32_predictor else "")
               + f" --holdout {args.holdout} --seeds {args.seeds} --out {args.out}")
    lines = ["# Accuracy predictors on mixed-precision subnets (held-out Kendall tau)", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores (load average "
             f"{os.getloadavg()[0]:.1f}). {n_train} training and {n_test} held-out samples per "
             f"split, {args.seeds} random splits; target: validation accuracy measured through "
             "each policy's QDQ graph.", "",
             "| predictor | Kendall tau, mean ± std over splits | per split |",
             "| --- | ---: | --- |"]
    for name, values in taus.items():
        lines.append(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in values)} |")
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

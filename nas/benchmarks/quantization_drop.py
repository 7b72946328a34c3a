"""Benchmark: predicted vs measured accuracy drop when a subnet is quantized to INT8.

Reproduce (the Fashion-MNIST supernet of ``nas run --preset fashion-mnist``, or ``nas train
--space hybrid-fmnist --data fashion-mnist --epochs 4 --batch-size 128 --threads 2``; about
20 s per subnet on 2 cores; resumable: every measurement is appended to
``<work>/accuracy.jsonl`` and reused)::

    python -m nas.benchmarks.quantization_drop --run results/fmnist/supernet --n 50

``--n`` random fp32 subnets of the run's space (seeded), each measured twice on the validation
split with inherited weights and BN recalibrated: in fp32 (torch) and with every gene int8
through the QDQ graph ``nas export --precisions`` writes (ONNX Runtime, static quantization
calibrated on training batches; :func:`nas.train.evaluate.evaluate_subnet`). The drop is fp32
minus int8, in points. Its predictions, scored by absolute error:

- ``zero``: what the search's accuracy predictor says (fitted on fp32 samples, it does not see
  the policy): the joint search trades size against predicted fp32 accuracy;
- ``mean of the others``: each subnet's drop predicted by the mean drop of the other N-1
  (leave-one-out), a constant learned from measured drops;
- ``ridge on costs``: leave-one-out ridge regression (scikit-learn, standardised features) on
  the subnet's log parameters, log MACs, resolution and number of int8 layers.

Writes ``results/benchmarks/quantization_drop.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Architecture
from nas.benchmarks.command import reproduce_command
from nas.precision import INT8
from nas.spaces.schema import SearchSpace

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / "quantization_drop.md"
TARGET_POINTS = 0.5  # issue 16: median absolute error of the predicted drop
ARCH_STREAM = 16  # seed offset of the subnets drawn here (no other benchmark draws from it)


def draw(space: SearchSpace, n: int, seed: int) -> list[Architecture]:
    """``n`` distinct random fp32 subnets of ``space`` (seeded)."""
    rng = np.random.default_rng([seed, ARCH_STREAM])
    fp32 = space.with_precisions("fp32")
    out: dict[str, Architecture] = {}
    while len(out) < n:
        arch = fp32.sample(rng)
        out.setdefault(arch.arch_id(), arch)
    return list(out.values())


def cost_features(space: SearchSpace, archs: Sequence[Architecture]) -> np.ndarray:
    """Per subnet: log params, log MACs, resolution, number of int8 layers (all when quantized)."""
    from nas.costs import costs

    rows = []
    for arch in archs:
        c = costs(space, arch)
        rows.append([np.log(c.params), np.log(c.macs), arch.resolution,
                     sum(st.depth for st in arch.stages) + 2])
    return np.asarray(rows, dtype=np.float64)


def predicted_drops(drops: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's leave-one-out prediction of every subnet's drop (points)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = drops.size
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    return {
        "zero (the search's fp32 predictor)": np.zeros(n),
        "mean of the others (leave-one-out)": (drops.sum() - drops) / max(n - 1, 1),
        "ridge on costs (leave-one-out)": cross_val_predict(ridge, features, drops, cv=LeaveOneOut()),
    }


def supernet_line(run_dir: str | Path) -> str:
    """How the run's supernet was trained (its recorded command), for the report."""
    from nas.train.rundir import read_config

    record = read_config(run_dir)[1]
    words = str(record.get("runtime", {}).get("command", "")).split()
    if not words:
        return f"Supernet: `{run_dir}`."
    return f"Supernet: `{run_dir}`, trained by `{' '.join([Path(words[0]).name, *words[1:]])}`."


def report(rows: Sequence[dict], predictions: dict[str, np.ndarray], command: str,
           seconds: float, new: int, supernet: str) -> str:
    from nas.latency.environment import machine_summary

    drops = np.array([r["drop"] for r in rows])
    lines = ["# Accuracy drop from INT8 quantization: predicted vs measured", "",
             f"Reproduce: `{command}`", "",
             f"Machine: {machine_summary()}, load average (1 min) {os.getloadavg()[0]:.1f} when "
             f"written. This call: {seconds / 60:.1f} min, {new} accuracies measured (the others "
             "read back from the work folder); measuring all of them took "
             f"{sum(r['seconds'] for r in rows) / 60:.1f} min.", "", supernet, "",
             f"{len(rows)} random fp32 subnets; each measured on the validation split in fp32 and "
             "all-int8 through the QDQ graph the export writes (ONNX Runtime). Drop = fp32 - int8 "
             "accuracy, in points.", "",
             f"Measured drop: median {statistics.median(drops):+.2f}, mean {drops.mean():+.2f}, "
             f"median absolute {np.median(np.abs(drops)):.2f}, largest {drops.max():+.2f}, "
             f"smallest {drops.min():+.2f}.", "",
             "| prediction of the drop | median abs. error (points) | mean abs. error | "
             "90th percentile | target |", "| --- | ---: | ---: | ---: | --- |"]
    for name, pred in predictions.items():
        err = np.abs(pred - drops)
        lines.append(f"| {name} | **{np.median(err):.2f}** | {err.mean():.2f} | "
                     f"{np.percentile(err, 90):.2f} | <= {TARGET_POINTS} |")
    lines += ["", "## Every subnet", "",
              "| fp32 val % | int8 val % | drop | params | arch |",
              "| ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {100 * r['fp32']:.2f} | {100 * r['int8']:.2f} | {r['drop']:+.2f} | "
                     f"{r['params']:,} | `{r['arch'].replace('|', '/')}` |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--run", default="results/fmnist/supernet", help="a trained run folder")
    parser.add_argument("--n", type=int, default=50, help="random fp32 subnets (50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("results/quant/drop"),
                        help="folder of accuracy.jsonl (resumable)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import torch

    from nas.benchmarks.quantization import Measurer
    from nas.costs import costs
    from nas.io import atomic_write_text
    from nas.train.rundir import RunPaths, read_space

    torch.set_num_threads(1)
    command = reproduce_command("nas.benchmarks.quantization_drop", argv)
    start = time.perf_counter()
    space = read_space(RunPaths(Path(args.run)).space).with_precisions("fp32,int8")
    args.work.mkdir(parents=True, exist_ok=True)
    measure = Measurer(args.run, args.work, space, timed=False)
    archs = draw(space, args.n, args.seed)
    rows = []
    for i, arch in enumerate(archs):
        a, b = measure(arch), measure(arch.at_precision(INT8))
        fp32, int8 = a["val_acc"], b["val_acc"]
        rows.append({"arch": arch.to_str(), "fp32": fp32, "int8": int8,
                     "drop": 100 * (fp32 - int8), "params": costs(space, arch).params,
                     "seconds": a["seconds"] + b["seconds"]})
        print(f"{i + 1}/{len(archs)}: fp32 {100 * fp32:.2f}% int8 {100 * int8:.2f}%  {arch}",
              flush=True)
    predictions = predicted_drops(np.array([r["drop"] for r in rows]), cost_features(space, archs))
    atomic_write_text(args.out, report(rows, predictions, command,
                                       time.perf_counter() - start, measure.new,
                                       supernet_line(args.run)))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

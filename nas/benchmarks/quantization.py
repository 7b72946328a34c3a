"""Benchmark: architecture + precision policy searched jointly on the Fashion-MNIST supernet.

Reproduce (8 minutes for 96 measurements on the quiet machine; resumable: every measurement is
appended to ``<work>/measured.jsonl`` and reused)::

    python -m nas.benchmarks.quantization --run results/fmnist/supernet \\
        --predictor results/fmnist/predictor --work results/quant/bench --seeds 3 --measure 8

The run and predictor are those of ``nas run --preset fashion-mnist --out results/fmnist``, or
its stages alone: ``nas train --space hybrid-fmnist --data fashion-mnist --epochs 4
--batch-size 128 --threads 2 --seed 0 --out results/fmnist/supernet``, ``nas sample --run
results/fmnist/supernet --n 300 --strategy flops --workers 2 --out results/fmnist/samples.csv``
and ``nas fit --samples results/fmnist/samples.csv --model gbm --out results/fmnist/predictor``
(gbm: the model the run's cross-validation chooses).

Four methods, each with the same search budget (``--search-budget`` predictor evaluations of
NSGA-II, objectives ``max:val_acc`` and ``min:size_bytes``) and the same measurement budget
(``--measure`` architectures per method and seed, spread evenly over the front by size):

- (a) joint: architecture and per-layer precision genes searched together (hybrid-fmnist with
  ``precisions: [fp32, int8]``);
- (b) fp32: the architecture alone (fp32 everywhere);
- (c) fp32 then int8: (b)'s measured architectures with every gene set to int8;
- (d) random: ``--measure`` architectures and policies sampled uniformly from the joint space.

Every selected architecture is measured here: validation accuracy (Fashion-MNIST validation split;
a policy with an int8 gene through its ONNX Runtime QDQ graph, :mod:`nas.quantize`), latency of
its ONNX file with ONNX Runtime (batch 1, 1 thread, thread-CPU clock, the project's timing
protocol), and ``size_bytes`` (weights at their precision, :func:`nas.costs.size_bytes`). Fronts:
accuracy vs measured latency and accuracy vs size, hypervolume per seed against one reference
point per seed (the worst accuracy and largest latency/size over all methods of that seed).
Ratios at equal accuracy against (c): for each (c) point, the fastest / smallest (a) point at
least as accurate, ratio (c) / (a); the median over (c) points is reported.

The accuracy predictor is the run's fp32 predictor (``nas fit`` on fp32 samples): it scores the
architecture genes (the genome's prefix) and does not see the policy, so the joint search trades
size against predicted fp32 accuracy; the measured accuracy, through the quantized graph, is what
the fronts use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.costs import size_bytes
from nas.latency.environment import machine_summary
from nas.precision import FP32, INT8

METHODS = ("a_joint", "b_fp32", "c_fp32_then_int8", "d_random")
INT8_SPEED = (
    "## Why int8 is slower here (diagnosed: quantization_int8_speed.md)", "",
    "ONNX Runtime's profiler on an fp32 and an int8 file of the same subnet "
    "(`python -m nas.benchmarks.quantization_profile`): the integer kernels are real (AVX-512 "
    "VNNI) and 2-3x faster on large dense convs, but these subnets are 16-96 channels at 24-28 "
    "px: depthwise convs run SLOWER in int8 (0.74x), pointwise ones are too small to gain, and "
    "every quantized conv pays a QuantizeLinear and a DequantizeLinear (17 + 17 on the profiled "
    "subnet) around the float ops between convs (hardswish, residual adds, squeeze-excite), "
    "whose fusion into the conv int8 also loses. No quantizer setting makes int8 faster than "
    "fp32 here (per-tensor weights, QOperator, S8S8: no better; quantizing every op type: 8 + 8 "
    "Q/DQ, the fastest int8 file, still slower than fp32). On this device int8 buys size, not "
    "speed at these sizes; the int8 latency tables (`nas profile --precisions fp32,int8`, "
    "latency_int8_hybrid-tiny.md) price each unit and boundary at its measured cost.",
)


def _spread(archs: list[Architecture], space: Any, k: int) -> list[Architecture]:
    """``k`` architectures spread evenly by size over ``archs`` (sorted by size_bytes)."""
    archs = sorted(set(archs), key=lambda a: size_bytes(space, a))
    if len(archs) <= k:
        return archs
    return [archs[round(i)] for i in np.linspace(0, len(archs) - 1, k)]


def _front(space: Any, predictor: Any, seed: int, budget: int, k: int) -> list[Architecture]:
    from nas.search.registry import make_searcher
    from nas.search.space_problem import SpaceProblem

    problem = SpaceProblem(space, ("max:val_acc", "min:size_bytes"), predictor=predictor)
    result = make_searcher("nsga2", problem, seed=seed, population=50).run(budget)
    return _spread(problem.decode(result.genes[list(result.front)]), space, k)


class Measurer:
    """Measures (and remembers in a JSON-lines file) accuracy, latency and size of architectures;
    ``timed=False``: accuracy and size only (no ONNX file timed)."""

    def __init__(self, run_dir: str, work: Path, space: Any, *, timed: bool = True) -> None:
        from nas.train.rundir import load_supernet

        self.run = load_supernet(run_dir, load_data=True)
        self.space = space
        self.timed = timed
        self.run.supernet.space = space
        self.path = work / ("measured.jsonl" if timed else "accuracy.jsonl")
        self.new = 0  # measured by this call (the others come from the file: a resumed run)
        self.known: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.known[row["arch_id"]] = row

    def __call__(self, arch: Architecture) -> dict[str, Any]:
        key = arch.arch_id()
        if key not in self.known:
            row = {"arch_id": key, "arch": arch.to_str(), **self._measure(arch)}
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.known[key] = row
            self.new += 1
        return self.known[key]

    def _measure(self, arch: Architecture) -> dict[str, Any]:
        import torch

        from nas.latency import TimingItem, TimingProtocol, measure_many
        from nas.quantize import (
            calibration_batches,
            export_fp32_onnx,
            is_mixed,
            ort_session,
            quantize_model,
        )
        from nas.train.evaluate import evaluate_subnet, recalibrated_subnet

        start = time.perf_counter()
        acc = evaluate_subnet(self.run.supernet, arch, self.run.splits, recal_batches=8,
                              recal_batch_size=64, seed=0)["acc"]
        if not self.timed:
            return {"val_acc": acc, "size_bytes": size_bytes(self.space, arch),
                    "seconds": round(time.perf_counter() - start, 1)}
        model = recalibrated_subnet(self.run.supernet, arch.at_precision(FP32),
                                    self.run.splits.train, recal_batches=8, recal_batch_size=64,
                                    seed=0)
        cal = calibration_batches(self.run.splits.train, arch, self.space.in_channels, batches=8,
                                  batch_size=64, seed=0)
        with tempfile.TemporaryDirectory(prefix="nas-qbench-") as tmp:
            onnx_path = export_fp32_onnx(model, cal[0][:1], Path(tmp) / "fp32.onnx")
            if is_mixed(arch):
                onnx_path = quantize_model(onnx_path, Path(tmp) / "q.onnx", self.space, arch, cal)
            file_bytes = onnx_path.stat().st_size
            session = ort_session(onnx_path, threads=1)
            x = cal[0][:1].contiguous().numpy()
            protocol = TimingProtocol(runtime="torch", threads=1, clock="thread", rounds=5)
            item = TimingItem("m", lambda *_: session.run(None, {"input": x}), torch.from_numpy(x))
            latency = measure_many([item], protocol)["m"].latency_ms
        return {"val_acc": acc, "latency_ms": latency, "size_bytes": size_bytes(self.space, arch),
                "file_bytes": file_bytes, "seconds": round(time.perf_counter() - start, 1)}


def _hv(points: np.ndarray, ref: tuple[float, float]) -> float:
    """Hypervolume of (cost, accuracy) points: cost minimised, accuracy maximised."""
    from nas.search.pareto import hypervolume_2d

    if len(points) == 0:
        return 0.0
    return hypervolume_2d(np.column_stack([points[:, 0], -points[:, 1]]),
                          np.array([ref[0], -ref[1]]))


def _ratios(a: list[dict], c: list[dict], cost: str) -> float | None:
    """Median over (c) points of cost(c) / min cost of an (a) point at least as accurate."""
    out = []
    for p in c:
        better = [q[cost] for q in a if q["val_acc"] >= p["val_acc"]]
        if better:
            out.append(p[cost] / min(better))
    return statistics.median(out) if out else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from nas.sample.predictor import load_predictor_for
    from nas.train.rundir import RunPaths, read_space

    fp32_space = read_space(RunPaths(Path(args.run)).space)
    joint_space = fp32_space.with_precisions("fp32,int8")
    inner = load_predictor_for(fp32_space, args.predictor)
    blind = load_predictor_for(joint_space, args.predictor)  # scores the architecture genes
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    measure = Measurer(args.run, work, joint_space)
    per_seed: dict[int, dict[str, list[dict]]] = {}
    for seed in range(args.seeds):
        chosen: dict[str, list[Architecture]] = {}
        chosen["a_joint"] = _front(joint_space, blind, seed, args.search_budget, args.measure)
        chosen["b_fp32"] = _front(fp32_space, inner, seed, args.search_budget, args.measure)
        chosen["c_fp32_then_int8"] = [a.at_precision(INT8) for a in chosen["b_fp32"]]
        rng = np.random.default_rng(1000 + seed)
        chosen["d_random"] = [joint_space.sample(rng) for _ in range(args.measure)]
        per_seed[seed] = {}
        for method in METHODS:
            rows = []
            for arch in chosen[method]:
                row = measure(arch)
                print(f"seed {seed} {method}: {100 * row['val_acc']:.2f}% "
                      f"{row['latency_ms']:.3f} ms {row['size_bytes']:,} B  {arch}", flush=True)
                rows.append(row)
            per_seed[seed][method] = rows
    print(f"measured {measure.new} architectures in this call; "
          f"{len(measure.known) - measure.new} came from {measure.path}", flush=True)
    return per_seed


def summarise(per_seed: dict[int, dict[str, list[dict]]]) -> dict[str, Any]:
    hv: dict[str, dict[str, list[float]]] = {m: {"latency": [], "size": []} for m in METHODS}
    ratios: dict[str, list[float]] = {"latency": [], "size": []}
    drops, int8_speedups = [], []  # per (b, c) pair: the same architecture in fp32 and all int8
    for rows in per_seed.values():
        for b, c in zip(rows["b_fp32"], rows["c_fp32_then_int8"]):
            drops.append(100 * (b["val_acc"] - c["val_acc"]))
            int8_speedups.append(b["latency_ms"] / c["latency_ms"])
        every = [r for m in METHODS for r in rows[m]]
        worst = min(r["val_acc"] for r in every)
        for cost, key in (("latency", "latency_ms"), ("size", "size_bytes")):
            ref = (max(r[key] for r in every) * 1.01, worst)
            for m in METHODS:
                pts = np.array([[r[key], r["val_acc"]] for r in rows[m]])
                hv[m][cost].append(_hv(pts, ref))
            ratio = _ratios(rows["a_joint"], rows["c_fp32_then_int8"], key)
            if ratio is not None:
                ratios[cost].append(ratio)
    return {"hypervolume": hv, "ratios_vs_c": ratios, "int8_drop_points": drops,
            "fp32_over_int8_latency": int8_speedups}


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3g}" if values else "n/a"


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def write_report(path: Path, args: argparse.Namespace, per_seed: dict, summary: dict,
                 seconds: float) -> None:
    from nas.io import atomic_write_text

    measured = {row["arch_id"]: row for rows in per_seed.values() for m in METHODS for row in rows[m]}
    lines = ["# Quantization policy searched with the architecture (Fashion-MNIST supernet)", "",
             "Command:", "", "```", "python -m nas.benchmarks.quantization " + " ".join(
                 sys.argv[1:]), "```", "",
             f"Machine: {machine_summary()}, load average (1 min) {os.getloadavg()[0]:.1f} "
             "when the report was written; ONNX Runtime batch 1, 1 thread, thread-CPU clock. "
             f"Wall time of this call {seconds / 60:.1f} min (resumable: measurements already in "
             f"the work folder's measured.jsonl are reused; measuring all "
             f"{len(measured)} took {sum(r.get('seconds', 0.0) for r in measured.values()) / 60:.1f} "
             f"min). Seeds: {args.seeds}; "
             f"search budget {args.search_budget} predictor evaluations per method and seed; "
             f"measurement budget {args.measure} architectures per method and seed.", "",
             "## Hypervolume (mean ± std over seeds; per-seed reference point)", "",
             "| method | accuracy vs latency | per seed | accuracy vs size | per seed |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for m in METHODS:
        h = summary["hypervolume"][m]
        lines.append(f"| {m} | {_fmt(h['latency'])} | {', '.join(f'{v:.4g}' for v in h['latency'])} "
                     f"| {_fmt(h['size'])} | {', '.join(f'{v:.4g}' for v in h['size'])} |")
    r = summary["ratios_vs_c"]
    lines += ["", "## At equal accuracy against (c) fp32 search then all int8", "",
              f"- latency ratio (c)/(a), median over (c) points, per seed: "
              f"{', '.join(f'{v:.2f}' for v in r['latency']) or 'n/a'}",
              f"- size ratio (c)/(a): {', '.join(f'{v:.2f}' for v in r['size']) or 'n/a'}", "",
              "## Quantization drop and INT8 speed on the same architectures ((b) vs (c))", "",
              f"- accuracy drop fp32 -> all int8 (points), {len(summary['int8_drop_points'])} "
              f"architectures: median {_median(summary['int8_drop_points'])}, median absolute "
              f"{_median([abs(d) for d in summary['int8_drop_points']])}, max "
              f"{max(summary['int8_drop_points'], default=float('nan')):.2f}. The search's "
              "predictor is fitted on fp32 samples and predicts a drop of 0, so its absolute "
              "error on the drop is this median absolute drop.",
              f"- latency fp32 / all int8 (ONNX Runtime, > 1: int8 faster): median "
              f"{_median(summary['fp32_over_int8_latency'])}", "", *INT8_SPEED, "",
              "## Every measured point", "",
              "| seed | method | val acc % | latency ms | size bytes | file bytes | arch |",
              "| ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for seed, rows in per_seed.items():
        for m in METHODS:
            for row in rows[m]:
                lines.append(f"| {seed} | {m} | {100 * row['val_acc']:.2f} | "
                             f"{row['latency_ms']:.3f} | {row['size_bytes']:,} | "
                             f"{row['file_bytes']:,} | `{row['arch'].replace('|', '/')}` |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default="results/fmnist/supernet")
    p.add_argument("--predictor", default="results/fmnist/predictor")
    p.add_argument("--work", default="results/quant/bench")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--search-budget", type=int, default=1500)
    p.add_argument("--measure", type=int, default=6)
    p.add_argument("--out", default="results/benchmarks/quantization.md")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    per_seed = run(args)
    summary = summarise(per_seed)
    (Path(args.work) / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(Path(args.out), args, per_seed, summary, time.perf_counter() - start)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

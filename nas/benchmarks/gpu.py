"""GPU check: every CUDA path of the project run on a real GPU, within a fixed time budget.

Reproduce (on a machine with a CUDA GPU; ``scripts/gpu_check.sh`` prepares the environment)::

    python -m nas.benchmarks.gpu --out results/benchmarks --budget 480

Parts, in order, each in its own process with its own time limit (a share of ``--budget``):

- ``env``: torch, CUDA and GPU versions and which data set the training part uses.
- ``tests``: ``pytest -m gpu`` (device placement, CUDA-event timing, checkpoints across devices,
  bf16 autocast training, sampling and profiling on CUDA).
- ``train``: ``nas train --device cuda`` with the settings of the committed CPU run it is compared
  with: Fashion-MNIST (hybrid-fmnist, 4 epochs, batch 128, as ``nas run --preset fashion-mnist``)
  when its IDX files are found, else digits (hybrid-cifar, 15 epochs, batch 16, as the sandwich run
  of ``nas.benchmarks.supernet_digits``). Epoch time against the CPU's, and the inherited
  validation accuracy of the largest and smallest subnets against the CPU run's.
- ``latency``: ``nas profile --latency-device cuda`` tables of hybrid-cifar at batch 1 and 64 (CUDA
  events, warm-up, eager launches), each validated on 100 fresh subnets beside the GPU's own
  repeatability (``nas latency validate``); the same subnets are then timed as CUDA graph
  replays, to show how much of the eager latency is kernel-launch time.
- ``sample``: ``nas sample --device cuda`` on the trained run: subnets measured per second.
- ``ray``: Ray Train, one GPU worker, NCCL and then gloo: the two runs must agree within float noise.

The parent process never touches CUDA: it starts each part, kills it (with its children) at its
limit, reads what the part saved so far (each part writes ``<work>/<part>.json`` as it goes), and
rewrites ``gpu.md`` and ``gpu.json`` atomically after every part, so a run killed at any point
leaves a valid report of what finished. ``--dry-run`` writes the plan as a report without running
anything (works without a GPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.io import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "results" / "benchmarks"
DEVICE = "cuda"  # every part's device (a CPU smoke run of the plumbing sets "cpu")
DEFAULT_BUDGET_S = 480.0  # 8 minutes of GPU time in all
MIN_PART_S = 15.0  # a part is not started with less time than this left
LATENCY_SPACE = "hybrid-cifar"
LATENCY_BATCHES = (64, 1)  # the batch with the target first
LATENCY_TARGET_PCT = 90.0  # share of subnets within +/-10% at TARGET_BATCH
TARGET_BATCH = 64
SAMPLE_N = 100
VALIDATE_N, REPEAT_N = 100, 30  # fresh subnets per latency table; how many are timed twice
Data = dict[str, Any]


def say(t0: float, text: str) -> None:
    """One progress line with the elapsed time since the start."""
    print(f"[gpu-check +{time.monotonic() - t0:6.1f}s] {text}", flush=True)


# ----- CPU references (committed results of the same settings on the development CPU) ---------


@dataclass(frozen=True)
class TrainSetting:
    """One training setting run on the GPU and the committed CPU run it is compared with."""

    data_name: str  # "fashion-mnist" or "digits"
    space: str
    epochs: int
    batch_size: int
    source: str  # the committed file(s) the CPU numbers come from

    def train_args(self, data_spec: str) -> list[str]:
        return ["--space", self.space, "--data", data_spec, "--epochs", str(self.epochs),
                "--batch-size", str(self.batch_size), "--seed", "0"]


FASHION = TrainSetting("fashion-mnist", "hybrid-fmnist", 4, 128,
                       "results/benchmarks/nas_run_fashion_mnist/report.md")
DIGITS = TrainSetting("digits", "hybrid-cifar", 15, 16,
                      "results/benchmarks/supernet_digits.md and supernet_digits.csv")


def fashion_cpu_reference(report_md: str, fashion_md: str = "") -> Data | None:
    """Epoch time, accuracies and sampling speed of the committed ``nas run --preset
    fashion-mnist`` (its report.md; fashion_mnist.md for the threads and the sample count)."""
    epochs = re.search(r"(\d+) epochs in (\d+(?:\.\d+)?) s", report_md)
    largest = re.search(r"largest subnet[^:]*: (\d+(?:\.\d+)?)%", report_md)
    smallest = re.search(r"smallest subnet[^:]*: (\d+(?:\.\d+)?)%", report_md)
    if not (epochs and largest and smallest):
        return None
    out: Data = {
        "epochs": int(epochs.group(1)),
        "epoch_s": float(epochs.group(2)) / int(epochs.group(1)),
        "val_acc_largest": float(largest.group(1)) / 100,
        "val_acc_smallest": float(smallest.group(1)) / 100,
        "n_val": 5000,
    }
    threads = re.search(r"batch \d+, (\d+) threads", fashion_md)
    out["threads"] = int(threads.group(1)) if threads else None
    sample_s = re.search(r"\|\s*sample\s*\|\s*(\d+(?:\.\d+)?)\s*\|", report_md)
    samples = re.search(r"fitted on the run's (\d+) measured subnets", fashion_md)
    if sample_s and samples:
        out["sample_per_s"] = int(samples.group(1)) / float(sample_s.group(1))
    return out


def digits_cpu_reference(digits_md: str, digits_csv: str) -> Data | None:
    """Epoch time (the sandwich row) and largest/smallest accuracies of the committed digits run."""
    row = re.search(r"^\|\s*sandwich\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*[\d.]+\s*\|\s*([\d.]+)\s*\|",
                    digits_md, re.MULTILINE)
    if row is None:
        return None
    accs = {r["subnet"]: float(r["val_acc_sandwich"]) for r in csv.DictReader(digits_csv.splitlines())
            if r.get("subnet") in ("largest", "smallest")}
    if len(accs) != 2:
        return None
    return {"threads": int(row.group(1)), "epochs": int(row.group(2)),
            "epoch_s": float(row.group(3)), "val_acc_largest": accs["largest"],
            "val_acc_smallest": accs["smallest"], "n_val": 269}


def cpu_reference(setting: TrainSetting, root: Path = BENCHMARKS) -> Data | None:
    """The committed CPU numbers for ``setting`` (None when the files are missing or changed)."""
    def text(name: str) -> str:
        path = root / name
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    if setting is FASHION:
        return fashion_cpu_reference(text("nas_run_fashion_mnist/report.md"),
                                     text("fashion_mnist.md"))
    return digits_cpu_reference(text("supernet_digits.md"), text("supernet_digits.csv"))


def within_noise(acc_a: float, acc_b: float, n: int) -> tuple[bool, float]:
    """Whether two accuracies on the same ``n`` validation images differ by at most two standard
    errors of their difference (binomial sampling noise only); returns (verdict, 2 SE)."""
    se = math.sqrt(acc_a * (1 - acc_a) / n + acc_b * (1 - acc_b) / n)
    return abs(acc_a - acc_b) <= 2 * se, 2 * se


def find_fashion_mnist(candidates: list[Path]) -> Path | None:
    """The first folder holding the Fashion-MNIST training images (gzipped or not)."""
    for folder in candidates:
        if any((folder / f"train-images-idx3-ubyte{ext}").is_file() for ext in (".gz", "")):
            return folder
    return None


# ----- parts (each runs in its own process and saves <work>/<name>.json as it goes) ----------


class PartState:
    """The incremental result file of one part: every :meth:`save` merges and rewrites it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: Data = {}

    def save(self, **fields: Any) -> None:
        self.data.update(fields)
        atomic_write_json(self.path, self.data)


@dataclass(frozen=True)
class Context:
    work: Path
    fashion_dirs: list[Path]
    limit_s: float


def run_env(ctx: Context, state: PartState) -> None:
    import torch

    folder = find_fashion_mnist(ctx.fashion_dirs)
    info: Data = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "data": "fashion-mnist" if folder else "digits",
        "fashion_mnist_dir": str(folder) if folder else None,
        "searched": [str(p) for p in ctx.fashion_dirs],
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", gpus=torch.cuda.device_count())
    for name in ("ray", "optuna", "onnxruntime", "pytest", "hypothesis"):
        try:
            module = __import__(name)
            info[f"{name}_version"] = getattr(module, "__version__", "?")
        except ImportError:
            info[f"{name}_version"] = None
    state.save(**info)


def run_tests(ctx: Context, state: PartState) -> None:
    log = ctx.work / "tests.txt"
    # only the files that hold gpu tests: collecting the others would import packages (Ray,
    # optuna) that a GPU image may lack
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "pytest.mark.gpu" in p.read_text(encoding="utf-8"))
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
           *files]
    state.save(command=" ".join(["python", *cmd[1:]]), log=str(log))
    timeout = max(5.0, ctx.limit_s - 5)
    with log.open("w", encoding="utf-8") as f:
        try:
            returncode: int | str = subprocess.run(cmd, cwd=REPO, stdout=f,
                                                   stderr=subprocess.STDOUT, timeout=timeout,
                                                   check=False).returncode
        except subprocess.TimeoutExpired:  # pytest is killed; its output so far is in the log
            returncode = f"cut off after {timeout:.0f} s"
    text = log.read_text(encoding="utf-8", errors="replace")
    summary = [line.strip("= ") for line in text.splitlines() if re.search(
        r"\d+ (passed|failed|skipped|error|deselected)", line)]
    failed = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
    state.save(returncode=returncode, summary=summary[-1] if summary else "", failed=failed[:20])


def run_train(ctx: Context, state: PartState) -> None:
    from nas.cli import main as nas

    folder = find_fashion_mnist(ctx.fashion_dirs)
    setting = FASHION if folder else DIGITS
    data_spec = f"fashion-mnist:{folder}" if folder else "digits"
    run_dir = ctx.work / f"train-{setting.data_name}"
    args = ["train", *setting.train_args(data_spec), "--device", DEVICE, "--out", str(run_dir),
            "--no-progress"]
    if (run_dir / "config.json").exists():
        args.append("--resume")  # a second try continues the first one's epochs
    state.save(setting=setting.__dict__, run_dir=str(run_dir), command="nas " + shlex.join(args),
               cpu=cpu_reference(setting))
    rc = nas(args)
    state.save(returncode=rc, **train_metrics(run_dir))


def train_metrics(run_dir: Path) -> Data:
    """Per-epoch time and accuracies from a run folder's metrics.csv (complete or not)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return {"epochs_done": 0}
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    out: Data = {"epochs_done": len(rows),
                 "epoch_s": [float(r["epoch_s"]) for r in rows if r.get("epoch_s")]}
    if rows:
        last = rows[-1]
        for key in ("val_acc_largest", "val_acc_smallest"):
            if last.get(key):
                out[key] = float(last[key])
    return out


def run_latency(ctx: Context, state: PartState) -> None:
    from dataclasses import replace

    import numpy as np

    from nas.latency.space_profile import measure_networks, profile_space, protocol_for
    from nas.latency.validate import summary_lines, validate_table, write_report
    from nas.spaces import load_space

    space = load_space(LATENCY_SPACE)
    protocol = protocol_for(DEVICE, 1, warmup=10, repeats=10, rounds=3, min_time_per_round=0.005)
    results: Data = {}
    for batch in LATENCY_BATCHES:
        table = ctx.work / f"table_cuda_b{batch}.csv"  # the report beside it: latency_cuda_b*
        profiled = profile_space(space, table, protocol, batch=batch, calibrate=20, seed=0,
                                 progress=False, say=lambda _: None)
        results[str(batch)] = {"entries": len(profiled.table), "profile_s": profiled.seconds,
                               "command": f"nas profile --space {LATENCY_SPACE} --latency-device {DEVICE} "
                                          f"--batch {batch} --rounds 3 --repeats 10 "
                                          f"--min-round-ms 5 --calibrate 20 --out {table}"}
        state.save(batches=results)
        val = validate_table(space, profiled.table, n=VALIDATE_N, repeat_subset=REPEAT_N, seed=1,
                             progress=False, say=lambda _: None)
        write_report(val, ctx.work / f"latency_cuda_b{batch}.md",
                     f"nas latency validate --space {LATENCY_SPACE} --table {table} "
                     f"--n {VALIDATE_N} --repeat-subset {REPEAT_N} --seed 1")
        results[str(batch)].update(metrics=val.metrics, repeatability=val.repeatability,
                                   drift=val.drift, validate_s=val.seconds,
                                   summary=summary_lines(val))
        state.save(batches=results)
        if not DEVICE.startswith("cuda"):
            continue
        # Would CUDA graphs help? The same subnets, each captured once and timed as graph replays.
        graphed = measure_networks(space, val.archs, replace(protocol, cuda_graph=True),
                                   batch=batch, seed=1)
        ratio = val.measured / graphed
        results[str(batch)].update(eager_median_ms=float(np.median(val.measured)),
                                   graph_median_ms=float(np.median(graphed)),
                                   eager_over_graph=float(np.median(ratio)))
        state.save(batches=results)


def run_sample(ctx: Context, state: PartState) -> None:
    from nas.cli import main as nas

    folder = find_fashion_mnist(ctx.fashion_dirs)
    run_dir = ctx.work / f"train-{(FASHION if folder else DIGITS).data_name}"  # the train part's
    if not (run_dir / "checkpoint.pt").is_file():
        state.save(skipped=f"no trained run in {run_dir}: the train part finished no epoch")
        return
    setting = FASHION if run_dir.name == f"train-{FASHION.data_name}" else DIGITS
    state.save(cpu=cpu_reference(setting))
    out = ctx.work / "samples_cuda.csv"
    out.unlink(missing_ok=True)
    out.with_suffix(".json").unlink(missing_ok=True)
    args = ["sample", "--run", str(run_dir), "--n", str(SAMPLE_N), "--out", str(out),
            "--device", DEVICE, "--no-progress"]
    state.save(command="nas " + shlex.join(args), csv=str(out), started=time.time(), n=SAMPLE_N)
    t0 = time.perf_counter()
    rc = nas(args)
    state.save(returncode=rc, seconds=time.perf_counter() - t0, rows=sample_rows(out))


def sample_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    return max(0, sum(1 for _ in path.open(encoding="utf-8")) - 1)


def run_ray(ctx: Context, state: PartState) -> None:
    import torch

    from nas.train import TrainConfig
    from nas.train.checkpoint import load_checkpoint
    from nas.train.distributed import train_distributed

    config = TrainConfig(space="hybrid-tiny", data="digits", epochs=1, batch_size=64,
                         device=DEVICE, recal_batches=2)
    runs: Data = {}
    for backend in ("nccl", "gloo"):
        out = ctx.work / f"ray-{backend}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        result = train_distributed(config, out, workers=1, backend=backend)
        runs[backend] = {"wall_s": result.wall_s, "history": result.history}
        state.save(runs=runs)
    a = load_checkpoint(ctx.work / "ray-nccl" / "checkpoint.pt")["model"]
    b = load_checkpoint(ctx.work / "ray-gloo" / "checkpoint.pt")["model"]
    diffs = [float((a[k].double() - b[k].double()).abs().max()) for k in a
             if torch.is_floating_point(a[k])]
    scale = max(float(a[k].double().abs().max()) for k in a if torch.is_floating_point(a[k]))
    state.save(runs=runs, max_abs_weight_diff=max(diffs), max_abs_weight=scale,
               loss_diff=abs(runs["nccl"]["history"][-1]["train_loss"]
                             - runs["gloo"]["history"][-1]["train_loss"]))


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    limit_s: float  # default share of the 480 s budget
    run: Callable[[Context, PartState], None]
    render: Callable[[Data], list[str]]
    needs: tuple[str, ...] = ()  # modules without which the part is skipped (no time reserved)

    def missing(self) -> list[str]:
        import importlib.util

        return [m for m in self.needs if importlib.util.find_spec(m) is None]


# ----- report (pure functions of the saved data: they accept any partial state) ---------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def render_env(d: Data) -> list[str]:
    if not d:
        return []
    gpu = d.get("gpu", "no CUDA device")
    return [f"- GPU: {gpu} ({d.get('gpu_memory_gib', '?')} GiB, compute capability "
            f"{d.get('capability', '?')}); torch {d.get('torch')} (CUDA {d.get('torch_cuda')}, "
            f"cuDNN {d.get('cudnn')}), Python {d.get('python')}",
            f"- Data for the training part: **{d.get('data')}**"
            + (f" from `{d['fashion_mnist_dir']}`" if d.get("fashion_mnist_dir") else
               f" (no Fashion-MNIST IDX files in {', '.join(d.get('searched', []))})"),
            f"- Ray {d.get('ray_version') or 'not installed'}, pytest {d.get('pytest_version')}"]


def render_tests(d: Data) -> list[str]:
    lines = [f"Command: `{d['command']}`"] if d.get("command") else []
    if "summary" in d:
        lines.append(f"Result: **{d['summary'] or 'no summary line'}** (exit code "
                     f"{d.get('returncode')})")
        lines += [f"- `{f}`" for f in d.get("failed", [])]
    return lines


def render_train(d: Data) -> list[str]:
    if not d.get("setting"):
        return []
    s, cpu = d["setting"], d.get("cpu")
    lines = [f"Command: `{d.get('command')}`", "",
             f"Same settings as the CPU run ({s['source']}): space {s['space']}, "
             f"{s['epochs']} epochs, batch {s['batch_size']}, seed 0."]
    times = d.get("epoch_s", [])
    done = d.get("epochs_done", len(times))
    lines += ["", "| | GPU | CPU (committed) |", "|---|---:|---:|"]
    gpu_epoch = sum(times) / len(times) if times else None
    cpu_epoch = cpu["epoch_s"] if cpu else None
    lines.append(f"| epochs done | {done} of {s['epochs']} | {cpu['epochs'] if cpu else 'n/a'} |")
    gpu_text = f"{gpu_epoch:.1f}" if gpu_epoch else "n/a"
    cpu_text = f"{cpu_epoch:.1f}" if cpu_epoch else "n/a"
    if cpu and cpu.get("threads"):
        cpu_text += f" ({cpu['threads']} threads)"
    lines.append(f"| seconds per epoch | {gpu_text} | {cpu_text} |")
    for name in ("largest", "smallest"):
        key = f"val_acc_{name}"
        lines.append(f"| validation accuracy, {name} subnet | {_pct(d.get(key))} | "
                     f"{_pct(cpu.get(key)) if cpu else 'n/a'} |")
    if gpu_epoch and cpu_epoch:
        ratio = cpu_epoch / gpu_epoch
        verdict = f"**{ratio:.1f}x** faster" if ratio >= 1 else f"**{1 / ratio:.1f}x** slower"
        lines += ["", f"GPU epochs: {verdict} than the CPU's (mean over the GPU's epochs, which "
                      f"took {', '.join(f'{t:.1f}' for t in times)} s; the first includes CUDA "
                      "start-up)."]
    if cpu and done == s["epochs"] and d.get("val_acc_largest") is not None:
        verdicts = []
        for name in ("largest", "smallest"):
            key = f"val_acc_{name}"
            ok, tol = within_noise(d[key], cpu[key], cpu["n_val"])
            verdicts.append(f"{name} {100 * (d[key] - cpu[key]):+.2f} points "
                            f"({'within' if ok else '**outside**'} +/-{100 * tol:.2f})")
        lines.append(f"Inherited accuracy GPU - CPU: {'; '.join(verdicts)}; the band is two "
                     f"standard errors of the difference of two accuracies on {cpu['n_val']} "
                     "validation images (sampling noise only; seed-to-seed spread is not measured).")
    elif done < s["epochs"]:
        lines.append(f"Accuracy not compared: only {done} of {s['epochs']} epochs finished.")
    if cpu is None:
        lines.append(f"CPU reference not found in {s['source']}.")
    return lines


def render_latency(d: Data) -> list[str]:
    batches = d.get("batches", {})
    if not batches:
        return []
    lines = ["| batch | entries | profile s | within +/-10% | median abs err | Kendall tau | "
             "repeatability within +/-10% | repeatability Kendall | validate s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for batch, b in batches.items():
        m, r = b.get("metrics"), b.get("repeatability") or {}
        if m is None:
            lines.append(f"| {batch} | {b['entries']} | {b['profile_s']:.0f} | not validated | | | "
                         "| | |")
            continue
        lines.append(
            f"| {batch} | {b['entries']} | {b['profile_s']:.0f} | {m['within10_pct']:.0f}% | "
            f"{m['median_ape_pct']:.1f}% | {m['kendall_tau']:.3f} | "
            f"{r.get('within10_pct', float('nan')):.0f}% | {r.get('kendall_tau', float('nan')):.3f}"
            f" | {b.get('validate_s', 0):.0f} |")
    lines += ["", *(f"- `{b['command']}`" for b in batches.values())]
    graphs = [(k, b) for k, b in batches.items() if "eager_over_graph" in b]
    if graphs:
        lines += ["", "CUDA graphs on the same validation subnets (each captured once, timed as "
                      "graph replays): median subnet latency eager vs graph replay:"]
        lines += [f"- batch {k}: {b['eager_median_ms']:.3f} ms eager, {b['graph_median_ms']:.3f} "
                  f"ms as a graph; eager / graph {b['eager_over_graph']:.2f}x (median per subnet)"
                  for k, b in graphs]
    big = batches.get(str(TARGET_BATCH), {}).get("metrics")
    if big:
        hit = big["within10_pct"] >= LATENCY_TARGET_PCT
        lines.append(f"\nTarget at batch {TARGET_BATCH}: >= {LATENCY_TARGET_PCT:.0f}% "
                     f"within +/-10%: **{'met' if hit else 'not met'}** "
                     f"({big['within10_pct']:.0f}%). The tables time eager launches with CUDA "
                     "events (`nas profile --cuda-graphs` times graph replays instead).")
    return lines


def render_sample(d: Data) -> list[str]:
    if d.get("skipped"):
        return [f"Skipped: {d['skipped']}."]
    if not d.get("command"):
        return []
    lines = [f"Command: `{d['command']}`"]
    rows, seconds = d.get("rows"), d.get("seconds")
    if rows and seconds:
        lines.append(f"**{rows / seconds:.2f} subnets/s** ({rows} subnets in {seconds:.1f} s, "
                     "loading the run included).")
    cpu = (d.get("cpu") or {}).get("sample_per_s")
    if cpu:
        lines.append(f"CPU reference (the sample stage of the committed Fashion-MNIST run, its "
                     f"own worker processes on 2 shared cores): {cpu:.2f} subnets/s.")
    return lines


def render_ray(d: Data) -> list[str]:
    if d.get("skipped"):
        return [f"Skipped: {d['skipped']}."]
    runs = d.get("runs", {})
    lines = [f"- {backend}: {r['wall_s']:.1f} s wall (Ray start included), train loss "
             f"{r['history'][-1]['train_loss']:.6f}" for backend, r in runs.items() if r["history"]]
    if "max_abs_weight_diff" in d:
        lines.append(f"NCCL vs gloo (one GPU worker, hybrid-tiny on digits, 1 epoch): largest "
                     f"weight difference {d['max_abs_weight_diff']:.3g} (largest weight "
                     f"{d['max_abs_weight']:.3g}), train-loss difference {d['loss_diff']:.3g}.")
    return lines


PARTS: dict[str, Part] = {p.name: p for p in (
    Part("env", "Environment", 20, run_env, render_env),
    Part("tests", "GPU tests (`pytest -m gpu`)", 90, run_tests, render_tests, ("pytest",)),
    Part("train", "Supernet training: GPU vs CPU", 160, run_train, render_train),
    Part("latency", f"CUDA latency tables ({LATENCY_SPACE})", 100, run_latency, render_latency),
    Part("sample", "`nas sample --device cuda` throughput", 40, run_sample, render_sample),
    Part("ray", "Ray Train on one GPU: NCCL vs gloo", 70, run_ray, render_ray, ("ray",)),
)}


def salvage(name: str, data: Data) -> Data:
    """What a killed part left on disk beyond its last save (training epochs, sampled rows)."""
    data = dict(data)
    if name == "train" and data.get("run_dir"):
        data.update(train_metrics(Path(data["run_dir"])))
    if name == "sample" and data.get("csv") and "rows" not in data:
        path = Path(data["csv"])
        data["rows"] = sample_rows(path)
        if data["rows"] and data.get("started"):
            data["seconds"] = path.stat().st_mtime - float(data["started"])
    return data


def render_report(meta: Data, results: list[Data]) -> str:
    """The Markdown report from the run's metadata and every part's result so far."""
    lines = ["# GPU check: the CUDA paths on a real GPU", "",
             f"Reproduce: `{meta.get('command', 'bash scripts/gpu_check.sh')}`", "",
             f"Written {meta.get('written', '?')}; budget {meta.get('budget_s', 0):.0f} s, "
             f"used {meta.get('elapsed_s', 0):.0f} s. Every part ran in its own process with its "
             "own time limit; a part cut off at its limit reports what it finished.", ""]
    if meta.get("notes"):
        lines += [f"- {n}" for n in meta["notes"]] + [""]
    lines += ["| part | status | seconds | limit s |", "|---|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['status']} | {r.get('seconds', 0):.0f} | "
                     f"{r.get('limit_s', 0):.0f} |")
    for r in results:
        part = PARTS[r["name"]]
        body = part.render(r.get("data") or {})
        lines += ["", f"## {part.title}", "", f"Status: {r['status']}."]
        if r.get("error"):
            lines += ["", "```", r["error"], "```"]
        if body:
            lines += ["", *body]
    return "\n".join(lines) + "\n"


# ----- driver ------------------------------------------------------------------------------------


def plan_limits(names: list[str], budget_s: float) -> dict[str, float]:
    """Each part's limit: its default share, scaled so that the shares add up to the budget."""
    total = sum(PARTS[n].limit_s for n in names)
    return {n: PARTS[n].limit_s * budget_s / total for n in names}


def next_limit(remaining: list[str], left_s: float) -> float:
    """The limit of ``remaining[0]``: its share of the time left among the parts still to run
    (so the time that earlier parts did not use goes to the later ones), at least
    :data:`MIN_PART_S`, at most the time left."""
    share = plan_limits(remaining, max(0.0, left_s))[remaining[0]]
    return min(max(share, MIN_PART_S), max(0.0, left_s))


def _run_part_process(cmd: list[str], limit_s: float, log_path: Path) -> tuple[int | None, str]:
    """Run one part in a new process group; kill the group at ``limit_s``. (rc or None, tail)."""
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
    return rc, "\n".join(tail)


def drive(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    names = args.parts
    absent = {n: PARTS[n].missing() for n in names}
    runnable = [n for n in names if not absent[n]]
    limits = plan_limits(runnable, args.budget) if runnable else {}
    meta: Data = {"command": args.command or "python -m nas.benchmarks.gpu " + shlex.join(
        sys.argv[1:]), "budget_s": args.budget, "notes": list(args.note or [])}
    results: list[Data] = [{"name": n, "status": "not run yet", "limit_s": limits.get(n, 0.0)}
                           for n in names]

    def write() -> None:
        meta.update(elapsed_s=time.monotonic() - t0,
                    written=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic_write_text(out / "gpu.md", render_report(meta, results))
        atomic_write_json(out / "gpu.json", {"meta": meta, "parts": results})

    if args.dry_run:
        for r in results:
            r["status"] = "not run (dry run)"
        write()
        say(t0, f"dry run: plan {', '.join(f'{n} {s:.0f}s' for n, s in limits.items())}; "
                f"wrote {out / 'gpu.md'}")
        return 0
    write()
    for r in results:
        name = r["name"]
        if absent[name]:
            r["status"] = "skipped"
            r["data"] = {"skipped": f"{', '.join(absent[name])} not installed for {sys.executable}"
                                    " (carry wheels: scripts/gpu_check.sh --wheels)"}
            say(t0, f"{name}: skipped, {', '.join(absent[name])} not installed")
            write()
            continue
        left = args.budget - (time.monotonic() - t0)
        limit = next_limit(runnable[runnable.index(name):], left)
        if limit < MIN_PART_S:
            r["status"] = f"not run: {left:.0f} s of the budget left"
            say(t0, f"{name}: skipped, {left:.0f} s left")
            write()
            continue
        say(t0, f"{name}: started (limit {limit:.0f} s)")
        state_path = work / f"{name}.json"
        state_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "nas.benchmarks.gpu", "--part", name, "--work", str(work),
               "--limit", f"{limit:.1f}", *(f"--fashion-mnist={d}" for d in args.fashion_mnist)]
        started = time.monotonic()
        rc, tail = _run_part_process(cmd, limit, work / f"{name}.log")
        data = json.loads(state_path.read_text()) if state_path.is_file() else {}
        r.update(seconds=time.monotonic() - started, limit_s=limit, data=salvage(name, data))
        if rc is None:
            r["status"] = f"cut off at its {limit:.0f} s limit"
        elif rc != 0 or data.get("returncode", 0) != 0:
            r["status"] = "failed" if rc != 0 else f"finished with exit code {data['returncode']}"
            r["error"] = tail
            print(tail, flush=True)
        else:
            r["status"] = "skipped" if data.get("skipped") else "done"
        say(t0, f"{name}: {r['status']} after {r['seconds']:.0f} s")
        write()
    say(t0, f"report: {out / 'gpu.md'}")
    return 0


def run_one_part(args: argparse.Namespace) -> int:
    work = Path(args.work)
    ctx = Context(work=work, fashion_dirs=[Path(d) for d in args.fashion_mnist], limit_s=args.limit)
    PARTS[args.part].run(ctx, PartState(work / f"{args.part}.json"))
    return 0


def default_fashion_dirs() -> list[str]:
    from nas.data.idx import FASHION_MNIST_DIR

    return [FASHION_MNIST_DIR, str(REPO / ".data" / "fashion-mnist")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nas.benchmarks.gpu",
        description="Run the CUDA paths on this machine's GPU within a time budget and write "
                    "gpu.md / gpu.json (rewritten after every part).")
    parser.add_argument("--out", default=str(BENCHMARKS), help="folder of gpu.md and gpu.json")
    parser.add_argument("--work", default=str(REPO / "results" / "run-gpu"),
                        help="working folder (run folders, tables, logs)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help=f"seconds for all parts together ({DEFAULT_BUDGET_S:.0f})")
    parser.add_argument("--parts", type=lambda s: [p for p in s.split(",") if p],
                        default=list(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--fashion-mnist", action="append", default=None,
                        help="folder of the Fashion-MNIST IDX files (repeatable; default: "
                             "/usr/share/datasets/fashion-mnist, then .data/fashion-mnist)")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the plan as a report without running anything (no GPU needed)")
    parser.add_argument("--note", action="append", help="a line for the report's header")
    parser.add_argument("--command", default=None, help="the command to print as 'Reproduce'")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, default=DEFAULT_BUDGET_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: unknown part(s) {unknown}; expected some of {list(PARTS)}")
    if args.budget <= 0:
        parser.error("--budget must be > 0 seconds")
    args.fashion_mnist = args.fashion_mnist or default_fashion_dirs()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_one_part(args) if args.part else drive(args)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the export formats on real extracted subnets (why ``pt`` also writes a ``.pt2``).

Reproduce::

    .venv/bin/python -m nas.export.benchmark --space hybrid-cifar

For the smallest and the largest subnet of the space (supernet weights replaced by seeded random
values of unit-scale activations, so that differences are measured on outputs of order 1; timing
and file properties do not depend on the values), each format is exported and verified on its own
(:func:`nas.export.export_model`, wall time including its checks); then, in a fresh ``python -I``
interpreter that cannot import this package, the time to load the file and the batch-1 latency
(one thread, interleaved rounds, lowest round median) are measured against eager PyTorch.
Writes ``results/benchmarks/export_formats.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nas.export.formats import export_model
from nas.export.verify import package_roots
from nas.io import atomic_write_text

_CHILD = r"""
import json, os, statistics, sys, time
args = json.loads(sys.argv[1])
roots = {os.path.realpath(r) for r in args["exclude"]}
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) not in roots]
try:
    import nas
    raise SystemExit("nas is importable")
except ImportError:
    pass
import numpy as np
import torch
import onnxruntime as ort
torch.set_num_threads(1)
x = np.load(args["example"])["input"]
xt = torch.from_numpy(x)
runs, load_s = {}, {}
for kind, path in args["files"].items():
    t = time.perf_counter()
    if kind == "onnx":
        o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
        s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        runs[kind] = lambda s=s, name=name: s.run(None, {name: x})
    else:
        m = torch.jit.load(path) if kind == "torchscript" else torch.export.load(path).module()
        runs[kind] = lambda m=m: m(xt)
    load_s[kind] = time.perf_counter() - t
best = {k: float("inf") for k in runs}
with torch.inference_mode():
    for fn in runs.values():
        for _ in range(args["warmup"]):
            fn()
    for _ in range(args["rounds"]):
        for kind, fn in runs.items():
            ts = []
            for _ in range(args["calls"]):
                t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
            best[kind] = min(best[kind], statistics.median(ts))
print(json.dumps({"load_s": load_s, "latency_ms": {k: v * 1e3 for k, v in best.items()}}))
"""


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded random weights and BN statistics that keep activations of order 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=gen)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.dim() <= 1:  # biases, norm scales, running means
                t.copy_(noise * 0.1 + (1.0 if name.endswith("weight") else 0.0))
            else:
                t.copy_(noise / max(1, t[0].numel()) ** 0.5)
    return model


def measure(space_name: str, rounds: int, calls: int) -> list[dict]:
    from nas.spaces import load_space
    from nas.supernet import Supernet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    space = load_space(space_name)
    supernet = Supernet(space).eval()
    rows = []
    for label, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        model = randomize_(supernet.extract(arch))
        x = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
        with tempfile.TemporaryDirectory(prefix="nas-export-bench-") as tmp:
            files, export_s, checks = {}, {}, {}
            for fmt in ("pt", "torchscript", "onnx"):
                start = time.perf_counter()
                paths = export_model(model, x, Path(tmp) / fmt, formats=fmt, standalone_check=False)
                export_s[fmt] = time.perf_counter() - start
                manifest = json.loads(paths["manifest"].read_text())
                checks.update(manifest["checks"])
                files.update({k: str(v) for k, v in paths.items()
                              if k in ("pt2", "torchscript", "onnx", "state_dict")})
                files["example"] = str(paths["example"])
            child_files = {k: v for k, v in files.items() if k in ("pt2", "torchscript", "onnx")}
            child_files["eager"] = None
            child = _run_child(child_files, files["example"], rounds, calls, model)
            sizes = {k: Path(v).stat().st_size for k, v in files.items() if k != "example"}
        rows.append({"subnet": label, "arch": arch.to_str(), "resolution": arch.resolution,
                     "export_s": export_s, "sizes": sizes, "checks": checks, **child})
    return rows


def _run_child(files: dict, example: str, rounds: int, calls: int, model: torch.nn.Module) -> dict:
    real = {k: v for k, v in files.items() if v is not None}
    args = {"exclude": package_roots(), "files": real, "example": example,
            "warmup": 10, "rounds": rounds, "calls": calls}
    proc = subprocess.run([sys.executable, "-I", "-c", _CHILD, json.dumps(args)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["latency_ms"]["eager"] = _eager_ms(model, example, rounds, calls)
    return out


def _eager_ms(model: torch.nn.Module, example: str, rounds: int, calls: int) -> float:
    import statistics

    import numpy as np

    x = torch.from_numpy(np.load(example)["input"])
    best = float("inf")
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        for _ in range(rounds):
            ts = []
            for _ in range(calls):
                t = time.perf_counter()
                model(x)
                ts.append(time.perf_counter() - t)
            best = min(best, statistics.median(ts))
    return best * 1e3


def render(rows: list[dict], space: str, command: str) -> str:
    lines = [
        "# Export formats on extracted subnets",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Space `{space}`, seeded random weights (outputs of order 1), batch 1, one thread; torch "
        f"{torch.__version__}, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}. Load time and latency are measured in a fresh `python -I` "
        "interpreter that cannot import `nas` (eager: in the benchmark process). Latency: lowest "
        "round median. Export time includes reloading and verifying the file. "
        "The `pt` export writes both `state_dict` and `pt2`.",
        "",
        "| subnet | format | export + verify (s) | file size (KiB) | load (s) | latency (ms) | "
        "max abs diff vs eager |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row['subnet']} | eager | | | | {row['latency_ms']['eager']:.3f} | |")
        for kind, fmt in (("state_dict", "pt"), ("pt2", "pt"), ("torchscript", "torchscript"),
                          ("onnx", "onnx")):
            size = row["sizes"].get(kind)
            load = row["load_s"].get(kind)
            lat = row["latency_ms"].get(kind)
            diff = row["checks"].get(kind, {}).get("max_abs_diff")
            lines.append(
                f"| {row['subnet']} | {kind} | {row['export_s'][fmt]:.2f} | "
                f"{size / 1024:.1f} | {'' if load is None else f'{load:.3f}'} | "
                f"{'' if lat is None else f'{lat:.3f}'} | "
                f"{'' if diff is None else f'{diff:.1e}'} |"
            )
    lines += ["", "Summary (computed from the table):", ""]
    for row in rows:
        lat, load = row["latency_ms"], row["load_s"]
        eager = lat["eager"]
        ratios = ", ".join(f"{k} {eager / v:.2f}x" for k, v in lat.items() if k != "eager")
        loads = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(load.items(), key=lambda kv: kv[1]))
        lines.append(f"- {row['subnet']}: speed vs eager: {ratios}; load time: {loads}")
    lines += ["", "Architectures:", ""]
    lines += [f"- {row['subnet']} (r{row['resolution']}): `{row['arch']}`" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", default="results/benchmarks/export_formats.md")
    args = parser.parse_args(argv)
    rows = measure(args.space, args.rounds, args.calls)
    command = (f".venv/bin/python -m nas.export.benchmark --space {args.space} "
               f"--rounds {args.rounds} --calls {args.calls}")
    text = render(rows, args.space, command)
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

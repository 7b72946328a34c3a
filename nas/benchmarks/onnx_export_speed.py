"""Benchmark: the dynamo ONNX export of latency-table units, with torch's per-call ATen-to-ONNX
registry and with the one registry :func:`nas.onnx_graph.export_onnx` keeps per opset.

Reproduce::

    .venv/bin/python -m nas.benchmarks.onnx_export_speed --space hybrid-tiny --n 24 --profile

``torch.onnx.export(dynamo=True)`` rebuilds its registry from onnxscript's torchlib on every call
(it reads the source of ~500 functions). Here ``--n`` units of the space (a seeded choice) are
exported both ways in alternating order, ``--rounds`` times; the files must be byte-identical.
With ``--profile`` the whole ``nas profile`` of the space (ONNX Runtime, the quick run's settings)
is timed both ways too. Both ways run in this one process, so the ratio is what to read on a
shared machine. Writes ``results/benchmarks/onnx_export_speed.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np

from nas import onnx_graph
from nas.io import atomic_write_text
from nas.latency.environment import machine_summary
from nas.latency.space_units import build_unit, space_units
from nas.spaces import load_space

OUT = Path("results/benchmarks/onnx_export_speed.md")
WAYS = ("torch's registry per call", "one registry per opset")
QUICK_PROFILE = ["--latency-device", "onnxruntime", "--rounds", "3", "--repeats", "10",
                 "--calibrate", "8", "--no-progress"]


@contextlib.contextmanager
def way(name: str) -> Iterator[None]:
    """Export as torch does (its registry rebuilt per call) or as :mod:`nas.onnx_graph` does."""
    if name == WAYS[0]:
        with mock.patch.object(onnx_graph, "_one_torchlib_registry", contextlib.nullcontext):
            yield
    else:
        yield


def time_units(space_name: str, n: int, rounds: int, seed: int, tmp: Path
               ) -> tuple[dict[str, list[float]], bool]:
    """Seconds per unit export for each way, and whether both ways wrote identical files."""
    units = list(space_units(load_space(space_name)).values())
    rng = np.random.default_rng(seed)
    picked = [units[i] for i in sorted(rng.choice(len(units), size=min(n, len(units)),
                                                  replace=False))]
    seconds: dict[str, list[float]] = {w: [] for w in WAYS}
    digests: dict[str, list[str]] = {w: [] for w in WAYS}
    for r in range(rounds):
        for i, unit in enumerate(picked):
            order = WAYS if (r + i) % 2 == 0 else WAYS[::-1]
            for w in order:
                module, x = build_unit(unit, 1, np.random.default_rng([seed, i]))
                path = tmp / f"u{i}.onnx"
                with way(w):
                    start = time.perf_counter()
                    onnx_graph.export_onnx(module, x, path)
                    seconds[w].append(time.perf_counter() - start)
                if r == 0:
                    digests[w].append(hashlib.sha256(path.read_bytes()).hexdigest())
    return seconds, digests[WAYS[0]] == digests[WAYS[1]]


def time_profile(space_name: str, tmp: Path) -> dict[str, float]:
    """Wall seconds of ``nas profile`` of the space, each way (fresh table each time)."""
    from nas.cli import main

    out: dict[str, float] = {}
    for i, w in enumerate(WAYS):
        with way(w):
            start = time.perf_counter()
            code = main(["profile", "--space", space_name, "--out", str(tmp / f"t{i}.csv"),
                         *QUICK_PROFILE])
            out[w] = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"nas profile exited {code}")
    return out


def report(args: argparse.Namespace, seconds: dict[str, list[float]], identical: bool,
           profile: dict[str, float] | None, argv: list[str]) -> str:
    base, ours = (statistics.median(seconds[w]) for w in WAYS)
    lines = [
        "# Dynamo ONNX export of latency-table units: one ATen-to-ONNX registry per opset",
        "",
        "Reproduce: `" + " ".join(["python -m nas.benchmarks.onnx_export_speed",
                                   *map(shlex.quote, argv)]) + "`",
        "",
        f"Machine: {machine_summary()}, load average (1 min) {os.getloadavg()[0]:.1f} when "
        "the report was written; both ways timed in one process in alternating order, so read "
        "the ratio.",
        "",
        "`torch.onnx.export(dynamo=True)` builds its ATen-to-ONNX registry from onnxscript's "
        "torchlib on every call, reading the source of ~500 functions with `inspect.getsource`. "
        "The registry depends on the opset alone and the export only reads it, so "
        "`nas.onnx_graph.export_onnx` builds it once per opset and hands it to every export "
        "(`_one_torchlib_registry`). Same files, byte for byte.",
        "",
        f"## {len(seconds[WAYS[0]])} unit exports of {args.space} ({args.n} units x {args.rounds} "
        "rounds)",
        "",
        "| way | median s per unit | total s |",
        "|---|---|---|",
        *(f"| {w} | {statistics.median(seconds[w]):.3f} | {sum(seconds[w]):.1f} |" for w in WAYS),
        "",
        f"Speed-up per unit: **{base / ours:.2f}x**. Files byte-identical both ways: "
        f"**{'yes' if identical else 'NO'}**.",
    ]
    if profile is not None:
        a, b = (profile[w] for w in WAYS)
        lines += [
            "",
            f"## Whole `nas profile --space {args.space} {' '.join(QUICK_PROFILE)}`",
            "",
            "The profile stage of `nas run --quick` (every unit exported and timed, then the "
            "calibration networks).",
            "",
            "| way | wall s |",
            "|---|---|",
            f"| {WAYS[0]} | {a:.1f} |",
            f"| {WAYS[1]} | {b:.1f} |",
            "",
            f"Speed-up: **{a / b:.2f}x**.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid-tiny")
    parser.add_argument("--n", type=int, default=24, help="units exported each way per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="also time the whole nas profile of the space each way")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nas-export-speed-") as tmp:
        seconds, identical = time_units(args.space, args.n, args.rounds, args.seed, Path(tmp))
        profile = time_profile(args.space, Path(tmp)) if args.profile else None
    text = report(args, seconds, identical, profile, argv)
    atomic_write_text(args.out, text)
    print(text)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())

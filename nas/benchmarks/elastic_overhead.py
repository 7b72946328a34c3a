"""Benchmark: time of ``supernet.forward(x, arch)`` over the extracted model's, per subnet.

Reproduce::

    .venv/bin/python -m nas.benchmarks.elastic_overhead --space hybrid-cifar --n 20 --batch 32

Both models of a subnet are timed in interleaved rounds (supernet, extracted, supernet, ...) with
one torch thread under ``torch.inference_mode``; each round times several calls, and the lowest
round median of each is kept, so machine noise affects both sides alike. Writes
``results/benchmarks/elastic_overhead.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nas.io import atomic_write_text
from nas.spaces import load_space
from nas.supernet import Supernet


def _round_ms(fn, x: torch.Tensor, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(space_name: str, n: int, batch: int, rounds: int, calls: int, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    space = load_space(space_name)
    net = Supernet(space).eval()
    rng = np.random.default_rng(seed)
    rows = []
    with torch.inference_mode():
        for k in range(n):
            arch = space.sample(rng)
            model = net.extract(arch)
            x = torch.randn(batch, space.in_channels, arch.resolution, arch.resolution)
            elastic = lambda t, a=arch: net(t, a)  # noqa: E731
            for _ in range(3):  # warm-up
                elastic(x), model(x)
            best_e, best_s = float("inf"), float("inf")
            for _ in range(rounds):
                best_e = min(best_e, _round_ms(elastic, x, calls))
                best_s = min(best_s, _round_ms(model, x, calls))
            rows.append(
                {
                    "k": k,
                    "arch": arch.to_str(),
                    "supernet_ms": best_e,
                    "extracted_ms": best_s,
                    "ratio": best_e / best_s,
                }
            )
            print(
                f"[{k + 1}/{n}] ratio {best_e / best_s:.3f}  ({best_e:.2f} ms vs {best_s:.2f} ms)"
            )
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> str:
    ratios = [r["ratio"] for r in rows]
    med, worst = statistics.median(ratios), max(ratios)
    lines = [
        "# Elastic overhead: supernet forward vs extracted model",
        "",
        "Reproduce:",
        "",
        "```",
        f".venv/bin/python -m nas.benchmarks.elastic_overhead --space {args.space} --n {args.n} "
        f"--batch {args.batch} --rounds {args.rounds} --calls {args.calls} --seed {args.seed}",
        "```",
        "",
        "With the virtualenv activated: `python -m nas.benchmarks.elastic_overhead ...` (same options).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
        f"batch {args.batch}, float32, `torch.inference_mode`. Interleaved rounds, lowest round "
        "median of each side.",
        "",
        f"**Median ratio {med:.3f}, max {worst:.3f}** over {len(rows)} random {args.space} subnets "
        f"(target: median <= 1.15).",
        "",
        "| # | supernet ms | extracted ms | ratio | architecture (stages separated by /) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['k']} | {r['supernet_ms']:.2f} | {r['extracted_ms']:.2f} | {r['ratio']:.3f} | "
            f"`{r['arch'].replace('|', '/')}` |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/benchmarks/elastic_overhead.md")
    args = parser.parse_args()
    rows = measure(args.space, args.n, args.batch, args.rounds, args.calls, args.seed)
    atomic_write_text(Path(args.out), report(rows, args))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""A family of real latency "devices" on this machine, measured for the few-shot benchmark.

A device is one setting of runtime (torch eager or ONNX Runtime), intra-op threads (1 or 2) and
batch (1 or 32): each changes the relative costs of convolutions, attention and mixers. Where torch
sees a CUDA GPU, two more: torch eager on the GPU at batch 1 (launch-bound) and 64 (CUDA events).
A device is measured where it exists (``--devices`` defaults to those); its folder is then copied
into ``<work>/<space>/`` beside the others. For each device
:func:`measure_device` writes, in ``<work>/<device>/``:

- ``table.csv`` (+ ``.json``): the full unit-by-unit latency table of the space with its
  20-network calibration (``nas profile``'s own machinery, :func:`profile_space`): the ceiling a
  few-shot table is compared with, and a prior for the other devices;
- ``networks.csv``: ``arch, latency_ms`` of the same :data:`N_NETWORKS` subnets on every device
  (never one of the table's calibration subnets), timed end to end with the table's protocol in
  interleaved chunks and appended chunk by chunk, so a killed run resumes where it stopped;
- ``repeat.csv``: the last :data:`N_REPEAT` of them timed again in a separate later pass (other
  weights), the device's own repeatability: no prediction can agree with one pass better than the
  device agrees with itself.

Timing protocol (lighter than ``nas profile``'s default, to fit the measurements of eight devices
into the time a 2-core shared machine gives): 3 warm-up calls, 3 interleaved rounds of at least 5
timer reads and 20 ms each, lowest round median kept; the thread-CPU clock with 1 thread (load
from other processes does not inflate it), wall time with 2 threads (it does: noisy under load).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.arch import Architecture
from nas.io import atomic_write_text
from nas.latency.space_profile import (
    calibration_archs,
    distinct_archs,
    measure_networks,
    profile_space,
    protocol_for,
)
from nas.spaces import load_space
from nas.spaces.schema import SearchSpace

N_NETWORKS = 150
N_REPEAT = 30
NETWORK_STREAM = 0xF5E7  # seed stream of the benchmark's networks
CHUNK = 25
PROTOCOL = {"warmup": 3, "repeats": 5, "rounds": 3, "min_time_per_round": 0.02}
DEFAULT_WORK = Path(__file__).resolve().parents[2] / "results" / "fewshot"


@dataclass(frozen=True)
class DeviceSetting:
    """One device of the family."""

    runtime: str  # "cpu" (torch eager), "onnxruntime" or "cuda" (torch eager on the GPU)
    threads: int
    batch: int

    @property
    def name(self) -> str:
        if self.runtime == "cuda":
            return f"cuda-b{self.batch}"
        runtime = "torch" if self.runtime == "cpu" else "ort"
        return f"{runtime}-t{self.threads}-b{self.batch}"

    def available(self) -> bool:
        """Whether this machine has the device (the CPU ones always; the GPU ones with CUDA)."""
        return self.runtime != "cuda" or torch.cuda.is_available()


DEVICES: dict[str, DeviceSetting] = {
    d.name: d
    for d in (
        *(
            DeviceSetting(runtime, threads, batch)
            for threads in (1, 2)
            for runtime in ("cpu", "onnxruntime")
            for batch in (1, 32)
        ),
        DeviceSetting("cuda", 1, 1),
        DeviceSetting("cuda", 1, 64),
    )
}


def benchmark_archs(space: SearchSpace, n: int = N_NETWORKS, seed: int = 0) -> list[Architecture]:
    """The benchmark's ``n`` subnets (the same on every device), never a calibration subnet."""
    return distinct_archs(
        space, n, np.random.default_rng([seed, NETWORK_STREAM]), exclude=calibration_archs(space, 20)
    )


def read_networks(path: Path) -> dict[str, float]:
    """``arch string -> ms`` of a device's ``networks.csv`` (empty when absent)."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row["arch"]: float(row["latency_ms"]) for row in csv.DictReader(f)}


def _write_networks(path: Path, values: dict[str, float]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["arch", "latency_ms"])
    for arch, ms in values.items():
        writer.writerow([arch, repr(ms)])
    atomic_write_text(path, buf.getvalue())


def measure_device(
    space: SearchSpace, setting: DeviceSetting, work: Path, *, n_networks: int = N_NETWORKS
) -> None:
    """Profile the unit table and time the benchmark networks on ``setting`` (resumable)."""
    folder = work / setting.name
    folder.mkdir(parents=True, exist_ok=True)
    protocol = protocol_for(setting.runtime, setting.threads, **PROTOCOL)

    def say(text: str) -> None:
        print(f"[{setting.name}] {text}", flush=True)

    start = time.monotonic()
    profile_space(
        space, folder / "table.csv", protocol, batch=setting.batch, progress=False, say=say
    )
    say(f"table done in {time.monotonic() - start:.0f} s")
    path = folder / "networks.csv"
    done = read_networks(path)
    todo = [a for a in benchmark_archs(space, n_networks) if a.to_str() not in done]
    for at in range(0, len(todo), CHUNK):
        chunk = todo[at : at + CHUNK]
        ms = measure_networks(
            space, chunk, protocol, batch=setting.batch, seed=len(done),
            rng=np.random.default_rng([len(done), 3]),
        )
        done.update({a.to_str(): float(m) for a, m in zip(chunk, ms)})
        _write_networks(path, done)
        say(f"{len(done)}/{n_networks} networks ({time.monotonic() - start:.0f} s)")
    repeat_path = folder / "repeat.csv"
    if not read_networks(repeat_path):
        again = benchmark_archs(space, n_networks)[-N_REPEAT:]
        ms = measure_networks(space, again, protocol, batch=setting.batch, seed=10_000,
                              rng=np.random.default_rng([10_000, 3]))
        _write_networks(repeat_path, {a.to_str(): float(m) for a, m in zip(again, ms)})
        say(f"{len(again)} networks timed again ({time.monotonic() - start:.0f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="hybrid-cifar")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--devices", nargs="+", choices=list(DEVICES),
                        help="default: every device this machine has")
    parser.add_argument("--n-networks", type=int, default=N_NETWORKS)
    args = parser.parse_args(argv)
    names = args.devices or [n for n, d in DEVICES.items() if d.available()]
    absent = [n for n in names if not DEVICES[n].available()]
    if absent:
        parser.error(f"not on this machine: {', '.join(absent)} (torch sees no CUDA device)")
    space = load_space(args.space)
    for name in names:
        measure_device(space, DEVICES[name], args.work / space.name, n_networks=args.n_networks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

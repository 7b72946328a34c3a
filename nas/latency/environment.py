"""What a latency was measured on: device parsing, processor / GPU name, runtime versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from nas.errors import UserError

# torch (and nas.devices) are imported where they are used: nas.latency.protocol reads
# check_runtime, and 'nas profile --help' must not import torch

RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "torchscript")


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UserError(f"runtime {runtime!r} not understood; expected one of {RUNTIMES}")
    return runtime


def cpu_model_name() -> str:
    """The CPU model (``/proc/cpuinfo`` model name, else ``platform.processor()``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown cpu"


def l2_cache_per_core() -> str | None:
    """The L2 cache of CPU 0 as the kernel reports it (``"2048K"``), or None where unknown."""
    caches = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(caches.glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                return (index / "size").read_text().strip()
        except OSError:
            continue
    return None


def machine_summary() -> str:
    """One phrase for a report: CPU model, architecture, logical cores and L2 per core."""
    l2 = l2_cache_per_core()
    parts = [platform.machine(), f"{os.cpu_count()} logical cores"]
    if l2:
        parts.append(f"L2 {l2} per core")
    return f"{cpu_model_name()} ({', '.join(parts)})"


def load_summary(start: float, end: float) -> str:
    """The 1-minute load average at a run's start and end, against the machine's cores: what a
    reader needs to judge how far other processes disturbed a timing."""
    return (f"load average (1 min) {start:.1f} at the start and {end:.1f} at the end on "
            f"{os.cpu_count()} logical cores")


def processor_name(device: str) -> str:
    """The processor that runs ``device``: the GPU name for CUDA, the CPU model otherwise."""
    import torch

    from nas.devices import parse_device

    dev = parse_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_model_name()


def runtime_versions(runtime: str) -> dict[str, str]:
    """Versions that change timings: torch (and CUDA), onnxruntime when used."""
    import torch

    check_runtime(runtime)
    versions = {"torch": torch.__version__}
    if torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    if runtime == "onnxruntime":
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    return versions

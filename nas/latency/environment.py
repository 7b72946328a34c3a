"""What a latency was measured on: device parsing, processor / GPU name, runtime versions."""

from __future__ import annotations

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

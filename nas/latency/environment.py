"""What a latency was measured on: device parsing, processor / GPU name, runtime versions."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - torch is imported where it is used (light CLI help)
    import torch

RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime")


def parse_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a torch device; CUDA must be available."""
    import torch

    text = device.strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(
                f"device {device!r} requested but CUDA is not available here "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        dev = torch.device(text)
        index = dev.index if dev.index is not None else 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    raise UserError(f"device {device!r} not understood; expected 'cpu', 'cuda' or 'cuda:N'")


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

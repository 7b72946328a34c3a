"""The timing protocol's settings (a light module: ``nas profile --help`` shows its defaults
without importing torch); :mod:`nas.latency.timing` measures with it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from nas.errors import UserError
from nas.latency.environment import check_runtime
from nas.onnx_graph import DEFAULT_EXPORTER, DEFAULT_OPSET, EXPORTERS, MIN_OPSET

Runtime = Literal["torch", "onnxruntime", "torchscript"]
CLOCKS: tuple[str, ...] = ("wall", "thread")
DEFAULT_CALIBRATION_K = 20  # whole subnets timed to calibrate a table (nas profile --calibrate)
# A table with int8 entries offers a switch scale per gene kind on top (about twice the free
# parameters): at K=20 that model is chosen and overfits; at 40 it predicts fresh subnets
# within +/-10% (results/benchmarks/int8_calibration.md).
INT8_CALIBRATION_K = 40


def default_calibration_k(precisions: Sequence[str]) -> int:
    """Whole subnets ``nas profile`` times by default for a table of these precisions."""
    return INT8_CALIBRATION_K if any(p != "fp32" for p in precisions) else DEFAULT_CALIBRATION_K


@dataclass(frozen=True)
class TimingProtocol:
    """All settings of the timing protocol (see the module docstring)."""

    device: str = "cpu"
    runtime: Runtime = "torch"
    threads: int = 1
    warmup: int = 10
    repeats: int = 20
    rounds: int = 5
    min_time_per_round: float = 0.05
    min_time_per_read: float = 2e-4
    onnx_opset: int = DEFAULT_OPSET
    clock: str = "wall"
    cuda_graph: bool = False
    onnx_exporter: str = DEFAULT_EXPORTER
    onnx_dynamic_batch: bool = True

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
        if self.cuda_graph and (self.runtime != "torch" or not self.device.startswith("cuda")):
            raise UserError(
                "timing protocol: cuda_graph (CUDA graph replay) needs runtime 'torch' on a CUDA "
                f"device, got {self.runtime!r} on {self.device!r}"
            )
        if self.onnx_exporter not in EXPORTERS:
            raise UserError(f"timing protocol: ONNX exporter {self.onnx_exporter!r} not understood; "
                            f"expected one of {EXPORTERS}")
        if int(self.onnx_opset) < MIN_OPSET:
            raise UserError(f"timing protocol: ONNX opset {self.onnx_opset} < {MIN_OPSET}")
        if self.clock not in CLOCKS:
            raise UserError(f"timing protocol: clock {self.clock!r} not understood; expected {CLOCKS}")
        if self.clock == "thread" and (int(self.threads) != 1 or self.device != "cpu"):
            raise UserError(
                "timing protocol: clock 'thread' (CPU time of the calling thread) needs device "
                f"'cpu' and 1 thread, got device {self.device!r} with {self.threads} thread(s); "
                "use clock 'wall'"
            )
        for name in ("threads", "repeats", "rounds"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"timing protocol: {name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise UserError(f"timing protocol: warmup must be >= 0, got {self.warmup}")
        for name in ("min_time_per_round", "min_time_per_read"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"timing protocol: {name} must be a finite number >= 0 seconds")

    def describe(self) -> dict[str, Any]:
        """The protocol as a JSON-ready dict for a latency table's metadata."""
        return protocol_description(self)

    def estimate_seconds(self, n_items: int, typical_call_s: float = 1e-3) -> float:
        """Rough wall time to measure ``n_items`` items whose calls take ``typical_call_s``."""
        per_round = max(self.min_time_per_round, self.repeats * typical_call_s)
        per_item = (self.warmup + 3) * typical_call_s + self.rounds * per_round
        setup = 0.3 if self.runtime == "onnxruntime" else 0.0  # export + session creation
        return n_items * (per_item + setup)


def protocol_description(protocol: TimingProtocol | None = None, **settings: Any) -> dict[str, Any]:
    """JSON-ready description of a protocol (given, or built from keyword settings)."""
    protocol = protocol if protocol is not None else TimingProtocol(**settings)
    out: dict[str, Any] = asdict(protocol)
    if not protocol.cuda_graph:  # eager tables keep the metadata they had before this setting
        del out["cuda_graph"]
    out.update(
        {
            "estimate": "lowest per-round median of per-call times",
            "timer": "cuda events around CUDA graph replays"
            if protocol.cuda_graph
            else "cuda events"
            if protocol.device.startswith("cuda") and protocol.runtime == "torch"
            else "time.thread_time_ns (CPU time of the calling thread)"
            if protocol.clock == "thread"
            else "time.perf_counter_ns",
            "calls_per_read": "ceil(min_time_per_read / fastest of 3 single calls)",
            "samples_per_round": "max(repeats, ceil(min_time_per_round / read time))",
            "interleaved": "rounds visit all items in a seeded shuffled order",
            "torch": "inference_mode, eval(), torch.set_num_threads(threads), gc paused",
            "onnxruntime": "nas.onnx_graph.export_onnx (the export path of 'nas export'); "
            "intra_op=threads, inter_op=1, sequential, ORT_ENABLE_ALL",
            **({"torchscript": "nas.torchscript.trace_to_file (the TorchScript file 'nas "
                "export' writes, loaded back with torch.jit.load)"}
               if protocol.runtime == "torchscript" else {}),
        }
    )
    return out

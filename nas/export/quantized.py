"""The INT8 / mixed-precision file of an exported architecture (``nas export`` when the
architecture has an ``int8`` gene).

Writes ``<name>.<int8|mixed>.onnx``: the QDQ graph of :mod:`nas.quantize` (the same function that
measures a policy's accuracy in ``nas sample``), calibrated on seeded TRAINING batches. It is
loaded and run in a fresh interpreter that cannot import this package
(:func:`nas.export.verify.verify_standalone`), its accuracy measured with ONNX Runtime on the
validation and test splits, and its latency measured beside the float ONNX file's in interleaved
rounds of the same timing protocol (ONNX Runtime, 1 thread unless the protocol says otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.costs import size_bytes
from nas.precision import INT8
from nas.quantize import calibration_batches, ort_session, quantize_subnet, split_accuracy

if TYPE_CHECKING:
    from torch import nn

    from nas.data import DatasetSplits
    from nas.latency import TimingProtocol
    from nas.spaces.schema import SearchSpace


def policy_tag(arch: Architecture) -> str:
    """``int8`` when every gene is int8, else ``mixed``."""
    return INT8 if all(p == INT8 for p in arch.precisions()) else "mixed"


def export_policy(model: nn.Module, space: SearchSpace, arch: Architecture,
                  splits: DatasetSplits, staging: Path, name: str, example: torch.Tensor, *,
                  float_onnx: Path | None, protocol: TimingProtocol | None, calibration_n: int,
                  calibration_batch_size: int, seed: int,
                  standalone_check: bool = True) -> dict[str, Any]:
    """Write, check and measure the QDQ file of ``arch``'s policy in ``staging``; the card's
    ``quantization`` section (see :mod:`nas.export.model_card`)."""
    calibration = calibration_batches(splits.train, arch, space.in_channels,
                                      batches=calibration_n, batch_size=calibration_batch_size,
                                      seed=seed)
    path = quantize_subnet(model, space, arch, calibration,
                           staging / f"{name}.{policy_tag(arch)}.onnx")
    session = ort_session(path)
    x = example.detach().cpu().contiguous()
    expected = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    section: dict[str, Any] = {
        "policy": arch.to_str(), "file": path.name, "size_bytes": size_bytes(space, arch),
        "file_bytes": path.stat().st_size,
        "calibration": f"{calibration_n} x {calibration_batch_size} training images (seed {seed}), "
                       "MinMax; weights int8 per channel, activations uint8 per tensor",
    }
    if standalone_check:
        from nas.export.verify import verify_standalone

        diff = verify_standalone({"onnx": path}, x, expected, atol=1e-5)["onnx"]
        section["standalone_max_abs_diff"] = diff
    for key, split in (("validation", "val"), ("test", "test")):
        part = getattr(splits, split)
        section[key] = None if len(part) == 0 else split_accuracy(
            session, part, resolution=arch.resolution, in_channels=space.in_channels)["acc"]
    if protocol is not None and float_onnx is not None:
        section.update(_latency(path, float_onnx, x, protocol))
    return section


def _latency(path: Path, float_onnx: Path, x: torch.Tensor,
             protocol: TimingProtocol) -> dict[str, float]:
    """ONNX Runtime latency of the QDQ and the float file, interleaved rounds of ``protocol``."""
    from dataclasses import replace

    from nas.export.measure import ort_call
    from nas.latency import TimingItem, measure_many

    protocol = replace(protocol, runtime="torch")  # the items are callables, timed as they are
    items = [TimingItem("policy", ort_call(path, x, protocol), x),
             TimingItem("float", ort_call(float_onnx, x, protocol), x)]
    measured = measure_many(items, protocol, rng=np.random.default_rng(0))
    return {"measured_ms": measured["policy"].latency_ms,
            "float_measured_ms": measured["float"].latency_ms}

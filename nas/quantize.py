"""Static INT8 quantization of a subnet's precision policy with ONNX Runtime (QDQ format).

The one path a mixed-precision subnet takes, whether it is measured (``nas sample``, the quantization
benchmark) or exported (``nas export``): the static subnet (BN recalibrated) is exported to ONNX
with the TorchScript exporter, whose node names keep the module scope (``/stem/...``,
``/blocks/blocks.<k>/...``, ``/head/...``; block ``k`` is unit ``k + 1`` of
:func:`nas.units.arch_units`), and ``onnxruntime.quantization.quantize_static`` inserts
QuantizeLinear/DequantizeLinear pairs around exactly the nodes of the ``int8`` units
(``nodes_to_quantize``): weights per output channel, symmetric INT8; activations per tensor,
unsigned INT8, MinMax-calibrated on TRAINING batches. ONNX Runtime fuses each QDQ group into an
integer kernel (VNNI where the CPU has it). Units left ``fp32`` run in float, and a boundary between
precisions costs one QuantizeLinear or DequantizeLinear.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.onnx_graph import ort_session
from nas.precision import FP32, INT8
from nas.units import arch_unit_precisions

if TYPE_CHECKING:
    from torch import nn

    from nas.data import Split
    from nas.spaces.schema import SearchSpace

INPUT_NAME, OUTPUT_NAME = "input", "output"
OPSET = 17
# the operators with weights (what holds the MACs); norms, activations and elementwise ops between
# them stay float, as in ONNX Runtime's and Intel Neural Compressor's default CPU recipes
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "Gemm", "MatMul")
_SCOPE = re.compile(r"^/(stem|head|blocks/blocks\.(\d+))/")

__all__ = ["OPSET", "calibration_batches", "evaluate_policy", "export_fp32_onnx", "int8_nodes",
           "is_mixed", "ort_session", "quantize_model", "quantize_nodes", "quantize_subnet",
           "split_accuracy"]


def is_mixed(arch: Architecture) -> bool:
    """Whether any precision gene of ``arch`` is not fp32 (so it runs through the QDQ graph)."""
    return any(p != FP32 for p in arch.precisions())


def export_fp32_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike) -> Path:
    """``model`` (eval mode) as float ONNX with a dynamic batch and scoped node names."""
    from nas.onnx_graph import quiet_exporter

    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            model.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    _initializers_for_identities(path)
    return Path(path)


def _initializers_for_identities(path: str | os.PathLike) -> None:
    """Replace each ``Identity`` of an initializer (the exporter shares equal tensors, e.g. equal
    folded biases, that way) by a copy of the initializer, so the quantizer sees every weight and
    bias as an initializer."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Identity" and n.input[0] in inits]:
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
    onnx.save(model, str(path))


def int8_nodes(onnx_model: Any, space: SearchSpace, arch: Architecture) -> list[str]:
    """Names of the nodes of ``onnx_model`` that belong to the ``int8`` units of ``arch``."""
    precisions = arch_unit_precisions(space, arch)
    out = []
    for node in onnx_model.graph.node:
        match = _SCOPE.match(node.name)
        if match is None:
            continue
        scope, block = match.groups()
        unit = 0 if scope == "stem" else len(precisions) - 1 if scope == "head" else int(block) + 1
        if precisions[unit] == INT8:
            out.append(node.name)
    return out


class _Batches:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over fixed input batches."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self._data = iter([{INPUT_NAME: b.contiguous().numpy()} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._data, None)


def quantize_model(fp32_path: str | os.PathLike, out_path: str | os.PathLike, space: SearchSpace,
                   arch: Architecture, calibration: Sequence[torch.Tensor]) -> Path:
    """Write the QDQ model of ``arch``'s policy from its float ONNX file (only ``int8`` units
    quantized; an all-fp32 policy is copied as is)."""
    import onnx

    model = onnx.load(str(fp32_path))
    nodes = int8_nodes(model, space, arch)
    if not nodes:
        onnx.save(model, str(out_path))
        return Path(out_path)
    return quantize_nodes(fp32_path, out_path, calibration, nodes)


def quantize_nodes(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                   calibration: Sequence[torch.Tensor], nodes: Sequence[str] | None = None) -> Path:
    """``quantize_static`` with this module's settings (QDQ; weights int8 per channel; activations
    uint8 per tensor, MinMax on ``calibration``) over the :data:`QUANTIZED_OPS` nodes among
    ``nodes`` (``None``: every such node of the file, how a unit alone is quantized)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = type("Reader", (_Batches, CalibrationDataReader), {})(calibration)
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the quantizer warns through the root logger
    try:
        quantize_static(
            str(fp32_path), str(out_path), reader,
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True,
            nodes_to_quantize=None if nodes is None else list(nodes),
            op_types_to_quantize=list(QUANTIZED_OPS), calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        quiet.setLevel(level)
    return Path(out_path)


def quantize_subnet(model: nn.Module, space: SearchSpace, arch: Architecture,
                    calibration: Sequence[torch.Tensor], out_path: str | os.PathLike) -> Path:
    """The static ``model`` of ``arch`` as the ONNX file of its precision policy."""
    with tempfile.TemporaryDirectory(prefix="nas-quant-") as tmp:
        fp32 = export_fp32_onnx(model, calibration[0][:1], Path(tmp) / "fp32.onnx")
        return quantize_model(fp32, out_path, space, arch, calibration)


def calibration_batches(split: Split, arch: Architecture, in_channels: int, *, batches: int,
                        batch_size: int, seed: int) -> list[torch.Tensor]:
    """Seeded TRAINING batches at ``arch``'s resolution, contiguous (NCHW), for MinMax calibration."""
    from nas.train.bn import calibration_inputs

    return [x.contiguous() for x in calibration_inputs(
        split, resolution=arch.resolution, in_channels=in_channels, batches=batches,
        batch_size=batch_size, seed=seed, channels_last=False)]


def evaluate_policy(model: nn.Module, space: SearchSpace, arch: Architecture, train: Split,
                    split: Split, *, calibration_batches_n: int, calibration_batch_size: int,
                    seed: int, batch_size: int = 256, threads: int = 1) -> dict[str, float]:
    """``{"acc", "loss", "n"}`` of ``arch``'s precision policy: the static float ``model`` (BN
    recalibrated) quantized as the export writes it, run by ONNX Runtime on ``split``."""
    calibration = calibration_batches(train, arch, space.in_channels,
                                      batches=calibration_batches_n,
                                      batch_size=calibration_batch_size, seed=seed)
    with tempfile.TemporaryDirectory(prefix="nas-quant-") as tmp:
        path = quantize_subnet(model, space, arch, calibration, Path(tmp) / "policy.onnx")
        session = ort_session(path, threads=threads)
    return split_accuracy(session, split, resolution=arch.resolution,
                          in_channels=space.in_channels, batch_size=batch_size)


def split_accuracy(session: Any, split: Split, *, resolution: int, in_channels: int,
                   batch_size: int = 256) -> dict[str, float]:
    """``{"acc", "loss", "n"}`` of an ONNX Runtime session on ``split`` (as
    :func:`nas.train.evaluate.evaluate_model` computes them for a torch model)."""
    import torch.nn.functional as F

    from nas.data import iterate_batches
    from nas.train.inputs import model_input

    correct, loss_sum, n = 0, 0.0, 0
    for x, y in iterate_batches(split, batch_size=batch_size, resolution=None):
        batch = model_input(x, resolution, in_channels, channels_last=False).contiguous()
        logits = torch.from_numpy(session.run(None, {INPUT_NAME: batch.numpy()})[0])
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
        n += int(y.numel())
    return {"acc": correct / n, "loss": loss_sum / n, "n": n}

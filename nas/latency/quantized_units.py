"""INT8 entries of a latency table: every unit's QDQ graph, and the quantize/dequantize boundaries.

``nas profile --precisions fp32,int8`` (ONNX Runtime only) adds to the fp32 entries:

- ``<unit key>@int8`` for every unit: the unit alone (its static module, the same seeded weights
  as its fp32 entry) exported and quantized by :func:`nas.quantize.quantize_nodes`, the path
  ``nas export`` and ``nas sample`` take (QDQ; weights int8 per channel, activations uint8 per
  tensor, MinMax-calibrated on seeded standard-normal inputs: the calibration changes scales, not
  which kernels run, so it does not change the latency). Timed alone, such a graph starts with a
  QuantizeLinear of its float input and ends with a DequantizeLinear of its output. Inside a
  network those two exist only where the precision changes, so the entry stores the unit's INT8
  time WITHOUT them: ``alone - (quantize_in - o) - (dequantize_out - o)``, the two boundary ops
  timed alone in the same interleaved rounds, ``o`` the runtime's measured per-call overhead
  (every entry keeps exactly one ``o``, as every other entry does); floored at ``o`` plus 1 us.
- ``quant:c<C>:h<H>`` and ``dequant:c<C>:h<H>`` (:func:`nas.units.boundary_key`): one
  QuantizeLinear / DequantizeLinear of the tensor at every place a precision can change (the
  input of each layer's first unit, of the stem and of the head, and the logits), timed alone.
  :func:`nas.units.arch_keys` adds them where an architecture's neighbouring units differ, so a
  mixed network's prediction is its units at their precisions plus its boundaries.

The end-to-end networks that calibrate and validate a table with int8 entries are mixed-precision
subnets measured through the same quantize path (:func:`network_item`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from nas.arch import Architecture
from nas.errors import UserError
from nas.latency.space_units import boundary_keys, build_unit, example_input, space_units
from nas.latency.table import LatencyTable, TableEntry
from nas.latency.timing import Measurement, OnnxModel, TimingItem, TimingProtocol, measure_many
from nas.precision import INT8
from nas.spaces.schema import SearchSpace
from nas.units import DEQUANT, QUANT, Unit, unit_key

CALIBRATION_BATCHES = 2  # seeded normal batches that calibrate a unit's quantizer (latency only)
CALIBRATION_BATCH = 4
QUANT_SCALE, QUANT_ZERO = 0.05, 128  # any valid uint8 parameters: the kernel does not depend on them
_FLOOR_MS = 1e-3

__all__ = ["fill_int8", "network_item", "require_onnxruntime"]


def require_onnxruntime(precisions: Sequence[str], runtime: str) -> None:
    """INT8 entries exist only for ONNX Runtime (torch eager has no INT8 CPU kernels for them)."""
    if INT8 in precisions and runtime != "onnxruntime":
        raise UserError(f"--precisions {','.join(precisions)}: int8 units are measured as the QDQ "
                        f"graph ONNX Runtime runs; use --latency-device onnxruntime, not "
                        f"{runtime} (or --precisions fp32 for an fp32-only table)")


# ----- ONNX graphs ------------------------------------------------------------------------------


def boundary_model(kind: str, shape: Sequence[int], path: Path) -> Path:
    """A one-node ONNX file: QuantizeLinear (float in, uint8 out) or DequantizeLinear (uint8 in,
    float out) of a tensor of ``shape`` (dynamic batch), the ops quantize_static inserts."""
    import onnx
    from onnx import TensorProto, helper

    from nas.quantize import OPSET

    dims = ["batch", *(int(d) for d in shape[1:])]
    float_t, uint8_t = TensorProto.FLOAT, TensorProto.UINT8
    in_type, out_type = (float_t, uint8_t) if kind == QUANT else (uint8_t, float_t)
    op = "QuantizeLinear" if kind == QUANT else "DequantizeLinear"
    graph = helper.make_graph(
        [helper.make_node(op, ["input", "scale", "zero"], ["output"])], f"{kind}_boundary",
        [helper.make_tensor_value_info("input", in_type, dims)],
        [helper.make_tensor_value_info("output", out_type, dims)],
        initializer=[helper.make_tensor("scale", float_t, [], [QUANT_SCALE]),
                     helper.make_tensor("zero", uint8_t, [], [QUANT_ZERO])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.save(model, str(path))
    return path


def boundary_item(key: str, kind: str, shape: Sequence[int], folder: Path,
                  rng: np.random.Generator) -> TimingItem:
    """The timing item of one boundary op on a tensor of ``shape``."""
    path = boundary_model(kind, shape, folder / f"{len(list(folder.iterdir()))}.onnx")
    x = example_input(shape, rng)
    if kind == DEQUANT:
        x = torch.as_tensor(rng.integers(0, 256, size=tuple(shape)), dtype=torch.uint8)
    return TimingItem(key, OnnxModel(path), x)


def _parse_boundary(key: str, batch: int) -> tuple[str, tuple[int, ...]]:
    kind, c, h = key.split(":")
    size = int(h[1:])
    shape = (batch, int(c[1:])) if kind == DEQUANT and size == 1 else (batch, int(c[1:]), size, size)
    return kind, shape


def quantized_unit(unit: Unit, batch: int, rng: np.random.Generator,
                   folder: Path) -> tuple[OnnxModel, torch.Tensor, tuple[int, ...]]:
    """``unit`` alone as its QDQ file (every weighted op quantized), its example input and the
    shape of its output."""
    from nas.quantize import export_fp32_onnx, quantize_nodes

    module, x = build_unit(unit, batch, rng)
    with torch.no_grad():
        out_shape = tuple(module(x).shape)
    calibration = [example_input((CALIBRATION_BATCH, *x.shape[1:]), rng)
                   for _ in range(CALIBRATION_BATCHES)]
    index = len(list(folder.iterdir()))
    fp32 = export_fp32_onnx(module, x, folder / f"{index}.fp32.onnx")
    path = quantize_nodes(fp32, folder / f"{index}.int8.onnx", calibration)
    return OnnxModel(path), x, out_shape


def network_item(space: SearchSpace, arch: Architecture, net: torch.nn.Module, x: torch.Tensor,
                 folder: Path, name: str, rng: np.random.Generator) -> TimingItem:
    """The timing item of a whole subnet: its QDQ file when it has an int8 gene (the path
    ``nas export`` writes, calibrated on seeded normal inputs), else the module itself."""
    from nas.quantize import is_mixed, quantize_subnet

    if not is_mixed(arch):
        return TimingItem(name, net, x)
    calibration = [example_input((CALIBRATION_BATCH, *x.shape[1:]), rng)
                   for _ in range(CALIBRATION_BATCHES)]
    path = quantize_subnet(net, space, arch, [x, *calibration], folder / f"{name}.onnx")
    return TimingItem(name, OnnxModel(path), x)


# ----- filling ------------------------------------------------------------------------------------


def fill_int8(table: LatencyTable, space: SearchSpace, path: str | Path, protocol: TimingProtocol,
              *, batch: int, seed: int, call_overhead_ms: float, rng: np.random.Generator,
              chunk_size: int = 8, progress: Callable[[int, int], None] | None = None,
              keys: Collection[str] | None = None) -> int:
    """Measure the boundary keys, then the int8 unit keys ``table`` lacks (module docstring), in
    chunks of interleaved rounds, saving after each chunk (resumable); only those in ``keys``
    when given. Returns how many keys."""
    units = {unit_key(u, INT8): (i, u) for i, u in enumerate(space_units(space).values())}
    todo_b = [k for k in table.missing(boundary_keys(space)) if keys is None or k in keys]
    todo_u = [k for k in table.missing(units) if keys is None or k in keys]
    total, done = len(todo_b) + len(todo_u), 0
    for chunk in _chunks(todo_b, max(chunk_size, 16)):
        with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp:
            items = [boundary_item(k, *_parse_boundary(k, batch), Path(tmp), rng) for k in chunk]
            table.update(measure_many(items, protocol, rng=rng))
        table.save(path)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    for chunk in _chunks(todo_u, chunk_size):
        with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp:
            folder = Path(tmp)
            items, edges = [], {}
            for key in chunk:
                index, unit = units[key]
                model, x, out_shape = quantized_unit(
                    unit, batch, np.random.default_rng([seed, index]), folder)
                items.append(TimingItem(key, model, x))
                q_in = f"~{QUANT}{tuple(x.shape)}"
                dq_out = f"~{DEQUANT}{out_shape}"
                edges[key] = (q_in, dq_out)
                for edge, kind, shape in ((q_in, QUANT, tuple(x.shape)),
                                          (dq_out, DEQUANT, out_shape)):
                    if edge not in {i.key for i in items}:
                        items.append(boundary_item(edge, kind, shape, folder, rng))
            measured = measure_many(items, protocol, rng=rng)
        for key in chunk:
            q_in, dq_out = edges[key]
            table.record(key, _without_edges(measured[key], measured[q_in], measured[dq_out],
                                             call_overhead_ms))
        table.save(path)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return total


def _without_edges(alone: Measurement, q_in: Measurement, dq_out: Measurement,
                   overhead_ms: float) -> TableEntry:
    """The unit's int8 entry: its time alone less its own input quantize and output dequantize
    (each less the call overhead it paid alone), floored at the call overhead plus 1 us."""
    edges = (q_in.latency_ms - overhead_ms) + (dq_out.latency_ms - overhead_ms)
    floor = overhead_ms + _FLOOR_MS
    return TableEntry(
        mean_ms=max(alone.mean_ms - edges, floor), std_ms=alone.std_ms,
        median_ms=max(alone.latency_ms - edges, floor), count=alone.count,
    )


def _chunks(keys: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), max(1, size)):
        yield keys[start : start + max(1, size)]

"""The one ONNX path: how a module becomes an ``.onnx`` file and how ONNX Runtime runs it.

Everything that times or writes ONNX goes through here, so the graph a latency table profiles
(every unit, every calibration and validation network) is the graph ``nas export`` writes:

- :func:`export_onnx`: the exporter (``dynamo``, the torch.export-based one, by default; ``legacy``,
  the TorchScript one), the opset (20 by default: it has a native ``Gelu``, which the dynamo
  exporter decomposes at 18 into Div/Erf/Add/Mul that ONNX Runtime does not fuse back), and a
  dynamic batch dimension (traced at batch >= 2 so torch.export does not specialise it to 1; a
  static-shape export is the fallback where the dynamic one fails);
- :func:`session_options` / :func:`ort_session`: intra-op threads as asked, inter-op 1, sequential
  execution, every ONNX Runtime graph optimisation (``ORT_ENABLE_ALL``);
- :func:`optimized_nodes`: the graph after ONNX Runtime's optimisation (what actually runs), and
  :func:`node_scopes`, which module of the exported network each optimised node came from.

A leaf module (no import of other ``nas`` modules, torch only inside functions), so the timing
protocol, latency timing and export can all use it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: the protocol reads the constants alone
    import torch
    from torch import nn

EXPORTERS: tuple[str, ...] = ("dynamo", "legacy")
DEFAULT_EXPORTER = "dynamo"
DEFAULT_OPSET = 20
MIN_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
_MAX_BATCH = 1 << 16
# Layout conversions ONNX Runtime's NCHWc transformer inserts where a run of convolutions starts or
# ends: a unit timed alone starts and ends one; inside a network, only where a non-conv op follows.
LAYOUT_OPS: frozenset[str] = frozenset({"ReorderInput", "ReorderOutput"})


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, the exporter and opset used, dynamic batch or not."""

    path: Path
    exporter: str
    opset: int
    dynamic_batch: bool


def export_onnx(
    module: nn.Module | torch.export.ExportedProgram,
    example: torch.Tensor,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    dynamic_batch: bool = True,
    program_dynamic: bool = False,
) -> OnnxExport:
    """Export ``module`` (in eval mode, on CPU) run on ``example`` (one tensor, leading batch) to
    ``path``. ``module`` may also be a ``torch.export`` program already made from it (dynamo only;
    ``program_dynamic`` says whether its batch is dynamic). Exporter errors propagate."""
    import torch
    if exporter not in EXPORTERS:
        raise ValueError(f"ONNX exporter {exporter!r}: expected one of {EXPORTERS}")
    if opset < MIN_OPSET:
        raise ValueError(f"ONNX opset {opset}: expected >= {MIN_OPSET}")
    path = Path(path)
    common: dict[str, Any] = {
        "input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": int(opset)
    }
    x = example.detach().cpu()
    with quiet_exporter(), _one_torchlib_registry(), torch.inference_mode(False), torch.no_grad():
        if isinstance(module, torch.export.ExportedProgram):
            torch.onnx.export(module, (), str(path), dynamo=True, external_data=False,
                              verbose=False, **common)
            return OnnxExport(path, "dynamo", int(opset), program_dynamic)
        module = module.eval()
        if exporter == "legacy":
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(module, (x,), str(path), dynamo=False, dynamic_axes=axes, **common)
            return OnnxExport(path, "legacy", int(opset), dynamic_batch)
        if dynamic_batch:
            x_trace = x if x.shape[0] >= 2 else torch.cat([x, x])
            shapes = ({0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)},)
            try:
                torch.onnx.export(module, (x_trace,), str(path), dynamo=True, external_data=False,
                                  verbose=False, dynamic_shapes=shapes, **common)
                return OnnxExport(path, "dynamo", int(opset), True)
            except Exception as exc:  # some graphs only export with static shapes
                logging.getLogger(__name__).info(
                    "dynamic-batch ONNX export failed (%s); exporting static shapes",
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        torch.onnx.export(module, (x,), str(path), dynamo=True, external_data=False,
                          verbose=False, **common)
        return OnnxExport(path, "dynamo", int(opset), False)


def session_options(threads: int = 1, *, optimized_path: str | os.PathLike | None = None,
                    profile_prefix: str | None = None) -> Any:
    """ONNX Runtime session options of every timing and check in this project."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only (not the NCHWc serialisation warning)
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def ort_session(path: str | os.PathLike, threads: int = 1, device: str = "cpu", **kw: Any) -> Any:
    """An ``InferenceSession`` on ``path`` with :func:`session_options`; ``device`` ``cpu`` or
    ``cuda[:i]`` (needs onnxruntime-gpu). Raises ``RuntimeError`` if the provider is missing."""
    import onnxruntime as ort

    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("onnxruntime on CUDA needs the onnxruntime-gpu package "
                               f"(available providers: {ort.get_available_providers()})")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=session_options(threads, **kw),
                                providers=providers)


@dataclass(frozen=True)
class Node:
    """One node of an ONNX graph: name, operator, input and output tensor names."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def optimized_nodes(path: str | os.PathLike, threads: int = 1) -> list[Node]:
    """The nodes ONNX Runtime runs for ``path`` after its graph optimisations, in order."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="nas-ort-opt-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        ort_session(path, threads, optimized_path=out)
        graph = onnx.load(str(out)).graph
    return [Node(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in graph.node]


def node_scopes(exported: str | os.PathLike, nodes: Sequence[Node]) -> list[str | None]:
    """For each optimised node, the module path (``torch.export`` name scope, e.g. ``blocks.2.fc1``)
    of the exported node it came from. An optimised node keeps an exported node's name, or a
    name derived from it (``<name>/MatMulAddFusion``) or from the tensor it writes
    (``<tensor>_nchwc``), or writes an exported tensor; one that does neither (a layout reorder
    ONNX Runtime inserted) takes its neighbour's scope: a ``ReorderOutput`` its producer's, any
    other its consumer's. ``None`` where the exporter recorded no scope (the legacy exporter)."""
    import onnx

    graph = onnx.load(str(exported), load_external_data=False).graph
    by_node: dict[str, str] = {}
    by_tensor: dict[str, str] = {}
    for n in graph.node:
        scope = _scope(n)
        if scope is None:
            continue
        by_node[n.name] = scope
        for t in n.output:
            by_tensor.setdefault(t, scope)
    out: list[str | None] = []
    for node in nodes:
        base = node.name.split("/", 1)[0]
        stripped = base[: -len("_nchwc")] if base.endswith("_nchwc") else base
        hit = by_node.get(base) or by_tensor.get(stripped) or next(
            (by_tensor[t] for t in node.outputs if t in by_tensor), None)
        out.append(hit)
    for i, scope in enumerate(out):
        if scope is None:
            before = next((out[j] for j in range(i - 1, -1, -1) if out[j] is not None), None)
            after = next((out[j] for j in range(i + 1, len(out)) if out[j] is not None), None)
            if nodes[i].op_type == "ReorderOutput":
                out[i] = before or after
            else:
                out[i] = after or before
    return out


def _scope(node: Any) -> str | None:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast

            scopes = [s for s in ast.literal_eval(prop.value) if s]
            # the last entry is the op's own name, the others the enclosing modules
            return scopes[-2] if len(scopes) >= 2 else ""
    return None


@functools.cache
def _torchlib_registry(build: Any, cls: type, opset_version: int) -> Any:
    """``build(cls, opset_version)`` (torch's own registry builder), once per opset."""
    return build(cls, opset_version)


@contextlib.contextmanager
def _one_torchlib_registry() -> Iterator[None]:
    """Build the dynamo exporter's ATen-to-ONNX registry once per opset for the process.

    ``torch.onnx.export(dynamo=True)`` rebuilds it from onnxscript's torchlib on every call, which
    reads the source of ~500 functions (``inspect.getsource``): a latency-table unit's export takes
    0.35 s with one registry against 0.80 s without, and the quick run's profile stage 63 s against
    98 s, with byte-identical files (results/benchmarks/onnx_export_speed.md). The registry depends
    on the opset alone and the export only reads it (no custom translation table is passed), so one
    built registry serves every export; the class method is restored on leaving."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:  # another torch layout: export as torch does
        yield
        return
    cls = _registration.ONNXRegistry
    original = cls.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return
    build = original.__func__

    def cached(klass: type, opset_version: int = 18) -> Any:
        return _torchlib_registry(build, klass, int(opset_version))

    cls.from_torchlib = classmethod(cached)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        cls.from_torchlib = original  # type: ignore[method-assign]


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporters' progress lines, tracer warnings and 'torchvision is not installed'."""
    names = ("torch.onnx", "torch.onnx._internal.exporter._registration")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)

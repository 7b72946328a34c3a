"""Export a standalone ``nn.Module`` to files that load without this package, each one verified.

Formats (``formats=`` of :func:`export_model`):

- ``pt``: ``<name>.state_dict.pt`` (``torch.save(model.state_dict())``, loads with
  ``weights_only=True``; re-creating the module needs its class) **and** ``<name>.pt2``, a
  ``torch.export`` program (graph + weights) that ``torch.export.load`` turns back into a runnable
  module with no Python class at all. The ``.pt2`` is the self-contained PyTorch artefact: it is the
  non-deprecated path in torch 2.13, keeps the batch dimension dynamic, and our models (conv, BN,
  attention with reshape/permute/softmax/matmul, windowed mixing) export without graph breaks.
- ``torchscript``: ``<name>.torchscript.pt`` from ``torch.jit.trace`` in eval mode. Still the most
  widely loadable artefact (C++ ``torch::jit::load``, older torch), although torch 2.13 marks
  TorchScript deprecated; the warning is recorded in the manifest.
- ``onnx``: ``<name>.onnx``, opset 20 by default (>= 17), batch dimension dynamic when the model
  allows it, checked with ``onnx.checker`` and run with ONNX Runtime.

Every artefact is reloaded and compared with the eager model (max abs difference <= ``atol``) at the
example batch size and, where the batch is dynamic, at one more. Everything is written into a staging
folder first and moved into ``out_dir`` only when all checks pass; ``manifest.json`` (sha256 of each
file, shapes, versions, exporters, the differences measured) is written last.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import UserError
from nas.io import atomic_write_json, disk_full_as_os_error
from nas.onnx_graph import DEFAULT_OPSET, MIN_OPSET, export_onnx, ort_session
from nas.torchscript import trace_input, trace_to_file

log = logging.getLogger(__name__)

from nas.export.options import SUPPORTED_FORMATS  # noqa: E402 - its home is the light module

ONNX_EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "legacy")
MANIFEST_NAME = "manifest.json"
# Opset 20 has a native Gelu, which ONNX Runtime runs as one kernel; at 18 the torch.export-based
# exporter writes it as Div/Erf/Add/Mul, which ONNX Runtime 1.31 does not fuse back: a searched
# hybrid-cifar subnet ran 0.190 ms at opset 18 and 0.177 ms at 20 (1 thread, batch 1).
# DEFAULT_OPSET and MIN_OPSET live in nas.onnx_graph, the export path latency tables share.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ExportError(UserError):
    """An export failed or an exported file does not reproduce the eager model's output."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"pt,onnx"`` or ``["pt", "onnx"]`` -> validated tuple without duplicates, in given order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in (str(f).strip().lower() for f in items):
        if not item:
            continue
        if item not in SUPPORTED_FORMATS:
            raise UserError(
                f"unknown export format {item!r}: expected a comma-separated subset of "
                f"{', '.join(SUPPORTED_FORMATS)}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise UserError(f"no export format given: expected some of {', '.join(SUPPORTED_FORMATS)}")
    return tuple(out)


def export_model(
    model: nn.Module,
    example_input: torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    formats: str | Sequence[str] = SUPPORTED_FORMATS,
    name: str = "model",
    atol: float = 1e-4,
    opset: int = DEFAULT_OPSET,
    onnx_exporter: str = "auto",
    dynamic_batch: bool = True,
    standalone_check: bool = True,
    onnx_metadata: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``model`` in ``formats`` to ``out_dir``, verify every file, return ``{kind: path}``.

    Keys of the result: ``state_dict`` and ``pt2`` (format ``pt``; ``pt2`` is absent, with the
    reason in the manifest, if ``torch.export`` cannot handle the model), ``torchscript``,
    ``onnx``, ``example`` (``<name>.example.npz``: the input and the eager output) and ``manifest``.

    ``model`` is copied and exported on CPU in eval mode; the caller's module is not modified.
    ``example_input`` is one float tensor with a leading batch dimension. With
    ``standalone_check`` the TorchScript, ``.pt2`` and ONNX files are also loaded and run in a
    fresh interpreter that cannot import this package (:func:`nas.export.verify.verify_standalone`).
    ``onnx_metadata``: key/value strings stored in the ONNX file's ``metadata_props`` (what a
    reader needs without this package: preprocessing, class names, architecture); the ONNX batch
    axis is named ``batch``.
    Raises :class:`ExportError` if an export fails or a file differs from eager by more than
    ``atol``; ``out_dir`` is then left untouched. Write one model per folder: ``manifest.json``
    lists only the files of the latest export.
    """
    fmts = parse_formats(formats)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserError(f"export name {name!r}: expected letters, digits, '_', '-' or '.'")
    if onnx_exporter not in ONNX_EXPORTERS:
        raise UserError(f"onnx_exporter {onnx_exporter!r}: expected one of {ONNX_EXPORTERS}")
    if opset < MIN_OPSET:
        raise UserError(f"ONNX opset {opset}: expected >= {MIN_OPSET}")
    x = _check_input(example_input)
    net = copy.deepcopy(model).cpu().eval()
    # A batch of >= 2 when tracing, so that torch.export does not specialise the batch to 1.
    x_trace = trace_input(x)
    x_more = torch.cat([x, x[:1]])  # one more sample: checks that the batch really is dynamic
    with torch.no_grad():
        expected = _single_output(net(x))
        expected_more = _single_output(net(x_more))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=out))
    with disk_full_as_os_error(out):  # torch's writers report a full disk as RuntimeError
        try:
            ctx = _Ctx(net, x, x_trace, x_more, expected, expected_more, atol, dynamic_batch)
            ctx.onnx_metadata = dict(onnx_metadata or {})
            files: dict[str, Path] = {}
            record: dict[str, Any] = {"formats": list(fmts), "checks": {}, "notes": []}
            if "pt" in fmts:
                files.update(_export_pt(ctx, staging, name, record))
            if "torchscript" in fmts:
                files["torchscript"] = _export_torchscript(ctx, staging / f"{name}.torchscript.pt", record)
            if "onnx" in fmts:
                files["onnx"] = _export_onnx(ctx, staging / f"{name}.onnx", record, opset, onnx_exporter)
            files["example"] = staging / f"{name}.example.npz"
            _write_example(files["example"], x, expected)
            if standalone_check and any(k in files for k in ("torchscript", "onnx", "pt2")):
                from nas.export.verify import verify_standalone

                record["standalone"] = {
                    "max_abs_diff": verify_standalone(files, x, expected, atol=atol),
                    "how": "fresh `python -I` subprocess with this package's folders removed from "
                    "sys.path; `import nas` asserted to fail",
                }
            final = {kind: out / path.name for kind, path in files.items()}
            for kind, path in files.items():
                os.replace(path, final[kind])
            final["manifest"] = atomic_write_json(
                out / MANIFEST_NAME, _manifest(name, x, expected, final, record, atol)
            )
            return final
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class _Ctx:
    """What every format's exporter needs: the model, inputs, expected outputs, tolerance."""

    def __init__(self, net: nn.Module, x: torch.Tensor, x_trace: torch.Tensor, x_more: torch.Tensor,
                 expected: torch.Tensor, expected_more: torch.Tensor, atol: float,
                 dynamic_batch: bool) -> None:
        self.net, self.x, self.x_trace, self.x_more = net, x, x_trace, x_more
        self.expected, self.expected_more = expected, expected_more
        self.atol, self.dynamic_batch = atol, dynamic_batch
        # The verified torch.export program of format "pt", reused by the dynamo ONNX exporter.
        self.program: torch.export.ExportedProgram | None = None
        self.program_dynamic = False
        self.onnx_metadata: dict[str, str] = {}

    def compare(self, kind: str, run: Callable[[torch.Tensor], torch.Tensor],
                check_more: bool) -> dict[str, Any]:
        """Run ``run`` on the example (and, if ``check_more``, on batch + 1); raise on mismatch."""
        diff = _max_abs_diff(self._run(kind, run, self.x), self.expected)
        if not diff <= self.atol:
            raise ExportError(
                f"{kind}: output differs from the eager model by {diff:.3g} (max abs) at batch "
                f"{self.x.shape[0]}, tolerance {self.atol:g}; the exported file is not written"
            )
        result: dict[str, Any] = {"max_abs_diff": diff, "batch_sizes": [int(self.x.shape[0])]}
        if check_more:
            more = _max_abs_diff(self._run(kind, run, self.x_more), self.expected_more)
            result["max_abs_diff_batch_plus_1"] = more
            if not more <= self.atol:
                raise ExportError(
                    f"{kind}: output at batch {self.x_more.shape[0]} differs from eager by "
                    f"{more:.3g} > {self.atol:g}, although the batch dimension was exported as dynamic"
                )
            result["batch_sizes"].append(int(self.x_more.shape[0]))
        return result

    @staticmethod
    def _run(kind: str, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        try:
            return run(x)
        except Exception as exc:
            raise ExportError(f"{kind}: running the exported file on input of shape "
                              f"{tuple(x.shape)} failed: {_first_line(exc)}") from exc


def _export_pt(ctx: _Ctx, staging: Path, name: str, record: dict[str, Any]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    sd_path = staging / f"{name}.state_dict.pt"
    state = {k: v.detach().clone() for k, v in ctx.net.state_dict().items()}
    torch.save(state, sd_path)
    reloaded = copy.deepcopy(ctx.net)
    reloaded.load_state_dict(torch.load(sd_path, weights_only=True, map_location="cpu"))
    with torch.no_grad():
        record["checks"]["state_dict"] = ctx.compare("state_dict", reloaded, check_more=False)
    files["state_dict"] = sd_path

    pt2_path = staging / f"{name}.pt2"
    try:
        program, dynamic = _torch_export(ctx)
    except Exception as exc:  # torch.export rejects some Python control flow; keep the rest
        reason = f"torch.export failed: {type(exc).__name__}: {_first_line(exc)}"
        log.warning("%s; %s.pt2 is not written", reason, name)
        record["pt2"] = {"written": False, "reason": reason}
        return files
    torch.export.save(program, pt2_path)
    loaded = torch.export.load(pt2_path).module()
    with torch.no_grad():
        record["checks"]["pt2"] = ctx.compare("pt2 (torch.export)", loaded, check_more=dynamic)
    record["pt2"] = {"written": True, "dynamic_batch": dynamic}
    files["pt2"] = pt2_path
    ctx.program, ctx.program_dynamic = program, dynamic
    return files


def _torch_export(ctx: _Ctx) -> tuple[torch.export.ExportedProgram, bool]:
    """``torch.export`` with a dynamic batch dimension, or static shapes if that fails."""
    if ctx.dynamic_batch:
        try:
            batch = torch.export.Dim("batch", min=1, max=1 << 16)
            program = torch.export.export(ctx.net, (ctx.x_trace,), dynamic_shapes=({0: batch},))
            return program, True
        except Exception as exc:
            log.info("torch.export with a dynamic batch failed (%s); trying static shapes",
                     _first_line(exc))
    return torch.export.export(ctx.net, (ctx.x,)), False


def _export_torchscript(ctx: _Ctx, path: Path, record: dict[str, Any]) -> Path:
    with warnings.catch_warnings(record=True) as caught:  # TorchScript is deprecated in 2.13
        warnings.simplefilter("always")
        try:
            loaded = trace_to_file(ctx.net, ctx.x, path)  # what the torchscript tables time
        except Exception as exc:
            raise ExportError(f"torchscript: torch.jit.trace failed: {_first_line(exc)}") from exc
    with torch.no_grad():
        check = ctx.compare("torchscript", loaded, check_more=False)
        try:  # tracing can bake shapes in; find out whether another batch size still works
            more = _max_abs_diff(loaded(ctx.x_more), ctx.expected_more)
        except Exception as exc:
            more, why = float("nan"), _first_line(exc)
        else:
            why = f"max abs diff {more:.3g} at batch {ctx.x_more.shape[0]}"
    dynamic = more <= ctx.atol
    check["max_abs_diff_batch_plus_1"] = more
    if dynamic:
        check["batch_sizes"].append(int(ctx.x_more.shape[0]))
    else:
        record["notes"].append(
            f"torchscript: the traced graph only reproduces batch {ctx.x.shape[0]} ({why})"
        )
    record["checks"]["torchscript"] = check
    record["torchscript"] = {"method": "torch.jit.trace (eval mode)", "dynamic_batch": dynamic}
    for message in sorted({str(w.message) for w in caught if "deprecated" in str(w.message)}):
        record["notes"].append(f"torchscript: torch {torch.__version__} warns: {message}")
    return path


def _export_onnx(ctx: _Ctx, path: Path, record: dict[str, Any], opset: int, exporter: str) -> Path:
    """Export, check and verify with each exporter in turn until one passes every check."""
    errors: dict[str, str] = {}
    for kind in ("dynamo", "legacy") if exporter == "auto" else (exporter,):
        try:
            info = _onnx_attempt(ctx, path, opset, kind, record)
        except Exception as exc:
            errors[kind] = f"{type(exc).__name__}: {_first_line(exc)}"
            log.warning("ONNX export with the %s exporter failed: %s", kind, errors[kind])
            path.unlink(missing_ok=True)
            continue
        info["failed_exporters"] = errors
        record["onnx"] = info
        return path
    raise ExportError("onnx: no exporter produced a file that passes the checks: "
                      + "; ".join(f"{k}: {v}" for k, v in errors.items()))


def _onnx_attempt(ctx: _Ctx, path: Path, opset: int, kind: str,
                  record: dict[str, Any]) -> dict[str, Any]:
    import onnx

    dynamic = _onnx_export_once(ctx, path, opset, kind)
    info: dict[str, Any] = {"exporter": kind, "dynamic_batch": dynamic}
    model_proto = onnx.load(str(path))
    if dynamic:
        name_batch_axis(model_proto)
    set_onnx_metadata(model_proto, ctx.onnx_metadata)
    onnx.save(model_proto, str(path))
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejects {path.name}: {_first_line(exc)}") from exc
    info["opset"] = next(o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx"))
    if info["opset"] < MIN_OPSET:
        raise ExportError(f"opset {info['opset']} < {MIN_OPSET}")
    session = _ort_session(path)
    input_name = session.get_inputs()[0].name
    info["input_name"], info["output_name"] = input_name, session.get_outputs()[0].name

    def run(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {input_name: t.numpy()})[0])

    record["checks"]["onnx"] = ctx.compare(f"onnx ({kind} exporter, ONNX Runtime)", run,
                                           check_more=dynamic)
    return info


def name_batch_axis(model_proto: Any, name: str = "batch") -> None:
    """Call the symbolic first dimension of the graph's inputs ``name`` (the exporter writes
    ``s0``, ``s77``, ...), everywhere that symbol appears."""
    graph = model_proto.graph
    symbols = {v.type.tensor_type.shape.dim[0].dim_param for v in graph.input
               if v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].dim_param}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = name


def set_onnx_metadata(model_proto: Any, metadata: dict[str, str]) -> None:
    """Replace the ``metadata_props`` entries named in ``metadata`` (strings)."""
    keep = [p for p in model_proto.metadata_props if p.key not in metadata]
    del model_proto.metadata_props[:]
    for prop in keep:
        model_proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in metadata.items():
        model_proto.metadata_props.add(key=str(key), value=str(value))


def _onnx_export_once(ctx: _Ctx, path: Path, opset: int, kind: str) -> bool:
    """One ONNX export attempt with :func:`nas.onnx_graph.export_onnx` (the path latency tables
    are profiled through); return whether the batch is dynamic."""
    if kind == "dynamo" and ctx.program is not None:  # reuse the verified torch.export program
        return export_onnx(ctx.program, ctx.x, path, opset=opset,
                           program_dynamic=ctx.program_dynamic).dynamic_batch
    return export_onnx(ctx.net, ctx.x, path, opset=opset, exporter=kind,
                       dynamic_batch=ctx.dynamic_batch).dynamic_batch


def _ort_session(path: Path) -> Any:
    return ort_session(path, threads=1)


def _write_example(path: Path, x: torch.Tensor, y: torch.Tensor) -> None:
    with open(path, "wb") as f:
        np.savez(f, input=x.numpy(), output=y.numpy())


def _manifest(name: str, x: torch.Tensor, y: torch.Tensor, files: dict[str, Path],
              record: dict[str, Any], atol: float) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        "manifest_version": 1,
        "name": name,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")},
        "output": {"shape": list(y.shape), "dtype": str(y.dtype).removeprefix("torch.")},
        "files": {
            kind: {"path": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
            for kind, p in sorted(files.items())
        },
        "tolerance_max_abs": atol,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "onnxscript": onnxscript.__version__,
            "numpy": np.__version__,
        },
        **record,
    }


def _check_input(example_input: Any) -> torch.Tensor:
    if not isinstance(example_input, torch.Tensor):
        raise UserError(f"example_input: expected a torch.Tensor, got {type(example_input).__name__}")
    if example_input.dim() < 1 or example_input.shape[0] < 1:
        raise UserError(f"example_input: expected a leading batch dimension >= 1, got shape "
                        f"{tuple(example_input.shape)}")
    if not example_input.is_floating_point():
        raise UserError(f"example_input: expected a floating-point tensor, got {example_input.dtype}")
    return example_input.detach().cpu().contiguous()


def _single_output(y: Any) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise ExportError(f"the model must return one tensor to be exported, got {type(y).__name__}")
    return y.detach()


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__

"""Latency of an exported model: predicted by a latency table, measured here with its protocol.

The measurement uses the table's timing protocol (:mod:`nas.latency.timing`: warm-up, batched timer
reads, interleaved rounds, lowest round median), batch size and threads, so predicted and measured
numbers are comparable; without a table, the default protocol at batch 1 and 1 thread. Both torch
eager (the in-memory model) and ONNX Runtime (the exported ``.onnx`` file, with the protocol's
session settings) are timed, in interleaved rounds.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import Architecture
from nas.costs import Costs
from nas.devices import parse_device
from nas.errors import IncompatibleFileError, UserError
from nas.latency import LatencyTable, Measurement, TimingItem, TimingProtocol, measure_many
from nas.onnx_graph import ort_session
from nas.spaces import SearchSpace
from nas.units import arch_keys


def load_table(lut: str | os.PathLike | LatencyTable | None,
               space: SearchSpace) -> LatencyTable | None:
    """Load ``lut`` (a path or a table); it must have been profiled for ``space`` (same hash)."""
    if lut is None:
        return None
    if isinstance(lut, LatencyTable):
        if lut.meta.space_hash != space.hash():
            raise IncompatibleFileError(
                f"latency table for space {lut.meta.space_name!r} (hash {lut.meta.space_hash}) "
                f"does not fit the run's space {space.name!r} (hash {space.hash()})")
        return lut
    return LatencyTable.load(lut, expected_space_hash=space.hash())


def predict_latency(table: LatencyTable, space: SearchSpace, arch: Architecture,
                    exact: Costs) -> float:
    """The table's prediction for ``arch``; costs are offered as extra calibration features."""
    extra = {k: np.array([float(v)], dtype=np.float64) for k, v in exact.as_dict().items()}
    extra["peak_memory_bytes"] = np.array([float(exact.peak_memory_bytes)])
    try:
        return float(table.predict_from_keys([arch_keys(space, arch)], extra_features=extra)[0])
    except UserError as exc:
        raise UserError(f"--table: {exc}") from None


def timing_protocol(table: LatencyTable | None, threads: int | None,
                    device: str | None) -> tuple[TimingProtocol, int, list[str]]:
    """The table's timing protocol (default: batch 1, 1 thread, CPU) with the overrides given.

    Returns ``(protocol, batch, notes)``; ``notes`` say where the measurement had to differ from
    the table (a device not available here, other threads, another dtype).
    """
    notes: list[str] = []
    settings: dict[str, Any] = {}
    batch = 1
    if table is not None:
        names = {f.name for f in fields(TimingProtocol)}
        settings = {k: v for k, v in table.meta.protocol.items() if k in names}
        batch = int(table.meta.batch)
        if table.meta.dtype not in ("float32", "torch.float32"):
            notes.append(f"the latency table was measured in {table.meta.dtype}; the measurement "
                         "here and the exported files are float32")
    settings.pop("runtime", None)
    if threads is not None:
        if table is not None and threads != table.meta.threads:
            notes.append(f"latency measured here with {threads} thread(s), the table with "
                         f"{table.meta.threads}: the predicted and measured numbers differ in "
                         "protocol")
        settings["threads"] = threads
    settings.setdefault("threads", 1)
    if device is not None:
        settings["device"] = device
    wanted = str(settings.get("device", "cpu"))
    try:
        parse_device(wanted)
    except UserError:
        if device is not None:
            raise
        notes.append(f"the latency table was measured on {wanted!r}, which is not available "
                     "here; latency was measured on cpu instead")
        settings["device"] = "cpu"
    try:
        return TimingProtocol(**settings), batch, notes
    except (TypeError, UserError) as exc:
        raise IncompatibleFileError(f"--table: its timing protocol is not usable here: {exc}") from None


def measure_runtimes(model: nn.Module, x: torch.Tensor, onnx_path: Path | None,
                     protocol: TimingProtocol) -> tuple[dict[str, Measurement], dict[str, str]]:
    """Torch eager and ONNX Runtime latency with ``protocol``, interleaved rounds (and
    TorchScript, traced as the exported file, when ``protocol`` is of that runtime).

    ONNX Runtime times the exported file with the session settings of the timing protocol
    (intra-op threads = protocol threads, inter-op 1, sequential). Without an exported ``.onnx``
    the protocol's own ONNX export is timed instead. A runtime that cannot run here is reported
    with its reason, not as an error: the files were already verified.
    """
    traced = protocol.runtime == "torchscript"  # a torchscript table: time its runtime too
    protocol = replace(protocol, runtime="torch")
    items = [TimingItem("torch", model, x)]
    reasons: dict[str, str] = {}
    measured: dict[str, Measurement] = {}
    session_call = None
    if onnx_path is not None:
        try:
            session_call = ort_call(onnx_path, x, protocol)
        except Exception as exc:  # reported in the card; the file is verified
            reasons["onnxruntime"] = f"could not start an ONNX Runtime session here: {exc}"
    if session_call is not None:
        items.append(TimingItem("onnxruntime", session_call, x))
    measured.update(measure_many(items, protocol, rng=np.random.default_rng(0)))
    if onnx_path is None and "onnxruntime" not in reasons:
        try:
            with warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                ort_protocol = replace(protocol, runtime="onnxruntime")
                measured.update(measure_many([TimingItem("onnxruntime", model, x)], ort_protocol,
                                             rng=np.random.default_rng(0)))
        except Exception as exc:  # reported in the card
            reasons["onnxruntime"] = f"onnxruntime timing failed: {exc}"
    if traced:
        try:
            measured.update(measure_many([TimingItem("torchscript", model, x)],
                                         replace(protocol, runtime="torchscript"),
                                         rng=np.random.default_rng(0)))
        except Exception as exc:  # reported in the card
            reasons["torchscript"] = f"torchscript timing failed: {exc}"
    return measured, reasons


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def ort_call(path: Path, x: torch.Tensor, protocol: TimingProtocol) -> Callable[..., Any]:
    """A callable running the ONNX file on ``x`` with the timing protocol's session settings."""
    parse_device(protocol.device)
    try:
        session = ort_session(path, int(protocol.threads), protocol.device)
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    feeds = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    session.run(None, feeds)
    return lambda *_: session.run(None, feeds)

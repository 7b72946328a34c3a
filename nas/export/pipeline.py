"""Export one architecture of a trained run: weights, files in every format, and a model card.

:func:`export_architecture` is what ``nas export`` runs and what ``nas run`` calls directly:

1. load the run (space, supernet, data splits; :func:`nas.train.load_supernet`) and resolve the
   architecture (:func:`nas.export.resolve.resolve_architecture`), validated against the space;
2. extract the standalone subnet with inherited weights and recalibrate its BatchNorm statistics
   on the train split (seeded: same seed, same weights, byte for byte);
3. measure validation and test accuracy (the test number is reported only, never used to choose);
4. write the files with :func:`nas.export.export_model` (each reloaded and compared with eager,
   ONNX Runtime within ``atol``, TorchScript/.pt2/ONNX also run in a fresh interpreter that cannot
   import this package);
5. predict the latency from a latency table, if given, and measure it here with the table's timing
   protocol (batch, threads, warm-up, rounds; default batch 1, 1 thread): torch eager on the
   in-memory model and ONNX Runtime on the exported ``.onnx`` file, interleaved;
6. write the model card (``MODEL_CARD.md`` + ``model_card.json``): exact costs, latencies, accuracies,
   provenance (run, checkpoint hash, data fingerprint), preprocessing, versions, file hashes.

Everything is written to a staging folder beside ``out_dir`` and renamed into place at the end: an
error at any step leaves no ``out_dir`` (or the previous one, untouched).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import Architecture
from nas.costs import Costs, costs
from nas.data import DatasetSplits, Split
from nas.errors import IncompatibleFileError, UserError
from nas.export.formats import SUPPORTED_FORMATS, export_model, parse_formats, sha256_file
from nas.export.model_card import TEST_POLICY, build_card, render_markdown
from nas.export.resolve import ResolvedArch, resolve_architecture
from nas.io import atomic_write_json, atomic_write_text
from nas.latency import LatencyTable, Measurement, TimingItem, TimingProtocol, measure_many
from nas.latency.environment import parse_device, processor_name
from nas.spaces import SearchSpace
from nas.train import DEFAULT_RECAL_BATCH_SIZE, DEFAULT_RECAL_BATCHES
from nas.train.evaluate import evaluate_model, recalibrated_subnet
from nas.train.inputs import model_input
from nas.train.rundir import RunPaths, load_supernet, read_config, read_space, versions
from nas.units import arch_keys

log = logging.getLogger(__name__)

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_architecture` wrote and measured.

    ``files`` maps a kind to its final path: the keys of :func:`nas.export.export_model`
    (``state_dict``, ``pt2``, ``torchscript``, ``onnx``, ``example``, ``manifest``) plus
    ``model_card_md`` and ``model_card_json``. ``accuracy`` has ``val`` and ``test``, each
    ``{"acc", "loss", "n"}`` or ``None`` when the split is empty. ``measured`` maps a runtime
    (``torch``, ``onnxruntime``) to its :class:`Measurement` (absent when not measured; the
    card says why). ``card`` is the content of ``model_card.json``.
    """

    out_dir: Path
    arch: Architecture
    arch_id: str
    source: str
    files: dict[str, Path]
    costs: Costs
    accuracy: dict[str, dict[str, float] | None]
    predicted_ms: float | None
    measured: dict[str, Measurement]
    card: dict[str, Any]

    @property
    def val_acc(self) -> float | None:
        return None if self.accuracy["val"] is None else self.accuracy["val"]["acc"]

    @property
    def test_acc(self) -> float | None:
        return None if self.accuracy["test"] is None else self.accuracy["test"]["acc"]


def export_architecture(
    run_dir: str | os.PathLike,
    arch: Architecture | str,
    out_dir: str | os.PathLike,
    *,
    formats: str | Sequence[str] = SUPPORTED_FORMATS,
    lut: str | os.PathLike | LatencyTable | None = None,
    measure_latency: bool = True,
    threads: int | None = None,
    device: str | None = None,
    recal_batches: int = DEFAULT_RECAL_BATCHES,
    recal_batch_size: int = DEFAULT_RECAL_BATCH_SIZE,
    seed: int = 0,
    overwrite: bool = False,
    standalone_check: bool = True,
    atol: float = 1e-4,
    name: str = "model",
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``arch`` of the trained run in ``run_dir`` to ``out_dir`` (see the module docstring).

    ``arch``: an :class:`Architecture`, or what ``nas export --arch`` takes (an ID looked up in the
    run's search outputs, a JSON file, JSON text or a short string). ``lut``: a latency table (a
    path to its CSV/JSON, or a loaded table) for the predicted latency; its timing protocol, batch,
    threads and device are then used for the measurement too. ``threads`` / ``device`` override
    those (defaults without a table: 1 thread, CPU). ``out_dir`` must not exist or be empty unless
    ``overwrite``. ``progress`` receives one line per stage. Errors a user can fix raise
    :class:`nas.errors.UserError`; nothing is left behind then.
    """
    say = progress or (lambda _msg: None)
    fmts = parse_formats(formats)
    _check_int("recal_batches", recal_batches, 1)
    _check_int("recal_batch_size", recal_batch_size, 1)
    _check_int("seed", seed, 0)
    if threads is not None:
        _check_int("threads", threads, 1)
    out = Path(out_dir)
    _check_out_dir(out, overwrite)

    run_root = _check_run_dir(run_dir)
    _, record = read_config(run_root)
    space = read_space(RunPaths(run_root).space, record.get("space", {}).get("hash"))
    resolved = resolve_architecture(arch, space, run_root)
    arch_v = resolved.arch
    say(f"architecture {arch_v.arch_id()} ({resolved.source}): {arch_v.to_str()}")
    exact = costs(space, arch_v)
    table = _load_table(lut, space)
    predicted = _predict(table, space, arch_v, exact) if table is not None else None
    protocol, batch, proto_notes = _protocol(table, threads, device) if measure_latency else (
        None, table.meta.batch if table is not None else 1, [])

    say(f"loading the run {run_root}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_supernet(run_root, device="cpu")
    run_notes = [str(w.message) for w in caught if "unfinished run" in str(w.message)]
    splits = run.splits
    assert splits is not None  # load_data=True

    say(f"recalibrating BatchNorm on {recal_batches} x {recal_batch_size} train images "
        f"(seed {seed})")
    model = recalibrated_subnet(run.supernet, arch_v, splits.train, recal_batches=recal_batches,
                                recal_batch_size=recal_batch_size, seed=seed)
    say("evaluating on the validation and test splits")
    accuracy = {k: _evaluate(model, getattr(splits, k), arch_v, space) for k in ("val", "test")}
    example = _example_input(splits, arch_v, space, batch)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        say(f"exporting {', '.join(fmts)} with checks"
            + (" (and a fresh-interpreter check)" if standalone_check else ""))
        files = export_model(model, example, staging, formats=fmts, name=name, atol=atol,
                             standalone_check=standalone_check)
        manifest = json.loads(files["manifest"].read_text())
        measured: dict[str, Measurement] = {}
        reasons: dict[str, str] = {}
        if protocol is not None:
            say(f"measuring latency on {protocol.device} (batch {batch}, "
                f"{protocol.threads} thread(s)): torch eager and onnxruntime")
            measured, reasons = _measure(model, example, files.get("onnx"), protocol)
        else:
            reasons = {rt: "not requested (--no-measure)" for rt in RUNTIMES}
        context = _Context(run_root, record, run.epoch, run.config.epochs, splits, space, arch_v,
                           resolved, exact, accuracy, table, lut, predicted, protocol, batch,
                           measured, reasons, manifest, recal_batches, recal_batch_size, seed,
                           [*run_notes, *proto_notes])
        card = _write_card(staging, context, f"{space.name}-{arch_v.arch_id()}")
        _publish(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = {kind: out / path.name for kind, path in files.items()}
    final["model_card_md"], final["model_card_json"] = out / CARD_MD, out / CARD_JSON
    say(f"wrote {out}")
    return ExportResult(out, arch_v, arch_v.arch_id(), resolved.source, final, exact, accuracy,
                        predicted, measured, card)


# ----- checks -----
def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_run_dir(run_dir: str | os.PathLike) -> Path:
    root = Path(run_dir)
    if not root.exists():
        raise UserError(f"run folder {root} does not exist; expected a folder written by "
                        "'nas train --out ...'")
    if not root.is_dir():
        raise UserError(f"run folder {root} is not a folder")
    return root


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} exists and is not empty; choose another folder or pass "
                        "--force to replace it")


def _umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; else the usual 0o022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished staging folder onto ``out`` (an old ``out`` is removed after).

    Temporary files and folders are created private (0600/0700); the published ones get the
    permissions a plain ``open``/``mkdir`` would have given them.
    """
    mask = _umask()
    for path in staging.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
    staging.chmod(0o777 & ~mask)
    old: Path | None = None
    if out.is_dir():
        if any(out.iterdir()) and not overwrite:  # appeared while we worked
            raise UserError(f"--out {out} became non-empty during the export; nothing written")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ----- accuracy and inputs -----
def _evaluate(model: nn.Module, split: Split, arch: Architecture,
              space: SearchSpace) -> dict[str, float] | None:
    if len(split) == 0:
        return None
    result = evaluate_model(model, split, resolution=arch.resolution,
                            in_channels=space.in_channels)
    return {"acc": float(result["acc"]), "loss": float(result["loss"]), "n": int(result["n"])}


def _example_input(splits: DatasetSplits, arch: Architecture, space: SearchSpace,
                   batch: int) -> torch.Tensor:
    """The first ``batch`` validation images (train if val is empty), as the model takes them."""
    source = splits.val if len(splits.val) else splits.train
    x = source.x[:batch]
    if x.shape[0] < batch:
        x = x.repeat((batch + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:batch]
    return model_input(x, arch.resolution, space.in_channels, channels_last=False).contiguous()


# ----- latency -----
def _load_table(lut: str | os.PathLike | LatencyTable | None,
                space: SearchSpace) -> LatencyTable | None:
    if lut is None:
        return None
    if isinstance(lut, LatencyTable):
        if lut.meta.space_hash != space.hash():
            raise IncompatibleFileError(
                f"latency table for space {lut.meta.space_name!r} (hash {lut.meta.space_hash}) "
                f"does not fit the run's space {space.name!r} (hash {space.hash()})")
        return lut
    return LatencyTable.load(lut, expected_space_hash=space.hash())


def _predict(table: LatencyTable, space: SearchSpace, arch: Architecture, exact: Costs) -> float:
    """The table's prediction for ``arch``; costs are offered as extra calibration features."""
    extra = {k: np.array([float(v)], dtype=np.float64) for k, v in exact.as_dict().items()}
    extra["peak_memory_bytes"] = np.array([float(exact.peak_memory_bytes)])
    try:
        return float(table.predict_from_keys([arch_keys(space, arch)], extra_features=extra)[0])
    except UserError as exc:
        raise type(exc)(f"--lut: {exc}") from None


def _protocol(table: LatencyTable | None, threads: int | None,
              device: str | None) -> tuple[TimingProtocol, int, list[str]]:
    """The table's timing protocol (or the default one) with the overrides; batch; notes."""
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
        raise IncompatibleFileError(f"--lut: its timing protocol is not usable here: {exc}") from None


def _measure(model: nn.Module, x: torch.Tensor, onnx_path: Path | None,
             protocol: TimingProtocol) -> tuple[dict[str, Measurement], dict[str, str]]:
    """Torch eager and ONNX Runtime latency with ``protocol``, interleaved rounds.

    ONNX Runtime times the exported file with the session settings of the timing protocol
    (intra-op threads = protocol threads, inter-op 1, sequential). Without an exported ``.onnx``
    the protocol's own ONNX export is timed instead. A runtime that cannot run here is reported
    with its reason, not as an error: the files were already verified.
    """
    protocol = replace(protocol, runtime="torch")
    items = [TimingItem("torch", model, x)]
    reasons: dict[str, str] = {}
    measured: dict[str, Measurement] = {}
    session_call = None
    if onnx_path is not None:
        try:
            session_call = _ort_call(onnx_path, x, protocol)
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
    return measured, reasons


@contextlib.contextmanager
def _quiet():
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def _ort_call(path: Path, x: torch.Tensor, protocol: TimingProtocol) -> Callable[..., Any]:
    import onnxruntime as ort

    device = parse_device(protocol.device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(protocol.threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError("onnxruntime on CUDA needs the onnxruntime-gpu package")
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index or 0})]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    feeds = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    session.run(None, feeds)
    return lambda *_: session.run(None, feeds)


# ----- the model card -----
@dataclass(frozen=True)
class _Context:
    run_root: Path
    record: dict[str, Any]
    epoch: int
    epochs: int
    splits: DatasetSplits
    space: SearchSpace
    arch: Architecture
    resolved: ResolvedArch
    costs: Costs
    accuracy: dict[str, dict[str, float] | None]
    table: LatencyTable | None
    lut: Any
    predicted: float | None
    protocol: TimingProtocol | None
    batch: int
    measured: dict[str, Measurement]
    reasons: dict[str, str]
    manifest: dict[str, Any]
    recal_batches: int
    recal_batch_size: int
    seed: int
    notes: list[str]


def _table_source(c: _Context) -> str | None:
    if c.table is None:
        return None
    m = c.table.meta
    where = f" {c.lut}" if isinstance(c.lut, (str, os.PathLike)) else ""
    calibrated = "calibrated" if m.calibration is not None else "sum of layer medians, uncalibrated"
    return (f"latency table{where}: {m.device}/{m.runtime}, {m.processor}, {m.threads} thread(s), "
            f"batch {m.batch}, {calibrated}")


def _primary_runtime(c: _Context) -> str:
    """The runtime whose measurement goes in the card's main latency field."""
    return c.table.meta.runtime if c.table is not None else "torch"


def _device_text(c: _Context, runtime: str) -> str | None:
    if c.protocol is None:
        return None
    what = "torch eager" if runtime == "torch" else "onnxruntime on the exported .onnx"
    return (f"{c.protocol.device} ({processor_name(c.protocol.device)}), {what}, "
            f"{c.protocol.threads} thread(s)")


def _protocol_text(c: _Context) -> str | None:
    if c.protocol is None:
        return None
    p = c.protocol
    origin = "the latency table's protocol" if c.table is not None else "the default protocol"
    return (f"{origin}: batch {c.batch}, float32 NCHW input, {p.warmup} warm-up calls, "
            f"{p.rounds} interleaved rounds of >= {p.repeats} timer reads (>= "
            f"{p.min_time_per_round * 1e3:g} ms each); estimate = lowest per-round median, "
            "± = standard deviation of the round medians")


def _measurement_dict(m: Measurement) -> dict[str, Any]:
    return {
        "estimate_ms": m.latency_ms,
        "round_medians_ms": list(m.round_medians_ms),
        "round_medians_std_ms": _round_std(m),
        "mean_ms": m.mean_ms,
        "std_ms": m.std_ms,
        "median_ms": m.median_ms,
        "calls_timed": m.count,
        "calls_per_read": m.calls_per_read,
    }


def _round_std(m: Measurement) -> float:
    values = np.asarray(m.round_medians_ms, dtype=np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _acc_entry(result: dict[str, float] | None) -> float | None:
    return None if result is None else result["acc"]


def _card_input(c: _Context, name: str) -> dict[str, Any]:
    """The card in the schema of :func:`nas.export.model_card.build_card`."""
    primary = _primary_runtime(c)
    m = c.measured.get(primary)
    not_measured: dict[str, str] = {}
    if c.table is None:
        not_measured["latency.predicted_ms"] = "no latency table given; pass one with --lut"
    if m is None:
        not_measured["latency.measured_ms"] = c.reasons.get(
            primary, f"{primary} latency was not measured")
    for key, split in (("validation", "val"), ("test", "test")):
        if c.accuracy[split] is None:
            not_measured[f"accuracy.{key}"] = f"the run's {split} split is empty"
    notes = [
        f"Weights inherited from the supernet of run {c.run_root} (epoch {c.epoch} of "
        f"{c.epochs}); BatchNorm statistics recalibrated on {c.recal_batches} batches of "
        f"{c.recal_batch_size} training images (seed {c.seed}).",
        f"Validation accuracy is the number a search may select on; test accuracy is "
        f"{TEST_POLICY}.",
        *c.notes,
    ]
    if primary != "torch" and "torch" in c.measured:
        notes.append(f"torch eager on this device: {c.measured['torch'].latency_ms:.3f} ms "
                     "(see 'Latency by runtime').")
    if primary == "torch" and "onnxruntime" in c.measured:
        notes.append(f"ONNX Runtime on the exported file: "
                     f"{c.measured['onnxruntime'].latency_ms:.3f} ms (see 'Latency by runtime').")
    return {
        "name": name,
        "architecture": {"string": c.arch.to_str(), "json": c.arch.to_dict(),
                         "search_space": c.space.name},
        "costs": {"flops": c.costs.flops, "macs": c.costs.macs, "params": c.costs.params,
                  "peak_memory_bytes": c.costs.peak_memory_bytes},
        "latency": {
            "predicted_ms": c.predicted,
            "predicted_source": _table_source(c),
            "measured_ms": None if m is None else m.latency_ms,
            "measured_std_ms": None if m is None else _round_std(m),
            "device": _device_text(c, primary),
            "protocol": _protocol_text(c),
        },
        "accuracy": {"validation": _acc_entry(c.accuracy["val"]),
                     "test": _acc_entry(c.accuracy["test"]), "dataset": c.splits.name},
        "not_measured": not_measured,
        "notes": notes,
    }


def _details(c: _Context) -> dict[str, Any]:
    """What the card schema has no field for: provenance, all runtimes, preprocessing, versions."""
    run_data = c.record.get("data", {})
    paths = RunPaths(c.run_root)
    table = None
    if c.table is not None:
        m = c.table.meta
        table = {"path": str(c.lut) if isinstance(c.lut, (str, os.PathLike)) else None,
                 "device": m.device, "processor": m.processor, "runtime": m.runtime,
                 "threads": m.threads, "batch": m.batch, "dtype": m.dtype,
                 "versions": m.versions, "space_hash": m.space_hash,
                 "calibration": m.calibration, "created": m.created}
    versions_here = {**versions(), **(c.manifest.get("versions") or {})}
    return {
        "arch_id": c.arch.arch_id(),
        "arch_source": c.resolved.source,
        "space": {"name": c.space.name, "hash": c.space.hash()},
        "run": {
            "path": str(c.run_root.resolve()),
            "epoch": c.epoch,
            "epochs": c.epochs,
            "checkpoint_sha256": sha256_file(paths.checkpoint),
            "data": {"name": c.splits.name, "spec": run_data.get("spec"),
                     "fingerprint": c.splits.fingerprint(),
                     "sizes": {k: len(getattr(c.splits, k)) for k in ("train", "val", "test")}},
        },
        "weights": {"inherited": True, "bn_recalibration": {
            "split": "train", "batches": c.recal_batches, "batch_size": c.recal_batch_size,
            "seed": c.seed}},
        "costs": {"macs": c.costs.macs, "flops": c.costs.flops, "params": c.costs.params,
                  "peak_memory_bytes": c.costs.peak_memory_bytes,
                  "param_memory_bytes": c.costs.param_memory_bytes,
                  "how": "exact, from the architecture (nas.costs), batch 1, float32"},
        "accuracy": {"val": c.accuracy["val"], "test": c.accuracy["test"],
                     "test_policy": TEST_POLICY},
        "latency": {
            "predicted_ms": c.predicted,
            "table": table,
            "protocol": None if c.protocol is None else
            {**c.protocol.describe(), "batch": c.batch, "runtime": list(c.measured)},
            "measured": {rt: _measurement_dict(m) for rt, m in c.measured.items()},
            "not_measured": {rt: c.reasons[rt] for rt in RUNTIMES
                             if rt not in c.measured and rt in c.reasons},
        },
        "preprocessing": {
            "resolution": c.arch.resolution,
            "in_channels": c.space.in_channels,
            "native_size": list(c.splits.image_size),
            "data_channels": c.splits.in_channels,
            "mean": list(c.splits.mean),
            "std": list(c.splits.std),
            "class_names": list(c.splits.class_names),
            "how": "pixels scaled to [0, 1], then (x - mean) / std per channel; bilinear resize "
                   "to resolution x resolution (antialiased when shrinking); 1-channel data "
                   "repeated to in_channels",
        },
        "export_checks": {"checks": c.manifest.get("checks"),
                          "standalone": c.manifest.get("standalone"),
                          "tolerance_max_abs": c.manifest.get("tolerance_max_abs")},
        "versions": versions_here,
    }


def _write_card(staging: Path, c: _Context, name: str) -> dict[str, Any]:
    data = build_card(staging, _card_input(c, name))
    data["details"] = _details(c)
    atomic_write_json(staging / CARD_JSON, data)
    atomic_write_text(staging / CARD_MD, render_markdown(data) + _details_markdown(data))
    return json.loads((staging / CARD_JSON).read_text())


def _details_markdown(data: dict[str, Any]) -> str:
    d = data["details"]
    run, lat, pre = d["run"], d["latency"], d["preprocessing"]
    sizes = run["data"]["sizes"]
    lines = ["", "## Provenance", "", "| item | value |", "| --- | --- |",
             f"| architecture id | `{d['arch_id']}` ({d['arch_source']}) |",
             f"| search space | {d['space']['name']} (hash `{d['space']['hash']}`) |",
             f"| run | `{run['path']}`, epoch {run['epoch']} of {run['epochs']} |",
             f"| checkpoint sha256 | `{run['checkpoint_sha256']}` |",
             f"| data | {run['data']['name']} (fingerprint `{run['data']['fingerprint']}`; "
             f"train {sizes['train']}, val {sizes['val']}, test {sizes['test']}) |"]
    bn = d["weights"]["bn_recalibration"]
    lines += [f"| BN recalibration | {bn['batches']} x {bn['batch_size']} train images, "
              f"seed {bn['seed']} |",
              f"| parameter memory | {_bytes(d['costs']['param_memory_bytes'])} (float32) |"]
    for split, label in (("val", "validation"), ("test", "test")):
        acc = d["accuracy"][split]
        if acc is not None:
            lines += [f"| {label} loss | {acc['loss']:.4f} on {acc['n']} images |"]
    lines += ["", "## Latency by runtime (this device)", ""]
    if lat["measured"]:
        lines += ["| runtime | estimate | round medians | mean ± std (all calls) | calls timed |",
                  "| --- | ---: | --- | --- | ---: |"]
        for rt, m in lat["measured"].items():
            medians = ", ".join(f"{v:.3f}" for v in m["round_medians_ms"])
            lines += [f"| {rt} | {m['estimate_ms']:.3f} ms | {medians} ms | "
                      f"{m['mean_ms']:.3f} ± {m['std_ms']:.3f} ms | {m['calls_timed']:,} |"]
    for rt, why in lat["not_measured"].items():
        lines += [f"- {rt}: not measured ({why})"]
    if lat["predicted_ms"] is not None:
        lines += ["", f"Predicted by the latency table: {lat['predicted_ms']:.3f} ms."]
    lines += ["", "## Input preprocessing", "",
              f"Input: float32 `[B, {pre['in_channels']}, {pre['resolution']}, "
              f"{pre['resolution']}]`. {pre['how'][0].upper()}{pre['how'][1:]}.",
              f"Mean {_floats(pre['mean'])}, std {_floats(pre['std'])}; native size "
              f"{pre['native_size']}, {pre['data_channels']} data channel(s); classes "
              f"{', '.join(pre['class_names'])}."]
    lines += ["", "## Versions", "", "| package | version |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(d["versions"].items())]
    return "\n".join(lines) + "\n"


def _floats(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB ({n:,} bytes)"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.2f} KiB ({n:,} bytes)"
    return f"{n:,} bytes"

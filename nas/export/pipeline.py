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

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import Architecture
from nas.costs import Costs, costs
from nas.data import DatasetSplits, Split
from nas.errors import UserError
from nas.export.formats import SUPPORTED_FORMATS, export_model, parse_formats
from nas.export.measure import load_table, measure_runtimes, predict_latency, timing_protocol
from nas.export.resolve import resolve_architecture
from nas.export.run_card import CARD_JSON, CARD_MD, RUNTIMES, ExportFacts, write_export_card
from nas.latency import LatencyTable, Measurement
from nas.spaces import SearchSpace
from nas.train import DEFAULT_RECAL_BATCH_SIZE, DEFAULT_RECAL_BATCHES
from nas.train.evaluate import evaluate_model, recalibrated_subnet
from nas.train.inputs import model_input
from nas.train.rundir import RunPaths, load_supernet, read_config, read_space

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
    table = load_table(lut, space)
    predicted = predict_latency(table, space, arch_v, exact) if table is not None else None
    protocol, batch, proto_notes = timing_protocol(table, threads, device) if measure_latency else (
        None, table.meta.batch if table is not None else 1, [])

    say(f"loading the run {run_root}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_supernet(run_root, device="cpu")
    run_notes = [str(w.message) for w in caught if "unfinished run" in str(w.message)]
    for w in caught:  # the unfinished-run warning goes into the card, the others on as usual
        if "unfinished run" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
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
            measured, reasons = measure_runtimes(model, example, files.get("onnx"), protocol)
        else:
            reasons = {rt: "not requested (--no-measure)" for rt in RUNTIMES}
        facts = ExportFacts(
            run_root=run_root, record=record, epoch=run.epoch, epochs=run.config.epochs,
            splits=splits, space=space, arch=arch_v, resolved=resolved, costs=exact,
            accuracy=accuracy, table=table, lut=lut, predicted=predicted, protocol=protocol,
            batch=batch, measured=measured, reasons=reasons, manifest=manifest,
            recal_batches=recal_batches, recal_batch_size=recal_batch_size, seed=seed,
            notes=[*run_notes, *proto_notes],
        )
        card = write_export_card(staging, facts, f"{space.name}-{arch_v.arch_id()}")
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

"""Export one architecture of a trained run: weights, files in every format, and a model card.

:func:`export_architecture` is what ``nas export`` runs and what ``nas run`` calls directly:

1. load the run (space, supernet, data splits; :func:`nas.train.load_supernet`) and resolve the
   architecture (:func:`nas.export.resolve.resolve_architecture`), validated against the space;
2. extract the standalone subnet with inherited weights and recalibrate its BatchNorm statistics
   on the train split (seeded: same seed, same weights, byte for byte);
3. measure validation and test accuracy (the test number is reported only, never used to choose);
   with ``finetune``, train the extracted subnet a few epochs from its inherited weights
   (:func:`nas.train.finetune.finetune_model`) and measure both accuracies again;
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
import re
import shutil
import tempfile
import time
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
from nas.export.quantized import export_policy, policy_tag
from nas.export.resolve import resolve_architecture
from nas.export.run_card import (
    CARD_JSON,
    CARD_MD,
    RUNTIMES,
    ExportFacts,
    onnx_metadata,
    write_export_card,
)
from nas.io import check_writable
from nas.latency import LatencyTable, Measurement
from nas.onnx_graph import DEFAULT_OPSET
from nas.precision import FP32
from nas.quantize import is_mixed
from nas.spaces import SearchSpace
from nas.train import DEFAULT_RECAL_BATCH_SIZE, DEFAULT_RECAL_BATCHES
from nas.train.evaluate import evaluate_model, recalibrated_subnet
from nas.train.finetune import FinetuneConfig, finetune_model
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
    finetune: dict[str, Any] | None = None  # config, accuracy before/after, history, seconds

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
    finetune: FinetuneConfig | None = None,
    progress: Progress | None = None,
    precisions: str | Sequence[str] | None = None,
) -> ExportResult:
    """Export ``arch`` of the trained run in ``run_dir`` to ``out_dir`` (see the module docstring).

    ``arch``: an :class:`Architecture`, or what ``nas export --arch`` takes (an ID looked up in the
    run's search outputs, a JSON file, JSON text or a short string). ``lut``: a latency table (a
    path to its CSV/JSON, or a loaded table) for the predicted latency; its timing protocol, batch,
    threads and device are then used for the measurement too. ``threads`` / ``device`` override
    those (defaults without a table: 1 thread, CPU). ``out_dir`` must not exist or be empty unless
    ``overwrite``. ``finetune``: fine-tune the extracted subnet from its inherited weights before
    exporting it (the card reports accuracy before and after). ``precisions``: the precisions the
    run's space allows here (``"fp32,int8"``; the run's space by default); an architecture with an
    ``int8`` gene also gets its QDQ ONNX file (:mod:`nas.export.quantized`). ``progress`` receives
    one line per stage. Errors a user can fix raise
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
    check_writable(out.parent)  # the staging folder goes beside out: refused before any work

    run_root = _check_run_dir(run_dir)
    _, record = read_config(run_root)
    space = read_space(RunPaths(run_root).space, record.get("space", {}).get("hash"))
    if precisions is not None:
        space = space.with_precisions(precisions)
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
    model = recalibrated_subnet(run.supernet, arch_v.at_precision(FP32), splits.train,
                                recal_batches=recal_batches,
                                recal_batch_size=recal_batch_size, seed=seed)
    say("evaluating on the validation and test splits")
    accuracy = {k: _evaluate(model, getattr(splits, k), arch_v, space) for k in ("val", "test")}
    tuned = None
    if finetune is not None:
        tuned = _finetune(model, splits, arch_v, space, finetune, accuracy, say)
        accuracy = tuned["after"]
    example = _example_input(splits, arch_v, space, batch)

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent))
    try:
        say(f"exporting {', '.join(fmts)} with checks"
            + (" (and a fresh-interpreter check)" if standalone_check else ""))
        files = export_model(model, example, staging, formats=fmts, name=name, atol=atol,
                             standalone_check=standalone_check,
                             onnx_metadata=onnx_metadata(splits, space, arch_v),
                             **onnx_settings(table))
        manifest = json.loads(files["manifest"].read_text())
        measured: dict[str, Measurement] = {}
        reasons: dict[str, str] = {}
        if protocol is not None:
            say(f"measuring latency on {protocol.device} (batch {batch}, "
                f"{protocol.threads} thread(s)): torch eager and onnxruntime")
            measured, reasons = measure_runtimes(model, example, files.get("onnx"), protocol)
        else:
            reasons = {rt: "not requested (--no-measure)" for rt in RUNTIMES}
        quantization = None
        if is_mixed(arch_v):
            say(f"quantizing the {policy_tag(arch_v)} policy (ONNX Runtime QDQ), checking it "
                "without this package, measuring its accuracy and latency")
            quantization = export_policy(
                model, space, arch_v, splits, staging, name, example,
                float_onnx=files.get("onnx"), protocol=protocol, calibration_n=recal_batches,
                calibration_batch_size=recal_batch_size, seed=seed,
                standalone_check=standalone_check)
            files["quantized_onnx"] = staging / quantization["file"]
        facts = ExportFacts(
            run_root=run_root, record=record, epoch=run.epoch, epochs=run.config.epochs,
            splits=splits, space=space, arch=arch_v, resolved=resolved, costs=exact,
            accuracy=accuracy, table=table, lut=lut, predicted=predicted, protocol=protocol,
            batch=batch, measured=measured, reasons=reasons, manifest=manifest,
            recal_batches=recal_batches, recal_batch_size=recal_batch_size, seed=seed,
            notes=[*run_notes, *proto_notes], finetune=tuned, quantization=quantization,
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
                        predicted, measured, card, tuned)


def onnx_settings(table: LatencyTable | None) -> dict[str, Any]:
    """The opset and exporter the table's units were profiled with (the same export path, so the
    exported graph is the predicted one); the defaults without a table."""
    proto = table.meta.protocol if table is not None else {}
    out: dict[str, Any] = {"opset": int(proto.get("onnx_opset", DEFAULT_OPSET))}
    if "onnx_exporter" in proto:
        out["onnx_exporter"] = str(proto["onnx_exporter"])
    return out


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
    """Refuse an ``--out`` that the export must not write or replace (one line; nothing written).

    ``out`` must not be, or be inside, a training run folder, nor be the current folder or one
    above it. A non-empty ``out`` is replaced only with ``overwrite`` and only when it is an
    earlier export's output and holds nothing else (:func:`_foreign_entry`): ``--force`` never
    deletes anything the export did not write.
    """
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link; give the folder it points to")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    where = out.resolve()
    run = _enclosing_run(where)
    if run is not None:
        how = "is" if run == where else "is inside"
        raise UserError(f"--out {out} {how} the training run folder {run}; choose a folder "
                        "outside it")
    if where == Path.cwd().resolve() or where in Path.cwd().resolve().parents:
        raise UserError(f"--out {out} is the current folder or holds it; choose a folder beside "
                        "or below it")
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = _foreign_entry(out)
    if foreign is not None:
        raise UserError(f"--out {out} is not empty and is not an earlier 'nas export' output "
                        f"({foreign}); choose another folder (--force replaces only an earlier "
                        "export)")
    if not overwrite:
        raise UserError(f"--out {out} holds an earlier export; choose another folder or pass "
                        "--force to replace it")


def _enclosing_run(path: Path) -> Path | None:
    """The training run folder (``nas train --out``) that is ``path`` or holds it, if any."""
    from nas.train.rundir import RUN_FORMAT

    for folder in (path, *path.parents):
        config = RunPaths(folder).config
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("format") == RUN_FORMAT:
                return folder
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            continue
    return None


def _foreign_entry(out: Path) -> str | None:
    """Why the non-empty folder ``out`` is not an earlier export's output (``None`` if it is).

    An export's output holds ``model_card.json``, ``MODEL_CARD.md``, ``manifest.json`` and the
    files they list, all plain files: anything else (a folder, a link, another file) is foreign.
    """
    from nas.export.formats import MANIFEST_NAME

    allowed = {CARD_JSON, CARD_MD, MANIFEST_NAME}
    for listing in (CARD_JSON, MANIFEST_NAME):
        try:
            files = json.loads((out / listing).read_text(encoding="utf-8"))["files"]
            allowed.update(str(entry["path"]) for entry in files.values())
        except FileNotFoundError:
            if listing == CARD_JSON:
                return f"it has no {CARD_JSON}"
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
            return f"its {listing} is not an export's"
    for entry in sorted(out.iterdir()):
        if entry.name not in allowed:
            return f"it holds {entry.name!r}"
        if entry.is_symlink() or not entry.is_file():
            return f"{entry.name!r} is not a plain file"
    return None


def _umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; else the usual 0o022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders (``.<name>.staging-<pid>-*``) that killed exports of ``out``
    left beside it; a folder of a process that still runs (another export) is left alone, and so
    is any ``.old-*`` folder (it may hold an earlier export that could not be put back)."""
    from nas.io import leftovers_of_dead_writers

    pattern = re.compile(re.escape(f".{out.name}.staging-") + r"(\d+)-\w+")
    removed = leftovers_of_dead_writers(out.parent, pattern, folders=True)
    for leftover in removed:
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


def _publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished staging folder onto ``out``; an earlier export there is removed after.

    ``out`` is checked again (:func:`_check_out_dir`: it may have changed while we worked). An
    empty ``out`` is replaced by one rename; an earlier export is first moved into a hidden
    ``.<name>.old-*`` folder beside it, put back if the rename fails, and removed after (the
    folder stays only if putting it back failed too, or the process is killed in between).
    Temporary files and folders are created private (0600/0700); the published ones get the
    permissions a plain ``open``/``mkdir`` would have given them.
    """
    mask = _umask()
    for path in staging.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
    staging.chmod(0o777 & ~mask)
    target = Path(os.path.abspath(out))  # ".." and "." by name: out.name may be empty
    _check_out_dir(target, overwrite)
    if not target.is_dir() or not any(target.iterdir()):
        os.replace(staging, target)  # onto nothing or onto an empty folder: one atomic rename
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        os.replace(target, old / target.name)
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(old / target.name, target)
            raise
    except BaseException:
        if not any(old.iterdir()):  # else the earlier export could not be put back: keep it
            old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


# ----- accuracy and inputs -----
def _finetune(model: nn.Module, splits: DatasetSplits, arch: Architecture, space: SearchSpace,
              config: FinetuneConfig, before: dict[str, Any], say: Progress) -> dict[str, Any]:
    """Fine-tune ``model`` in place; the record the card and the result carry."""
    say(f"fine-tuning {config.epochs} epoch(s) from the inherited weights (AdamW lr "
        f"{config.lr:g}, batch {config.batch_size}, seed {config.seed})")
    start = time.perf_counter()
    history = finetune_model(model, splits, resolution=arch.resolution,
                             in_channels=space.in_channels, config=config, say=say)
    after = {k: _evaluate(model, getattr(splits, k), arch, space) for k in ("val", "test")}
    return {"config": config.to_dict(), "before": before, "after": after, "history": history,
            "seconds": round(time.perf_counter() - start, 2)}


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
    (x, _), = source.fetch([range(min(batch, len(source)))])
    if x.shape[0] < batch:
        x = x.repeat((batch + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:batch]
    return model_input(x, arch.resolution, space.in_channels, channels_last=False).contiguous()

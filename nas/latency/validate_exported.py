"""Validate a latency table against the files ``nas export`` wrote (``nas latency validate --exported``).

:func:`validate_exported`:

1. Finds every export folder under a directory (a folder holding ``manifest.json`` and
   ``model_card.json``; the card names the architecture and its space) and predicts each
   architecture with the table.
2. Loads each exported file in the runtime it is for: ``onnxruntime`` runs the ``.onnx`` file in
   a session with the project's settings (:func:`nas.onnx_graph.ort_session`); ``torchscript``
   the ``.torchscript.pt`` (``torch.jit.load``); ``pt2`` the ``torch.export`` program
   (``torch.export.load(...).module()``); ``eager`` the standalone static module rebuilt from the
   architecture with the exported ``state_dict``. By default the runtimes the table predicts:
   ``onnxruntime`` for an ONNX Runtime table, the three torch runtimes for a torch table.
3. Times every file with the table's timing protocol, batch and threads, interleaved; then a
   second pass with fresh sessions and loads: the device's repeatability, the floor for the
   table's error.
4. Per runtime: share within +/-10%, median error, Kendall tau of prediction against pass 1, and
   the same for pass 2 against pass 1.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write_text
from nas.latency.space_profile import protocol_of
from nas.latency.space_units import build_network, predict_latency
from nas.latency.table import LatencyTable
from nas.latency.timing import TimingItem, TimingProtocol, measure_many
from nas.latency.validate import (
    agreement,
    drift_between,
    load_checked_table,
    repeat_agreement,
)
from nas.onnx_graph import ort_session
from nas.spaces.schema import SearchSpace

RUNTIMES: tuple[str, ...] = ("onnxruntime", "eager", "torchscript", "pt2")
FILE_OF_RUNTIME = {"onnxruntime": "onnx", "torchscript": "torchscript", "pt2": "pt2",
                   "eager": "state_dict"}
Say = Callable[[str], None]


@dataclass(frozen=True)
class ExportedModel:
    """One export folder: the architecture and its files by kind (``onnx``, ``pt2``, ...)."""

    folder: Path
    arch: Architecture
    files: dict[str, Path]
    input_shape: tuple[int, ...]


def find_exports(root: str | os.PathLike, space: SearchSpace) -> list[ExportedModel]:
    """Every export folder at or under ``root`` (sorted by path); each must be of ``space``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--exported {root}: not a folder")
    out = []
    for manifest_path in sorted(root.rglob("manifest.json")):
        folder = manifest_path.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # a staging folder of an export in progress
        card_path = folder / "model_card.json"
        if not card_path.exists():
            raise IncompatibleFileError(f"{folder}: has manifest.json but no model_card.json "
                                        "(not written by 'nas export')")
        try:
            card = json.loads(card_path.read_text())
            manifest = json.loads(manifest_path.read_text())
            arch = Architecture.from_str(card["architecture"]["string"])
            space_name = card["architecture"].get("search_space")
            shape = tuple(int(v) for v in manifest["input"]["shape"])
            files = {kind: folder / rec["path"] for kind, rec in manifest["files"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleFileError(f"{folder}: not a readable export ({exc})") from None
        if space_name is not None and space_name != space.name:
            raise IncompatibleFileError(f"{folder}: exported from space {space_name!r}, not "
                                        f"{space.name!r}")
        space.validate(arch)
        out.append(ExportedModel(folder, arch, files, shape))
    if not out:
        raise UserError(f"--exported {root}: no export folder (manifest.json and "
                        "model_card.json) found under it")
    return out


def default_runtimes(table: LatencyTable) -> tuple[str, ...]:
    """The runtimes a table predicts: its own (``onnxruntime``, ``torchscript``), or the three
    torch runtimes for a torch eager table."""
    if table.meta.runtime in ("onnxruntime", "torchscript"):
        return (table.meta.runtime,)
    return ("eager", "torchscript", "pt2")


def load_runtime(space: SearchSpace, model: ExportedModel, runtime: str, x: torch.Tensor,
                 protocol: TimingProtocol) -> Callable[..., Any]:
    """A callable running ``model``'s file for ``runtime`` on ``x`` (fresh session or load)."""
    kind = FILE_OF_RUNTIME[runtime]
    if kind not in model.files:
        raise IncompatibleFileError(f"{model.folder}: no {kind} file to time with {runtime}")
    path = model.files[kind]
    if runtime == "onnxruntime":
        session = ort_session(path, int(protocol.threads), protocol.device)
        feeds = {session.get_inputs()[0].name: x.numpy()}
        return lambda *_: session.run(None, feeds)
    if runtime == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu").eval()
    elif runtime == "pt2":
        module = torch.export.load(str(path)).module()
    else:
        module, _ = build_network(space, model.arch, 1)
        module.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        module.eval()
    return lambda *_: module(x)


@dataclass
class ExportedValidation:
    """Predictions and two timed passes of every exported file, per runtime (ms)."""

    space: str
    table_path: str
    table_meta: dict[str, Any]
    models: list[ExportedModel]
    predicted: np.ndarray
    measured: dict[str, np.ndarray]
    measured_again: dict[str, np.ndarray]
    seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)

    def metrics(self, runtime: str) -> dict[str, float]:
        return agreement(self.predicted, self.measured[runtime])

    def repeatability(self, runtime: str) -> dict[str, float]:
        """Pass 2 against pass 1, plus ``drift`` (median pass-2 / pass-1 ratio) and
        ``within10_drift_removed_pct``: the share within +/-10% once that common drift is
        divided out (the network-to-network noise alone)."""
        first, again = self.measured[runtime], self.measured_again[runtime]
        drift = drift_between(first, again)
        out = repeat_agreement(first, again)
        out["drift"] = drift
        out["within10_drift_removed_pct"] = repeat_agreement(first, again / drift)["within10_pct"]
        return out


def validate_exported(
    space: SearchSpace,
    table: LatencyTable | str | os.PathLike,
    exported: str | os.PathLike,
    *,
    runtimes: Sequence[str] | None = None,
    seed: int = 0,
    say: Say = print,
) -> ExportedValidation:
    """Time every exported file under ``exported`` twice and compare with the table (docstring)."""
    table, table_path = load_checked_table(space, table)
    runtimes = tuple(runtimes) if runtimes else default_runtimes(table)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise UserError(f"--runtimes {','.join(unknown)}: expected some of {','.join(RUNTIMES)}")
    models = find_exports(exported, space)
    predicted = predict_latency(table, space, [m.arch for m in models])
    protocol = replace(protocol_of(table), runtime="torch")  # callables, timed as they are
    batch = int(table.meta.batch)
    rng = np.random.default_rng(seed)
    inputs = [torch.as_tensor(rng.standard_normal((batch, *m.input_shape[1:])),
                              dtype=torch.float32) for m in models]
    load_before = os.getloadavg()
    say(f"timing {len(models)} exported models x {len(runtimes)} runtime(s) "
        f"({', '.join(runtimes)}) with the table's protocol ({protocol.threads} thread(s), "
        f"batch {batch}, clock {protocol.clock}), two passes; load average {load_before[0]:.2f}")
    start = time.monotonic()
    passes = []
    for k in range(2):
        items = [TimingItem(f"{r}:{i}", load_runtime(space, m, r, x, protocol), x)
                 for i, (m, x) in enumerate(zip(models, inputs)) for r in runtimes]
        timed = measure_many(items, protocol, rng=np.random.default_rng([seed, k]))
        passes.append({r: np.array([timed[f"{r}:{i}"].latency_ms for i in range(len(models))])
                       for r in runtimes})
        say(f"pass {k + 1} of 2 done")
    result = ExportedValidation(
        space=space.name, table_path=table_path, table_meta=table.meta.to_dict(), models=models,
        predicted=predicted, measured=passes[0], measured_again=passes[1],
        seconds=time.monotonic() - start, load_before=load_before, load_after=os.getloadavg(),
    )
    foreign = [r for r in runtimes if r != table.meta.runtime
               and not (table.meta.runtime == "torch" and r in ("eager", "pt2"))]
    if foreign:
        result.notes.append(f"{', '.join(foreign)} compared with a {table.meta.runtime} table's "
                            "prediction")
    return result


def summary_lines(result: ExportedValidation) -> list[str]:
    """Per runtime: the table's agreement with the exported files beside the device's own."""
    lines = []
    for runtime in result.measured:
        m, r = result.metrics(runtime), result.repeatability(runtime)
        lines.append(
            f"{runtime}: table vs exported files {m['within10_pct']:.0f}% within +/-10%, median "
            f"|error| {m['median_ape_pct']:.1f}%, mean {m['mean_error_pct']:+.1f}%, Kendall "
            f"{m['kendall_tau']:.3f} (n={int(m['n'])}); device repeatability "
            f"{r['within10_pct']:.0f}% within +/-10%, Kendall {r['kendall_tau']:.3f}")
    return lines


def metrics_rows(result: ExportedValidation) -> list[dict[str, Any]]:
    """One row per runtime: the table's metrics and the repeatability's, for reports."""
    rows = []
    for runtime in result.measured:
        m, r = result.metrics(runtime), result.repeatability(runtime)
        rows.append({"runtime": runtime, **{f"table_{k}": v for k, v in m.items()},
                     **{f"repeat_{k}": v for k, v in r.items()}})
    return rows


def markdown_table(result: ExportedValidation) -> list[str]:
    """A Markdown table: per runtime, the table's agreement and the device's repeatability."""
    lines = ["| runtime | n | within +/-10% | median abs. error | mean signed error | Kendall tau "
             "| repeatability: within +/-10% | repeatability: Kendall tau | pass 2 / pass 1 "
             "(median) | repeatability, that drift divided out: within +/-10% |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in metrics_rows(result):
        lines.append(
            f"| {row['runtime']} | {int(row['table_n'])} | {row['table_within10_pct']:.0f}% | "
            f"{row['table_median_ape_pct']:.1f}% | {row['table_mean_error_pct']:+.1f}% | "
            f"{row['table_kendall_tau']:.3f} | {row['repeat_within10_pct']:.0f}% | "
            f"{row['repeat_kendall_tau']:.3f} | {row['repeat_drift']:.3f} | "
            f"{row['repeat_within10_drift_removed_pct']:.0f}% |")
    return lines


def write_csv(result: ExportedValidation, path: str | os.PathLike) -> Path:
    """Every export: folder, architecture, prediction and both passes per runtime."""
    runtimes = list(result.measured)
    header = ["folder", "arch_id", "arch", "predicted_ms"] + [
        f"{r}_{p}_ms" for r in runtimes for p in ("pass1", "pass2")]
    rows = [",".join(header)]
    for i, m in enumerate(result.models):
        cells = [str(m.folder), m.arch.arch_id(), f'"{m.arch.to_str()}"',
                 f"{result.predicted[i]:.6g}"]
        for r in runtimes:
            cells += [f"{result.measured[r][i]:.6g}", f"{result.measured_again[r][i]:.6g}"]
        rows.append(",".join(cells))
    return atomic_write_text(Path(path), "\n".join(rows) + "\n")


def write_report(result: ExportedValidation, md_path: str | os.PathLike, command: str) -> Path:
    """A short Markdown report (the command first) and the CSV of every export beside it."""
    md_path = Path(md_path)
    csv_path = write_csv(result, md_path.with_suffix(".csv"))
    meta = result.table_meta
    lines = [
        f"# Exported files vs latency table: {result.space} on {meta['device']}/{meta['runtime']}",
        "", f"Reproduce: `{command}`", "",
        f"Table `{result.table_path}` ({meta['processor']}, {meta['threads']} thread(s), batch "
        f"{meta['batch']}, clock {meta['protocol'].get('clock', 'wall')}); {len(result.models)} "
        f"export folders; load average (1 min) {result.load_before[0]:.2f} before and "
        f"{result.load_after[0]:.2f} after, {result.seconds:.0f} s of timing.", "",
        *markdown_table(result), "",
        "Repeatability: the same files loaded again (fresh sessions) and timed in a second "
        "interleaved pass; relative difference against the mean of the two passes.",
        *(f"- {n}" for n in result.notes), "",
        f"Every export: [{csv_path.name}]({csv_path.name}).", "",
    ]
    return atomic_write_text(md_path, "\n".join(lines))

"""The model card of an exported architecture: what was measured, predicted and where it came from.

Built on :mod:`nas.export.model_card` (its schema, its Markdown, its "not measured (reason)"
convention, file hashes from ``manifest.json``), extended with a ``details`` section.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.costs import Costs
from nas.data import DatasetSplits
from nas.export.formats import sha256_file
from nas.export.model_card import TEST_POLICY, build_card, render_markdown
from nas.export.resolve import ResolvedArch
from nas.io import atomic_write_json, atomic_write_text
from nas.latency import LatencyTable, Measurement, TimingProtocol
from nas.latency.environment import processor_name
from nas.spaces import SearchSpace
from nas.train.rundir import RunPaths, versions

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "torchscript")

@dataclass(frozen=True)
class ExportFacts:
    """Everything the card states, gathered by :func:`nas.export.pipeline.export_architecture`.

    ``accuracy``: ``{"val": {"acc", "loss", "n"} | None, "test": ...}``; ``measured``: runtime ->
    :class:`Measurement`; ``reasons``: runtime -> why it was not measured; ``lut``: what the
    user passed (a path is shown in the card); ``notes``: extra lines for the card.
    """

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
    finetune: dict[str, Any] | None = None  # see nas.export.pipeline.ExportResult.finetune
    quantization: dict[str, Any] | None = None  # see nas.export.quantized.export_policy


def _table_source(c: ExportFacts) -> str | None:
    if c.table is None:
        return None
    m = c.table.meta
    where = f" {c.lut}" if isinstance(c.lut, (str, os.PathLike)) else ""
    calibrated = "calibrated" if m.calibration is not None else "sum of layer medians, uncalibrated"
    return (f"latency table{where}: {m.device}/{m.runtime}, {m.processor}, {m.threads} thread(s), "
            f"batch {m.batch}, {calibrated}")


def _primary_runtime(c: ExportFacts) -> str:
    """The runtime whose measurement goes in the card's main latency field."""
    return c.table.meta.runtime if c.table is not None else "torch"


def _device_text(c: ExportFacts, runtime: str) -> str | None:
    if c.protocol is None:
        return None
    if runtime == "torch":
        what = "torch eager"
    elif runtime == "torchscript":
        what = "TorchScript (torch.jit.trace, as the exported file)"
    elif "onnx" in (c.manifest.get("files") or {}):
        what = "onnxruntime on the exported .onnx"
    else:
        what = "onnxruntime on the timing protocol's own ONNX export (no .onnx requested)"
    return (f"{c.protocol.device} ({processor_name(c.protocol.device)}), {what}, "
            f"{c.protocol.threads} thread(s)")


def _protocol_text(c: ExportFacts) -> str | None:
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


def _finetune_note(ft: dict[str, Any]) -> str:
    def pct(acc: dict[str, float] | None) -> str:
        return "n/a" if acc is None else f"{100 * acc['acc']:.2f}%"

    b, a = ft["before"], ft["after"]
    return (f"Fine-tuned {ft['config']['epochs']} epoch(s) from the inherited weights "
            f"(AdamW lr {ft['config']['lr']:g}, {ft['seconds']:.0f} s): validation "
            f"{pct(b['val'])} -> {pct(a['val'])}, test {pct(b['test'])} -> {pct(a['test'])}; "
            "the accuracies above are after fine-tuning.")


def _card_input(c: ExportFacts, name: str) -> dict[str, Any]:
    """The card in the schema of :func:`nas.export.model_card.build_card`."""
    primary = _primary_runtime(c)
    m = c.measured.get(primary)
    not_measured: dict[str, str] = {}
    if c.table is None:
        not_measured["latency.predicted_ms"] = "no latency table given; pass one with --table"
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
    if c.finetune is not None:
        notes.append(_finetune_note(c.finetune))
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
        **({} if c.quantization is None else {"quantization": {
            **c.quantization, "predicted_ms": c.predicted,
            "float_validation": _acc_entry(c.accuracy["val"])}}),
        "not_measured": not_measured,
        "notes": notes,
    }


def _details(c: ExportFacts) -> dict[str, Any]:
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
            "seed": c.seed}, "finetune": c.finetune},
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
        "preprocessing": preprocessing(c.splits, c.space, c.arch),
        "export_checks": {"checks": c.manifest.get("checks"),
                          "standalone": c.manifest.get("standalone"),
                          "tolerance_max_abs": c.manifest.get("tolerance_max_abs")},
        "versions": versions_here,
    }


def preprocessing(splits: DatasetSplits, space: SearchSpace, arch: Architecture) -> dict[str, Any]:
    """What a model's input must be: size, channel order, mean/std, class names (the card's
    ``details.preprocessing`` and, as strings, the ONNX file's metadata)."""
    gray = splits.in_channels == 1
    order = ("gray" if space.in_channels == 1 else f"gray repeated to {space.in_channels} channels"
             ) if gray else "RGB"
    return {
        "resolution": arch.resolution,
        "in_channels": space.in_channels,
        "input_shape": ["batch", space.in_channels, arch.resolution, arch.resolution],
        "channel_order": order,
        "layout": "NCHW",
        "native_size": list(splits.image_size),
        "data_channels": splits.in_channels,
        "mean": list(splits.mean),
        "std": list(splits.std),
        "class_names": list(splits.class_names),
        "how": "pixels scaled to [0, 1], then (x - mean) / std per channel; bilinear resize "
               "to resolution x resolution (antialiased when shrinking); 1-channel data "
               "repeated to in_channels",
    }


def onnx_metadata(splits: DatasetSplits, space: SearchSpace, arch: Architecture) -> dict[str, str]:
    """``metadata_props`` of an exported ONNX file: the preprocessing (JSON values), the
    architecture (string, ID, JSON) and the space, readable with ``onnx.load(path).metadata_props``
    or ``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``."""
    from nas import __version__

    pre = preprocessing(splits, space, arch)
    out = {k: v if isinstance(v, str) else json.dumps(v) for k, v in pre.items()}
    out.update({"arch": arch.to_str(), "arch_id": arch.arch_id(), "arch_json": arch.to_json(),
                "search_space": f"{space.name} ({space.hash()})", "exported_by": f"nas {__version__}"})
    return out


def write_export_card(out_dir: Path, c: ExportFacts, name: str) -> dict[str, Any]:
    """Write ``MODEL_CARD.md`` and ``model_card.json`` into ``out_dir`` (which holds the exported
    files and ``manifest.json``); return the JSON content.

    The card follows :func:`nas.export.model_card.build_card`'s schema; what that schema has no
    field for (architecture ID, run provenance, parameter memory, every runtime's latency,
    preprocessing, versions) goes under ``"details"`` and in extra Markdown sections.
    """
    data = build_card(out_dir, _card_input(c, name))
    data["details"] = _details(c)
    atomic_write_json(out_dir / CARD_JSON, data)
    atomic_write_text(out_dir / CARD_MD, render_markdown(data) + _details_markdown(data))
    return json.loads((out_dir / CARD_JSON).read_text())


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
              f"{pre['resolution']}]` (batch axis named `batch` in the ONNX file), channel order "
              f"{pre['channel_order']}. {pre['how'][0].upper()}{pre['how'][1:]}. The ONNX file "
              "carries the same in its metadata_props, with the architecture string and ID.",
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

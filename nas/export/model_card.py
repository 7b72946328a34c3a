"""A model card for an exported model: Markdown for people, JSON for programs.

The card holds only what it is given or can compute from the files (sha256, sizes); a value that is
missing is written as "not measured" with the reason, never estimated. Input (all keys optional
except ``name``)::

    {
      "name": "subnet-3",
      "architecture": {"string": "r16 | w8: ir_k3_e1 | ...", "json": {...}, "search_space": "hybrid-tiny"},
      "input_shape": [1, 3, 16, 16],
      "costs": {"flops": 1234567, "macs": 617283, "params": 45678, "peak_memory_bytes": 65536},
      "latency": {"predicted_ms": 1.9, "predicted_source": "latency table cpu-...",
                  "measured_ms": 2.1, "measured_std_ms": 0.05,
                  "device": "Intel Xeon ..., 1 thread", "protocol": "batch 1, 20 warm-up, median of 100"},
      "accuracy": {"validation": 0.93, "test": 0.92, "dataset": "digits"},
      "files": {"onnx": "model.onnx", ...},           # default: the files listed in manifest.json
      "not_measured": {"latency.measured_ms": "no device given"},   # the reasons for gaps
      "notes": ["..."]
    }
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.io import atomic_write_json, atomic_write_text

CARD_VERSION = 1
TEST_POLICY = "reported only: never used for selection, search or early stopping"
DEFAULT_REASON = "no value was given to the model card"

SECTIONS: dict[str, tuple[str, ...]] = {
    "architecture": ("string", "json", "search_space"),
    "costs": ("flops", "macs", "params", "peak_memory_bytes"),
    "latency": ("predicted_ms", "predicted_source", "measured_ms", "measured_std_ms", "device",
                "protocol"),
    "accuracy": ("validation", "test", "dataset"),
    # the INT8 / mixed-precision file (nas.export.quantized), absent for an fp32 architecture
    "quantization": ("policy", "file", "size_bytes", "file_bytes", "calibration", "validation",
                     "test", "float_validation", "predicted_ms", "measured_ms",
                     "float_measured_ms", "standalone_max_abs_diff"),
}
TOP_LEVEL = ("name", "input_shape", "files", "not_measured", "notes", *SECTIONS)
# Fields whose absence is a gap in the evidence (reported under "Not measured").
MEASURED_FIELDS: tuple[str, ...] = (
    "architecture.string", "costs.flops", "costs.params", "costs.peak_memory_bytes",
    "latency.predicted_ms", "latency.measured_ms", "accuracy.validation", "accuracy.test",
)


def write_model_card(out_dir: str | os.PathLike, card: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``<out_dir>/MODEL_CARD.md`` and ``<out_dir>/model_card.json``; return both paths."""
    out = Path(out_dir)
    data = build_card(out, card)
    json_path = atomic_write_json(out / "model_card.json", data)
    md_path = atomic_write_text(out / "MODEL_CARD.md", render_markdown(data))
    return md_path, json_path


def build_card(out_dir: Path, card: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``card`` and fill in file hashes and not-measured reasons (the JSON content)."""
    if not isinstance(card, Mapping):
        raise UserError(f"model card: expected a mapping, got {type(card).__name__}")
    unknown = sorted(set(card) - set(TOP_LEVEL))
    if unknown:
        raise UserError(f"model card: unknown keys {unknown}; expected some of {list(TOP_LEVEL)}")
    if not isinstance(card.get("name"), str) or not card["name"]:
        raise UserError("model card: 'name' (a non-empty string) is required")
    data: dict[str, Any] = {"card_version": CARD_VERSION, "name": card["name"]}
    for section, fields in SECTIONS.items():
        given = card.get(section) or {}
        if not isinstance(given, Mapping):
            raise UserError(f"model card: {section!r} must be a mapping with keys {list(fields)}")
        extra = sorted(set(given) - set(fields))
        if extra:
            raise UserError(f"model card: unknown keys {extra} in {section!r}; "
                            f"expected some of {list(fields)}")
        data[section] = {f: _clean(given.get(f), f"{section}.{f}") for f in fields}
    data["accuracy"]["test_policy"] = TEST_POLICY
    shape = card.get("input_shape")
    data["input_shape"] = [int(s) for s in shape] if shape is not None else None
    data["files"] = _files(out_dir, card.get("files"))
    manifest = _read_manifest(out_dir)
    if data["input_shape"] is None:
        data["input_shape"] = manifest.get("input", {}).get("shape")
    data["exported_with"] = manifest.get("versions")
    reasons = dict(card.get("not_measured") or {})
    data["not_measured"] = {
        field: str(reasons.get(field, DEFAULT_REASON))
        for field in MEASURED_FIELDS if _get(data, field) is None
    }
    data["notes"] = [str(n) for n in card.get("notes") or []]
    return data


def render_markdown(data: Mapping[str, Any]) -> str:
    """The Markdown form of a built card."""
    gaps = data["not_measured"]

    def show(field: str, fmt=str) -> str:
        value = _get(data, field)
        if value is None:
            return f"not measured ({gaps.get(field, DEFAULT_REASON)})"
        return fmt(value)

    arch, lat, acc = data["architecture"], data["latency"], data["accuracy"]
    lines = [f"# Model card: {data['name']}", ""]
    lines += ["## Architecture", ""]
    lines += [f"- Search space: {arch['search_space'] or 'not given'}"]
    lines += [f"- Input shape: {data['input_shape'] or 'not given'}"]
    if arch["string"] is not None:
        lines += ["", "```text", arch["string"], "```"]
    else:
        lines += [f"- String: {show('architecture.string')}"]
    if arch["json"] is not None:
        lines += ["", "```json", json.dumps(arch["json"], indent=2, sort_keys=True), "```"]
    lines += ["", "## Costs (batch 1)", "", "| quantity | value |", "| --- | --- |"]
    lines += [f"| FLOPs | {show('costs.flops', _count)} |"]
    if data["costs"]["macs"] is not None:
        lines += [f"| MACs | {_count(data['costs']['macs'])} |"]
    lines += [f"| parameters | {show('costs.params', _count)} |"]
    lines += [f"| peak activation memory | {show('costs.peak_memory_bytes', _bytes)} |"]
    lines += ["", "## Latency", "", "| quantity | value |", "| --- | --- |"]
    predicted = show("latency.predicted_ms", _ms)
    if lat["predicted_ms"] is not None and lat["predicted_source"]:
        predicted += f" ({lat['predicted_source']})"
    measured = show("latency.measured_ms", _ms)
    if lat["measured_ms"] is not None and lat["measured_std_ms"] is not None:
        measured = f"{_ms(lat['measured_ms'])} ± {_ms(lat['measured_std_ms'])}"
    lines += [f"| predicted | {predicted} |", f"| measured | {measured} |"]
    if lat["predicted_ms"] and lat["measured_ms"] is not None:
        ratio = lat["measured_ms"] / lat["predicted_ms"]
        lines += [f"| measured / predicted | {ratio:.3f} ({100 * (ratio - 1):+.1f}%) |"]
    lines += [f"| device | {lat['device'] or 'not given'} |"]
    lines += [f"| protocol | {lat['protocol'] or 'not given'} |"]
    lines += ["", "## Accuracy", ""]
    lines += [f"- Data set: {acc['dataset'] or 'not given'}"]
    lines += [f"- Validation accuracy: {show('accuracy.validation', _acc)}"]
    lines += [f"- Test accuracy ({TEST_POLICY}): {show('accuracy.test', _acc)}"]
    lines += _quantization_lines(data.get("quantization") or {})
    lines += ["", "## Files", ""]
    if data["files"]:
        lines += ["| file | bytes | sha256 |", "| --- | ---: | --- |"]
        lines += [f"| `{f['path']}` | {f['bytes']:,} | `{f['sha256']}` |"
                  for f in data["files"].values()]
    else:
        lines += ["No files were listed (no manifest.json in this folder)."]
    lines += ["", "## Loading without this package", "", *_snippets(data)]
    if gaps:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{field}`: {reason}" for field, reason in gaps.items()]
    if data["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in data["notes"]]]
    return "\n".join(lines) + "\n"


def _quantization_lines(q: Mapping[str, Any]) -> list[str]:
    """The INT8 / mixed-precision section (nothing for an fp32 architecture)."""
    if not q.get("file"):
        return []

    def value(key: str, fmt=str) -> str:
        return "not measured" if q.get(key) is None else fmt(q[key])

    return [
        "", "## INT8 / mixed precision (ONNX Runtime QDQ)", "",
        f"- Policy: `{q['policy']}`", f"- File: `{q['file']}` ({value('file_bytes', _bytes)}; "
        f"weights at their precision: {value('size_bytes', _bytes)})",
        f"- Calibration: {value('calibration')}",
        f"- Checked without this package: max abs difference "
        f"{value('standalone_max_abs_diff', lambda v: f'{v:.2g}')}",
        "", "| quantity | this policy | float (fp32) |", "| --- | --- | --- |",
        f"| validation accuracy | {value('validation', _acc)} | {value('float_validation', _acc)} |",
        f"| test accuracy | {value('test', _acc)} | see Accuracy |",
        f"| latency, ONNX Runtime measured | {value('measured_ms', _ms)} | "
        f"{value('float_measured_ms', _ms)} |",
        f"| latency, predicted | {value('predicted_ms', _ms)} | |",
    ]


def _snippets(data: Mapping[str, Any]) -> list[str]:
    files = data["files"]
    shape = data["input_shape"] or ["B", "C", "H", "W"]
    shape_txt = ", ".join(str(s) for s in shape)
    out: list[str] = []
    if "torchscript" in files:
        out += ["TorchScript (needs only `torch`):", "", "```python", "import torch",
                f"model = torch.jit.load({files['torchscript']['path']!r}, map_location='cpu')",
                f"logits = model(torch.randn({shape_txt}))", "```", ""]
    if "pt2" in files:
        torch_version = (data.get("exported_with") or {}).get("torch", "the exporting version")
        out += ["torch.export program (needs only `torch`; the graph and the weights are in the "
                f"file; `.pt2` files are safest with the torch that wrote them: {torch_version}):",
                "", "```python", "import torch",
                f"model = torch.export.load({files['pt2']['path']!r}).module()",
                f"logits = model(torch.randn({shape_txt}))", "```", ""]
    if "onnx" in files:
        out += ["ONNX Runtime (needs only `onnxruntime` and `numpy`):", "", "```python",
                "import numpy as np, onnxruntime as ort",
                f"session = ort.InferenceSession({files['onnx']['path']!r}, "
                "providers=['CPUExecutionProvider'])",
                f"x = np.random.rand({shape_txt}).astype(np.float32)",
                "logits = session.run(None, {session.get_inputs()[0].name: x})[0]", "```", ""]
    if "state_dict" in files:
        out += ["State dict (weights only; re-creating the module needs its class, e.g. from the "
                "`.pt2` graph above or from this package's `extract(arch)`):", "", "```python",
                "import torch",
                f"state = torch.load({files['state_dict']['path']!r}, weights_only=True)",
                "model.load_state_dict(state)  # `model`: a module with the same structure",
                "```", ""]
    if "example" in files:
        out += ["Example input and expected output, to check a loaded model:", "", "```python",
                "import numpy as np",
                f"data = np.load({files['example']['path']!r}, allow_pickle=False)",
                "x, expected = data['input'], data['output']", "```", ""]
    if not out:
        return ["No loadable files were listed."]
    out += ["TorchScript and `.pt2` files can run code when loaded: load only files you trust. ONNX,",
            "the state dict (with `weights_only=True`) and the `.npz` example are plain data."]
    return out


def _files(out_dir: Path, given: Any) -> dict[str, dict[str, Any]]:
    if given is None:
        if not (out_dir / "manifest.json").is_file():
            return {}
        listed = _read_manifest(out_dir).get("files")
        if not isinstance(listed, Mapping):
            raise UserError(f"{out_dir / 'manifest.json'}: no 'files' listing")
        given = {kind: entry["path"] for kind, entry in listed.items()}
        given["manifest"] = "manifest.json"
    if not isinstance(given, Mapping):
        raise UserError("model card: 'files' must map a label to a path")
    from nas.export.formats import sha256_file

    out: dict[str, dict[str, Any]] = {}
    for label, path in sorted(given.items()):
        p = Path(path)
        full = p if p.is_absolute() else out_dir / p
        if not full.is_file():
            raise UserError(f"model card: file {full} (label {label!r}) does not exist")
        rel = os.path.relpath(full, out_dir) if not p.is_absolute() else str(p)
        out[str(label)] = {"path": rel, "sha256": sha256_file(full), "bytes": full.stat().st_size}
    return out


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    """The export's ``manifest.json`` ({} when there is none)."""
    from nas.json_files import read_versioned_json

    manifest = out_dir / "manifest.json"
    if not manifest.is_file():
        return {}
    return read_versioned_json(manifest, "an export manifest written by nas export", format=None,
                               version_key="manifest_version", versions=(1,))


def _clean(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"model card: {where} is {value}; give a finite number or leave it out "
                        "with a reason in 'not_measured'")
    return value


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    section, field = dotted.split(".")
    return data[section][field]


def _count(n: float) -> str:
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit} ({int(n):,})"
    return f"{int(n):,}"


def _bytes(n: float) -> str:
    n = float(n)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit} ({int(n):,} bytes)"
    return f"{int(n):,} bytes"


def _ms(v: float) -> str:
    return f"{float(v):.3f} ms"


def _acc(v: float) -> str:
    v = float(v)
    return f"{v:.4f} ({100 * v:.2f} %)" if 0.0 <= v <= 1.0 else f"{v:.4f}"

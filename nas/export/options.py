"""The export formats (a light module: 'nas export --help' lists them without importing torch)."""

from __future__ import annotations

SUPPORTED_FORMATS: tuple[str, ...] = ("pt", "torchscript", "onnx")

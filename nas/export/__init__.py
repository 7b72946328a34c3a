"""Export a standalone model to files that load without this package, verify them, describe them."""

from __future__ import annotations

from nas.lazy import lazy_exports

# public name -> the module that defines it (imported on first access: see nas.lazy)
_EXPORTS: dict[str, str] = {
    "SUPPORTED_FORMATS": "nas.export.formats",
    "ExportError": "nas.export.formats",
    "StandaloneCheckError": "nas.export.verify",
    "export_model": "nas.export.formats",
    "parse_formats": "nas.export.formats",
    "verify_standalone": "nas.export.verify",
    "write_model_card": "nas.export.model_card",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

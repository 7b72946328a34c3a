"""Export a standalone model to files that load without this package, verify them, describe them."""

from nas.export.formats import SUPPORTED_FORMATS, ExportError, export_model, parse_formats
from nas.export.model_card import write_model_card
from nas.export.verify import StandaloneCheckError, verify_standalone

__all__ = [
    "SUPPORTED_FORMATS",
    "ExportError",
    "StandaloneCheckError",
    "export_model",
    "parse_formats",
    "verify_standalone",
    "write_model_card",
]

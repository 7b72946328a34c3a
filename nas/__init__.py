"""Hardware-aware neural architecture search: spaces, once-for-all supernets, latency tables,
predictors, constrained search and export. The command line is ``nas`` (:mod:`nas.cli`)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("nas")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]

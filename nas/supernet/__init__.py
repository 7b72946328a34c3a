"""Elastic weight-sharing supernet and the static modules of extracted subnets.

``Supernet`` and ``StaticNet`` are loaded on first use (PEP 562), so the block kinds can import
:mod:`nas.supernet.elastic` and :mod:`nas.supernet.static` without importing the supernet (which
reads the block registry) while the registry is still loading its kinds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.supernet.model import Supernet
    from nas.supernet.static import StaticNet

__all__ = ["StaticNet", "Supernet"]


def __getattr__(name: str) -> Any:
    if name == "Supernet":
        from nas.supernet.model import Supernet

        return Supernet
    if name == "StaticNet":
        from nas.supernet.static import StaticNet

        return StaticNet
    raise AttributeError(f"module 'nas.supernet' has no attribute {name!r}")

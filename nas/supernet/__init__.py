"""Elastic weight-sharing supernet and the static modules of extracted subnets."""

from nas.supernet.model import Supernet
from nas.supernet.static import StaticNet

__all__ = ["StaticNet", "Supernet"]

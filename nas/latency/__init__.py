"""Per-device latency: timing protocol, lookup tables, calibration, learned additive model."""

from nas.latency.additive import AdditiveLatencyModel
from nas.latency.calibration import Calibration, fit_calibration
from nas.latency.profiling import fill_missing
from nas.latency.table import LatencyTable, MissingKeysError, TableEntry, TableMeta
from nas.latency.timing import (
    Measurement,
    TimingItem,
    TimingProtocol,
    measure_latency,
    measure_many,
    protocol_description,
)

__all__ = [
    "AdditiveLatencyModel",
    "Calibration",
    "LatencyTable",
    "Measurement",
    "MissingKeysError",
    "TableEntry",
    "TableMeta",
    "TimingItem",
    "TimingProtocol",
    "fill_missing",
    "fit_calibration",
    "measure_latency",
    "measure_many",
    "protocol_description",
]

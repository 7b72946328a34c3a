"""Per-device latency: timing protocol, lookup tables, calibration, learned additive model."""

from __future__ import annotations

from nas.lazy import lazy_exports

# public name -> the module that defines it (imported on first access: see nas.lazy)
_EXPORTS: dict[str, str] = {
    "AdditiveLatencyModel": "nas.latency.additive",
    "Calibration": "nas.latency.calibration",
    "LatencyTable": "nas.latency.table",
    "Measurement": "nas.latency.timing",
    "MissingKeysError": "nas.latency.table",
    "TableEntry": "nas.latency.table",
    "TableMeta": "nas.latency.table",
    "TimingItem": "nas.latency.timing",
    "TimingProtocol": "nas.latency.timing",
    "fill_missing": "nas.latency.profiling",
    "fit_calibration": "nas.latency.calibration",
    "measure_latency": "nas.latency.timing",
    "measure_many": "nas.latency.timing",
    "protocol_description": "nas.latency.timing",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

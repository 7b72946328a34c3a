"""Measured subnets and the predictors fitted on them.

- :mod:`nas.sample.draw`: which subnets to measure (uniform, or stratified by FLOPs).
- :mod:`nas.sample.store`: the append-only samples CSV and its JSON sidecar.
- :mod:`nas.sample.measure`: :func:`sample_subnets`, validation accuracy with BN recalibration,
  resumable, over local processes or Ray.
"""

from __future__ import annotations

from nas.lazy import lazy_exports

# public name -> the module that defines it (imported on first access: see nas.lazy)
_EXPORTS: dict[str, str] = {
    "COLUMNS": "nas.sample.store",
    "STRATEGIES": "nas.sample.draw",
    "EvalSettings": "nas.sample.measure",
    "SampleResult": "nas.sample.measure",
    "SampleRows": "nas.sample.store",
    "SubnetEvaluator": "nas.sample.measure",
    "arch_seed": "nas.sample.measure",
    "draw_architectures": "nas.sample.draw",
    "read_samples": "nas.sample.store",
    "sample_subnets": "nas.sample.measure",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

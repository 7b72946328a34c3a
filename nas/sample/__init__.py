"""Measured subnets and the predictors fitted on them.

- :mod:`nas.sample.draw`: which subnets to measure (uniform, or stratified by FLOPs).
- :mod:`nas.sample.store`: the append-only samples CSV and its JSON sidecar.
- :mod:`nas.sample.measure`: :func:`sample_subnets`, validation accuracy with BN recalibration,
  resumable, over local processes or Ray.
"""

from nas.sample.draw import STRATEGIES, draw_architectures
from nas.sample.measure import (
    EvalSettings,
    SampleResult,
    SubnetEvaluator,
    arch_seed,
    sample_subnets,
)
from nas.sample.store import COLUMNS, SampleRows, read_samples

__all__ = [
    "COLUMNS",
    "STRATEGIES",
    "EvalSettings",
    "SampleResult",
    "SampleRows",
    "SubnetEvaluator",
    "arch_seed",
    "draw_architectures",
    "read_samples",
    "sample_subnets",
]

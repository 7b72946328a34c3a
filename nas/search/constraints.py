"""Constraints and objectives parsed from strings, with units.

A constraint reads ``METRIC<=VALUE[UNIT]`` or ``METRIC>=VALUE[UNIT]``, for example ``latency_ms<=5``,
``flops<=60M``, ``params<=1.5M``, ``memory<=512KB``, ``lat_ms_pixel3<=10.68``, ``accuracy>=70``.

Units, by the kind of metric (the value is stored in the metric's base unit):

- counts (``flops``, ``macs``, ``params``): none, ``K`` = 1e3, ``M`` = 1e6, ``G`` = 1e9, ``T`` = 1e12.
- memory in bytes (``memory``, ``peak_memory``, ``param_memory``, ``*_bytes``): ``B``, ``KB``, ``MB``,
  ``GB``, binary multiples: **KB = KiB = 1024 B**, MB = MiB = 1024**2 B, GB = GiB = 1024**3 B (the
  ``KiB``/``MiB``/``GiB`` spellings are accepted too). No unit means bytes.
- latency in milliseconds (``latency_ms``, ``latency``, ``lat_ms_<device>``): ``ms`` (the default),
  ``us`` (also ``µs``), ``s``.
- accuracy in percent (``accuracy``, ``acc``, and any name ending in ``_acc`` or ``_accuracy``): no
  unit, or ``%``.

The value of a constraint follows Optuna's convention: ``<= 0`` is feasible. It is the relative
violation ``(value - bound) / |bound|`` for ``<=`` and ``(bound - value) / |bound|`` for ``>=`` (the
plain difference when the bound is 0), so constraints on different scales add up fairly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from nas.errors import UserError

COUNT_UNITS: dict[str, float] = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
BYTE_UNITS: dict[str, float] = {
    "": 1.0,
    "B": 1.0,
    "KB": 1024.0,
    "KIB": 1024.0,
    "MB": 1024.0**2,
    "MIB": 1024.0**2,
    "GB": 1024.0**3,
    "GIB": 1024.0**3,
}
TIME_UNITS: dict[str, float] = {"": 1.0, "MS": 1.0, "US": 1e-3, "µS": 1e-3, "S": 1e3}
PERCENT_UNITS: dict[str, float] = {"": 1.0, "%": 1.0}

KIND_UNITS: dict[str, dict[str, float]] = {
    "count": COUNT_UNITS,
    "bytes": BYTE_UNITS,
    "time_ms": TIME_UNITS,
    "percent": PERCENT_UNITS,
}
_UNIT_HELP: dict[str, str] = {
    "count": "none, K, M, G, T (1e3, 1e6, 1e9, 1e12)",
    "bytes": "B, KB, MB, GB (KB = KiB = 1024 B)",
    "time_ms": "ms (default), us, s",
    "percent": "none or %",
}
_EXACT_KINDS: dict[str, str] = {
    "flops": "count",
    "macs": "count",
    "params": "count",
    "memory": "bytes",
    "peak_memory": "bytes",
    "param_memory": "bytes",
    "latency": "time_ms",
    "latency_ms": "time_ms",
    "accuracy": "percent",
    "acc": "percent",
}
METRIC_HELP = (
    "flops, macs, params (counts), memory, peak_memory, param_memory, *_bytes (bytes), "
    "latency_ms, latency, lat_ms_<device> (milliseconds), accuracy, acc, *_acc, *_accuracy (percent)"
)

# the shell-safe form METRIC:le:VALUE / METRIC:ge:VALUE (no '<' for a shell to read as a redirect)
_WORD_OPS = {"le": "<=", "ge": ">="}
_WORD_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(le|ge)\s*:\s*(.*)$", re.I)

_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|=<|=>|<|>|==|=)\s*"
    r"(?P<value>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-zµ%]*)\s*$"
)


def metric_kind(metric: str) -> str:
    """The kind of a metric name: ``count``, ``bytes``, ``time_ms`` or ``percent``.

    Raises :class:`~nas.errors.UserError` naming the known metrics when the name is not one of them.
    """
    if metric in _EXACT_KINDS:
        return _EXACT_KINDS[metric]
    if metric.startswith(("lat_ms_", "latency_ms_")):
        return "time_ms"
    if metric.endswith("_bytes"):
        return "bytes"
    if metric.endswith(("_acc", "_accuracy")):
        return "percent"
    raise UserError(f"unknown metric {metric!r}; expected one of: {METRIC_HELP}")


def default_direction(metric: str) -> str:
    """``maximize`` for accuracies, ``minimize`` for every cost."""
    return "maximize" if metric_kind(metric) == "percent" else "minimize"


@dataclass(frozen=True)
class Constraint:
    """``metric op bound`` with ``bound`` in the metric's base unit (count, bytes, ms, percent)."""

    metric: str
    op: str  # "<=" or ">="
    bound: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise UserError(f"constraint operator must be '<=' or '>=', got {self.op!r}")
        if not np.isfinite(self.bound):
            raise UserError(f"constraint bound on {self.metric!r} must be finite, got {self.bound}")
        metric_kind(self.metric)

    def violation(self, values: np.ndarray) -> np.ndarray:
        """Optuna-style constraint value for metric values (any shape): ``<= 0`` is feasible."""
        values = np.asarray(values, dtype=np.float64)
        scale = abs(self.bound) if self.bound != 0 else 1.0
        diff = values - self.bound if self.op == "<=" else self.bound - values
        return diff / scale

    def satisfied(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of the values that meet the constraint (exact comparison, no tolerance)."""
        values = np.asarray(values, dtype=np.float64)
        return values <= self.bound if self.op == "<=" else values >= self.bound

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:.10g}"


@dataclass(frozen=True)
class Objective:
    """A named metric and its direction; searchers minimise ``sign * value``."""

    metric: str
    direction: str = "minimize"

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise UserError(
                f"objective direction must be 'minimize' or 'maximize', got {self.direction!r}"
            )

    @property
    def sign(self) -> float:
        return -1.0 if self.direction == "maximize" else 1.0

    def __str__(self) -> str:
        return f"{'max' if self.direction == 'maximize' else 'min'}:{self.metric}"


def parse_constraint(text: str) -> Constraint:
    """Parse ``"flops<=60M"`` and the like; a bad string raises :class:`~nas.errors.UserError`."""
    if not isinstance(text, str):
        raise UserError(f"a constraint must be a string like 'latency_ms<=5', got {text!r}")
    words = _WORD_CONSTRAINT_RE.match(text)
    if words is not None:
        text = f"{words.group(1)}{_WORD_OPS[words.group(2).lower()]}{words.group(3)}"
    match = _CONSTRAINT_RE.match(text)
    if match is None:
        raise UserError(
            f"cannot parse constraint {text!r}; expected METRIC<=VALUE[UNIT] or METRIC>=VALUE[UNIT] "
            "(or, shell-safe, METRIC:le:VALUE[UNIT] / METRIC:ge:VALUE[UNIT]), "
            f"e.g. 'latency_ms<=5', 'flops<=60M', 'params<=1.5M', 'memory<=512KB', 'accuracy>=70'; "
            f"metrics: {METRIC_HELP}"
        )
    metric, op, value, unit = match.group("metric", "op", "value", "unit")
    op = {"=<": "<=", "=>": ">="}.get(op, op)
    if op not in ("<=", ">="):
        raise UserError(
            f"constraint {text!r} uses {op!r}; only '<=' and '>=' are allowed (e.g. 'flops<=60M')"
        )
    kind = metric_kind(metric)
    units = KIND_UNITS[kind]
    key = unit.upper() if unit not in ("µs",) else "µS"
    if key not in units:
        raise UserError(
            f"unit {unit!r} in constraint {text!r} does not fit metric {metric!r}; "
            f"allowed units: {_UNIT_HELP[kind]}"
        )
    return Constraint(metric=metric, op=op, bound=float(value) * units[key])


def parse_constraints(texts: Iterable[str | Constraint]) -> tuple[Constraint, ...]:
    """Parse several constraints (strings or ready :class:`Constraint` objects)."""
    return tuple(t if isinstance(t, Constraint) else parse_constraint(t) for t in texts)


def parse_objective(text: str) -> Objective:
    """``"accuracy"`` (direction from the metric kind), ``"max:accuracy"``, ``"min:latency_ms"``."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"an objective must be a metric name like 'latency_ms', got {text!r}")
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    if sep:
        directions = {"max": "maximize", "maximize": "maximize", "min": "minimize",
                      "minimize": "minimize"}
        if prefix.lower() not in directions:
            raise UserError(
                f"cannot parse objective {text!r}; expected METRIC, max:METRIC or min:METRIC"
            )
        metric_kind(rest)
        return Objective(metric=rest, direction=directions[prefix.lower()])
    return Objective(metric=text, direction=default_direction(text))


def total_violation(constraints: np.ndarray) -> np.ndarray:
    """Sum of the positive parts of constraint values, (n, c) -> (n,); 0 means feasible."""
    constraints = np.asarray(constraints, dtype=np.float64)
    if constraints.ndim != 2:
        raise ValueError(f"constraint values must be (n, c), got shape {constraints.shape}")
    return np.clip(constraints, 0.0, None).sum(axis=1)


def describe(constraints: Sequence[Constraint]) -> str:
    """Comma-separated canonical strings."""
    return ", ".join(str(c) for c in constraints)

"""The metric vocabulary, defined once: every named cost or quality a constraint, objective or
report uses, its unit kind, the exact cost it is a multiple of, and the aliases.

``memory`` is the peak activation bytes at batch 1 (alias ``peak_memory``), ``param_memory`` the
float32 bytes of the weights (4 x ``params``), ``size_bytes`` the bytes of the weights at their
precision genes (fp32 or int8, :func:`nas.costs.size_bytes`), ``flops`` 2 x ``macs``, ``latency_ms`` a latency
table's or a predictor's milliseconds (alias ``latency``), ``accuracy`` a percentage (alias
``acc``). Names outside the vocabulary are recognised by :func:`nas.search.constraints.metric_kind`
from their suffix (``*_bytes``, ``*_acc``, ``lat_ms_<device>``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.memory import BYTES_PER_ELEMENT

COUNT, BYTES, TIME_MS, PERCENT = "count", "bytes", "time_ms", "percent"


@dataclass(frozen=True)
class Metric:
    """A metric: ``value = scale * <base exact cost>`` when ``base`` is set."""

    name: str
    kind: str
    base: str | None = None
    scale: float = 1.0


VOCABULARY: dict[str, Metric] = {m.name: m for m in (
    Metric("macs", COUNT, "macs"),
    Metric("flops", COUNT, "macs", 2.0),
    Metric("params", COUNT, "params"),
    Metric("memory", BYTES, "memory"),
    Metric("param_memory", BYTES, "params", float(BYTES_PER_ELEMENT)),
    Metric("size_bytes", BYTES),  # weights at their precision (nas.costs.size_bytes)
    Metric("latency_ms", TIME_MS),
    Metric("accuracy", PERCENT),
)}
ALIASES: dict[str, str] = {"peak_memory": "memory", "latency": "latency_ms", "acc": "accuracy"}


def canonical(name: str) -> str:
    """The vocabulary name of ``name`` (an alias resolved; other names unchanged)."""
    return ALIASES.get(name, name)


def metric(name: str) -> Metric | None:
    """The definition of ``name`` or of the metric it is an alias of; None outside the vocabulary."""
    return VOCABULARY.get(canonical(name))


def known_names() -> dict[str, Metric]:
    """Every vocabulary name and alias with its definition."""
    return {**VOCABULARY, **{alias: VOCABULARY[target] for alias, target in ALIASES.items()}}


def cost_base(name: str) -> tuple[str, float] | None:
    """``(exact cost, scale)`` with ``name = scale * cost`` (``flops`` -> ``("macs", 2.0)``);
    None for metrics that are not a multiple of an exact cost."""
    m = metric(name)
    return None if m is None or m.base is None else (m.base, m.scale)

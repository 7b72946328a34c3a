"""Numeric precision of a layer, defined once: the names a space and an architecture may use, the
bytes a weight takes at each, and the ``@<precision>`` suffix of the short string.

``fp32`` is the default everywhere (no suffix, no JSON field), so an architecture without precision
genes reads and writes exactly as before. ``int8`` means static INT8 quantization of weights
(per output channel, symmetric) and activations (per tensor, calibrated on training batches), the
QDQ graph :mod:`nas.export.quantize` writes with ONNX Runtime.
"""

from __future__ import annotations

from nas.errors import SpaceError

FP32, INT8 = "fp32", "int8"
PRECISIONS: tuple[str, ...] = (FP32, INT8)
WEIGHT_BYTES: dict[str, int] = {FP32: 4, INT8: 1}
SUFFIX = "@"

__all__ = ["FP32", "INT8", "PRECISIONS", "WEIGHT_BYTES", "check_precision", "parse_precisions",
           "split_suffix", "with_suffix"]


def check_precision(value: object, where: str) -> str:
    """``value`` if it names a precision, else SpaceError naming ``where`` and the allowed names."""
    if value not in PRECISIONS:
        raise SpaceError(f"{where}: unknown precision {value!r}; allowed: {', '.join(PRECISIONS)}")
    return str(value)


def parse_precisions(value: object, where: str) -> tuple[str, ...]:
    """A space's allowed precisions (a YAML list) in canonical order; ``fp32`` must be among them."""
    names = [v.strip() if isinstance(v, str) else v for v in (
        value if isinstance(value, list | tuple) else [value])]
    if (not names or any(n not in PRECISIONS for n in names) or FP32 not in names
            or len(set(names)) != len(names)):
        raise SpaceError(f"{where}: {value!r}: expected a list of distinct precisions among "
                         f"{', '.join(PRECISIONS)}, including {FP32}")
    return tuple(p for p in PRECISIONS if p in names)


def split_suffix(token: str, where: str) -> tuple[str, str]:
    """``"ir_k3_e4@int8"`` -> ``("ir_k3_e4", "int8")``; no suffix -> ``fp32``."""
    body, sep, precision = token.partition(SUFFIX)
    if not sep:
        return token, FP32
    return body, check_precision(precision, f"{where}: {token!r}")


def with_suffix(text: str, precision: str) -> str:
    """``text`` with ``@<precision>`` appended unless it is ``fp32``."""
    return text if precision == FP32 else f"{text}{SUFFIX}{precision}"

"""Argparse types for numeric options: the one place where the CLI says which numbers it takes.

Each type parses the text and checks its range, so an out-of-range value is refused by the parser
in one line (exit code 2) before any work, and a legal value (0 included, where 0 means something)
reaches the command unchanged. Every type function carries ``numeric_kind`` (``int`` or
``float``) so tests can find the numeric options of every subcommand from the parser itself.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

# Counts that size processes or threads on a machine or cluster: beyond this, a typo.
MAX_PARALLEL = 1024
# Seeds go to numpy and torch generators (numpy's legacy range, which every library accepts).
MAX_SEED = 2**32 - 1


def numeric_kind(type_: Any) -> type | None:
    """``int`` or ``float`` when an argparse ``type`` parses numbers (a plain ``int``/``float``
    or a type of this module), else ``None``."""
    if type_ in (int, float):
        return type_
    return getattr(type_, "numeric_kind", None)


def _describe(lo: float | None, hi: float | None, kind: str, *, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return (f"{kind} greater than {lo} and at most {hi}" if lo_open
                else f"{kind} from {lo} to {hi}")
    if lo is not None:
        return f"{kind} greater than {lo}" if lo_open else f"{kind} of at least {lo}"
    if hi is not None:
        return f"{kind} of at most {hi}"
    return kind


def int_range(lo: int | None = None, hi: int | None = None, *, name: str | None = None
              ) -> Callable[[str], int]:
    """An integer ``lo <= n <= hi`` (either bound optional)."""
    expected = _describe(lo, hi, "an integer")

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    parse.__name__ = name or "int"
    parse.numeric_kind = int  # type: ignore[attr-defined]
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False, name: str | None = None) -> Callable[[str], float]:
    """A finite float within ``[lo, hi]`` (``lo_open``/``hi_open``: that bound excluded)."""
    expected = "a finite " + _describe(lo, hi, "number", lo_open=lo_open).removeprefix("a ")
    if hi_open and hi is not None:
        expected += f" (below {hi})"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text.strip()}")
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value:g}")
        return value

    parse.__name__ = name or "float"
    parse.numeric_kind = float  # type: ignore[attr-defined]
    return parse


def float_list(item: Callable[[str], float], *, length: int | None = None,
               name: str = "float_list") -> Callable[[str], tuple[float, ...]]:
    """Comma-separated numbers, each parsed by ``item`` (and exactly ``length`` of them)."""

    def parse(text: str) -> tuple[float, ...]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts or (length is not None and len(parts) != length):
            count = f"{length} " if length is not None else ""
            raise argparse.ArgumentTypeError(
                f"expected {count}comma-separated numbers, got {text!r}")
        return tuple(item(p) for p in parts)

    parse.__name__ = name
    parse.numeric_kind = float  # type: ignore[attr-defined]
    return parse


def int_list(item: Callable[[str], int], *, name: str = "int_list"
             ) -> Callable[[str], list[int]]:
    """Comma-separated integers, each parsed by ``item``."""

    def parse(text: str) -> list[int]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return [item(p) for p in parts]

    parse.__name__ = name
    parse.numeric_kind = int  # type: ignore[attr-defined]
    return parse


positive_int = int_range(1, name="positive_int")
non_negative_int = int_range(0, name="non_negative_int")
seed = int_range(0, MAX_SEED, name="seed")
parallel = int_range(1, MAX_PARALLEL, name="parallel")  # workers, threads
data_workers = int_range(0, MAX_PARALLEL, name="data_workers")  # 0: in this process
positive_float = float_range(0.0, lo_open=True, name="positive_float")
non_negative_float = float_range(0.0, name="non_negative_float")
fraction = float_range(0.0, 1.0, name="fraction")
# a peak learning rate: above 100 every weight overflows on the first step
learning_rate = float_range(0.0, 100.0, lo_open=True, name="learning_rate")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``nas CMD: error: ...``), exit 2,
    without the usage block (``--help`` shows it)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

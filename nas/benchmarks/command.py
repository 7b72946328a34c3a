"""The command line a benchmark report prints so that it can be rerun."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence


def reproduce_command(module: str, argv: Sequence[str] | None = None) -> str:
    """``python -m <module>`` with ``argv`` (default: this process's arguments), shell-quoted."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m " + module, *(shlex.quote(a) for a in args)])

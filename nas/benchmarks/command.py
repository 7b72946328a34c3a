"""What benchmark reports share: the command line that reruns one, and how one is written."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from nas.io import atomic_write_text


def reproduce_command(module: str, argv: Sequence[str] | None = None) -> str:
    """``python -m <module>`` with ``argv`` (default: this process's arguments), shell-quoted."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m " + module, *(shlex.quote(a) for a in args)])


def write_report(out: Path, lines: Sequence[str]) -> str:
    """Write a report's ``lines`` to ``out`` atomically, print it, and return its text."""
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)
    print(text)
    return text

"""When to draw progress bars: only on a terminal, so that logs redirected to a file hold one line
per epoch or stage instead of thousands of carriage-return updates."""

from __future__ import annotations

import sys


def progress_enabled(requested: bool | None = None) -> bool:
    """``requested`` when given; otherwise whether stderr (where bars are drawn) is a terminal."""
    if requested is not None:
        return bool(requested)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())

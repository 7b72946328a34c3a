"""The state file of a ``nas search`` run (``state.json``): written atomically, read back only
with the same settings, so ``--resume`` continues exactly the interrupted search."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import IncompatibleFileError
from nas.io import atomic_write_json

STATE_FILE = "state.json"
STATE_FORMAT = "nas.search.run-state/1"


def write_state(path: Path, settings: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
    """Write the settings and ``payload`` (the searcher's and runner's state) to ``path``."""
    atomic_write_json(path, {"format": STATE_FORMAT, "settings": dict(settings), **payload})


def read_state(path: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The state in ``path``; a one-line error when it is unreadable or has other settings."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IncompatibleFileError(f"{path}: not a readable search state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise IncompatibleFileError(f"{path}: not a 'nas search' state file ({STATE_FORMAT})")
    old = state.get("settings", {})
    diffs = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diffs:
        shown = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in diffs)
        raise IncompatibleFileError(
            f"{path} holds a search with other settings ({shown}); resume with the same settings "
            "or choose another --out"
        )
    return state

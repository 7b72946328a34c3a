"""Save a searcher to a JSON state file and resume it later, checked against the problem."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write_json
from nas.search.base import Searcher
from nas.search.problem import Problem

STATE_FORMAT = "nas.search.state/1"


def problem_fingerprint(problem: Problem) -> dict[str, Any]:
    """What must match for a state file to fit a problem."""
    return {
        "cardinalities": [int(c) for c in problem.cardinalities],
        "objectives": [str(o) for o in problem.objectives],
        "constraints": list(problem.constraint_names),
    }


def save_state(searcher: Searcher, path: str | os.PathLike) -> Path:
    """Write the searcher's state (history, RNG, queue, algorithm state) atomically as JSON."""
    payload = {
        "format": STATE_FORMAT,
        "problem": problem_fingerprint(searcher.problem),
        "state": searcher.state_dict(),
    }
    return atomic_write_json(path, payload)


def load_state(searcher: Searcher, path: str | os.PathLike) -> Searcher:
    """Restore ``searcher`` (same algorithm, same problem) from a state file; returns it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"search state file not found: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IncompatibleFileError(f"{path} is not a search state file (invalid JSON: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise IncompatibleFileError(f"{path} is not a search state file (expected format {STATE_FORMAT})")
    want = problem_fingerprint(searcher.problem)
    if payload.get("problem") != want:
        raise IncompatibleFileError(
            f"{path} was saved for another problem: {payload.get('problem')}; this one is {want}"
        )
    state = payload["state"]
    if state.get("algorithm") != searcher.name:
        raise IncompatibleFileError(
            f"{path} holds a {state.get('algorithm')!r} search; cannot resume it as {searcher.name!r}"
        )
    searcher.load_state_dict(state)
    return searcher

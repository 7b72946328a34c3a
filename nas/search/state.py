"""The one searcher-state file format: a searcher saved from Python (:func:`save_state`) and the
``state.json`` of a ``nas search`` run (:func:`write_state`, resumed with ``--resume``).

Version 2 (written now) is one JSON object, written atomically::

    {"format": "nas.search.state", "format_version": 2,
     "problem": {"cardinalities": [...], "objectives": [...], "constraints": [...]},
     "settings": {...},       # what must match to resume a 'nas search' run ({} from Python)
     "searcher": {...},       # Searcher.state_dict() (absent for a solver's run)
     ...}                     # a run's other sections: "mp", "refine", "optuna_rng", "optuna_study"

Version 1 was two formats, both still read (and upgraded to the layout above):
``"format": "nas.search.state/1"`` (``problem`` and the searcher's state under ``state``) and
``"format": "nas.search.run-state/1"`` (``settings`` and the sections, no problem).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write_json
from nas.json_files import read_versioned_json

if TYPE_CHECKING:
    from nas.search.base import Searcher
    from nas.search.problem import Problem

STATE_FILE = "state.json"  # a 'nas search' run's state in its --out folder
STATE_FORMAT = "nas.search.state"
STATE_VERSION = 2
SEARCHER_V1 = "nas.search.state/1"  # version 1 of save_state
RUN_V1 = "nas.search.run-state/1"  # version 1 of a 'nas search' run's state.json
_WHAT = "a search state file (written by save_state or 'nas search')"


def problem_fingerprint(problem: Problem) -> dict[str, Any]:
    """What must match for a state file to fit a problem."""
    return {
        "cardinalities": [int(c) for c in problem.cardinalities],
        "objectives": [str(o) for o in problem.objectives],
        "constraints": list(problem.constraint_names),
    }


def write_state(path: str | os.PathLike, problem: Problem, settings: Mapping[str, Any],
                sections: Mapping[str, Any]) -> Path:
    """Write a state file (version 2) atomically: the problem's fingerprint, the ``settings`` a
    resume must match, and the ``sections`` (``"searcher"``: the searcher's state, and others)."""
    return atomic_write_json(path, {
        "format": STATE_FORMAT, "format_version": STATE_VERSION,
        "problem": problem_fingerprint(problem), "settings": dict(settings), **sections,
    })


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """A state file of any version, in the version-2 layout (``problem`` is None for a version-1
    run state, which did not record it); one line naming the path when it is not one."""
    data = read_versioned_json(path, _WHAT, format=STATE_FORMAT, versions=(1, STATE_VERSION),
                               tagged_versions={SEARCHER_V1: 1, RUN_V1: 1})
    tag = data.pop("format")
    data.pop("format_version", None)
    if tag == SEARCHER_V1:
        data = {"problem": data.get("problem"), "settings": {}, "searcher": data.get("state")}
    elif tag == RUN_V1:
        data = {"problem": None, "settings": data.get("settings", {}), **data}
    if not isinstance(data.get("settings"), dict):
        raise IncompatibleFileError(f"{path}: not {_WHAT} (its 'settings' is not an object)")
    return data


def read_run_state(path: str | os.PathLike, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a ``nas search`` run, refused (one line) when saved with other settings."""
    state = read_state(path)
    old = state["settings"]
    diffs = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diffs:
        shown = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in diffs)
        raise IncompatibleFileError(
            f"{path} holds a search with other settings ({shown}); resume with the same settings "
            "or choose another --out"
        )
    return state


def save_state(searcher: Searcher, path: str | os.PathLike) -> Path:
    """Write the searcher's state (history, RNG, queue, algorithm state) atomically as JSON."""
    return write_state(path, searcher.problem, {}, {"searcher": searcher.state_dict()})


def load_state(searcher: Searcher, path: str | os.PathLike) -> Searcher:
    """Restore ``searcher`` (same algorithm, same problem) from a state file; returns it. A
    ``nas search`` run's ``state.json`` loads too when it holds a searcher of the same problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"search state file not found: {path}")
    payload = read_state(path)
    want = problem_fingerprint(searcher.problem)
    if payload.get("problem") not in (None, want):
        raise IncompatibleFileError(
            f"{path} was saved for another problem: {payload.get('problem')}; this one is {want}"
        )
    state = payload.get("searcher")
    if not isinstance(state, dict):
        raise IncompatibleFileError(f"{path} holds no searcher state (a solver's run?)")
    if state.get("algorithm") != searcher.name:
        raise IncompatibleFileError(
            f"{path} holds a {state.get('algorithm')!r} search; cannot resume it as {searcher.name!r}"
        )
    searcher.load_state_dict(state)
    return searcher

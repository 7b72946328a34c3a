"""Turn what a user typed after ``--arch`` into an :class:`Architecture` of a run's space.

Accepted, in this order:

1. a path to a JSON file: an architecture JSON (``{"resolution": ..., "stages": [...]}``), or a
   search-front entry holding one under ``"arch_json"``, ``"arch"`` or ``"architecture"`` (a JSON
   object, JSON text or a short string). A file holding several different architectures is
   refused with their IDs, so the user can pick one;
2. an architecture ID, ``arch.arch_id()`` (12 hex digits), looked up in the run folder's search
   outputs: ``<run>/search/**/*.json``, ``<run>/search/**/*.csv`` and ``<run>/samples*.csv``
   (CSV rows need an ``arch_id`` column and one of the architecture columns above or
   ``arch_str``). IDs are recomputed from the architecture found, never trusted from the file;
3. JSON text (starts with ``{``) or an architecture short string (``r32 | w16: ir_k3_e1 | ...``).

The result is validated against the space; errors name the bad part and where it came from.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, SpaceError, UserError
from nas.spaces import SearchSpace

ARCH_ID_RE = re.compile(r"[0-9a-fA-F]{12}")
ARCH_FIELDS: tuple[str, ...] = ("arch_json", "arch", "architecture", "arch_str")
_SHOW = 5


@dataclass(frozen=True)
class ResolvedArch:
    """An architecture and where it came from (``source``: a file, ``file:line``, or the text)."""

    arch: Architecture
    source: str
    how: str  # "file", "id", "json" or "string"


def search_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files an architecture ID is looked up in, sorted (see the module docstring)."""
    root = Path(run_dir)
    found: list[Path] = []
    search = root / "search"
    if search.is_dir():
        found += sorted(p for p in search.rglob("*") if p.suffix.lower() in (".json", ".csv"))
    found += sorted(p for p in root.glob("samples*.csv"))
    return [p for p in found if p.is_file()]


def resolve_architecture(
    text: str | Architecture, space: SearchSpace, run_dir: str | os.PathLike | None = None
) -> ResolvedArch:
    """Parse ``text`` (file, ID, JSON or short string) and validate it against ``space``."""
    if isinstance(text, Architecture):
        resolved = ResolvedArch(text, "given as an Architecture", "object")
    else:
        resolved = _parse(str(text).strip(), run_dir)
    try:
        space.validate(resolved.arch)
    except SpaceError as exc:
        raise SpaceError(
            f"architecture {resolved.arch.to_str()!r} ({resolved.source}) is not in space "
            f"{space.name!r} (hash {space.hash()}): {exc}"
        ) from None
    return resolved


def _parse(text: str, run_dir: str | os.PathLike | None) -> ResolvedArch:
    if not text:
        raise UserError("--arch is empty: expected an architecture ID, a JSON file or a string")
    path = Path(text)
    if _is_file(path):
        return ResolvedArch(_from_file(path), str(path), "file")
    if ARCH_ID_RE.fullmatch(text):
        if run_dir is None:
            raise UserError(f"architecture ID {text}: no run folder to look it up in")
        arch, where = find_by_id(text, run_dir)
        return ResolvedArch(arch, where, "id")
    if text.startswith("{"):
        return ResolvedArch(_parse_checked(lambda: Architecture.from_json(text), "JSON text"),
                            "JSON text", "json")
    if re.match(r"r\d+(\s+(stem|head)@\w+)*\s*(\||$)", text):
        where = f"short string {text!r}"
        return ResolvedArch(_parse_checked(lambda: Architecture.from_str(text), where),
                            "short string", "string")
    if path.suffix.lower() == ".json" or os.sep in text:
        raise UserError(f"architecture file {path} does not exist")
    raise UserError(
        f"--arch {text!r}: expected an architecture ID (12 hex digits), a JSON file, JSON text "
        "or a short string such as 'r32 | w16: ir_k3_e1 | ...'"
    )


# ----- files -----
def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for text that cannot be a path (too long, NUL bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleFileError(f"{path}: not readable JSON ({exc})") from None


def _from_file(path: Path) -> Architecture:
    """The one architecture a JSON file holds (an architecture, or an entry that names one)."""
    found = _unique(_archs_in(_read_json(path), str(path)))
    if not found:
        raise UserError(
            f"{path}: no architecture found; expected an architecture JSON "
            '({"resolution": ..., "stages": [...]}) or an object with an "arch" or "arch_json" field'
        )
    if len(found) > 1:
        ids = ", ".join(a.arch_id() for a in list(found)[:_SHOW])
        more = f" and {len(found) - _SHOW} more" if len(found) > _SHOW else ""
        raise UserError(
            f"{path} holds {len(found)} different architectures ({ids}{more}); pass one by its "
            "ID with --run pointing at the run folder, or a file with a single architecture"
        )
    return next(iter(found))


def _unique(items: Iterator[tuple[Architecture, str]]) -> dict[Architecture, str]:
    out: dict[Architecture, str] = {}
    for arch, where in items:
        out.setdefault(arch, where)
    return out


def _arch_value(value: Any, where: str) -> Architecture:
    if isinstance(value, dict):
        return Architecture.from_dict(value)
    if isinstance(value, str):
        text = value.strip()
        return Architecture.from_json(text) if text.startswith("{") else Architecture.from_str(text)
    raise SpaceError(f"{where}: expected an architecture (object or string), got "
                     f"{type(value).__name__}")


def _archs_in(data: Any, where: str) -> Iterator[tuple[Architecture, str]]:
    """Every architecture in a JSON document, with a JSON-path-like location; checks stored IDs."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            yield from _archs_in(item, f"{where}[{i}]")
        return
    if not isinstance(data, dict):
        return
    if "resolution" in data and "stages" in data:
        yield _parse_checked(lambda: Architecture.from_dict(data), where), where
        return
    for key in ARCH_FIELDS:
        if key in data:
            arch = _parse_checked(lambda k=key: _arch_value(data[k], f"{where}.{k}"),
                                  f"{where}.{key}")
            _check_stored_id(data.get("arch_id"), arch, where)
            yield arch, where
            return
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            yield from _archs_in(value, f"{where}.{key}")


def _parse_checked(make, where: str) -> Architecture:
    try:
        return make()
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}") from None


def _check_stored_id(stored: Any, arch: Architecture, where: str) -> None:
    if stored is not None and str(stored).lower() != arch.arch_id():
        raise IncompatibleFileError(
            f"{where}: arch_id {stored} does not match its architecture (computed "
            f"{arch.arch_id()}); the file was edited or written by another version"
        )


def _csv_archs(path: Path, wanted: str) -> Iterator[tuple[Architecture, str]]:
    """Rows of a CSV whose ``arch_id`` is ``wanted`` (parsed and checked)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            names = reader.fieldnames or []
            if "arch_id" not in names:
                return
            columns = [c for c in ARCH_FIELDS if c in names]
            for line, row in enumerate(reader, start=2):
                if (row.get("arch_id") or "").strip().lower() != wanted:
                    continue
                where = f"{path}:{line}"
                if not columns:
                    raise IncompatibleFileError(
                        f"{where}: has arch_id {wanted} but no architecture column (expected one "
                        f"of {', '.join(ARCH_FIELDS)})"
                    )
                value = next((row[c] for c in columns if (row.get(c) or "").strip()), None)
                if value is None:
                    raise IncompatibleFileError(f"{where}: arch_id {wanted} with an empty "
                                                "architecture")
                arch = _parse_checked(lambda v=value, w=where: _arch_value(v, w), where)
                _check_stored_id(wanted, arch, where)
                yield arch, where
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IncompatibleFileError(f"{path}: not a readable CSV ({exc})") from None


def find_by_id(arch_id: str, run_dir: str | os.PathLike) -> tuple[Architecture, str]:
    """The architecture with ``arch_id`` in the run's search outputs, and where it was found."""
    wanted = arch_id.lower()
    files = search_files(run_dir)
    for path in files:
        if path.suffix.lower() == ".csv":
            candidates = _csv_archs(path, wanted)
        else:
            candidates = _archs_in(_read_json(path), str(path))
        for arch, where in candidates:
            if arch.arch_id() == wanted:
                return arch, where
    root = Path(run_dir)
    looked = (
        f"{len(files)} file(s): " + ", ".join(str(p) for p in files[:_SHOW])
        + (f" and {len(files) - _SHOW} more" if len(files) > _SHOW else "")
        if files else "no such files exist"
    )
    raise UserError(
        f"architecture ID {wanted} not found; looked in {root / 'search'}/**/*.json, "
        f"{root / 'search'}/**/*.csv and {root}/samples*.csv ({looked}); pass a JSON file or a "
        "short string instead"
    )

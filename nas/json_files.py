"""The one reader of the JSON files nas writes beside its data: sidecars, cards, ledgers, states.

:func:`read_versioned_json` reads a file that carries a format tag and a format version (samples
sidecar, run config, predictor card, searcher state, export manifest, ...) and refuses, with one
:class:`~nas.errors.IncompatibleFileError` line (a :class:`~nas.errors.UserError`) that names the
path and what was expected: a missing file, a damaged one (unreadable, not UTF-8, not JSON), JSON
that is not an object, another format tag, and a missing or unknown version. It returns the
object; what the fields mean stays with the module that owns the format.
:func:`read_json_object` is its first half, for the few files without a version.
Nothing read here is executed: the files are plain JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from nas.errors import IncompatibleFileError

__all__ = ["read_json_object", "read_versioned_json"]


def read_json_object(path: str | os.PathLike, what: str, *, hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path`` (``what`` it should be, e.g. ``"a run plan written by 'nas
    run'"``; ``hint``, appended to the damaged-file line, says how to recover)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM an editor added is not damage
    except FileNotFoundError:
        raise IncompatibleFileError(f"{path}: missing; expected {what}") from None
    except IsADirectoryError:
        raise IncompatibleFileError(f"{path}: a folder; expected {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IncompatibleFileError(f"{path}: damaged, not {what} ({exc}){hint}") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise IncompatibleFileError(f"{path}: damaged, not {what} (invalid JSON: {exc}){hint}") \
            from None
    if not isinstance(data, dict):
        raise IncompatibleFileError(
            f"{path}: not {what} (expected a JSON object, found {type(data).__name__})")
    return data


def read_versioned_json(
    path: str | os.PathLike,
    what: str,
    *,
    format: str | None,
    versions: Collection[int],
    version_key: str = "format_version",
    tagged_versions: Mapping[str, int] | None = None,
    hint: str = "",
) -> dict[str, Any]:
    """The JSON object in ``path``, checked to be ``format`` (its ``"format"`` field; None: the
    format has no tag) at one of ``versions`` (its ``version_key`` field, an int).

    ``tagged_versions`` maps older tags that carried their version in the tag itself
    (``"nas.search.state/1"``) to that version; such a file needs no version field. The caller
    upgrades older versions to the current layout."""
    data = read_json_object(path, what, hint=hint)
    readable = ", ".join(str(v) for v in sorted(versions))
    tag = data.get("format")
    if tagged_versions and isinstance(tag, str) and tag in tagged_versions:
        version: Any = data.get(version_key, tagged_versions[tag])
    else:
        if format is not None and tag != format:
            raise IncompatibleFileError(
                f"{path}: not {what} (expected format {format!r}, found "
                f"{'no format tag' if tag is None else repr(tag)})")
        if version_key not in data:
            raise IncompatibleFileError(
                f"{path}: {what} without a format version (expected a {version_key!r} field; "
                f"this nas reads version {readable})")
        version = data[version_key]
    if isinstance(version, bool) or not isinstance(version, int) or version not in versions:
        raise IncompatibleFileError(
            f"{path}: {what} of format version {version!r}; this nas reads version {readable}"
            + (" (written by a newer nas?)" if isinstance(version, int)
               and not isinstance(version, bool) and version > max(versions) else ""))
    return data

"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

The temporary file is ``.<name>.<pid>-<random>.tmp`` beside the target: unique per write, removed
when the write fails, and, when a killed process (SIGKILL, power loss) left one behind, removed by
the next write of the same file once its process is gone. The rename (:func:`os.replace`) replaces
the directory entry itself: a symlink planted at the destination is replaced by the new file and
its target is never written to.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then rename it onto ``path``.

    A crash at any point leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.{os.getpid()}-"
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=_TMP_SUFFIX, dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give normal permissions
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; still there after a failure
    return path


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier writes of ``path`` whose process no longer runs.

    Only names this module makes are touched (``.<name>.<pid>-<random>.tmp``); a file of a process
    that is still running (another writer) is left alone. Returns the removed paths.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)-\w+" + re.escape(_TMP_SUFFIX))
    removed = leftovers_of_dead_writers(path.parent, pattern, folders=False)
    for leftover in removed:
        leftover.unlink(missing_ok=True)
    return removed


def leftovers_of_dead_writers(
    folder: Path, pattern: re.Pattern[str], *, folders: bool
) -> list[Path]:
    """Entries of ``folder`` named by ``pattern`` (whose first group is the writer's PID) that are
    files (or, with ``folders``, folders, never links) of processes no longer running."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        kind_ok = (
            entry.is_dir(follow_symlinks=False) if folders else entry.is_file(follow_symlinks=False)
        )
        if match and kind_ok and not pid_alive(int(match.group(1))):
            found.append(Path(entry.path))
    return found


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs here (a PID <= 0 or one we may not signal: yes)."""
    if pid <= 0:
        return True  # not a PID this module wrote: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_writable(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Raise :class:`~nas.errors.UserError` unless files can be created in the folder ``path``
    (or, when it does not exist yet, in its nearest existing ancestor, where it would be made).

    Commands that measure for minutes call this first, so that a read-only or missing-permission
    output is refused before the work, not after it. Returns the folder that was tried.
    """
    from nas.errors import UserError

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{what} {path}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(
            f"{what} {path}: cannot write in {folder} ({exc.strerror or exc}); choose a "
            "writable place"
        ) from None
    return folder


def read_csv_rows(
    path: str | os.PathLike, error: type[Exception] | None = None
) -> list[list[str]]:
    """All rows of a text CSV file (a spreadsheet's UTF-8 BOM removed); a file that is not text
    or not CSV raises ``error`` (default :class:`~nas.errors.UserError`) naming it. Never
    executes anything from the file."""
    import csv
    import io

    from nas.errors import UserError

    error = error or UserError
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text CSV file") from None
    try:
        return list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise error(f"{path}: not a valid CSV ({exc})") from None

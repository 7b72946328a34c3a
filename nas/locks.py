"""One writer per output: a lock file that names its holder, held with ``flock`` while it runs.

``nas train``, ``nas sample``, ``nas profile`` and ``nas run`` take :func:`output_lock` on their
``--out`` before writing anything, so a second command on the same output is refused in one line
(:class:`OutputLocked`, exit code 2) while the first runs. The lock file is ``<folder>/.nas.lock``
for a folder output and ``.<name>.lock`` beside a file output; it holds the holder's PID, host,
command and start time (for the message). The lock itself is an exclusive ``flock`` on that file:
the kernel drops it when the holder dies (SIGKILL, power loss), so a lock file left by a dead
process is stale by construction and the next command takes it over. The file is removed when
the holder finishes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from nas.errors import UserError

LOCK_NAME = ".nas.lock"


class OutputLocked(UserError):
    """Another live process holds the output's lock."""


def lock_path(out: str | os.PathLike, *, folder: bool) -> Path:
    """Where the lock of ``out`` lives: inside a folder output, beside a file output."""
    out = Path(out)
    return out / LOCK_NAME if folder else out.parent / f".{out.name}.lock"


def describe_holder(path: Path) -> str:
    """'pid P on HOST (nas CMD, since TIME)' from a lock file, as far as it can be read."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']} ({info['command']}, since {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file is being written)"


@contextlib.contextmanager
def output_lock(
    out: str | os.PathLike, *, folder: bool, command: str | None = None
) -> Iterator[Path]:
    """Hold the lock of ``out`` (a folder when ``folder``, else a file) for the ``with`` block.

    Raises :class:`OutputLocked` naming the holder when another live process holds it. A lock
    file whose holder died is taken over. A folder output is created; if it was created here
    and is still empty at the end, it is removed again (a refused command leaves nothing).
    """
    out = Path(out)
    created = folder and not out.exists()
    path = lock_path(out, folder=folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, out, command or _command())
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # closing drops the flock
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty


def _acquire(path: Path, out: Path, command: str) -> int:
    for _ in range(100):  # retried only when the file was replaced while we locked it
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(
                f"{out} is in use by {describe_holder(path)}; wait for it to finish or choose "
                "another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False  # the holder before us removed it after we opened it
        if not same:
            os.close(fd)
            continue
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        return fd
    raise OutputLocked(f"{out}: could not take its lock {path}; try again")  # pragma: no cover


def _command() -> str:
    argv = sys.argv[1:2]
    return "nas " + argv[0] if argv else "nas"

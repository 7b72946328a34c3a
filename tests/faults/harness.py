"""Run ``nas`` commands in forked children and kill them with SIGKILL: after a delay (from outside,
as ``kill -9`` would) or at the K-th atomic write (``NAS_FAULT_KILL_AT_WRITE``, see nas/io.py).

A child is forked from the test process (torch and the package already imported, so a trial costs
the command's work, not an interpreter start), becomes the leader of its own session, writes
its stdout and stderr to files, and leaves with ``os._exit``. Only the child's PID is killed, as a
user's ``kill -9`` would; :func:`group_survivors` then tells whether it left processes behind in its
session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.io import FAULT_COUNT_ENV, FAULT_KILL_ENV


@dataclass(frozen=True)
class Outcome:
    code: int | None  # exit code; None when killed
    stderr: str
    seconds: float
    survivors: int = 0  # processes of its group still alive after it ended (orphaned workers)


def _child(argv: list[str], env: dict[str, str], log: Path) -> None:  # pragma: no cover
    code = 1
    try:
        os.setsid()
        os.environ.update(env)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            handle = os.open(log / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        for logger in [logging.root, *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):  # handlers of earlier in-process tests write
                logger.handlers.clear()             # to pytest's capture, closed by now
        from nas.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def session_members(sid: int) -> list[int]:
    """PIDs still alive in session ``sid`` (by /proc), zombies not counted: the command and every
    process it started, whatever process group they moved to (Ray's driver takes its own)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[4]) == sid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def group_survivors(sid: int) -> int:
    """How many processes of session ``sid`` are still alive."""
    return len(session_members(sid))


def run_nas(argv: list[str], log: Path, *, kill_after: float | None = None,
            kill_at_write: str | None = None, count_writes: Path | None = None,
            timeout: float = 900.0, grace: float = 3.0) -> Outcome:
    """Run ``nas argv`` in a forked child; kill it after ``kill_after`` seconds, or let it kill
    itself at ``kill_at_write`` ('K:before' / 'K:after'). Waits at most ``timeout`` seconds."""
    log.mkdir(parents=True, exist_ok=True)
    for name in ("stdout", "stderr"):  # a kill can come before the child opens them
        (log / name).write_bytes(b"")
    env = {}
    if kill_at_write:
        env[FAULT_KILL_ENV] = kill_at_write
    if count_writes is not None:
        env[FAULT_COUNT_ENV] = str(count_writes)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        _child(argv, env, log)
    deadline = start + (kill_after if kill_after is not None else timeout)
    status = None
    while status is None:
        done, status_ = os.waitpid(pid, os.WNOHANG)
        if done:
            status = status_
            break
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    survivors = 0
    end = time.monotonic() + grace
    while (survivors := group_survivors(pid)) and time.monotonic() < end:
        time.sleep(0.1)  # workers notice their parent is gone and leave
    for member in session_members(pid) if survivors else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)  # never leave them to the next trial
    code = None if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    if kill_after is None and code is None and not kill_at_write:
        raise AssertionError(f"nas {' '.join(argv)} timed out after {timeout} s")
    return Outcome(code, (log / "stderr").read_text(errors="replace"), seconds, survivors)


def finish(argv: list[str], log: Path) -> Outcome:
    """Run to the end; it must succeed without a traceback and leave no worker behind."""
    outcome = run_nas(argv, log)
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.survivors == 0
    return outcome


def count_atomic_writes(argv: list[str], log: Path) -> tuple[Outcome, list[str]]:
    """Run to the end, listing its atomic writes (the points a kill can hit deterministically)."""
    writes = log / "writes.txt"
    outcome = run_nas(argv, log, count_writes=writes)
    assert outcome.code == 0, outcome.stderr[-3000:]
    return outcome, writes.read_text().splitlines() if writes.exists() else []


@dataclass(frozen=True)
class KillPoint:
    """Where a trial kills: after ``delay`` seconds, or at atomic write ``write`` ('K:stage')."""
    delay: float | None = None
    write: str | None = None

    def __str__(self) -> str:
        return f"write {self.write}" if self.write else f"after {self.delay:.2f}s"


def kill_points(n: int, *, seconds: float, writes: list[str], seed: int,
                must_hit: tuple[str, ...] = ()) -> list[KillPoint]:
    """``n`` seeded kill points: half at atomic writes (each write whose path contains one of
    ``must_hit`` first, e.g. the checkpoint), half after a uniform delay within ``seconds``."""
    rng = np.random.default_rng(seed)
    points: list[KillPoint] = []
    numbered = [(i + 1, line.split("\t", 1)[-1]) for i, line in enumerate(writes)]
    first = [k for k, path in numbered if any(word in path for word in must_hit)]
    others = [k for k, _ in numbered if k not in first]
    order = [*first, *rng.permutation(others).tolist()]
    for i in range(n):
        if i % 2 == 0 and order:
            k = order[(i // 2) % len(order)]
            stage = "before" if (i // 2) % 2 == 0 else "after"
            points.append(KillPoint(write=f"{k}:{stage}"))
        else:
            points.append(KillPoint(delay=float(rng.uniform(0.05, 0.95) * seconds)))
    return points


# What a worker process of Python's multiprocessing prints when its parent is killed while
# sending it its start-up data (spawn_main reads a truncated pickle): Python's bootstrap, before
# any code of nas runs in the worker. Counted and reported (results/benchmarks/reliability.md).
# A worker still printing it when the harness kills the leftovers ends the text mid-traceback:
# that cut-off form (only bootstrap frames, then the end of stderr) counts too.
SPAWN_BOOTSTRAP = re.compile(
    r"Traceback \(most recent call last\):\n  File \"<string>\", line 1, in <module>\n"
    r"(?:  File \"[^\"]*multiprocessing/spawn\.py\".*\n(?:    .*\n)*)*"
    r"(?:(?:_pickle\.UnpicklingError: pickle data was truncated|EOFError[^\n]*)\n"
    r"|(?![^\n]*/nas/)[^\n]*\Z)")
SPAWN_BOOTSTRAP_SEEN = []


def kill(argv: list[str], log: Path, point: KillPoint) -> Outcome:
    """Run until ``point`` kills it (or it finishes first); never a traceback of nas."""
    outcome = run_nas(argv, log, kill_after=point.delay, kill_at_write=point.write)
    stderr, bootstraps = SPAWN_BOOTSTRAP.subn("", outcome.stderr)
    if bootstraps:
        SPAWN_BOOTSTRAP_SEEN.append((" ".join(argv[:1]), str(point), bootstraps))
        print(f"note: {bootstraps} multiprocessing worker(s) died in Python's spawn bootstrap")
    assert "Traceback" not in stderr, (str(point), outcome.stderr[-3000:])
    return outcome

"""Processes of a running ``nas sample`` killed from outside: a pool worker (``--workers 2``), a
Ray worker and Ray's raylet (``--ray-address local``). Killed workers are retried and every subnet
appears exactly once with the values of an undisturbed run. A dead Ray system process can end Ray's
driver below Python (exit 1 from its C++ core): the driver runs in a child process, so a new one
takes the unfinished subnets; when restarts run out the command ends with one line (exit 2), and
the same command then completes the file.

Only descendants of the command's own process are killed (never another user's Ray)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.harness import finish, run_nas
from tests.faults.test_kill_and_resume import sample_argv, samples_by_id

pytestmark = pytest.mark.faults


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                cmd = ""
            found.append((child, cmd))
            todo.append(child)
    return found


def kill_one_when(parent_of: list[int], match: str, *, after: float, timeout: float = 120,
                  busy_first: bool = False,
                  ready: Callable[[], bool] = lambda: True) -> list[str]:
    """In a thread: once the command runs, SIGKILL one descendant whose command line contains
    ``match`` (or, for a match ending in '::', starts with it) after ``after`` seconds of it
    existing (with ``busy_first``: of a Ray worker running a task) and once ``ready()`` says so;
    returns what it killed."""
    killed: list[str] = []

    def matches(cmd: str, pattern: str) -> bool:
        return (cmd.startswith(pattern) if pattern.endswith("::") else pattern in cmd) \
            and "IDLE" not in cmd

    def watch() -> None:
        end = time.monotonic() + timeout
        while not parent_of and time.monotonic() < end:
            time.sleep(0.05)
        seen_at = None
        while time.monotonic() < end and parent_of:
            found = descendants(parent_of[0])
            hits = [(p, c) for p, c in found if matches(c, match)]
            if busy_first and not any(matches(c, "ray::") for _, c in found):
                hits = []
            if hits and seen_at is None:
                seen_at = time.monotonic()
            if hits and time.monotonic() - seen_at >= after and ready():
                os.kill(hits[0][0], signal.SIGKILL)
                killed.append(hits[0][1][:80])
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def data_rows(csv_path: Path) -> int:
    """Rows below the header of a CSV file being written (0 while it does not exist)."""
    try:
        return max(0, csv_path.read_text().count("\n") - 1)
    except OSError:
        return 0


def pid_recorder(monkeypatch) -> list[int]:
    """The PID of the next forked command (patched into os.fork for this test)."""
    pids: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    from tests.conftest import train_tiny_run

    root = tmp_path_factory.mktemp("workers")
    train_tiny_run(root / "run")
    finish(sample_argv(root / "run", root / "ref"), root / "ref-log")
    return root / "run", samples_by_id(root / "ref" / "samples.csv")


def test_a_killed_pool_worker_is_retried_and_every_subnet_appears_once(reference, tmp_path,
                                                                      monkeypatch):
    run, expected = reference
    pids = pid_recorder(monkeypatch)
    # Once the first subnet's row is written the pool's workers are busy with the others: a fixed
    # delay after a worker appears could outlast the whole run on a quiet machine.
    killed = kill_one_when(pids, "spawn_main", after=0.0,
                           ready=lambda: data_rows(tmp_path / "samples.csv") >= 1)
    outcome = run_nas(sample_argv(run, tmp_path, workers=2), tmp_path / "log")
    assert killed, "no pool worker was seen"
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert outcome.survivors == 0
    assert samples_by_id(tmp_path / "samples.csv") == expected


def ray_argv(run: Path, out: Path) -> list[str]:
    return [*sample_argv(run, out, workers=2), "--ray-address", "local"]


def test_a_killed_ray_worker_is_retried_and_every_subnet_appears_once(reference, tmp_path,
                                                                     monkeypatch):
    run, expected = reference
    pids = pid_recorder(monkeypatch)
    killed = kill_one_when(pids, "ray::", after=0.5, busy_first=True)
    outcome = run_nas(ray_argv(run, tmp_path), tmp_path / "log", grace=15)
    assert killed, "no Ray worker was seen"
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert outcome.survivors == 0
    assert samples_by_id(tmp_path / "samples.csv") == expected


def test_a_dying_raylet_is_survived_or_one_line_and_the_rerun_completes(reference, tmp_path,
                                                                          monkeypatch):
    run, expected = reference
    pids = pid_recorder(monkeypatch)
    killed = kill_one_when(pids, "raylet", after=0.5, busy_first=True)
    outcome = run_nas(ray_argv(run, tmp_path), tmp_path / "log", grace=15)
    assert killed, "no raylet was seen"
    lines = [line for line in outcome.stderr.splitlines() if ": error: " in line]
    if outcome.code != 0:  # it may have finished before the raylet died
        assert outcome.code == 2 and len(lines) == 1, outcome.stderr[-3000:]
        assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    # Ray's agents outlive a dead raylet unless the driver's process group is ended (1 in 4 before)
    assert outcome.survivors == 0
    pids.clear()
    finish(sample_argv(run, tmp_path), tmp_path / "rerun")
    assert samples_by_id(tmp_path / "samples.csv") == expected

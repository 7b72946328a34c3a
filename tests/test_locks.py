"""Exclusion between writers: a second command on a held output is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from nas.cli import main
from nas.locks import OutputLocked, lock_path, output_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from nas.locks import output_lock
    with output_lock(sys.argv[1], folder=sys.argv[2] == "folder", command="nas test"):
        print("ready", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def hold():
    """Start a process that holds the lock of an output; it is killed at the end of the test."""
    procs = []

    def start(out, folder: bool) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(out), "folder" if folder else "file"],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


CASES = {
    "train": (True, ["train", "--space", "hybrid-tiny", "--epochs", "1", "--no-progress"]),
    "sample": (False, ["sample", "--run", "nowhere", "--n", "2", "--no-progress"]),
    "profile": (False, ["profile", "--space", "hybrid-tiny", "--no-progress"]),
    "run": (True, ["run", "--quick", "--no-progress"]),
}


@pytest.mark.parametrize("command", sorted(CASES))
def test_second_writer_is_refused_in_one_line(command, tmp_path, hold, capsys):
    folder, argv = CASES[command]
    out = tmp_path / ("out" if folder else "out.csv")
    proc = hold(out, folder)
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"nas {command}: error:" in err
    assert f"in use by pid {proc.pid}" in err and "nas test" in err
    assert lock_path(out, folder=folder).exists()  # the holder's lock is left alone
    assert not (folder and (out / "config.json").exists())


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "table.csv"
    path = lock_path(out, folder=False)
    record = {"pid": _dead_pid(), "host": "h", "command": "nas profile", "started": 0}
    path.write_text(json.dumps(record))
    with output_lock(out, folder=False, command="nas test") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()}"):
            with output_lock(out, folder=False, command="nas again"):
                pass  # pragma: no cover
    assert not path.exists()


def test_cli_proceeds_past_a_stale_lock(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    record = {"pid": _dead_pid(), "host": "h", "command": "nas train", "started": 0}
    lock_path(out, folder=True).write_text(json.dumps(record))
    # past the lock, train stops at its own first check (no --space): the lock did not refuse
    assert main(["train", "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--space is required" in err and "in use" not in err
    assert not lock_path(out, folder=True).exists()


def test_refused_command_leaves_no_new_folder(tmp_path):
    out = tmp_path / "fresh"
    with output_lock(out, folder=True):
        assert out.is_dir()
    assert not out.exists()

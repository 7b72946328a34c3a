"""Errors a user causes are one line with exit code 2: paths, disks, unwritable outputs."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.errors import UserError
from nas.spaces import load_space


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"nas {command}: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "/data/out/table.csv"),
        PermissionError(errno.EACCES, "Permission denied", "/data/out"),
        OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x.csv"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/missing.yaml"),
        IsADirectoryError(errno.EISDIR, "Is a directory", "/data/folder"),
        OSError(errno.ENOSPC, "No space left on device"),  # a write without a file name
    ],
)
def test_os_errors_of_user_paths_are_one_line(monkeypatch, capsys, exc):
    import nas.cli.spaces_cmd as spaces_cmd

    def fail(args):
        raise exc

    monkeypatch.setattr(spaces_cmd, "run", fail)
    assert main(["spaces"]) == 2
    err = _one_line(capsys, "spaces")
    assert exc.strerror in err
    assert (exc.filename or "while writing") in err


def test_other_os_errors_keep_their_traceback(monkeypatch):
    import nas.cli.spaces_cmd as spaces_cmd

    def fail(args):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(spaces_cmd, "run", fail)
    with pytest.raises(ConnectionRefusedError):
        main(["spaces"])


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder this process cannot create files in: chmod 555 (not for root), else /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    candidates = [folder, Path("/sys")]
    try:
        for candidate in candidates:
            try:
                with tempfile.TemporaryFile(dir=candidate):
                    pass
            except OSError:
                yield candidate
                return
        pytest.skip("no unwritable folder here (root ignores chmod and /sys is writable)")
    finally:
        folder.chmod(0o755)


def _never(*args, **kwargs):
    raise AssertionError("measured before checking that the output is writable")


def test_profile_refuses_an_unwritable_out_before_measuring(unwritable, monkeypatch, capsys):
    import nas.latency.space_profile as space_profile

    monkeypatch.setattr(space_profile, "profile_space", _never)
    out = unwritable / "sub" / "table.csv"
    assert main(["profile", "--space", "hybrid-tiny", "--out", str(out), "--no-progress"]) == 2
    assert "cannot write in" in _one_line(capsys, "profile")


def test_latency_validate_refuses_an_unwritable_out_before_measuring(
    unwritable, monkeypatch, capsys
):
    import nas.latency.validate as validate

    monkeypatch.setattr(validate, "validate_table", _never)
    out = unwritable / "report.md"
    argv = ["latency", "validate", "--space", "hybrid-tiny", "--table", "t.csv", "--out", str(out)]
    assert main(argv) == 2
    assert "cannot write in" in _one_line(capsys, "latency")


def test_export_refuses_an_unwritable_out_before_loading_the_run(unwritable, capsys):
    out = unwritable / "model"
    argv = ["export", "--run", "no-such-run", "--arch", "x", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = _one_line(capsys, "export")
    assert "cannot write in" in err and "no-such-run" not in err


def test_out_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "table.csv"
    assert main(["profile", "--space", "hybrid-tiny", "--out", str(out), "--no-progress"]) == 2
    assert "is not a folder" in _one_line(capsys, "profile")


def test_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_old(tmp_path, monkeypatch):
    from nas.train import checkpoint

    path = tmp_path / "checkpoint.pt"
    checkpoint.save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 417664 "
                           "vs 417556")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match="is the disk full"):
        checkpoint.save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_latency_predict_says_outside_the_space(tmp_path, capsys):
    arch = load_space("hybrid-cifar").sample(np.random.default_rng(0))
    table = tmp_path / "t.csv"
    assert main(["latency", "predict", "--space", "hybrid-tiny", "--table", str(table),
                 arch.to_str()]) == 2
    err = _one_line(capsys, "latency")
    assert "outside the space 'hybrid-tiny'" in err and "profile them first" not in err


def test_check_writable_accepts_a_new_folder_below_a_writable_one(tmp_path):
    from nas.io import check_writable

    assert check_writable(tmp_path / "a" / "b") == tmp_path
    assert not (tmp_path / "a").exists()
    assert os.listdir(tmp_path) == []

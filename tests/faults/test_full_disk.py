"""A full disk during every kind of save (checkpoint, latency table, samples, predictor, export):
one line and exit code 2, and the previous good file stays intact and readable.

The disk is a small tmpfs mounted for the test (root, or a container allowed to mount); where it
cannot be mounted the tests are skipped. The earlier output is written first, then the disk is
filled up to a few pages, then the same command saves again. The tmpfs tests run under the
``faults`` marker (make test runs it); the default suite keeps the in-process profile case.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from nas.cli import main
from tests.faults.harness import KillPoint, kill

SLACK = 8192  # bytes left free: enough for the lock file, too little for any save


@pytest.fixture
def disk(tmp_path) -> Path:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " + done.stderr.decode()[:100])
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path, slack: int = SLACK) -> None:
    """Fill ``disk`` up to ``slack`` free bytes."""
    filler = disk / "filler"
    block = b"\0" * (1 << 20)
    with filler.open("wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - slack))


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"}


def refused_in_one_line(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines and ": error: " in lines[-1], err
    assert sum(": error: " in line for line in lines) == 1, err
    return lines[-1]


def no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob("*.tmp")]


TRAIN = ["--space", "hybrid-tiny", "--data", "digits", "--batch-size", "128", "--sandwich-n",
         "1", "--recal-batches", "2", "--threads", "1", "--no-progress"]


@pytest.mark.faults
def test_checkpoint_save_on_a_full_disk(disk, tmp_path, capsys):
    from nas.train.checkpoint import load_checkpoint

    run = disk / "run"
    argv = ["train", *TRAIN, "--epochs", "3", "--out", str(run)]
    # config.json, space.yaml, then the first checkpoint (write 3): killed right after it
    kill(argv, tmp_path / "killed", KillPoint(write="3:after"))
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    before = digest(run)
    fill(disk)
    refused_in_one_line([*argv, "--resume"], capsys)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert digest(run)["checkpoint.pt"] == before["checkpoint.pt"]
    no_temporaries(disk)


PROFILE = ["--space", "hybrid-tiny", "--no-progress", "--calibrate", "3", "--warmup", "1",
           "--repeats", "2", "--rounds", "1", "--min-round-ms", "0", "--min-read-ms", "0"]


@pytest.mark.faults
def test_table_save_on_a_full_disk(disk, tmp_path, capsys):
    from nas.latency.table import LatencyTable

    lut = disk / "lut.csv"
    argv = ["profile", *PROFILE, "--out", str(lut)]
    # a table that is not finished: killed after its first chunk was saved (CSV, then sidecar)
    kill(argv, tmp_path / "killed", KillPoint(write="2:after"))
    partial = LatencyTable.load(lut)
    assert 0 < len(partial.entries)
    before = digest(disk)
    fill(disk)
    refused_in_one_line(argv, capsys)
    again = LatencyTable.load(lut)  # loads: the last pair that was saved whole
    assert set(partial.entries) <= set(again.entries)
    assert all(again.entries[k] == e for k, e in partial.entries.items())
    assert before["lut.csv"] != digest(disk)["lut.csv"] or again.entries == partial.entries
    no_temporaries(disk)


def test_a_fresh_profile_keeps_what_it_measured_when_the_disk_fills(tmp_path, monkeypatch):
    """Saved after every chunk: a save failing on a full disk leaves the chunks saved before."""
    from nas.latency.space_profile import profile_space
    from nas.latency.table import LatencyTable
    from nas.spaces import load_space
    from tests.test_latency_cli import FAST_PROTOCOL

    real_save = LatencyTable.save
    saves = []

    def save_until_the_disk_is_full(self, path):
        saves.append(path)
        if len(saves) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_save(self, path)

    monkeypatch.setattr(LatencyTable, "save", save_until_the_disk_is_full)
    with pytest.raises(OSError):
        profile_space(load_space("hybrid-tiny"), tmp_path / "t.csv", FAST_PROTOCOL, calibrate=0,
                      chunk_size=16, progress=False, say=lambda _: None)
    kept = LatencyTable.load(tmp_path / "t.csv")
    assert len(kept.entries) == 32  # two chunks of 16, measured and saved before the disk filled


@pytest.mark.faults
def test_samples_append_on_a_full_disk(disk, tmp_path, capsys):
    from nas.sample.store import read_samples
    from tests.conftest import train_tiny_run

    train_tiny_run(tmp_path / "run")
    out = disk / "samples.csv"
    base = ["sample", "--run", str(tmp_path / "run"), "--out", str(out), "--recal-batches", "1",
            "--recal-batch-size", "32", "--no-progress"]
    assert main([*base, "--n", "3"]) == 0
    rows = read_samples(out).rows
    fill(disk, slack=4096)
    refused_in_one_line([*base, "--n", "400"], capsys)
    after = read_samples(out).rows
    assert after[: len(rows)] == rows  # the earlier rows intact (any row added is complete)
    assert len({r["arch_id"] for r in after}) == len(after)


@pytest.mark.faults
def test_predictor_save_on_a_full_disk(disk, tmp_path, capsys):
    from predictors.persistence import load_predictor
    from tests.test_fit_cli import write_synthetic_samples

    samples = write_synthetic_samples(tmp_path / "samples.csv", n=60)
    out = disk / "pred"
    assert main(["fit", "--samples", str(samples), "--out", str(out), "--folds", "2"]) == 0
    before = digest(out)
    fill(disk, slack=0)
    refused_in_one_line(["fit", "--samples", str(samples), "--out", str(out), "--folds", "2",
                         "--model", "gbm"], capsys)
    assert digest(out) == before
    load_predictor(out)
    no_temporaries(disk)


@pytest.mark.faults
def test_export_on_a_full_disk(disk, tmp_path, capsys):
    import torch

    from nas.spaces import load_space
    from tests.conftest import train_tiny_run

    train_tiny_run(tmp_path / "run")
    arch = load_space("hybrid-tiny").smallest().to_str()
    argv = ["export", "--run", str(tmp_path / "run"), "--arch", arch, "--out",
            str(disk / "export"), "--formats", "pt", "--no-measure", "--no-standalone-check",
            "--recal-batches", "1", "--quiet"]
    assert main(argv) == 0
    before = digest(disk / "export")
    fill(disk, slack=0)
    refused_in_one_line([*argv, "--force"], capsys)
    assert digest(disk / "export") == before
    for path in (disk / "export").rglob("*.pt"):
        torch.load(path, weights_only=True)
    assert not [p for p in disk.iterdir() if p.name.startswith(".")], list(disk.iterdir())

"""``nas run`` after faults: a kill before the first checkpoint, damaged ledgers, stale staging."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nas.cli import main
from nas.export.pipeline import remove_stale_staging
from nas.pipeline import Pipeline, RunPlan


def _plan() -> RunPlan:
    return RunPlan.quick(epochs=1, train_batch_size=128)


def test_train_stage_continues_a_run_killed_before_its_first_checkpoint(tmp_path):
    pipeline = Pipeline(_plan(), tmp_path, progress=False, say=lambda _: None)
    folder = pipeline.paths.supernet
    pipeline._stage_train()
    # what a kill during the first epoch leaves: config.json, space.yaml and train.log only
    for name in ("checkpoint.pt", "metrics.csv", "summary.json"):
        (folder / name).unlink()
    assert (folder / "config.json").exists()
    again = Pipeline(_plan(), tmp_path, progress=False, say=lambda _: None)
    info = again._stage_train()
    assert (folder / "checkpoint.pt").exists()
    assert isinstance(info["summary"], dict)  # summary.json was written again
    assert not (folder / ".nas.lock").exists()


@pytest.mark.parametrize("name", ["plan.json", "stages.json"])
@pytest.mark.parametrize("content", ['{"space": "hybr', "[1, 2]", "\xff\xfe"])
def test_damaged_plan_or_ledger_is_one_line(tmp_path, capsys, name, content):
    Pipeline(RunPlan.quick(epochs=1), tmp_path, progress=False, say=lambda _: None)  # plan.json
    (tmp_path / name).write_bytes(content.encode("latin-1"))
    assert main(["run", "--quick", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert name in err and "Traceback" not in err


def test_staging_folder_of_a_killed_export_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "model"
    stale = tmp_path / f".model.staging-{dead.pid}-abc123"
    live = tmp_path / f".model.staging-{1}-xyz"  # pid 1 always runs: another export's
    old = tmp_path / f".model.old-{dead.pid}-q"  # may hold an earlier export: kept
    for folder in (stale, live, old):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x")
    assert remove_stale_staging(out) == [stale]
    assert not stale.exists() and live.exists() and old.exists()

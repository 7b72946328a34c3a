"""Checkpoints: exact resume (in process and after SIGKILL), refusal of bad files, CLI resume."""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import train_cmd
from nas.errors import IncompatibleFileError, UserError
from nas.spaces import load_space
from nas.supernet import Supernet
from nas.train import TrainConfig, load_checkpoint, load_supernet, train
from nas.train import loop as loop_mod
from tests.test_train import state_equal, tiny_config, write_digits_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    return "npz:" + str(write_digits_npz(path, n_train=128, n_val=64, n_test=32))


@pytest.fixture(scope="module")
def reference(data_spec, tmp_path_factory):
    """An uninterrupted 3-epoch run."""
    return train(tiny_config(data_spec), tmp_path_factory.mktemp("ref") / "run", progress=False)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def copy_run(run_dir: Path, out: Path) -> Path:
    """A copy of the run folder ``run_dir`` at ``out``."""
    out.mkdir()
    for p in run_dir.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    return out


def test_checkpoint_loads_with_weights_only(reference):
    state = torch.load(reference.run_dir / "checkpoint.pt", weights_only=True)
    assert state["format"] == "nas-supernet-checkpoint" and state["epoch"] == 3
    assert state["space_hash"] == load_space("hybrid-tiny").hash()
    assert isinstance(state["rng"]["torch"], torch.Tensor)


def test_resume_after_an_interruption_gives_the_same_weights(
    data_spec, reference, tmp_path, monkeypatch
):
    real = loop_mod._train_epoch
    calls = {"n": 0}

    def dies_in_second_epoch(run, epoch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed during epoch 2
        return real(run, epoch)

    monkeypatch.setattr(loop_mod, "_train_epoch", dies_in_second_epoch)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data_spec), out, progress=False)
    monkeypatch.setattr(loop_mod, "_train_epoch", real)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    res = train(tiny_config(data_spec), out, resume=True, progress=False)
    assert res.resumed_from == 1
    assert state_equal(res.supernet.state_dict(), reference.supernet.state_dict())
    a = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in res.history]
    b = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in reference.history]
    assert a == b
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    assert "resumed" in (out / "train.log").read_text()


_CLI = (
    "import argparse, sys\n"
    "from nas.cli import train_cmd\n"
    "p = argparse.ArgumentParser(); sub = p.add_subparsers(dest='command')\n"
    "train_cmd.register(sub)\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", _CLI, "train", *args]


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_sigkill_then_resume_gives_the_same_weights(data_spec, reference, tmp_path):
    out = tmp_path / "run"
    # the same settings as tiny_config(), which made the in-process reference run
    cfg = [
        "--space", "hybrid-tiny", "--data", data_spec, "--epochs", "3", "--batch-size", "32",
        "--sandwich-n", "1", "--lr", "5e-3", "--recal-batches", "2", "--threads", "1",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(*cfg), cwd=ROOT, env=env, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = load_checkpoint(ckpt)["epoch"]
    assert 1 <= killed_at < 3, "the kill came too late to test resuming"
    done = subprocess.run(
        _cli("--out", str(out), "--resume", "--no-progress"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 3
    assert state_equal(state["model"], reference.supernet.state_dict())


# ----- refusals -----
def _odd_space_file(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "search_spaces" / "hybrid-tiny.yaml").read_text())
    data["head"]["width"] = 24
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("kind", ["truncated", "state_dict", "text", "other_space", "newer"])
def test_bad_checkpoints_are_refused_and_files_left_untouched(kind, data_spec, reference, tmp_path):
    out = copy_run(reference.run_dir, tmp_path / "run")
    ckpt = out / "checkpoint.pt"
    cfg = tiny_config(data_spec)
    if kind == "truncated":
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
        match = "not a readable checkpoint"
    elif kind == "state_dict":
        torch.save(Supernet(load_space("hybrid-tiny")).state_dict(), ckpt)
        match = "not a nas-supernet-checkpoint"
    elif kind == "text":
        ckpt.write_text("hello, I am not a checkpoint\n")
        match = "not a readable checkpoint"
    elif kind == "newer":
        state = torch.load(ckpt, weights_only=True)
        torch.save({**state, "format_version": 99}, ckpt)
        match = "format version 99"
    else:
        cfg = tiny_config(data_spec, space=str(_odd_space_file(tmp_path)))
        match = "made for search space 'hybrid-tiny'"
    before = snapshot(out)
    with pytest.raises(IncompatibleFileError, match=match):
        train(cfg, out, resume=True, progress=False)
    with pytest.raises(IncompatibleFileError, match=match):
        load_checkpoint(ckpt, space_hash=load_space(cfg.space).hash())
    if kind != "other_space":
        with pytest.raises(IncompatibleFileError, match=match):
            load_supernet(out)
    assert snapshot(out) == before


def test_resume_with_other_settings_is_refused(data_spec, reference, tmp_path):
    out = copy_run(reference.run_dir, tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(IncompatibleFileError, match=r"lr: checkpoint 0\.005 vs now 0\.001"):
        train(tiny_config(data_spec, lr=1e-3), out, resume=True, progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train(tiny_config(data_spec), out, progress=False)
    assert snapshot(out) == before


def test_resume_may_raise_the_epochs_not_lower_them(data_spec, reference, tmp_path):
    import json

    out = copy_run(reference.run_dir, tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(IncompatibleFileError, match="may raise its epochs, not lower them"):
        train(tiny_config(data_spec, epochs=2), out, resume=True, progress=False)
    assert snapshot(out) == before
    res = train(tiny_config(data_spec, epochs=4), out, resume=True, progress=False)
    assert res.resumed_from == 3 and [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 4
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 4
    assert "epochs raised from 3 to 4" in (out / "train.log").read_text()
    assert not state_equal(res.supernet.state_dict(), reference.supernet.state_dict())
    load_supernet(out, load_data=False)  # finished: no unfinished-run warning


def test_resuming_a_finished_run_changes_nothing(data_spec, reference, tmp_path):
    out = copy_run(reference.run_dir, tmp_path / "run")
    before = snapshot(out)
    res = train(tiny_config(data_spec, threads=2), out, resume=True, progress=False)
    assert res.resumed_from == 3
    assert state_equal(res.supernet.state_dict(), reference.supernet.state_dict())
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != "train.log"} == {
        k: v for k, v in before.items() if k != "train.log"
    }


def test_unfinished_run_loads_with_a_warning(data_spec, tmp_path, monkeypatch):
    real = loop_mod._train_epoch

    def once(run, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(run, epoch)

    monkeypatch.setattr(loop_mod, "_train_epoch", once)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data_spec, epochs=2), tmp_path / "r", progress=False)
    with pytest.warns(UserWarning, match="unfinished run"):
        run = load_supernet(tmp_path / "r", load_data=False)
    assert run.epoch == 1 and run.splits is None


# ----- the command line -----
def _parse(*args: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    train_cmd.register(sub)
    return p.parse_args(["train", *args])


def test_cli_resume_uses_the_saved_settings(reference):
    cfg = train_cmd.build_config(_parse("--out", str(reference.run_dir), "--resume"))
    assert cfg == TrainConfig.from_dict(reference_config(reference))
    cfg = train_cmd.build_config(
        _parse("--out", str(reference.run_dir), "--resume", "--threads", "2", "--device", "cpu")
    )
    assert cfg.threads == 2


def reference_config(reference) -> dict:
    import json

    return json.loads((reference.run_dir / "config.json").read_text())["train"]


def test_cli_options_map_onto_the_config(tmp_path):
    arch = load_space("hybrid-tiny").smallest()
    arch_file = tmp_path / "a.json"
    arch_file.write_text(arch.to_json())
    cfg = train_cmd.build_config(
        _parse(
            "--space", "hybrid-tiny", "--out", str(tmp_path / "x"), "--schedule", "fixed",
            "--arch", str(arch_file), "--optimizer", "sgd", "--no-augment",
            "--phase-fractions", "0.2,0.4,0.6",
        )
    )  # fmt: skip
    assert cfg.arch == arch.to_str() and cfg.lr == 0.05 and not cfg.augment
    assert cfg.phase_fractions == (0.2, 0.4, 0.6)
    with pytest.raises(UserError, match="--space is required"):
        train_cmd.build_config(_parse("--out", str(tmp_path / "y")))


def test_resume_finds_the_space_in_the_run_folder_when_its_file_is_gone(data_spec, tmp_path):
    space_file = tmp_path / "my-space.yaml"
    space_file.write_text((ROOT / "search_spaces" / "hybrid-tiny.yaml").read_text())
    cfg = tiny_config(data_spec, space=str(space_file), epochs=1)
    first = train(cfg, tmp_path / "run", progress=False)
    space_file.unlink()
    again = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert again.resumed_from == 1 and again.space.hash() == first.space.hash()


def test_cli_reports_bad_options_in_one_line(tmp_path, capsys):
    from nas.cli import main

    code = main(["train", "--space", "hybrid-tiny", "--lr", "-1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "nas train: error: argument --lr: expected a finite number greater than 0.0 and at most "
        "100.0, got -1 (see nas train --help)"]
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(data_spec, reference, tmp_path,
                                                          monkeypatch):
    """What a CUDA run leaves (config device 'cuda', CUDA generator states) resumes here with
    --device cpu, to the weights of the uninterrupted CPU run: the device is an execution setting
    and the CUDA states are restored only where CUDA exists (the weights are read onto the CPU)."""
    from nas.train.checkpoint import save_checkpoint

    real = loop_mod._train_epoch
    calls = {"n": 0}

    def dies_in_second_epoch(run, epoch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(run, epoch)

    monkeypatch.setattr(loop_mod, "_train_epoch", dies_in_second_epoch)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data_spec), out, progress=False)
    monkeypatch.setattr(loop_mod, "_train_epoch", real)
    state = load_checkpoint(out / "checkpoint.pt")
    state["config"]["device"] = "cuda"
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    save_checkpoint(out / "checkpoint.pt", state)
    res = train(tiny_config(data_spec), out, resume=True, progress=False)
    assert res.resumed_from == 1
    if not torch.cuda.is_available():  # with CUDA the (fake) CUDA state is restored: no equality
        assert state_equal(res.supernet.state_dict(), reference.supernet.state_dict())

"""Symbolic links planted in an output, pointing outside it, are never written through: each
command replaces a linked file (atomic writes rename over the link) or refuses in one line
(appends, linked folders), and the files and folders the links point at stay as they were."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nas.cli import main
from tests.test_cli_option_walk import FAST_PROFILE


def plant(out: Path, names: list[str], outside: Path) -> dict[Path, str]:
    """Links ``out/name`` -> files (or, for names ending in '/', folders) in ``outside``;
    returns the targets and their digests."""
    out.mkdir(parents=True, exist_ok=True)
    targets = {}
    for name in names:
        if name.endswith("/"):
            target = outside / (name.strip("/") + "-dir")
            target.mkdir()
        else:
            target = outside / (name.replace("/", "_") + "-victim")
            target.write_text("precious\n")
        (out / name.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (out / name.rstrip("/")).symlink_to(target)
        targets[target] = state(target)
    return targets


def state(target: Path) -> str:
    if target.is_dir():
        return ",".join(sorted(p.name for p in target.iterdir()))
    return hashlib.sha256(target.read_bytes()).hexdigest()


def run_and_check(argv: list[str], targets: dict[Path, str], capsys) -> int:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        assert [line for line in err.splitlines() if line.strip()][-1].count(": error: ") == 1
    for target, before in targets.items():
        assert state(target) == before, f"{target} was written through a link"
    return code


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


def test_train(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "run"
    targets = plant(out, ["train.log", "metrics.csv", "checkpoint.pt", "config.json"], outside)
    argv = ["train", "--space", "hybrid-tiny", "--data", "digits", "--epochs", "1",
            "--batch-size", "128", "--sandwich-n", "1", "--recal-batches", "2", "--threads", "1",
            "--no-progress", "--out", str(out)]
    assert run_and_check(argv, targets, capsys) == 2  # train.log is appended: refused


def test_sample(run, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "s"
    targets = plant(out, ["samples.csv", "samples.json"], outside)
    argv = ["sample", "--run", str(run), "--n", "2", "--out", str(out / "samples.csv"),
            "--recal-batches", "1", "--recal-batch-size", "16", "--no-progress"]
    assert run_and_check(argv, targets, capsys) == 2


@pytest.mark.faults
def test_profile(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "lut"
    targets = plant(out, ["lut.csv", "lut.json", ".lut.csv.lock"], outside)
    run_and_check(["profile", "--space", "hybrid-tiny", "--out", str(out / "lut.csv"),
                   *FAST_PROFILE], targets, capsys)


@pytest.mark.faults
def test_search(tmp_path, capsys):
    from nas.sample.fit import fit_predictor
    from tests.test_fit_cli import write_synthetic_samples

    write_synthetic_samples(tmp_path / "samples.csv", n=40)
    fit_predictor(tmp_path / "samples.csv", out=tmp_path / "ridge")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "search"
    targets = plant(out, ["front/", "evaluated.csv", "search.json", "pareto.png"], outside)
    argv = ["search", "--space", "hybrid-tiny", "--predictor", str(tmp_path / "ridge"),
            "--objective", "max:accuracy", "--budget", "20", "--no-progress", "--out", str(out)]
    assert run_and_check(argv, targets, capsys) == 2  # the front folder is a link: refused


@pytest.mark.faults
def test_fit(tmp_path, capsys):
    from tests.test_fit_cli import write_synthetic_samples

    write_synthetic_samples(tmp_path / "samples.csv", n=40)
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "pred"
    targets = plant(out, ["card.json", "model.npz"], outside)
    run_and_check(["fit", "--samples", str(tmp_path / "samples.csv"), "--out", str(out),
                   "--folds", "2"], targets, capsys)


@pytest.mark.parametrize("linked", ["supernet/", "latency/", "predictor/", "search/", "export/"])
def test_nas_run_refuses_a_linked_stage_folder_before_any_work(linked, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "nasrun"
    targets = plant(out, [linked], outside)
    argv = ["run", "--quick", "--epochs", "1", "--n-samples", "4", "--budget", "4",
            "--latency-device", "cpu", "--no-progress", "--out", str(out)]
    assert run_and_check(argv, targets, capsys) == 2
    assert sorted(p.name for p in out.iterdir()) == [linked.strip("/")]  # nothing else written

"""Every file of the hostile corpus (tests/hostile/corpus, made by tests/hostile/make_corpus.py)
loaded through each command that reads its kind: nothing in it runs (its payloads would create
``HOSTILE_RAN`` in the working folder), and each gets exit code 2 with one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nas.cli import main

CORPUS = Path(__file__).parent / "hostile" / "corpus"
MARKER = "HOSTILE_RAN"


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


def with_hostile_checkpoint(run: Path, where: Path) -> Path:
    copy = where / "run"
    shutil.copytree(run, copy)
    shutil.copy(CORPUS / "checkpoint_reduce.pt", copy / "checkpoint.pt")
    return copy


SMALLEST = "smallest"

# name -> (corpus file, argv builder(path, tmp, run), words the line must contain)
CASES = {
    "yaml-apply-spaces": ("space_python_tag.yaml", lambda p, t, r: ["spaces", str(p)], "tag"),
    "yaml-apply-train": ("space_python_tag.yaml", lambda p, t, r: [
        "train", "--space", str(p), "--epochs", "1", "--out", str(t / "o")], "tag"),
    "yaml-name-spaces": ("space_python_name.yaml", lambda p, t, r: ["spaces", str(p)], "tag"),
    "checkpoint-sample": ("checkpoint_reduce.pt", lambda p, t, r: [
        "sample", "--run", str(with_hostile_checkpoint(r, t)), "--n", "1", "--out",
        str(t / "s.csv"), "--no-progress"], "checkpoint"),
    "checkpoint-train-resume": ("checkpoint_reduce.pt", lambda p, t, r: [
        "train", "--resume", "--out", str(with_hostile_checkpoint(r, t)), "--no-progress"],
        "checkpoint"),
    "predictor-npz-search": ("predictor_npz_pickle", lambda p, t, r: [
        "search", "--space", "hybrid-tiny", "--predictor", str(p), "--objective",
        "max:accuracy", "--budget", "10", "--no-progress", "--out", str(t / "o")], "rebuild"),
    "predictor-skops-search": ("predictor_skops_system", lambda p, t, r: [
        "search", "--space", "hybrid-tiny", "--predictor", str(p), "--objective",
        "max:accuracy", "--budget", "10", "--no-progress", "--out", str(t / "o")], "trusted"),
    "cifar-train": ("cifar-10-batches-py", lambda p, t, r: [
        "train", "--space", "hybrid-tiny", "--data", f"cifar10:{p}", "--epochs", "1",
        "--no-progress", "--out", str(t / "o")], "refusing global"),
}


def test_the_corpus_is_complete():
    used = {file for file, _, _ in CASES.values()}
    assert used == {p.name for p in CORPUS.iterdir() if not p.name.startswith(".")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_runs_nothing_and_is_one_line(name, run, tmp_path, monkeypatch, capsys):
    file, argv, word = CASES[name]
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(argv(CORPUS / file, tmp_path, run))
    err = capsys.readouterr().err
    assert not (work / MARKER).exists(), f"{name}: the payload ran"
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert ": error: " in lines[-1] and sum(": error: " in x for x in lines) == 1, err
    assert word in lines[-1].lower(), lines[-1]

"""SIGKILL at seeded points, then the same command again (with --resume where it has one).

For each of ``nas train``, ``profile``, ``sample``, ``search`` and ``run``: :data:`TRIALS` kill
points, half at atomic writes (the checkpoint, the latency table's CSV and sidecar, the search
state; before and after the rename) and half after a random delay within the uninterrupted run's
duration. After the second run: training is bit-identical to the uninterrupted run, the table has
every key once, the samples every subnet once with the uninterrupted run's values, the search the
uninterrupted run's evaluations, and no command left a temporary file, a lock or a worker. The
default suite runs trial 0 of train and search (kept short; ``nas run`` takes minutes a trial, its
resume before the first checkpoint is in tests/test_run_faults.py); ``-m faults`` runs the rest.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.latency.space_units import space_keys
from nas.latency.table import LatencyTable
from nas.sample.store import read_samples
from nas.spaces import load_space
from tests.faults.harness import KillPoint, count_atomic_writes, finish, kill, kill_points

TRIALS = 20
SEED = 15
SPACE = "hybrid-tiny"


def trial_params(command: str, *, in_default: int = 1) -> list:
    """The first ``in_default`` trials in the default suite, the others under ``faults``;
    ``NAS_FAULT_TRIALS_<COMMAND>=N`` skips trials from N on (a shorter run, reported as skipped)."""
    limit = int(os.environ.get(f"NAS_FAULT_TRIALS_{command.upper()}", TRIALS))
    skip = pytest.mark.skip(reason=f"NAS_FAULT_TRIALS_{command.upper()}={limit}")
    return [pytest.param(i, id=f"{command}-{i}",
                         marks=[*([] if i < in_default else [pytest.mark.faults]),
                                *([skip] if i >= limit else [])])
            for i in range(TRIALS)]


def no_leftovers(folder: Path) -> None:
    """No temporary, lock or staging file of a writer is left in ``folder`` (recursively)."""
    left = [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".lock"))
            or p.name.startswith((".staging", ".old-"))]
    assert not left, left


# ----------------------------------------------------------------------------- references
def train_argv(out: Path) -> list[str]:
    return ["train", "--space", SPACE, "--data", "digits", "--epochs", "2", "--batch-size",
            "128", "--sandwich-n", "1", "--recal-batches", "2", "--threads", "1",
            "--no-progress", "--out", str(out)]


def profile_argv(out: Path) -> list[str]:
    return ["profile", "--space", SPACE, "--out", str(out / "lut.csv"), "--no-progress",
            "--calibrate", "3", "--warmup", "1", "--repeats", "2", "--rounds", "1",
            "--min-round-ms", "0", "--min-read-ms", "0"]


def sample_argv(run: Path, out: Path, workers: int = 1) -> list[str]:
    return ["sample", "--run", str(run), "--n", "8", "--out", str(out / "samples.csv"),
            "--recal-batches", "1", "--recal-batch-size", "32", "--no-progress",
            "--workers", str(workers)]


def search_argv(predictor: Path, out: Path) -> list[str]:
    return ["search", "--space", SPACE, "--predictor", str(predictor), "--objective",
            "max:accuracy", "--objective", "min:flops", "--constraint", "flops<=1.2M",
            "--budget", "300", "--population", "10", "--seed", "3", "--no-progress",
            "--out", str(out / "search")]


def run_argv(out: Path) -> list[str]:
    return ["run", "--quick", "--epochs", "1", "--n-samples", "10", "--budget", "20", "--latency-device", "cpu",
            "--out", str(out / "nasrun")]


class Reference:
    """An uninterrupted run of a command: its output folder, duration and atomic writes."""

    def __init__(self, root: Path, argv: Callable[[Path], list[str]]):
        self.out = root / "reference"
        outcome, self.writes = count_atomic_writes(argv(self.out), root / "reference-log")
        self.seconds = outcome.seconds

    def points(self, seed: int, must_hit: tuple[str, ...] = ()) -> list[KillPoint]:
        return kill_points(TRIALS, seconds=self.seconds, writes=self.writes, seed=seed,
                           must_hit=must_hit)


@pytest.fixture(scope="module")
def train_ref(tmp_path_factory) -> Reference:
    return Reference(tmp_path_factory.mktemp("train"), train_argv)


@pytest.fixture(scope="module")
def profile_ref(tmp_path_factory) -> Reference:
    return Reference(tmp_path_factory.mktemp("profile"), profile_argv)


@pytest.fixture(scope="module")
def sample_ref(tmp_path_factory, train_ref) -> Reference:
    run = train_ref.out
    return Reference(tmp_path_factory.mktemp("sample"), lambda out: sample_argv(run, out))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    from nas.sample.fit import fit_predictor
    from tests.test_fit_cli import write_synthetic_samples

    root = tmp_path_factory.mktemp("predictor")
    write_synthetic_samples(root / "samples.csv", n=60)
    fit_predictor(root / "samples.csv", out=root / "ridge")
    return root / "ridge"


@pytest.fixture(scope="module")
def search_ref(tmp_path_factory, predictor) -> Reference:
    return Reference(tmp_path_factory.mktemp("search"), lambda out: search_argv(predictor, out))


@pytest.fixture(scope="module")
def run_ref(tmp_path_factory) -> Reference:
    return Reference(tmp_path_factory.mktemp("nasrun"), run_argv)


# ----------------------------------------------------------------------------- checks
def assert_same_tensors(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


TIME_COLUMNS = ("epoch_s", "epoch_cpu_s", "eval_s", "eval_cpu_s", "seconds")


def training_state(run: Path) -> dict:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    return {k: state[k] for k in ("epoch", "model", "optimizer", "scheduler", "rng")}


def metrics_without_times(run: Path) -> pd.DataFrame:
    frame = pd.read_csv(run / "metrics.csv")
    return frame.drop(columns=[c for c in TIME_COLUMNS if c in frame.columns])


# ----------------------------------------------------------------------------- trials
@pytest.mark.parametrize("trial", trial_params("train"))
def test_train_killed_then_resumed_is_bit_identical(trial, train_ref, tmp_path):
    point = train_ref.points(SEED, must_hit=("checkpoint.pt",))[trial]
    out = tmp_path / "run"
    kill(train_argv(out), tmp_path / "killed", point)
    finish([*train_argv(out), "--resume"], tmp_path / "resumed")
    assert_same_tensors(training_state(train_ref.out), training_state(out), str(point))
    pd.testing.assert_frame_equal(metrics_without_times(train_ref.out),
                                  metrics_without_times(out))
    no_leftovers(out)


@pytest.mark.parametrize("trial", trial_params("profile", in_default=0))
def test_profile_killed_then_rerun_has_every_key_once(trial, profile_ref, tmp_path):
    point = profile_ref.points(SEED + 1, must_hit=("lut.csv", "lut.json"))[trial]
    kill(profile_argv(tmp_path), tmp_path / "killed", point)
    finish(profile_argv(tmp_path), tmp_path / "rerun")
    with (tmp_path / "lut.csv").open() as f:
        keys = [row["key"] for row in csv.DictReader(f)]
    assert len(keys) == len(set(keys)), str(point)
    assert set(keys) == set(space_keys(load_space(SPACE))), str(point)
    table = LatencyTable.load(tmp_path / "lut.csv")
    assert len(table.entries) == len(keys) and table.meta.calibration is not None
    no_leftovers(tmp_path)


def samples_by_id(path: Path) -> dict[str, tuple]:
    rows = read_samples(path).rows
    ids = [r["arch_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a sample row is duplicated"
    return {r["arch_id"]: (r["arch"], r["val_acc"], r["val_loss"], r["flops"]) for r in rows}


@pytest.mark.parametrize("trial", trial_params("sample", in_default=0))
def test_sample_killed_then_rerun_has_every_subnet_once(trial, sample_ref, train_ref, tmp_path):
    point = sample_ref.points(SEED + 2, must_hit=("samples",))[trial]
    workers = 2 if trial % 4 == 1 else 1  # some trials kill a process pool's parent
    argv = sample_argv(train_ref.out, tmp_path, workers)
    killed = kill(argv, tmp_path / "killed", point)
    assert killed.survivors == 0, f"{point}: {killed.survivors} orphaned worker(s)"
    finish(argv, tmp_path / "rerun")
    expected = samples_by_id(sample_ref.out / "samples.csv")
    assert samples_by_id(tmp_path / "samples.csv") == expected, str(point)
    no_leftovers(tmp_path)


@pytest.mark.parametrize("trial", trial_params("search"))
def test_search_killed_then_resumed_equals_the_uninterrupted_one(trial, search_ref, predictor,
                                                                  tmp_path):
    point = search_ref.points(SEED + 3, must_hit=("state.json",))[trial]
    argv = search_argv(predictor, tmp_path)
    kill(argv, tmp_path / "killed", point)
    again = [*argv, "--resume"] if (tmp_path / "search" / "state.json").exists() else argv
    finish(again, tmp_path / "resumed")
    for name in ("evaluated.csv", "front.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(search_ref.out / "search" / name),
                                      pd.read_csv(tmp_path / "search" / name), obj=name)
    no_leftovers(tmp_path / "search")


def exported(run: Path) -> list[str]:
    report = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    folders = sorted(p.name for p in (run / "export").iterdir()) if (run / "export").exists() \
        else []
    return folders or sorted(report.get("exported", []))


def ledger_rounds(run: Path) -> list[str]:
    """The round folders the run's ledger accounts for: those of its exports (a round whose picks
    all met the bound in earlier rounds exports nothing new and has no folder)."""
    rounds = json.loads((run / "stages.json").read_text())["stages"]["export"]["rounds"]
    return sorted({Path(e["folder"]).parts[1] for r in rounds for e in r["exported"]})


@pytest.mark.parametrize("trial", trial_params("run", in_default=0))  # minutes each
def test_nas_run_killed_then_rerun_finishes_like_the_uninterrupted_one(trial, run_ref, tmp_path):
    point = run_ref.points(SEED + 4, must_hit=("checkpoint.pt", ".csv"))[trial]
    argv = run_argv(tmp_path)
    kill(argv, tmp_path / "killed", point)
    finish(argv, tmp_path / "rerun")
    out, ref = tmp_path / "nasrun", run_ref.out / "nasrun"
    assert_same_tensors(training_state(ref / "supernet"), training_state(out / "supernet"),
                        str(point))
    assert samples_by_id(out / "samples.csv") == samples_by_id(ref / "samples.csv")
    # Rounds after round0 exist only where a measured latency broke the bound: wall-clock noise,
    # not resume, decides how many there are. Each run's round folders follow its own ledger.
    assert exported(out)[:2] == exported(ref)[:2] == ["random", "round0"], str(point)
    for run in (out, ref):
        assert exported(run)[1:] == ledger_rounds(run), str(point)
    no_leftovers(out)

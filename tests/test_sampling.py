"""``nas sample``: drawing subnets, measuring them, resuming, refusing foreign files, workers.

One tiny supernet (hybrid-tiny, 1 epoch on a 300-image subset of digits) is trained once per
module; measuring a hybrid-tiny subnet on its 100 validation images takes a fraction of a second.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import costs
from nas.arch import Architecture
from nas.cli import main
from nas.errors import IncompatibleFileError, UserError
from nas.sample import COLUMNS, draw_architectures, read_samples, sample_subnets
from nas.sample import measure as measure_mod
from nas.sample.draw import flops_bins
from nas.sample.measure import EvalSettings, arch_seed
from nas.sample.store import new_sidecar, read_sidecar, sidecar_path, write_sidecar
from nas.spaces import load_space
from nas.train import TrainConfig, evaluate_subnet, load_supernet, train

SPACE = "hybrid-tiny"


def write_digits_npz(path: Path, n_train: int = 300, n_val: int = 100, n_test: int = 100) -> Path:
    """A small, fixed subset of scikit-learn's digits as an .npz data set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 15.9375).astype(np.uint8)
    y = d.target.astype(np.int64)
    a, b = n_train, n_train + n_val
    np.savez(path, x_train=x[:a], y_train=y[:a], x_val=x[a:b], y_val=y[a:b],
             x_test=x[b : b + n_test], y_test=y[b : b + n_test])
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sampling")
    data = "npz:" + str(write_digits_npz(root / "digits.npz"))
    config = TrainConfig(space=SPACE, data=data, epochs=1, batch_size=32, sandwich_n=1, lr=5e-3,
                         threads=1, eval_every=1, recal_batches=2)
    train(config, root / "run", progress=False)
    return root / "run"


def _sample(run_dir: Path, out: Path, n: int = 6, **kw) -> measure_mod.SampleResult:
    kw.setdefault("settings", EvalSettings(recal_batches=2, recal_batch_size=32))
    return sample_subnets(run_dir, out, n=n, progress=False, **kw)


def _content(path: Path) -> dict[str, dict[str, str]]:
    """Rows by arch_id, without the timing column."""
    return {r["arch_id"]: {k: v for k, v in r.items() if k != "seconds"}
            for r in read_samples(path).rows}


@pytest.fixture(scope="module")
def reference(run_dir, tmp_path_factory) -> Path:
    """An uninterrupted 1-worker run of 6 subnets."""
    out = tmp_path_factory.mktemp("ref") / "samples.csv"
    _sample(run_dir, out)
    return out


# ----- drawing -----
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_uniform_draw_is_distinct_valid_seeded_and_extends_as_a_prefix(n, seed):
    space = load_space(SPACE)
    archs = draw_architectures(space, n, seed=seed)
    assert len(archs) == n == len(set(archs))
    assert all(space.contains(a) for a in archs)
    assert draw_architectures(space, n, seed=seed) == archs
    assert draw_architectures(space, n + 5, seed=seed)[:n] == archs


@pytest.mark.parametrize("space_name", ["hybrid-tiny", "hybrid-cifar"])
def test_flops_draw_has_equal_bins_and_both_extremes(space_name):
    space = load_space(space_name)
    archs = draw_architectures(space, 200, strategy="flops", seed=3)
    assert len(set(archs)) == 200
    assert archs[0] == space.largest() and archs[1] == space.smallest()
    counts = np.bincount(flops_bins(space, archs, 10), minlength=10)
    # Equal shares (20 each), except where a bin of the space holds fewer distinct subnets.
    assert counts.sum() == 200 and counts.max() - np.median(counts) <= 1, counts
    assert draw_architectures(space, 200, strategy="flops", seed=3) == archs
    uniform = np.bincount(flops_bins(space, draw_architectures(space, 200, seed=3), 10),
                          minlength=10)
    assert counts.min() > uniform.min()  # the tails uniform sampling misses are covered


def test_draw_refuses_impossible_requests():
    space = load_space(SPACE)
    with pytest.raises(UserError, match="only 6720 distinct"):
        draw_architectures(space, 6721)
    with pytest.raises(UserError, match="expected one of"):
        draw_architectures(space, 5, strategy="nope")
    with pytest.raises(UserError, match="n >= 2"):
        draw_architectures(space, 1, strategy="flops")


def test_arch_seed_depends_on_the_arch_and_base_only():
    assert arch_seed("abc", 0) == arch_seed("abc", 0)
    assert len({arch_seed("abc", 0), arch_seed("abd", 0), arch_seed("abc", 1)}) == 3


# ----- measuring -----
def test_sample_writes_every_column_with_exact_costs_and_validation_metrics(
    run_dir, reference, monkeypatch
):
    rows = read_samples(reference).rows
    with open(reference, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert len(rows) == 6 and len({r["arch_id"] for r in rows}) == 6
    space = load_space(SPACE)
    run = load_supernet(run_dir)
    expected = draw_architectures(space, 6, seed=0)
    assert [r["arch_id"] for r in rows] == [a.arch_id() for a in expected]  # 1 worker: in order
    for row, arch in zip(rows, expected):
        assert Architecture.from_json(row["arch_json"]) == arch
        assert Architecture.from_str(row["arch"]) == arch
        c = costs.costs(space, arch)
        assert (int(row["macs"]), int(row["flops"]), int(row["params"]), int(row["memory"])) == (
            c.macs, c.flops, c.params, c.peak_memory_bytes)
        assert row["latency_ms"] == ""
        # The same numbers evaluate_subnet gives on the validation split with this arch's seed.
        again = evaluate_subnet(run.supernet, arch, run.splits, split="val", recal_batches=2,
                                recal_batch_size=32, seed=arch_seed(arch.arch_id(), 0))
        assert float(row["val_acc"]) == again["acc"] and float(row["val_loss"]) == again["loss"]
        assert float(row["seconds"]) > 0
    meta = read_sidecar(reference)
    assert meta["space"]["hash"] == space.hash()
    assert meta["evaluation"]["split"] == "val"
    assert meta["run"]["epoch"] == 1


def test_sample_never_evaluates_on_the_test_split(run_dir, tmp_path, monkeypatch):
    import nas.train.evaluate as ev

    seen = []
    real = ev.evaluate_subnet

    def spy(*args, **kwargs):
        seen.append(kwargs.get("split"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "evaluate_subnet", spy)
    _sample(run_dir, tmp_path / "s.csv", n=2)
    assert seen == ["val", "val"]


def test_interrupted_run_resumes_without_loss_or_duplicates(run_dir, reference, tmp_path,
                                                            monkeypatch):
    out = tmp_path / "samples.csv"
    real_call = measure_mod.SubnetEvaluator.__call__
    calls = []

    def dies_at_the_fourth(self, arch):
        calls.append(arch)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C while the 4th subnet is being measured
        return real_call(self, arch)

    monkeypatch.setattr(measure_mod.SubnetEvaluator, "__call__", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        _sample(run_dir, out)
    monkeypatch.undo()
    assert len(read_samples(out).rows) == 3  # the three finished rows are on disk
    result = _sample(run_dir, out)
    assert (result.measured, result.skipped, result.total_rows) == (3, 3, 6)
    assert _content(out) == _content(reference)


def test_a_partial_last_row_from_a_crash_is_dropped_and_remeasured(run_dir, reference, tmp_path):
    out = tmp_path / "samples.csv"
    shutil.copy(reference, out)
    shutil.copy(sidecar_path(reference), sidecar_path(out))
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # header + 3 + half a row
    with pytest.warns(UserWarning, match="partial last row"):
        result = _sample(run_dir, out)
    assert (result.measured, result.total_rows) == (3, 6)
    assert _content(out) == _content(reference)
    # A complete file: a rerun measures nothing.
    again = _sample(run_dir, out)
    assert (again.measured, again.skipped, again.total_rows) == (0, 6, 6)


def test_two_local_workers_write_the_same_content_as_one(run_dir, reference, tmp_path):
    out = tmp_path / "samples.csv"
    result = _sample(run_dir, out, workers=2)
    assert result.measured == 6
    assert _content(out) == _content(reference)


def test_foreign_or_unlabelled_files_are_refused(run_dir, reference, tmp_path):
    # Another space.
    out = tmp_path / "other.csv"
    shutil.copy(reference, out)
    write_sidecar(out, new_sidecar(load_space("hybrid-cifar"), run={}, evaluation={},
                                   latency_table=None, draws=[]))
    with pytest.raises(IncompatibleFileError, match="space"):
        _sample(run_dir, out)
    # The same space, another supernet (checkpoint).
    meta = json.loads(sidecar_path(reference).read_text())
    meta["run"]["checkpoint_sha256"] = "0" * 64
    write_sidecar(out, meta)
    with pytest.raises(IncompatibleFileError, match="checkpoint_sha256"):
        _sample(run_dir, out)
    # Other evaluation settings.
    shutil.copy(sidecar_path(reference), sidecar_path(out))
    with pytest.raises(IncompatibleFileError, match="recal_batches"):
        _sample(run_dir, out, settings=EvalSettings(recal_batches=3, recal_batch_size=32))
    # No sidecar at all.
    sidecar_path(out).unlink()
    with pytest.raises(IncompatibleFileError, match="without its sidecar"):
        _sample(run_dir, out)
    # A CSV that is not a samples file.
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    shutil.copy(sidecar_path(reference), sidecar_path(bad))
    with pytest.raises(IncompatibleFileError, match="columns"):
        _sample(run_dir, bad)


def test_cli_samples_and_reports_foreign_files_in_one_line(run_dir, reference, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    argv = ["sample", "--run", str(run_dir), "--n", "3", "--out", str(out), "--no-progress",
            "--recal-batches", "2", "--recal-batch-size", "32"]
    assert main(argv) == 0
    assert "measured 3" in capsys.readouterr().out
    rows = _content(out)
    assert rows.items() <= _content(reference).items()  # the first 3 of the same seeded list
    meta = json.loads(sidecar_path(out).read_text())
    meta["space"]["hash"] = "f" * 16
    sidecar_path(out).write_text(json.dumps(meta))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas sample: error:") and "space" in err and len(err.splitlines()) == 1


def _fake_table(space, archs, path: Path, per_unit: float = 0.01):
    from nas.latency.table import LatencyTable, TableEntry, TableMeta
    from nas.units import arch_keys

    meta = TableMeta.for_this_machine(device="cpu", runtime="torch", threads=1, batch=1,
                                      dtype="float32", space_name=space.name,
                                      space_hash=space.hash(), protocol={})
    keys = {k for a in archs for k in arch_keys(space, a)}
    table = LatencyTable(meta, {k: TableEntry(per_unit, 0.0, per_unit * (1 + len(k) % 3), 10)
                                for k in keys})
    table.save(path)
    return LatencyTable.load(path)


def test_latency_from_a_table_and_missing_keys_refused_before_measuring(run_dir, tmp_path):
    from nas.latency.table import MissingKeysError
    from nas.units import arch_keys

    space = load_space(SPACE)
    archs = draw_architectures(space, 4, seed=0)
    table = _fake_table(space, archs, tmp_path / "lut.csv")
    out = tmp_path / "lat.csv"
    _sample(run_dir, out, n=4, lut=tmp_path / "lut.csv")
    for row, arch in zip(read_samples(out).rows, archs):
        assert float(row["latency_ms"]) == pytest.approx(
            table.predict_from_keys([arch_keys(space, arch)])[0], rel=1e-12)
    assert read_sidecar(out)["latency_table"]["device"] == "cpu"
    # Resuming without the table (or with another) mixes nothing.
    with pytest.raises(IncompatibleFileError, match="latency_table"):
        _sample(run_dir, out, n=4)
    # More subnets than the table covers: refused before anything is measured.
    with pytest.raises(MissingKeysError):
        _sample(run_dir, tmp_path / "more.csv", n=30, lut=tmp_path / "lut.csv")
    assert not (tmp_path / "more.csv").exists()


@pytest.mark.long
def test_ray_tasks_write_the_same_content_as_one_worker(run_dir, reference, tmp_path,
                                                        monkeypatch):
    pytest.importorskip("ray")
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "ray.csv"
    result = _sample(run_dir, out, workers=2, ray_address="local")
    assert result.measured == 6
    assert _content(out) == _content(reference)

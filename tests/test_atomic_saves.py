"""Saves that must not lose data when killed: temporary files, symlinks at the destination, the
latency table's CSV + JSON pair, a predictor's payloads + card, and what ``nas export --force`` may
replace. A kill is simulated by making the next write raise (``KeyboardInterrupt``, as a signal
would) or by leaving behind what a SIGKILL leaves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nas.io
import nas.latency.table as table_module
import predictors.persistence as persistence
from nas.errors import IncompatibleFileError, UserError
from nas.export import pipeline
from nas.io import atomic_write, atomic_write_json, atomic_write_text, remove_stale_temporaries
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol
from predictors import GBMPredictor, RidgeOneHot, load_predictor, read_card, save_predictor
from predictors.persistence import CARD_FILE


class Killed(BaseException):
    """What a simulated kill raises (not an Exception: no handler may swallow it)."""


def _kill(*_args, **_kwargs):
    raise Killed


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) with its content, or ``<dir>``/``<link>``."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"<link {os.readlink(path)}>"
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = path.read_bytes().hex()
    return out


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----- nas.io: temporary files and symlinks -----
def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "f.txt", "old")

    def half_then_kill(f) -> None:
        f.write(b"new, but only ha")
        raise Killed

    with pytest.raises(Killed):
        atomic_write(path, half_then_kill)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / f".checkpoint.pt.{_dead_pid()}-abc123.tmp"
    alive = tmp_path / f".checkpoint.pt.{os.getppid()}-def456.tmp"  # a writer still running
    other = tmp_path / f".other.pt.{_dead_pid()}-abc123.tmp"  # another file's: not ours to judge
    mine = tmp_path / "notes.tmp"
    for path in (dead, alive, other, mine):
        path.write_bytes(b"")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert not dead.exists() and alive.exists() and other.exists() and mine.exists()
    assert remove_stale_temporaries(tmp_path / "other.pt") == [other]


def test_temporary_names_are_unique_and_in_the_target_folder(tmp_path: Path, monkeypatch) -> None:
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src))
        real(src, dst)

    monkeypatch.setattr(nas.io.os, "replace", spy)
    for _ in range(3):
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert len(set(seen)) == 3 and all(p.parent == tmp_path for p in seen)
    assert all(p.name.startswith(f".a.json.{os.getpid()}-") for p in seen)


def test_a_symlink_at_the_destination_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.csv").symlink_to(outside)
    atomic_write_text(out / "table.csv", "ours")
    assert outside.read_text() == "precious"
    assert not (out / "table.csv").is_symlink() and (out / "table.csv").read_text() == "ours"


# ----- the latency table: CSV + JSON sidecar, atomic as a pair -----
def _meta() -> TableMeta:
    protocol = TimingProtocol(warmup=1, repeats=3, rounds=2, min_time_per_round=0)
    return TableMeta.for_protocol(
        protocol, batch=1, dtype="float32", space_name="tiny", space_hash="abc123"
    )


def _table(entries: dict[str, float]) -> LatencyTable:
    return LatencyTable(_meta(), {k: TableEntry(v, 0.0, v, 10) for k, v in entries.items()})


def test_table_killed_between_csv_and_json_loads_the_previous_pair(
    tmp_path: Path, monkeypatch
) -> None:
    path = _table({"a": 1.0}).save(tmp_path / "t.csv")
    monkeypatch.setattr(table_module, "atomic_write_json", _kill)  # the JSON goes last
    for _ in range(2):  # killed twice: the second save must not lose the good pair either
        with pytest.raises(Killed):
            _table({"a": 1.0, "b": 2.0, "c": 3.0}).save(path)
        assert "b," in path.read_text()  # the new CSV is in place, the old JSON beside it
        assert LatencyTable.load(path).entries == _table({"a": 1.0}).entries
    monkeypatch.undo()
    resumed = LatencyTable.load_or_create(path, _meta())  # what nas profile does
    assert resumed.keys() == ["a"]
    resumed.record("d", TableEntry(4.0, 0.0, 4.0, 10))
    resumed.save(path)
    assert sorted(LatencyTable.load(path).keys()) == ["a", "d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]  # no .prev left


def test_first_table_save_killed_between_files_resumes_empty(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t.csv"
    writes = []

    def second_write_killed(real):
        def write(*args, **kwargs):
            writes.append(args[0])
            if len(writes) == 2:
                raise Killed
            return real(*args, **kwargs)

        return write

    for name in ("atomic_write_text", "atomic_write_json"):
        monkeypatch.setattr(table_module, name, second_write_killed(getattr(table_module, name)))
    with pytest.raises(Killed):
        _table({"a": 1.0}).save(path)
    monkeypatch.undo()
    with pytest.raises(UserError, match="not found"):
        LatencyTable.load(path)
    assert len(LatencyTable.load_or_create(path, _meta())) == 0  # no table yet: start afresh
    _table({"a": 1.0}).save(path)
    assert LatencyTable.load(path).keys() == ["a"]


def test_table_of_an_older_save_without_csv_hash_still_loads_and_recovers(
    tmp_path: Path, monkeypatch
) -> None:
    path = _table({"a": 1.0}).save(tmp_path / "t.csv")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    del sidecar["csv_sha256"]  # what saves before this change wrote
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    assert LatencyTable.load(path).keys() == ["a"]
    monkeypatch.setattr(table_module, "atomic_write_json", _kill)
    with pytest.raises(Killed):
        _table({"a": 1.0, "b": 2.0}).save(path)
    assert LatencyTable.load(path).keys() == ["a"]


def test_table_csv_edited_behind_the_sidecar_is_refused(tmp_path: Path) -> None:
    path = _table({"a": 1.0, "b": 2.0}).save(tmp_path / "t.csv")
    path.write_text(path.read_text().replace("2.0", "0.5"))  # same count, other values
    with pytest.raises(IncompatibleFileError, match="SHA-256 its sidecar records"):
        LatencyTable.load(path)


# ----- a predictor folder: payloads + card, atomic as a set -----
def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).random((40, 4))
    return X, X @ np.array([1.0, 2.0, 3.0, 4.0]) + seed


def _card(X: np.ndarray) -> dict:
    return {"space_hash": "s", "feature_names": [f"f{i}" for i in range(X.shape[1])]}


@pytest.mark.parametrize("new_model", ["ridge", "gbm"])
def test_predictor_save_killed_before_its_card_keeps_the_old_predictor(
    tmp_path: Path, monkeypatch, new_model: str
) -> None:
    X, y = _data(0)
    old = RidgeOneHot().fit(X, y)
    save_predictor(old, tmp_path / "p", _card(X))
    X2, y2 = _data(1)
    new = (RidgeOneHot() if new_model == "ridge" else GBMPredictor(n_estimators=5)).fit(X2, y2)
    monkeypatch.setattr(persistence, "atomic_write_json", _kill)  # payloads written, card not
    with pytest.raises(Killed):
        save_predictor(new, tmp_path / "p", _card(X2))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_predictor(tmp_path / "p").predict(X), old.predict(X))
    save_predictor(new, tmp_path / "p", _card(X2))  # the next save completes and tidies up
    np.testing.assert_array_equal(load_predictor(tmp_path / "p").predict(X), new.predict(X))
    listed = set(read_card(tmp_path / "p")["files"])
    assert {p.name for p in (tmp_path / "p").iterdir()} == {CARD_FILE, *listed}


def test_predictor_resaves_alternate_payload_names(tmp_path: Path) -> None:
    X, y = _data(0)
    names = []
    for _ in range(3):
        save_predictor(RidgeOneHot().fit(X, y), tmp_path / "p", _card(X))
        names.append(sorted(read_card(tmp_path / "p")["files"]))
        assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [CARD_FILE, *names[-1]]
    assert names == [["model.npz"], ["model-b.npz"], ["model.npz"]]


# ----- nas export --out: what --force may replace -----
def _fake_export(folder: Path, payload: str = "weights") -> Path:
    """A folder shaped like an export's output (card, manifest, one listed file)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_text(payload)
    files = {"onnx": {"path": "model.onnx"}}
    (folder / "manifest.json").write_text(json.dumps({"files": files}))
    (folder / "model_card.json").write_text(
        json.dumps({"card_version": 1, "files": {**files, "manifest": {"path": "manifest.json"}}})
    )
    (folder / "MODEL_CARD.md").write_text("# card\n")
    return folder


def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"format": "nas-train-run"}))
    (folder / "checkpoint.pt").write_bytes(b"weights")
    return folder


def test_check_out_dir_refuses_run_folders_and_foreign_folders(tmp_path: Path, monkeypatch) -> None:
    run = _fake_run(tmp_path / "work" / "run")
    (tmp_path / "work" / "samples.csv").write_text("arch_id\n")
    (tmp_path / "cwd" / "below").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "below")
    before = _tree(tmp_path)
    cases = {
        run: "is the training run folder",
        run / "exports" / "x": "is inside the training run folder",
        run.parent: "not an earlier 'nas export' output",
        Path(".."): "is the current folder or holds it",
        Path("."): "is the current folder or holds it",
    }
    for out, message in cases.items():
        for force in (False, True):
            with pytest.raises(UserError, match=message):
                pipeline._check_out_dir(out, force)
    assert _tree(tmp_path) == before


def test_check_out_dir_accepts_an_earlier_export_and_nas_run_exports(tmp_path: Path) -> None:
    earlier = _fake_export(tmp_path / "out")
    with pytest.raises(UserError, match=r"holds an earlier export.*--force"):
        pipeline._check_out_dir(earlier, False)
    pipeline._check_out_dir(earlier, True)
    root = tmp_path / "nas-run"  # nas run: <root>/supernet is the run, exports go to <root>/export
    _fake_run(root / "supernet")
    pipeline._check_out_dir(root / "export" / "round0" / "0123456789ab", True)
    _fake_export(root / "export" / "round0" / "0123456789ab")
    pipeline._check_out_dir(root / "export" / "round0" / "0123456789ab", True)


@pytest.mark.parametrize("extra", ["notes.txt", "sub/", ".hidden", "link"])
def test_check_out_dir_refuses_an_export_holding_anything_else(tmp_path: Path, extra: str) -> None:
    out = _fake_export(tmp_path / "out")
    if extra == "link":
        (out / "model.onnx").unlink()
        (out / "model.onnx").symlink_to(tmp_path / "elsewhere")
    elif extra.endswith("/"):
        (out / extra).mkdir()
    else:
        (out / extra).write_text("mine")
    with pytest.raises(UserError, match="not an earlier 'nas export' output"):
        pipeline._check_out_dir(out, True)


def test_publish_replaces_an_earlier_export_and_leaves_no_old_folder(tmp_path: Path) -> None:
    out = _fake_export(tmp_path / "out", "old")
    staging = _fake_export(tmp_path / ".out.staging-1", "new")
    pipeline._publish(staging, out, overwrite=True)
    assert (out / "model.onnx").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_publish_puts_the_earlier_export_back_when_the_rename_fails(
    tmp_path: Path, monkeypatch
) -> None:
    out = _fake_export(tmp_path / "out", "old")
    staging = _fake_export(tmp_path / ".out.staging-1", "new")
    real = os.replace

    def fail_on_staging(src, dst):
        if Path(src) == staging:
            raise OSError("simulated: no space left on device")
        real(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", fail_on_staging)
    with pytest.raises(OSError, match="simulated"):
        pipeline._publish(staging, out, overwrite=True)
    assert (out / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.staging-1", "out"]


def test_publish_refuses_an_out_that_became_foreign_meanwhile(tmp_path: Path) -> None:
    out = _fake_export(tmp_path / "out", "old")
    staging = _fake_export(tmp_path / ".out.staging-1", "new")
    (out / "added-while-exporting.txt").write_text("mine")
    before = _tree(out)
    with pytest.raises(UserError, match="added-while-exporting"):
        pipeline._publish(staging, out, overwrite=True)
    assert _tree(out) == before
    assert not [p for p in tmp_path.iterdir() if ".old-" in p.name]


def test_meta_roundtrip_unchanged_by_the_pair_fields(tmp_path: Path) -> None:
    path = _table({"a": 1.0}).save(tmp_path / "t.csv")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["n_entries"] == 1 and len(sidecar["csv_sha256"]) == 64
    assert replace(LatencyTable.load(path).meta, updated=None) == replace(_meta(), updated=None)

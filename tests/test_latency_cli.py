"""``nas profile`` and ``nas latency``: files, resume, merge, refusals, validation end to end."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.latency import profiling, timing
from nas.latency.space_profile import profile_space, protocol_for, quiet_onnx_export
from nas.latency.space_units import space_keys, unit_builders
from nas.latency.table import LatencyTable
from nas.latency.validate import validate_table
from nas.spaces import load_space
from nas.units import arch_keys

TINY = load_space("hybrid-tiny")
FAST = ["--warmup", "1", "--repeats", "2", "--rounds", "1", "--min-round-ms", "0",
        "--min-read-ms", "0"]
FAST_PROTOCOL = protocol_for("cpu", warmup=1, repeats=2, rounds=1, min_time_per_round=0,
                             min_time_per_read=0)


def profile(out: Path, *extra: str) -> int:
    return main(["profile", "--space", "hybrid-tiny", "--out", str(out), "--no-progress",
                 "--calibrate", "6", *FAST, *extra])


@pytest.fixture(scope="module")
def full_table(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lut") / "tiny.csv"
    assert profile(out) == 0
    return out


def test_profile_writes_csv_and_sidecar(full_table: Path, capsys) -> None:
    rows = list(csv.reader(full_table.open()))
    assert rows[0] == ["key", "mean_ms", "std_ms", "median_ms", "count"]
    assert sorted(r[0] for r in rows[1:]) == sorted(space_keys(TINY))
    assert all(float(r[3]) > 0 and int(r[4]) >= 2 for r in rows[1:])
    meta = json.loads(full_table.with_suffix(".json").read_text())
    assert meta["space_hash"] == TINY.hash() and meta["space_name"] == "hybrid-tiny"
    assert meta["device"] == "cpu" and meta["runtime"] == "torch"
    assert meta["threads"] == 1 and meta["batch"] == 1 and meta["dtype"] == "float32"
    assert meta["protocol"]["repeats"] == 2 and meta["protocol"]["rounds"] == 1
    assert meta["calibration"]["n_fit"] == 6
    cal_set = meta["notes"]["calibration_set"]
    assert len(cal_set["archs"]) == 6 and len(cal_set["measured_ms"]) == 6
    assert cal_set["chosen"] in cal_set["loo_rms_relative_error"] or cal_set["chosen"] == "scale"
    # a complete, calibrated table: rerunning measures nothing
    assert profile(full_table) == 0
    assert "0 measured now, 86 already there" in capsys.readouterr().out


def test_profile_announces_count_and_estimate(tmp_path: Path, capsys) -> None:
    table = LatencyTable.load(_copy(_full(tmp_path), tmp_path / "part.csv"))
    table.entries = dict(list(table.entries.items())[:50])
    table.save(tmp_path / "part.csv")
    assert profile(tmp_path / "part.csv", "--calibrate", "0") == 0
    err = capsys.readouterr().err
    assert "86 unit entries, 50 already measured, 36 to measure" in err
    assert "estimated" in err


def _full(tmp_path: Path) -> Path:
    out = tmp_path / "src" / "tiny.csv"
    profile_space(TINY, out, FAST_PROTOCOL, calibrate=0, progress=False, say=lambda _: None)
    return out


def _copy(src: Path, dst: Path) -> Path:
    LatencyTable.load(src).save(dst)
    return dst


def test_interrupted_profile_resumes(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "tiny.csv"
    calls = {"n": 0}
    real = profiling.measure_many

    def interrupt_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(profiling, "measure_many", interrupt_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        profile_space(TINY, out, FAST_PROTOCOL, calibrate=0, chunk_size=16, save_every_s=0,
                      progress=False, say=lambda _: None)
    partial = LatencyTable.load(out)
    assert len(partial) == 32  # two chunks were saved before the interruption
    monkeypatch.setattr(profiling, "measure_many", real)
    result = profile_space(TINY, out, FAST_PROTOCOL, calibrate=0, progress=False,
                           say=lambda _: None)
    assert (result.already, result.measured) == (32, 86 - 32)
    done = LatencyTable.load(out)
    assert sorted(done.keys()) == sorted(space_keys(TINY))
    assert all(done.entries[k] == partial.entries[k] for k in partial.keys())


def test_profile_killed_between_csv_and_sidecar_resumes(tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    """A kill after a save replaced the CSV and before its JSON: the previous pair still loads
    and ``nas profile`` resumes from it (it used to refuse the pair forever)."""
    from nas.latency import table as table_module

    out = tmp_path / "tiny.csv"
    writes = {"n": 0}
    real = table_module.atomic_write_json

    def killed_at_second_sidecar(*args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 2:  # the second chunk's save: its CSV is written, its JSON is not
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(table_module, "atomic_write_json", killed_at_second_sidecar)
    with pytest.raises(KeyboardInterrupt):
        profile_space(TINY, out, FAST_PROTOCOL, calibrate=0, chunk_size=16, save_every_s=0,
                      progress=False, say=lambda _: None)
    monkeypatch.undo()
    assert len(list(csv.reader(out.open()))) == 1 + 32  # the new CSV is in place
    assert len(LatencyTable.load(out)) == 16  # the pair its JSON describes: the first chunk
    capsys.readouterr()
    assert profile(out, "--calibrate", "0") == 0
    assert "70 measured now, 16 already there" in capsys.readouterr().out
    assert sorted(LatencyTable.load(out).keys()) == sorted(space_keys(TINY))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.csv", "tiny.json"]


def test_merge_partial_tables_and_refit_calibration(full_table: Path, tmp_path: Path,
                                                    capsys) -> None:
    full = LatencyTable.load(full_table)
    keys = sorted(full.keys())
    a, b = LatencyTable(full.meta, {}), LatencyTable(replace(full.meta, notes={}), {})
    a.entries = {k: full.entries[k] for k in keys[:50]}
    b.entries = {k: full.entries[k] for k in keys[40:]}
    a.save(tmp_path / "a.csv")
    b.save(tmp_path / "b.csv")
    out = tmp_path / "merged.csv"
    assert main(["latency", "merge", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                 "--out", str(out), "--space", "hybrid-tiny"]) == 0
    assert "calibration re-fitted" in capsys.readouterr().out
    merged = LatencyTable.load(out)
    assert sorted(merged.keys()) == keys
    assert all(merged.entries[k].median_ms == full.entries[k].median_ms for k in keys)
    both = set(keys[40:50])  # measured in both: the counts add up
    assert all(merged.entries[k].count == 2 * full.entries[k].count for k in both)
    assert merged.calibration is not None
    assert merged.calibration.coef == pytest.approx(full.calibration.coef)
    # without the space, the calibration is dropped rather than kept stale
    assert main(["latency", "merge", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                 "--out", str(tmp_path / "m2.csv")]) == 0
    assert LatencyTable.load(tmp_path / "m2.csv").calibration is None


def test_metadata_mismatch_is_refused(full_table: Path, tmp_path: Path, capsys) -> None:
    path = _copy(full_table, tmp_path / "t.csv")
    assert profile(path, "--batch", "2") == 2
    err = capsys.readouterr().err
    assert "measured differently" in err and "batch" in err
    other = tmp_path / "other.csv"
    meta = LatencyTable.load(path).meta
    LatencyTable(replace(meta, threads=2), {}).save(other)
    assert main(["latency", "merge", str(path), str(other), "--out",
                 str(tmp_path / "m.csv")]) == 2
    assert "threads" in capsys.readouterr().err
    assert main(["latency", "validate", "--space", "hybrid-cifar", "--table", str(path),
                 "--n", "2"]) == 2
    assert "hash" in capsys.readouterr().err


def test_predict_names_missing_keys(full_table: Path, tmp_path: Path, capsys) -> None:
    arch = TINY.sample(np.random.default_rng(5))
    assert main(["latency", "predict", "--space", "hybrid-tiny", "--table", str(full_table),
                 arch.to_str()]) == 0
    assert arch.to_str() in capsys.readouterr().out
    table = LatencyTable.load(full_table)
    gone = arch_keys(TINY, arch)[1]
    del table.entries[gone]
    table.save(tmp_path / "holes.csv")
    assert main(["latency", "predict", "--space", "hybrid-tiny", "--table",
                 str(tmp_path / "holes.csv"), arch.to_str()]) == 2
    assert gone in capsys.readouterr().err


def test_validate_end_to_end(full_table: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.md"
    assert main(["latency", "validate", "--space", "hybrid-tiny", "--table", str(full_table),
                 "--n", "6", "--repeat-subset", "3", "--out", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "within +/-10%" in out and "device repeatability" in out
    text = report.read_text()
    assert text.splitlines()[2].startswith("Reproduce: `nas latency validate --space hybrid-tiny")
    assert "device repeatability" in text and "Kendall tau" in text
    png = report.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(report.with_suffix(".csv").open()))
    assert len(rows) == 6 and sum(bool(r["measured_again_ms"]) for r in rows) == 3
    cal_ids = set(json.loads(full_table.with_suffix(".json").read_text())["notes"]
                  ["calibration_set"]["arch_ids"])
    assert not cal_ids & {r["arch_id"] for r in rows}


def test_validate_metrics_are_computed_from_the_measurements(full_table: Path) -> None:
    result = validate_table(TINY, full_table, n=5, repeat_subset=2, seed=3, progress=False,
                            say=lambda _: None)
    rel = np.abs(result.predicted - result.measured) / result.measured
    assert result.metrics["median_ape_pct"] == pytest.approx(100 * np.median(rel))
    assert result.metrics["within10_pct"] == pytest.approx(100 * np.mean(rel <= 0.1))
    assert result.measured_again.shape == (2,)
    assert np.all(result.measured > 0)


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_onnxruntime_runs_every_unit_kind(tmp_path: Path) -> None:
    """Every unit kind exports to ONNX and runs in ONNX Runtime (one key per kind)."""
    builders = unit_builders(TINY)
    by_kind = {}
    for key in builders:
        by_kind.setdefault(key.split(":")[0], key)
    protocol = replace(FAST_PROTOCOL, runtime="onnxruntime")
    table = LatencyTable.load_or_create(tmp_path / "ort.csv", _meta(protocol))
    with quiet_onnx_export():
        profiling.fill_missing(table, {k: builders[k] for k in by_kind.values()},
                               tmp_path / "ort.csv", protocol, rng=np.random.default_rng(0))
    assert sorted(LatencyTable.load(tmp_path / "ort.csv").keys()) == sorted(by_kind.values())


def _meta(protocol: timing.TimingProtocol):
    from nas.latency.table import TableMeta

    return TableMeta.for_protocol(protocol, batch=1, dtype="float32", space_name=TINY.name,
                                  space_hash=TINY.hash())


def test_bad_device_is_one_clear_line(tmp_path: Path, capsys) -> None:
    assert profile(tmp_path / "x.csv", "--device", "tpu") == 2
    assert "expected 'cpu', 'cuda' or 'cuda:N', onnxruntime or torchscript" in capsys.readouterr().err


@pytest.mark.long
def test_profile_on_a_ray_node_with_a_custom_resource(tmp_path: Path, monkeypatch) -> None:
    import secrets

    from nas.distributed import ray_session

    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "remote.csv"
    with ray_session(None, num_cpus=1, resources={"nas_test_cpu": 1}):
        result = profile_space(TINY, out, FAST_PROTOCOL, calibrate=4, ray_address="auto",
                               resource="nas_test_cpu", progress=False, say=lambda _: None)
    table = LatencyTable.load(out)
    assert sorted(table.keys()) == sorted(space_keys(TINY))
    assert table.calibration is not None and result.measured == 86


def test_validate_refuses_an_out_that_would_overwrite_the_table(full_table: Path, tmp_path: Path,
                                                                capsys) -> None:
    before = full_table.read_bytes()
    out = full_table.with_suffix(".md")  # its networks CSV would be the table's own file
    assert main(["latency", "validate", "--space", "hybrid-tiny", "--table", str(full_table),
                 "--n", "3", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would overwrite" in err[0] and full_table.name in err[0]
    assert full_table.read_bytes() == before and not out.exists()

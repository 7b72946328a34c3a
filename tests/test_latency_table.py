"""Latency table: CSV + JSON round trip, lookup errors, merge, metadata checks, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.errors import IncompatibleFileError, UserError
from nas.latency.calibration import Calibration
from nas.latency.profiling import fill_missing
from nas.latency.table import LatencyTable, MissingKeysError, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol

PROTOCOL = TimingProtocol(warmup=1, repeats=3, rounds=2, min_time_per_round=0)


def meta(**changes: object) -> TableMeta:
    base = TableMeta.for_protocol(
        PROTOCOL, batch=1, dtype="float32", space_name="tiny", space_hash="abc123"
    )
    return replace(base, **changes)


def table(entries: dict[str, float], **changes: object) -> LatencyTable:
    return LatencyTable(
        meta(**changes), {k: TableEntry(v * 1.1, v / 10, v, 100) for k, v in entries.items()}
    )


def test_round_trip_csv_and_json(tmp_path: Path) -> None:
    t = table({"stem|r32": 0.5, 'conv,k3 "q"|c16': 0.25, "head": 0.125})
    t.set_calibration(Calibration(("lut_sum", "n_units"), (1.1, 0.01), 0.2, n_fit=20))
    path = t.save(tmp_path / "cpu.csv")
    assert path.is_file() and (tmp_path / "cpu.json").is_file()
    back = LatencyTable.load(path)
    assert back.entries == t.entries
    assert back.meta == t.meta
    assert LatencyTable.load(tmp_path / "cpu.json").entries == t.entries  # either file works
    header = path.read_text().splitlines()[0]
    assert header == "key,mean_ms,std_ms,median_ms,count"
    sidecar = json.loads((tmp_path / "cpu.json").read_text())
    for field in (
        "device",
        "processor",
        "runtime",
        "versions",
        "threads",
        "batch",
        "dtype",
        "space_name",
        "space_hash",
        "created",
        "protocol",
        "calibration",
    ):
        assert field in sidecar
    assert sidecar["versions"]["torch"] == torch.__version__


keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda k: k == k.strip())
values = st.floats(min_value=1e-6, max_value=1e4, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=8))
def test_round_trip_any_keys_and_values(tmp_path_factory: pytest.TempPathFactory, d: dict) -> None:
    path = tmp_path_factory.mktemp("t") / "t.csv"
    t = table(d)
    t.save(path)
    assert LatencyTable.load(path).entries == t.entries


def test_lookup_names_missing_keys() -> None:
    t = table({"a": 1.0, "b": 2.0})
    np.testing.assert_array_equal(t.lookup(["b", "a", "b"]), [2.0, 1.0, 2.0])
    wanted = ["a", *[f"missing{i}" for i in range(8)]]
    with pytest.raises(MissingKeysError) as info:
        t.lookup(wanted)
    message = str(info.value)
    assert "8 key(s)" in message and "'missing0'" in message and "and 3 more" in message
    assert info.value.keys == [f"missing{i}" for i in range(8)]
    assert isinstance(info.value, UserError)


def test_predict_sums_units_and_applies_calibration() -> None:
    t = table({"stem": 1.0, "l1": 2.0, "l2": 3.0, "head": 0.5})
    archs = [["stem", "l1", "head"], ["stem", "l1", "l2", "l2", "head"]]
    np.testing.assert_allclose(t.predict_from_keys(archs), [3.5, 9.5])
    t.set_calibration(Calibration(("lut_sum", "n_units"), (2.0, 0.1), 1.0, n_fit=20))
    np.testing.assert_allclose(t.predict_from_keys(archs), [2 * 3.5 + 0.3 + 1, 2 * 9.5 + 0.5 + 1])
    with pytest.raises(MissingKeysError, match="'nope'"):
        t.predict_from_keys([["stem"], ["nope", "head"]])


def test_fit_calibration_is_stored_and_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = table({f"u{i}": float(v) for i, v in enumerate(rng.uniform(0.1, 2.0, 12))})
    archs = [list(rng.choice(t.keys(), size=rng.integers(3, 10))) for _ in range(20)]
    measured = 1.2 * t.lut_sums(archs) + 0.05 * np.array([len(a) for a in archs]) + 0.4
    t.fit_calibration(archs, measured)
    np.testing.assert_allclose(t.predict_from_keys(archs), measured, rtol=1e-6)
    t.save(tmp_path / "t.csv")
    np.testing.assert_allclose(
        LatencyTable.load(tmp_path / "t.csv").predict_from_keys(archs), measured, rtol=1e-6
    )


def test_merge_keeps_lower_median_and_sums_counts() -> None:
    a = table({"x": 1.0, "y": 2.0})
    b = table({"y": 1.5, "z": 3.0})
    a.set_calibration(Calibration(("lut_sum",), (1.0,), 0.0, n_fit=20))
    m = a.merge(b)
    assert sorted(m.keys()) == ["x", "y", "z"]
    assert m.entries["y"].median_ms == 1.5 and m.entries["y"].count == 200
    assert m.entries["y"].mean_ms == b.entries["y"].mean_ms
    assert m.entries["x"] == a.entries["x"] and m.entries["z"] == b.entries["z"]
    assert m.calibration is None  # fitted to old entries: dropped
    assert b.merge(a).entries == m.entries  # symmetric


def test_merge_refuses_differing_metadata_and_names_fields() -> None:
    with pytest.raises(IncompatibleFileError, match=r"threads \(1 vs 2\).*space_hash"):
        table({"x": 1.0}).merge(table({"y": 1.0}, threads=2, space_hash="other"))
    with pytest.raises(IncompatibleFileError, match="processor"):
        table({"x": 1.0}).merge(table({"y": 1.0}, processor="Another CPU"))


def test_load_checks_expected_space_hash_and_device(tmp_path: Path) -> None:
    path = table({"x": 1.0}).save(tmp_path / "t.csv")
    assert len(LatencyTable.load(path, expected_space_hash="abc123", expected_device="cpu")) == 1
    with pytest.raises(IncompatibleFileError, match=r"abc123.*expected space hash f00"):
        LatencyTable.load(path, expected_space_hash="f00")
    with pytest.raises(IncompatibleFileError, match="'cuda:0'"):
        LatencyTable.load(path, expected_device="cuda:0")


def test_foreign_and_malformed_files_refused(tmp_path: Path) -> None:
    good = table({"x": 1.0, "y": 2.0}).save(tmp_path / "good.csv")
    sidecar = (tmp_path / "good.json").read_text()

    def case(name: str, csv_text: str | bytes, json_text: str | None = sidecar) -> Path:
        path = tmp_path / f"{name}.csv"
        if isinstance(csv_text, bytes):
            path.write_bytes(csv_text)
        else:
            path.write_text(csv_text)
        if json_text is not None:
            (tmp_path / f"{name}.json").write_text(json_text)
        return path

    header = "key,mean_ms,std_ms,median_ms,count\n"
    with pytest.raises(UserError, match="not found"):
        LatencyTable.load(tmp_path / "absent.csv")
    with pytest.raises(IncompatibleFileError, match="no metadata sidecar"):
        LatencyTable.load(case("nosidecar", good.read_text(), None))
    with pytest.raises(IncompatibleFileError, match="expected the columns"):
        LatencyTable.load(case("columns", "name,latency\nx,1\n"))
    with pytest.raises(IncompatibleFileError, match="not a text CSV"):
        LatencyTable.load(case("binary", b"\x89PNG\r\n\x1a\n\xff\xfe\x00"))
    with pytest.raises(IncompatibleFileError, match="line 3: duplicate key 'x'"):
        LatencyTable.load(case("dup", header + "x,1,0,1,5\nx,1,0,1,5\n"))
    with pytest.raises(IncompatibleFileError, match="line 2: non-numeric"):
        LatencyTable.load(case("nan", header + "x,fast,0,1,5\ny,1,0,1,5\n"))
    with pytest.raises(IncompatibleFileError, match="median > 0"):
        LatencyTable.load(case("zero", header + "x,0,0,0,5\ny,1,0,1,5\n"))
    with pytest.raises(IncompatibleFileError, match="says 2"):
        LatencyTable.load(case("count", header + "x,1,0,1,5\n"))
    with pytest.raises(IncompatibleFileError, match="damaged, not a latency table sidecar"):
        LatencyTable.load(case("badjson", good.read_text(), "{not json"))
    with pytest.raises(IncompatibleFileError, match="not a latency table sidecar"):
        LatencyTable.load(case("otherjson", good.read_text(), json.dumps({"model": "x"})))
    broken = json.loads(sidecar)
    del broken["space_hash"]
    with pytest.raises(IncompatibleFileError, match=r"lacks fields.*space_hash"):
        LatencyTable.load(case("nohash", good.read_text(), json.dumps(broken)))


def test_missing_is_deduplicated_and_ordered() -> None:
    t = table({"b": 1.0})
    assert t.missing(["c", "b", "a", "c", "a"]) == ["c", "a"]
    assert t.missing(["b"]) == []


def _builders(keys: list[str], calls: list[str], fail_at: str | None = None) -> dict:
    def make(key: str):
        def build() -> tuple[nn.Module, torch.Tensor]:
            if key == fail_at:
                raise KeyboardInterrupt
            calls.append(key)
            return nn.Linear(4, 4), torch.randn(1, 4)

        return build

    return {k: make(k) for k in keys}


def test_fill_missing_resumes_after_interruption(tmp_path: Path) -> None:
    path = tmp_path / "resume.csv"
    keys = [f"unit{i}" for i in range(7)]
    calls: list[str] = []
    t = LatencyTable.load_or_create(path, meta())
    with pytest.raises(KeyboardInterrupt):
        fill_missing(
            t,
            _builders(keys, calls, fail_at="unit5"),
            path,
            PROTOCOL,
            rng=np.random.default_rng(0),
            chunk_size=2,
            save_every_s=0,
        )
    saved = LatencyTable.load(path)
    assert sorted(saved.keys()) == keys[:4]  # two full chunks were saved
    calls.clear()
    resumed = LatencyTable.load_or_create(path, meta())
    measured = fill_missing(
        resumed, _builders(keys, calls), path, PROTOCOL, rng=np.random.default_rng(0), chunk_size=2
    )
    assert measured == keys[4:] and calls == keys[4:]  # only what was missing
    assert sorted(LatencyTable.load(path).keys()) == keys
    assert (
        fill_missing(resumed, _builders(keys, calls), path, PROTOCOL, rng=np.random.default_rng(0))
        == []
    )


def test_resume_refuses_table_measured_differently(tmp_path: Path) -> None:
    path = table({"x": 1.0}).save(tmp_path / "t.csv")
    with pytest.raises(IncompatibleFileError, match=r"cannot resume.*batch \(1 vs 8\)"):
        LatencyTable.load_or_create(path, meta(batch=8))


def test_record_validates_keys_and_values() -> None:
    t = table({})
    with pytest.raises(UserError, match="non-empty single-line"):
        t.record(" padded ", TableEntry(1, 0, 1, 1))
    with pytest.raises(UserError, match="median > 0"):
        t.record("k", TableEntry(1, 0, float("nan"), 1))

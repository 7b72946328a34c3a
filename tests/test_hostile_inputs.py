"""Files as users hand them back: a table re-saved by a spreadsheet, samples with NaN accuracies."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from nas.cli import main
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol
from nas.sample.fit import load_training_data

_spec = importlib.util.spec_from_file_location(
    "_fit_helpers", Path(__file__).with_name("test_fit_cli.py")
)
_fit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fit)


def _table() -> LatencyTable:
    meta = TableMeta.for_protocol(
        TimingProtocol(warmup=1, repeats=3, rounds=2, min_time_per_round=0),
        batch=1, dtype="float32", space_name="tiny", space_hash="abc123",
    )
    return LatencyTable(meta, {"stem|r32": TableEntry(0.6, 0.05, 0.5, 100),
                               "head": TableEntry(0.2, 0.01, 0.125, 100)})


def test_table_resaved_by_a_spreadsheet_with_a_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "t.csv"
    _table().save(path)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    loaded = LatencyTable.load(path)
    assert loaded.entries == _table().entries


def test_fit_says_how_many_rows_without_accuracy_it_left_out(tmp_path, capsys):
    samples = _fit.write_synthetic_samples(tmp_path / "samples.csv", n=40)
    with open(samples, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row, value in zip(rows, ["nan", "NaN", "inf", ""]):
        row["val_acc"] = value
    with open(samples, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    data = load_training_data(samples)
    assert data.dropped == 4 and len(data.y) == 36
    out = tmp_path / "predictor"
    assert main(["fit", "--samples", str(samples), "--model", "ridge", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "left out 4 row(s)" in err and "fitted on the other 36" in err

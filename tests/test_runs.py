"""``nas runs`` / ``nas show`` / ``nas compare`` and the weak-run warnings, on run folders
written as 'nas run' and 'nas train' write them (the real ones: tests/test_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from nas.runs import CHANCE_FACTOR, find_runs, read_run, weak_run_warnings

METRICS = "epoch,phase,val_acc_largest,val_acc_smallest\n1,sandwich,{a},{b}\n2,sandwich,{c},{d}\n"


def _train_folder(folder: Path, largest: float, smallest: float, epochs: int = 2) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"format": "nas-run", "train": {"space": "hybrid-tiny", "data": "digits", "epochs": epochs}}))
    (folder / "space.yaml").write_text("name: hybrid-tiny\nnum_classes: 10\n")
    (folder / "metrics.csv").write_text(METRICS.format(a=0.1, b=0.1, c=largest, d=smallest))
    return folder


def _run_folder(folder: Path, *, largest: float, smallest: float, tau: float, ape: float,
                measured: float, predicted: float) -> Path:
    _train_folder(folder / "supernet", largest, smallest)
    (folder / "plan.json").write_text(json.dumps({"space": "hybrid-tiny", "data": "digits"}))
    exported = [{"arch_id": "abc123abc123", "arch": "r16 | w8: ir_k3_e1", "val_acc": 0.8,
                 "test_acc": 0.79, "predicted_ms": predicted, "measured_ms": measured,
                 "params": 1000, "folder": "export/round0/abc123abc123"}]
    stages = {
        "train": {"status": "done"}, "profile": {"status": "done",
                                                 "calibration": {"fit_median_ape": ape}},
        "sample": {"status": "done"},
        "fit": {"status": "done", "chosen": "ridge", "cv_kendall_tau": {"ridge": tau}},
        "search": {"status": "done", "front": 7, "bounds": {"latency_ms": 0.5}},
        "export": {"status": "done", "rounds": [{"exported": exported}]},
        "report": {"status": "done"},
    }
    (folder / "stages.json").write_text(json.dumps({"stages": stages}))
    return folder


def test_a_healthy_run_has_no_warnings_and_shows_its_numbers(tmp_path, capsys):
    run = _run_folder(tmp_path / "good", largest=0.9, smallest=0.8, tau=0.6, ape=0.03,
                      measured=0.21, predicted=0.2)
    info = read_run(run)
    assert info.complete and info.kendall_tau == 0.6 and info.front == 7
    assert weak_run_warnings(info) == []
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "abc123abc123" in out and "90.00%" in out and "Kendall tau 0.600" in out
    assert "warning" not in out


@pytest.mark.parametrize(("settings", "expected"), [
    ({"largest": 0.12, "smallest": 0.05}, "near-chance supernet: largest subnet's validation "
     "accuracy 12.0% vs chance 10.0%"),
    ({"largest": 0.905, "smallest": 0.9}, "largest ~= smallest: validation accuracy 90.50% vs "
     "90.00%"),
    ({"tau": 0.05}, "predictor tau near 0: cross-validated Kendall tau 0.050"),
    ({"ape": 0.19}, "latency table far off: calibration median error 19.0%"),
    ({"measured": 0.3}, "latency table far off: an exported model measured 1.50x"),
])
def test_each_weak_run_warning_names_its_number(tmp_path, settings, expected):
    values = {"largest": 0.9, "smallest": 0.8, "tau": 0.6, "ape": 0.03, "measured": 0.2,
              "predicted": 0.2, **settings}
    warnings = weak_run_warnings(read_run(_run_folder(tmp_path / "run", **values)))
    assert len(warnings) == 1 and warnings[0].startswith(expected), warnings


def test_chance_threshold_is_relative_to_the_classes(tmp_path):
    at = _train_folder(tmp_path / "a", largest=CHANCE_FACTOR * 0.1 + 0.01, smallest=0.05)
    assert weak_run_warnings(read_run(at)) == []


def test_runs_lists_runs_and_train_folders_once(tmp_path, capsys):
    _run_folder(tmp_path / "results" / "a", largest=0.9, smallest=0.8, tau=0.6, ape=0.03,
                measured=0.2, predicted=0.2)
    _train_folder(tmp_path / "results" / "deep" / "b", largest=0.5, smallest=0.4, epochs=5)
    (tmp_path / "results" / "empty").mkdir()
    infos = find_runs(tmp_path / "results")
    assert [(i.path.name, i.kind) for i in infos] == [("a", "run"), ("b", "train")]
    assert not infos[1].complete  # 2 of 5 epochs
    assert main(["runs", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "80.00%" in out[1]
    assert main(["runs", str(tmp_path / "results"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["run", "train"]


def test_compare_puts_runs_side_by_side(tmp_path, capsys):
    a = _run_folder(tmp_path / "a", largest=0.9, smallest=0.8, tau=0.6, ape=0.03, measured=0.2,
                    predicted=0.2)
    b = _train_folder(tmp_path / "b", largest=0.11, smallest=0.1)
    assert main(["compare", str(a), str(b)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"| | {a} | {b} |"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table[2:]}
    assert rows["predictor Kendall tau"] == ["0.600", "-"]
    assert rows["warnings"] == ["0", "2"]  # near chance, and largest ~= smallest


def test_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "nope")]) == 2

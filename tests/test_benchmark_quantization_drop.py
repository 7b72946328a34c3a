"""The quantization-drop benchmark (nas.benchmarks.quantization_drop): leave-one-out predictions
never see the subnet they predict, and the run on a trained tiny supernet measures each subnet
in fp32 and all-int8 once, resumes without measuring again, and reports every subnet."""

from __future__ import annotations

import numpy as np
import pytest

from nas.benchmarks.quantization_drop import draw, main, predicted_drops
from nas.spaces import load_space


def test_leave_one_out_predictions_do_not_see_the_predicted_subnet() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 4))
    drops = features @ np.array([0.5, -0.2, 0.0, 0.1]) + 0.3
    base = predicted_drops(drops, features)
    moved = drops.copy()
    moved[3] += 100.0  # one subnet's own drop must not change its own prediction
    again = predicted_drops(moved, features)
    for name in base:
        assert again[name][3] == pytest.approx(base[name][3])
    assert base["mean of the others (leave-one-out)"][0] == pytest.approx(drops[1:].mean())
    assert np.all(base["zero (the search's fp32 predictor)"] == 0)


def test_subnets_are_distinct_fp32_and_seeded() -> None:
    space = load_space("hybrid-tiny").with_precisions("fp32,int8")
    archs = draw(space, 10, seed=0)
    assert len({a.arch_id() for a in archs}) == 10
    assert all(set(a.precisions()) == {"fp32"} for a in archs)
    assert [a.arch_id() for a in draw(space, 10, seed=0)] == [a.arch_id() for a in archs]
    assert [a.arch_id() for a in draw(space, 10, seed=1)] != [a.arch_id() for a in archs]


def test_run_measures_each_subnet_twice_and_resumes(tiny_run, tmp_path, capsys) -> None:
    out, work = tmp_path / "drop.md", tmp_path / "work"
    args = ["--run", str(tiny_run), "--n", "4", "--work", str(work), "--out", str(out)]
    assert main(args) == 0
    assert len((work / "accuracy.jsonl").read_text().splitlines()) == 8
    text = out.read_text()
    assert "8 accuracies measured" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == 4
    for row in rows:
        fp32, int8, drop = (float(v.strip("| ")) for v in row.split(" | ")[:3])
        assert drop == pytest.approx(fp32 - int8, abs=0.011)
    assert main(args) == 0  # resumed: nothing measured again
    assert "0 accuracies measured" in out.read_text()

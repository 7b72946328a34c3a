"""``nas run --quick`` end to end: every stage's files are there and the report is consistent."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.cli import main
from nas.errors import UserError
from nas.pipeline import STAGES, Pipeline, RunPlan


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_run_writes_every_stage(quick_run, capsys):
    out = quick_run
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert set(stages) == set(STAGES) and all(s["status"] == "done" for s in stages.values())
    for path in (
        "supernet/checkpoint.pt",
        "supernet/config.json",
        "latency/table.csv",
        "latency/table.json",
        "samples.csv",
        "predictor/card.json",
        "search/round0/front.csv",
        "search/round0/evaluated.csv",
        "report.md",
        "pareto.png",
    ):
        assert (out / path).exists(), path
    samples = pd.read_csv(out / "samples.csv", comment="#")
    assert len(samples) == RunPlan.quick().samples and samples["arch_id"].is_unique
    report = (out / "report.md").read_text()
    exported = stages["export"]["rounds"][-1]["exported"]
    assert len(exported) == RunPlan.quick().top
    for e in exported:
        assert e["arch_id"] in report
        assert (out / e["folder"] / "model.onnx").exists()
        assert (out / e["folder"] / "model_card.json").exists()
        assert e["measured_ms"] is not None and e["predicted_ms"] is not None
    bound = stages["search"]["bounds"]["latency_ms"]
    if stages["export"]["within_bound"]:
        assert all(e["measured_ms"] <= bound for e in exported)
    assert len(stages["export"]["rounds"]) <= RunPlan.quick().max_rounds


def test_rerun_skips_done_stages_and_refuses_other_settings(quick_run, capsys):
    assert main(["run", "--quick", "--out", str(quick_run), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("skipped") == len(STAGES)
    with pytest.raises(UserError, match="other settings"):
        Pipeline(RunPlan.quick(epochs=3), quick_run, progress=False)

"""``nas run --quick`` end to end: every stage's files are there and the report is consistent."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from nas.cli import main
from nas.errors import UserError
from nas.pipeline import STAGES, Pipeline, RunPlan

QUICK = ("--quick", "--finetune", "1")  # the quick preset, with the export fine-tune exercised
STDERR: dict[str, str] = {}  # what the fixture's run wrote to stderr (not a terminal)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # not a terminal: no progress bars, no --no-progress
        assert main(["run", *QUICK, "--out", str(out)]) == 0
    STDERR[str(out)] = err.getvalue()
    return out


def test_log_without_a_terminal_has_lines_not_progress_bars(quick_run):
    err = STDERR[str(quick_run)]
    assert "\r" not in err and "it/s" not in err
    metrics = pd.read_csv(quick_run / "supernet" / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(1, RunPlan.quick().epochs + 1))


def test_show_runs_and_report_read_the_real_run(quick_run, capsys):
    from nas.runs import find_runs, read_run

    stages = json.loads((quick_run / "stages.json").read_text())["stages"]
    info = read_run(quick_run)
    chosen = stages["fit"]["chosen"]
    assert info.complete and info.kendall_tau == stages["fit"]["cv_kendall_tau"][chosen]
    listed = [i.path for i in find_runs(quick_run.parent, max_depth=1)]
    assert listed.count(quick_run) == 1  # once, though pytest links "runcurrent" to it
    assert main(["show", str(quick_run)]) == 0
    out = capsys.readouterr().out
    for e in stages["export"]["rounds"][-1]["exported"]:
        assert e["arch_id"] in out
    assert "## Warnings" in (quick_run / "report.md").read_text()


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
        assert f"- `{e['arch_id']}`: {e['why']}" in report  # why it was picked, one line
    assert exported[0]["why"].startswith("most accurate")
    assert "Why each was picked:" in report and "| measured / predicted |" in report
    for r in stages["export"]["rounds"]:  # a round that broke the bound names its units
        if r["worst_ratio"] > 1.0:
            assert set(r["mispredicted"]) and all(r["mispredicted"].values())
    bound = stages["search"]["bounds"]["latency_ms"]
    if stages["export"]["within_bound"]:
        assert all(e["measured_ms"] <= bound for e in exported)
    assert len(stages["export"]["rounds"]) <= RunPlan.quick().max_rounds


def test_rerun_skips_done_stages_and_refuses_other_settings(quick_run, capsys):
    assert main(["run", *QUICK, "--out", str(quick_run), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("skipped") == len(STAGES)
    with pytest.raises(UserError, match="other settings"):
        Pipeline(RunPlan.quick(epochs=3), quick_run, progress=False)


def test_exports_are_fine_tuned_and_random_search_sits_beside_them(quick_run):
    stages = json.loads((quick_run / "stages.json").read_text())["stages"]
    report = (quick_run / "report.md").read_text()
    for e in stages["export"]["rounds"][-1]["exported"]:
        card = json.loads((quick_run / e["folder"] / "model_card.json").read_text())
        ft = card["details"]["weights"]["finetune"]
        assert e["finetune_epochs"] == 1 and ft["config"]["epochs"] == 1
        assert e["val_acc"] == ft["after"]["val"]["acc"]
        assert e["val_acc_inherited"] == ft["before"]["val"]["acc"]
    baseline = stages["export"]["random_search"]
    assert "Random search at the same budget" in report
    samples = pd.read_csv(quick_run / "samples.csv", comment="#")
    assert baseline["measured"] == len(samples)
    bounds = stages["search"]["bounds"]
    feasible = samples[(samples["latency_ms"] <= bounds["latency_ms"])
                       & (samples["memory"] <= bounds["memory"])]
    assert baseline["feasible"] == len(feasible)
    if len(feasible):
        best = baseline["exported"]
        assert best["arch_id"] in set(feasible["arch_id"])
        assert best["predicted_acc"] == feasible["val_acc"].max()
        assert (quick_run / best["folder"] / "model.onnx").exists()


@pytest.mark.parametrize(
    ("argv", "preset"),
    [([], "default"), (["--quick"], "quick"), (["--data", "fashion-mnist"], "fashion-mnist"),
     (["--data", "fashion-mnist:/x"], "fashion-mnist"), (["--data", "npz:/x"], "default"),
     (["--preset", "quick", "--data", "fashion-mnist"], "quick")],
)
def test_preset_follows_the_data_kind(argv, preset):
    import argparse

    from nas.cli.run_cmd import preset_name, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert preset_name(parser.parse_args(["run", *argv])) == preset


def test_fashion_mnist_preset_bounds_params():
    plan = RunPlan.preset("fashion-mnist", seed=3)
    assert (plan.space, plan.data, plan.seed) == ("hybrid-fmnist", "fashion-mnist", 3)
    assert plan.params_bound == 100_000 and plan.finetune_epochs > 0
    with pytest.raises(UserError, match="expected one of"):
        RunPlan.preset("imagenet")

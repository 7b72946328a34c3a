"""The GPU check without a GPU: the script, the benchmark's driver and report, and the
device-independent halves of the CUDA paths (timing arithmetic, RNG restore, bf16 autocast)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nas.benchmarks import gpu
from nas.errors import UserError
from nas.latency.table import LatencyTable
from nas.latency.timing import TimingProtocol, _Runner
from nas.train import TrainConfig, train
from nas.train.checkpoint import capture_rng, restore_rng
from tests.test_train import tiny_config, write_digits_npz

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


# ----- the script ------------------------------------------------------------------------------


def test_script_parses_and_explains_itself():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    helped = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True,
                            check=False)
    assert helped.returncode == 0 and "--budget SECONDS" in helped.stdout
    assert "bash scripts/gpu_check.sh --out $OUT" in helped.stdout  # the device-tool command


def test_script_refuses_bad_options_with_one_line(tmp_path):
    for args in (["--bogus"], ["--budget", "ten"], ["--install", "maybe"]):
        res = subprocess.run(["bash", str(SCRIPT), *args, "--out", str(tmp_path)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 2, args
        assert len(res.stderr.strip().splitlines()) == 1 and "gpu_check:" in res.stderr


def test_script_dry_run_writes_the_plan_without_a_gpu(tmp_path):
    res = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--python", sys.executable,
                          "--out", str(tmp_path), "--budget", "240"],
                         capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4/4 GPU benchmark" in res.stdout
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert [p["name"] for p in data["parts"]] == list(gpu.PARTS)
    assert sum(p["limit_s"] for p in data["parts"]) == pytest.approx(240)
    assert "not run (dry run)" in (tmp_path / "gpu.md").read_text()
    assert (tmp_path / "gpu_check.log").is_file()


def test_module_help_runs_without_a_gpu():
    res = subprocess.run([sys.executable, "-m", "nas.benchmarks.gpu", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "--budget" in res.stdout and "--dry-run" in res.stdout


# ----- the driver and the report ---------------------------------------------------------------


def test_a_part_past_its_limit_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "child-survived"
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(f"import time\ntime.sleep(2)\nopen({str(marker)!r}, 'w').close()\n")
    part = tmp_path / "part.py"
    part.write_text("import subprocess, sys, time\n"
                    f"subprocess.Popen([sys.executable, {str(grandchild)!r}])\n"
                    "print('started', flush=True)\ntime.sleep(30)\n")
    start = time.monotonic()
    rc, tail = gpu._run_part_process([sys.executable, str(part)], 1.0, tmp_path / "log")
    assert rc is None and "started" in tail
    time.sleep(max(0.0, start + 2.8 - time.monotonic()))
    assert not marker.exists()  # the grandchild went down with the part's process group


def test_drive_rewrites_the_report_after_every_part(tmp_path, monkeypatch):
    seen_reports = []

    def fake_part(cmd, limit_s, log_path):
        name = cmd[cmd.index("--part") + 1]
        work = Path(cmd[cmd.index("--work") + 1])
        seen_reports.append((tmp_path / "out" / "gpu.md").read_text())
        if name == "env":
            (work / "env.json").write_text(json.dumps({"torch": "x", "data": "digits"}))
            return 0, ""
        if name == "train":  # killed after one of two epochs: salvaged from metrics.csv
            run = work / "train-digits"
            run.mkdir()
            (run / "metrics.csv").write_text("epoch,epoch_s,val_acc_largest\n1,2.5,0.5\n")
            (work / "train.json").write_text(json.dumps({
                "run_dir": str(run), "command": "nas train ...",
                "setting": {**gpu.DIGITS.__dict__, "epochs": 2}, "cpu": None}))
            return None, "killed"
        return 1, "Traceback: boom"

    monkeypatch.setattr(gpu, "_run_part_process", fake_part)
    args = gpu.parse_args(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
                           "--parts", "env,train,sample", "--budget", "300"])
    assert gpu.drive(args) == 0
    assert len(seen_reports) == 3 and "not run yet" in seen_reports[0]
    parts = {p["name"]: p for p in json.loads((tmp_path / "out" / "gpu.json").read_text())["parts"]}
    assert parts["env"]["status"] == "done"
    assert parts["train"]["status"].startswith("cut off")
    assert parts["train"]["data"]["epochs_done"] == 1
    assert parts["sample"]["status"] == "failed" and "boom" in parts["sample"]["error"]
    report = (tmp_path / "out" / "gpu.md").read_text()
    assert "Accuracy not compared: only 1 of 2 epochs finished" in report


def test_a_part_whose_package_is_missing_is_skipped_and_reserves_no_time(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setitem(gpu.PARTS, "ray", dataclasses.replace(gpu.PARTS["ray"],
                                                              needs=("no_such_module_here",)))
    limits = []

    def fake_part(cmd, limit_s, log_path):
        limits.append(limit_s)
        (Path(cmd[cmd.index("--work") + 1]) / "env.json").write_text("{}")
        return 0, ""

    monkeypatch.setattr(gpu, "_run_part_process", fake_part)
    gpu.drive(gpu.parse_args(["--out", str(tmp_path), "--work", str(tmp_path / "w"),
                              "--parts", "ray,env", "--budget", "100"]))
    assert len(limits) == 1 and limits[0] == pytest.approx(100, abs=1)  # env got it all
    parts = json.loads((tmp_path / "gpu.json").read_text())["parts"]
    assert parts[0]["status"] == "skipped" and "no_such_module_here" in parts[0]["data"]["skipped"]


def test_a_part_is_not_started_without_enough_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "_run_part_process", lambda *a: pytest.fail("started"))
    args = gpu.parse_args(["--out", str(tmp_path), "--work", str(tmp_path / "w"),
                           "--parts", "env", "--budget", str(gpu.MIN_PART_S / 2)])
    gpu.drive(args)
    assert "not run:" in (tmp_path / "gpu.md").read_text()


def test_env_part_runs_here(tmp_path):
    assert gpu.main(["--part", "env", "--work", str(tmp_path)]) == 0
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["data"] in ("fashion-mnist", "digits")


def _complete_results() -> list[dict]:
    cpu = {"epochs": 2, "epoch_s": 60.0, "val_acc_largest": 0.90, "val_acc_smallest": 0.86,
           "n_val": 5000, "threads": 2, "sample_per_s": 0.3}
    metrics = {"within10_pct": 93.0, "median_ape_pct": 4.0, "kendall_tau": 0.9}
    return [
        {"name": "tests", "status": "done", "data": {"command": "pytest -m gpu",
                                                    "summary": "12 passed", "returncode": 0}},
        {"name": "train", "status": "done", "data": {
            "setting": {**gpu.FASHION.__dict__, "epochs": 2}, "command": "nas train",
            "cpu": cpu, "epochs_done": 2, "epoch_s": [6.0, 4.0],
            "val_acc_largest": 0.905, "val_acc_smallest": 0.80}},
        {"name": "latency", "status": "done", "data": {"batches": {
            "1": {"entries": 654, "profile_s": 20, "command": "nas profile b1",
                  "metrics": metrics, "repeatability": metrics, "eager_median_ms": 1.0,
                  "graph_median_ms": 0.25, "eager_over_graph": 4.0},
            "64": {"entries": 654, "profile_s": 30, "command": "nas profile b64",
                   "metrics": {**metrics, "within10_pct": 85.0}, "repeatability": metrics}}}},
        {"name": "sample", "status": "done", "data": {"command": "nas sample", "rows": 50,
                                                     "seconds": 10.0, "cpu": cpu}},
        {"name": "ray", "status": "skipped", "data": {"skipped": "Ray is not importable"}},
    ]


def test_report_of_a_complete_run_states_every_verdict():
    text = gpu.render_report({"budget_s": 480, "elapsed_s": 400}, _complete_results())
    assert "GPU epochs: **12.0x** faster" in text  # 60 s / mean(6, 4) s
    assert "largest +0.50 points (within" in text and "smallest -6.00 points (**outside**" in text
    assert "**not met** (85%)" in text and "**5.00 subnets/s**" in text
    assert "Skipped: Ray is not importable." in text
    assert "batch 1: 1.000 ms eager, 0.250 ms as a graph; eager / graph 4.00x" in text


@pytest.mark.parametrize("drop", ["metrics", "cpu", "rows", "batches", "everything"])
def test_report_accepts_any_partial_result(drop):
    results = _complete_results()
    for r in results:
        if drop == "everything":
            r["data"] = {}
        else:
            r["data"].pop(drop, None)
            for batch in r["data"].get("batches", {}).values():
                batch.pop(drop, None)
    text = gpu.render_report({}, results)
    assert text.startswith("# GPU check") and text.count("\n## ") == len(results)


# ----- CPU references and the noise band -------------------------------------------------------


def test_committed_cpu_references_parse_and_share_the_gpu_settings():
    for setting in (gpu.FASHION, gpu.DIGITS):
        ref = gpu.cpu_reference(setting)
        assert ref is not None, setting.source
        assert ref["epochs"] == setting.epochs
        assert 0 < ref["val_acc_smallest"] <= 1 and ref["epoch_s"] > 0


def test_cpu_reference_parsers_read_what_they_are_given_and_refuse_the_rest():
    report = ("4 epochs in 400 s.\n- validation accuracy of the largest subnet (shared BN): 91.5%\n"
              "- validation accuracy of the smallest subnet (shared BN): 85.25%\n"
              "| sample | 100 |\n")
    ref = gpu.fashion_cpu_reference(report, "(batch 128, 2 threads, x)\nfitted on the run's 50 "
                                            "measured subnets")
    assert ref == {"epochs": 4, "epoch_s": 100.0, "val_acc_largest": 0.915,
                   "val_acc_smallest": 0.8525, "n_val": 5000, "threads": 2, "sample_per_s": 0.5}
    assert gpu.fashion_cpu_reference("no numbers here") is None
    md = "| sandwich | 1 | 15 | 100 | 6.7 | 99 |\n"
    csv_text = "subnet,val_acc_sandwich\nlargest,0.9\nsmallest,0.8\n"
    assert gpu.digits_cpu_reference(md, csv_text)["epoch_s"] == 6.7
    assert gpu.digits_cpu_reference(md, "subnet,val_acc_sandwich\n") is None


@given(st.floats(0.01, 0.99), st.floats(0.01, 0.99), st.integers(50, 100_000))
def test_noise_band_is_symmetric_and_shrinks_with_more_images(a, b, n):
    ok_ab, tol_ab = gpu.within_noise(a, b, n)
    ok_ba, tol_ba = gpu.within_noise(b, a, n)
    assert ok_ab == ok_ba and tol_ab == pytest.approx(tol_ba)
    assert gpu.within_noise(a, a, n)[0]
    assert gpu.within_noise(a, b, 4 * n)[1] == pytest.approx(tol_ab / 2)


def test_fashion_mnist_is_found_gzipped_or_not(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "train-images-idx3-ubyte").write_bytes(b"")
    assert gpu.find_fashion_mnist([tmp_path / "a", tmp_path / "b"]) == tmp_path / "b"
    assert gpu.find_fashion_mnist([tmp_path / "a"]) is None


# ----- device-independent halves of the CUDA paths ---------------------------------------------


def test_timing_arithmetic_with_a_fake_clock():
    """Every call advances the fake clock by exactly 1 ms: each sample must read 1 ms whatever
    the number of calls per timer read."""
    ticks = {"ns": 0}

    def call():
        ticks["ns"] += 1_000_000

    runner = _Runner("k", call, None, clock=lambda: ticks["ns"])
    protocol = TimingProtocol(warmup=2, repeats=5, rounds=1, min_time_per_round=0.02,
                              min_time_per_read=0.0025)
    runner.warm_up(protocol)
    assert runner.inner == 3  # ceil(2.5 ms / 1 ms)
    samples = runner.timed_round(protocol)
    assert len(samples) == 7  # max(5 repeats, ceil(20 ms / 3 ms))
    np.testing.assert_allclose(samples, 1e-3)


def test_cuda_graph_timing_is_a_cuda_torch_setting_recorded_only_when_on():
    for device, runtime in (("cpu", "torch"), ("cuda", "onnxruntime")):
        with pytest.raises(UserError, match="cuda_graph"):
            TimingProtocol(device=device, runtime=runtime, cuda_graph=True)
    assert "cuda_graph" not in TimingProtocol(device="cuda").describe()  # old tables still resume
    graphed = TimingProtocol(device="cuda", cuda_graph=True).describe()
    assert graphed["cuda_graph"] is True and "graph replays" in graphed["timer"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CUDA checkpoint on a CPU machine")
def test_rng_of_a_cuda_checkpoint_restores_on_a_cpu_machine():
    sampler = np.random.default_rng(5)
    state = capture_rng(sampler)
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]  # as written on a GPU machine
    expected = torch.rand(3)
    torch.set_rng_state(state["torch"])
    torch.rand(3)  # move on, then restore
    restore_rng(state, np.random.default_rng(0))
    assert torch.equal(torch.rand(3), expected)


def test_cuda_requests_without_cuda_fail_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from nas.devices import parse_device

    with pytest.raises(UserError, match="CUDA is not available"):
        parse_device("cuda")
    with pytest.raises(UserError, match="not understood"):
        parse_device("tpu")


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    return "npz:" + str(write_digits_npz(path, n_train=128, n_val=64, n_test=32))


def test_bf16_autocast_training_stays_finite_on_cpu(data_spec, tmp_path):
    res = train(tiny_config(data_spec, epochs=2, precision="bf16"), tmp_path / "r",
                progress=False)
    assert all(np.isfinite(r["train_loss"]) for r in res.history)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all()
               for p in res.supernet.parameters())
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_precision_is_a_setting_a_resume_must_keep():
    fp32 = TrainConfig(space="hybrid-tiny")
    assert fp32.differences(TrainConfig(space="hybrid-tiny", precision="bf16")) == {
        "precision": ("fp32", "bf16")}
    assert TrainConfig.from_dict({"space": "hybrid-tiny"}).precision == "fp32"  # older runs
    with pytest.raises(UserError, match="precision 'fp16'"):
        TrainConfig(space="hybrid-tiny", precision="fp16")


@pytest.mark.long  # 25-90 s on 2 shared cores
def test_every_part_but_ray_runs_on_the_cpu(tmp_path, monkeypatch):
    """The parts' plumbing (train -> sample, profile -> validate -> report) on the CPU, with small
    settings: what a GPU run would do, less the device."""
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(gpu, "DIGITS", gpu.TrainSetting("digits", "hybrid-tiny", 1, 128, "-"))
    monkeypatch.setattr(gpu, "LATENCY_SPACE", "hybrid-tiny")
    monkeypatch.setattr(gpu, "SAMPLE_N", 3)
    monkeypatch.setattr(gpu, "VALIDATE_N", 10)
    monkeypatch.setattr(gpu, "REPEAT_N", 4)
    ctx = gpu.Context(work=tmp_path, fashion_dirs=[tmp_path / "none"], limit_s=60)
    results = []
    for name in ("env", "train", "latency", "sample"):
        gpu.PARTS[name].run(ctx, gpu.PartState(tmp_path / f"{name}.json"))
        data = json.loads((tmp_path / f"{name}.json").read_text())
        results.append({"name": name, "status": "done", "data": gpu.salvage(name, data)})
    by_name = {r["name"]: r["data"] for r in results}
    assert by_name["train"]["epochs_done"] == 1 and by_name["train"]["returncode"] == 0
    assert set(by_name["latency"]["batches"]) == {"1", "64"}
    for batch in (1, 64):  # the validation report's networks CSV stays beside the table, apart
        assert len(LatencyTable.load(tmp_path / f"table_cuda_b{batch}.csv")) > 0
        assert (tmp_path / f"latency_cuda_b{batch}.csv").read_text().startswith("arch")
    assert by_name["sample"]["rows"] == 3 and by_name["sample"]["returncode"] == 0
    text = gpu.render_report({}, results)
    assert "subnets/s" in text and "within +/-10%" in text

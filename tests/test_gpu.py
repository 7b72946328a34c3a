"""The CUDA paths on a real GPU (marker ``gpu``; skipped where torch sees no CUDA device).

Run with ``pytest -m gpu`` (``scripts/gpu_check.sh`` does, on a GPU machine). What can be checked
without a GPU (the device-independent halves of these paths) is in tests/test_gpu_check.py.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main as nas
from nas.latency.timing import TimingItem, TimingProtocol, measure_many
from nas.spaces import load_space
from nas.supernet import Supernet
from nas.train import load_checkpoint, load_supernet, train
from nas.train import loop as loop_mod
from nas.train.evaluate import evaluate_subnet
from tests.conftest import randomise_bn, train_tiny_run
from tests.test_train import tiny_config, write_digits_npz

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@contextlib.contextmanager
def no_tf32():
    """Full float32 convolutions and matmuls, so CUDA and CPU results compare tightly."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    return "npz:" + str(write_digits_npz(tmp_path_factory.mktemp("data") / "digits.npz"))


@pytest.mark.parametrize("space_name", ["hybrid-tiny", "hybrid-cifar"])
@torch.no_grad()
def test_supernet_forward_and_extract_stay_on_cuda_and_match_cpu(space_name):
    torch.manual_seed(0)
    space = load_space(space_name)
    cpu_net = randomise_bn(Supernet(space)).eval()
    gpu_net = Supernet(space).eval()
    gpu_net.load_state_dict(cpu_net.state_dict())
    gpu_net = gpu_net.cuda()
    rng = np.random.default_rng(0)
    with no_tf32():
        for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(4))]:
            x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution)
            out = gpu_net(x.cuda(), arch)
            assert out.device.type == "cuda"
            model = gpu_net.extract(arch)
            assert {p.device.type for p in model.parameters()} == {"cuda"}
            assert {b.device.type for b in model.buffers()} <= {"cuda"}
            torch.testing.assert_close(model(x.cuda()), out, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out.cpu(), cpu_net(x, arch), rtol=1e-3, atol=1e-3)


def test_cuda_events_time_the_gpu_work_not_the_launch():
    """``torch.cuda._sleep(n)`` spins the GPU for n cycles and returns at once on the host: only
    device-side timing sees it, and twice the cycles must read about twice the time."""
    cycles = 2_000_000
    items = [TimingItem(f"sleep{k}", lambda x, k=k: torch.cuda._sleep(k * cycles), torch.zeros(1))
             for k in (1, 2)]
    protocol = TimingProtocol(device="cuda", warmup=3, repeats=5, rounds=3,
                              min_time_per_round=0.0, min_time_per_read=0.0)
    result = measure_many(items, protocol)
    one, two = result["sleep1"].latency_ms, result["sleep2"].latency_ms
    assert one > 0.05  # milliseconds: 2M cycles at <= 2.1 GHz are >= ~1 ms of device time
    assert 1.7 < two / one < 2.3


def test_cuda_graph_replays_time_the_captured_work():
    cycles = 2_000_000
    items = [TimingItem(f"sleep{k}", lambda x, k=k: torch.cuda._sleep(k * cycles), torch.zeros(1))
             for k in (1, 2)]
    protocol = TimingProtocol(device="cuda", warmup=3, repeats=5, rounds=3, cuda_graph=True,
                              min_time_per_round=0.0, min_time_per_read=0.0)
    result = measure_many(items, protocol)
    assert 1.7 < result["sleep2"].latency_ms / result["sleep1"].latency_ms < 2.3


def test_cuda_graphs_are_not_slower_than_eager_on_a_network():
    space = load_space("hybrid-tiny")
    from nas.latency.space_profile import measure_networks

    archs = [space.largest(), space.smallest()]
    base = TimingProtocol(device="cuda", warmup=5, repeats=10, rounds=3)
    eager = measure_networks(space, archs, base, batch=1)
    graph = measure_networks(space, archs, TimingProtocol(**{**base.__dict__, "cuda_graph": True}),
                             batch=1)
    assert (graph > 0).all() and (graph <= eager * 1.2).all()


def test_cuda_timing_on_a_module_returns_positive_milliseconds():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU())
    result = measure_many([TimingItem("conv", module, torch.randn(64, 3, 32, 32))],
                          TimingProtocol(device="cuda", warmup=3, repeats=5, rounds=2))
    assert 0 < result["conv"].latency_ms < 100
    assert next(module.parameters()).device.type == "cpu"  # the caller's module is not moved


@pytest.mark.parametrize(("first", "then"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_checkpoint_resumes_on_the_other_device(first, then, data_spec, tmp_path, monkeypatch):
    real = loop_mod._train_epoch
    calls = {"n": 0}

    def dies_in_second_epoch(run, epoch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(run, epoch)

    monkeypatch.setattr(loop_mod, "_train_epoch", dies_in_second_epoch)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data_spec, epochs=2, device=first), out, progress=False)
    monkeypatch.setattr(loop_mod, "_train_epoch", real)
    state = load_checkpoint(out / "checkpoint.pt")  # map_location cpu, whatever wrote it
    assert state["epoch"] == 1
    assert {t.device.type for t in state["model"].values()} == {"cpu"}
    if first == "cuda":
        assert "cuda" in state["rng"]
    res = train(tiny_config(data_spec, epochs=2, device=then), out, resume=True, progress=False)
    assert res.resumed_from == 1 and len(res.history) == 2
    assert {p.device.type for p in res.supernet.parameters()} == {then}
    assert all(torch.isfinite(p).all() for p in res.supernet.parameters())
    run = load_supernet(out, device=then)
    assert next(run.supernet.parameters()).device.type == then


def test_bf16_autocast_training_on_cuda_stays_finite_and_learns(data_spec, tmp_path):
    res = train(tiny_config(data_spec, epochs=3, device="cuda", precision="bf16"),
                tmp_path / "bf16", progress=False)
    losses = [r["train_loss"] for r in res.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32
               for p in res.supernet.parameters())
    assert res.history[-1]["val_acc_largest"] > 0.2  # 10 classes: chance is 0.1


def test_evaluation_on_cuda_matches_cpu(data_spec, tmp_path):
    res = train(tiny_config(data_spec, epochs=1), tmp_path / "r", progress=False)
    arch = res.space.largest()
    cpu = evaluate_subnet(res.supernet, arch, res.splits, recal_batches=2)
    gpu_net = load_supernet(res.run_dir, device="cuda").supernet
    with no_tf32():
        gpu = evaluate_subnet(gpu_net, arch, res.splits, recal_batches=2)
    assert gpu["n"] == cpu["n"]
    assert abs(gpu["acc"] - cpu["acc"]) <= 2 / cpu["n"]  # at most two images flip
    assert gpu["loss"] == pytest.approx(cpu["loss"], rel=1e-3)


def test_train_cli_on_cuda(tmp_path):
    out = tmp_path / "run"
    assert nas(["train", "--space", "hybrid-tiny", "--data", "digits", "--epochs", "1",
                "--batch-size", "128", "--sandwich-n", "1", "--recal-batches", "2",
                "--device", "cuda", "--out", str(out), "--no-progress"]) == 0
    assert '"device": "cuda"' in (out / "config.json").read_text()


def _samples(path: Path) -> dict[str, float]:
    with path.open() as f:
        return {r["arch_id"]: float(r["val_acc"]) for r in csv.DictReader(f)}


def test_sample_on_cuda_matches_cpu(tmp_path):
    run = tmp_path / "run"
    train_tiny_run(run)
    rows = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"samples_{device}.csv"
        with no_tf32():
            assert nas(["sample", "--run", str(run), "--n", "4", "--out", str(out),
                        "--device", device, "--no-progress"]) == 0
        rows[device] = _samples(out)
    assert rows["cpu"].keys() == rows["cuda"].keys()
    n_val = len(load_supernet(run).splits.val)
    for arch_id, acc in rows["cpu"].items():
        assert abs(rows["cuda"][arch_id] - acc) <= 2 / n_val


def test_profile_and_validate_on_cuda(tmp_path):
    table = tmp_path / "cuda.csv"
    assert nas(["profile", "--space", "hybrid-tiny", "--device", "cuda", "--out", str(table),
                "--calibrate", "4", "--rounds", "2", "--repeats", "3", "--min-round-ms", "1",
                "--no-progress"]) == 0
    from nas.latency.table import LatencyTable

    loaded = LatencyTable.load(table)
    assert loaded.meta.device.startswith("cuda") and loaded.meta.runtime == "torch"
    assert len(loaded) > 0 and all(e.mean_ms > 0 for e in loaded.entries.values())
    report = tmp_path / "validate.md"
    assert nas(["latency", "validate", "--space", "hybrid-tiny", "--table", str(table),
                "--n", "6", "--repeat-subset", "3", "--out", str(report), "--no-progress"]) == 0
    assert "cuda" in report.read_text()


def test_ray_train_nccl_one_worker_matches_one_process(data_spec, tmp_path):
    pytest.importorskip("ray")
    from nas.train.distributed import train_distributed

    config = tiny_config(data_spec, epochs=1, device="cuda", threads=None)
    single = train(config, tmp_path / "single", progress=False)
    result = train_distributed(config, tmp_path / "nccl", workers=1, backend="nccl")
    a, b = single.history[0], result.history[0]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    state = load_checkpoint(tmp_path / "nccl" / "checkpoint.pt")["model"]
    ref = {k: v.cpu() for k, v in single.supernet.state_dict().items()}
    for key, value in state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, ref[key], rtol=1e-3, atol=1e-4)

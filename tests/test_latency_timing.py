"""Timing protocol: sane numbers, batching of short calls, interleaving, thread count, ONNX path."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import UserError
from nas.latency.timing import (
    TimingItem,
    TimingProtocol,
    measure_latency,
    measure_many,
    protocol_description,
)

QUICK = dict(warmup=2, repeats=5, rounds=2, min_time_per_round=0.005)


def tiny_conv() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()), torch.randn(1, 4, 8, 8)


def test_tiny_module_gives_sane_positive_numbers() -> None:
    module, x = tiny_conv()
    m = measure_latency(module, x, **QUICK)
    assert 0 < m.min_round_median_ms < 50
    assert m.latency_ms == m.min_round_median_ms
    assert len(m.round_medians_ms) == QUICK["rounds"]
    assert m.min_round_median_ms == min(m.round_medians_ms)
    assert m.count >= QUICK["repeats"] * QUICK["rounds"] * m.calls_per_read
    assert m.mean_ms > 0 and m.std_ms >= 0 and m.median_ms > 0


def test_measures_what_the_call_costs() -> None:
    def sleepy(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.002)
        return x

    m = measure_latency(sleepy, torch.zeros(1), warmup=1, repeats=3, rounds=2, min_time_per_round=0)
    assert 2.0 <= m.min_round_median_ms < 40.0
    assert m.calls_per_read == 1


def test_very_short_calls_are_batched_per_timer_read() -> None:
    m = measure_latency(lambda a: a, torch.zeros(1), min_time_per_read=1e-3, **QUICK)
    assert m.calls_per_read > 10
    assert m.min_round_median_ms < 0.1


def test_thread_count_is_set_and_restored() -> None:
    old = torch.get_num_threads()
    seen: list[int] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return x

    measure_latency(record, torch.zeros(1), threads=1, **QUICK)
    assert set(seen) == {1}
    assert torch.get_num_threads() == old


def test_runs_in_inference_mode_and_eval() -> None:
    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert torch.is_inference_mode_enabled()
            assert not self.training
            return x

    probe = Probe().train()
    measure_latency(probe, torch.zeros(1), **QUICK)
    assert probe.training  # the caller's mode is restored


def _logging_items(log: list[str], n: int) -> list[TimingItem]:
    def make(key: str):
        def fn(x: torch.Tensor) -> torch.Tensor:
            log.append(key)
            return x

        return fn

    return [TimingItem(f"k{i}", make(f"k{i}"), torch.zeros(1)) for i in range(n)]


def _round_orders(log: list[str], n_items: int, warmup_calls: int) -> list[list[str]]:
    timed = log[n_items * warmup_calls :]  # warm-up: item by item, warmup + 3 single calls
    blocks = [k for i, k in enumerate(timed) if i == 0 or timed[i - 1] != k]
    return [blocks[i : i + n_items] for i in range(0, len(blocks), n_items)]


def test_measure_many_interleaves_rounds_in_seeded_shuffled_order() -> None:
    protocol = TimingProtocol(warmup=1, repeats=2, rounds=4, min_time_per_round=0)
    logs = []
    for seed in (7, 7, 8):
        log: list[str] = []
        result = measure_many(_logging_items(log, 5), protocol, rng=np.random.default_rng(seed))
        assert sorted(result) == [f"k{i}" for i in range(5)]
        orders = _round_orders(log, 5, protocol.warmup + 3)
        assert len(orders) == protocol.rounds
        assert all(sorted(o) == sorted(result) for o in orders)  # every item once per round
        logs.append(orders)
    assert logs[0] == logs[1]  # same seed, same order
    assert logs[0] != logs[2]  # another seed, another order


def test_duplicate_keys_refused() -> None:
    items = [TimingItem("a", nn.Identity(), torch.zeros(1))] * 2
    with pytest.raises(UserError, match="duplicate"):
        measure_many(items)


def test_onnxruntime_path_times_an_exported_module() -> None:
    module, x = tiny_conv()
    m = measure_latency(module, x, runtime="onnxruntime", **QUICK)
    assert 0 < m.min_round_median_ms < 50
    with pytest.raises(UserError, match=r"nn\.Module"):
        measure_latency(lambda a: a, x, runtime="onnxruntime", **QUICK)


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="threads"):
        TimingProtocol(threads=0)
    with pytest.raises(UserError, match="runtime"):
        TimingProtocol(runtime="tvm")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="device"):
        measure_latency(nn.Identity(), torch.zeros(1), device="tpu", **QUICK)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_gpu_says_so() -> None:
    with pytest.raises(UserError, match="CUDA is not available"):
        measure_latency(nn.Identity(), torch.zeros(1), device="cuda", **QUICK)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_path() -> None:
    module, x = tiny_conv()
    m = measure_latency(module, x, device="cuda", **QUICK)
    assert 0 < m.min_round_median_ms < 50
    assert next(module.parameters()).device.type == "cpu"  # the caller's module is not moved


def test_protocol_description_is_json_ready() -> None:
    desc = protocol_description(threads=1, rounds=3)
    assert json.loads(json.dumps(desc))["rounds"] == 3
    assert desc["threads"] == 1 and "estimate" in desc
    assert TimingProtocol().estimate_seconds(100) > 0

"""ONNX exports made ahead of timing in worker processes: the same files, every item timed, errors
named, a dead worker costs nothing but time."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from nas.errors import UserError
from nas.latency.export_pool import ExportJob, ExportPool, ExportSettings, default_export_workers
from nas.latency.space_units import space_keys, unit_builders
from nas.latency.timing import TimingItem, TimingProtocol, measure_many
from nas.onnx_graph import DEFAULT_EXPORTER, DEFAULT_OPSET, export_onnx
from nas.spaces import load_space

QUICK = TimingProtocol(runtime="onnxruntime", warmup=2, repeats=5, rounds=2,
                       min_time_per_round=0.005)
SETTINGS = ExportSettings(DEFAULT_OPSET, DEFAULT_EXPORTER, True)
TINY = load_space("hybrid-tiny")


class DiesInAWorker(nn.Module):
    """A conv whose forward ends the process when it runs anywhere but the test process."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.made_in = os.getpid()  # pickled with the module: a worker sees the test's pid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.made_in:
            os._exit(9)
        return self.conv(x)


class NotExportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this forward cannot be traced")


def _graph_content(path) -> tuple[list[str], list[np.ndarray]]:
    graph = onnx.load(str(path)).graph
    return ([n.op_type for n in graph.node],
            [numpy_helper.to_array(t) for t in sorted(graph.initializer, key=lambda t: t.name)])


def test_pool_writes_the_file_an_export_here_writes(tmp_path) -> None:
    builders = unit_builders(TINY)
    keys = space_keys(TINY)[:3]
    jobs = []
    for i, key in enumerate(keys):
        module, x = builders[key]()
        jobs.append(ExportJob(module.eval(), x, tmp_path / f"pool{i}.onnx"))
    with ExportPool(2) as pool:
        assert pool.export(jobs, SETTINGS) == [None, None, None]
        assert "started" in repr(pool)
    for i, job in enumerate(jobs):
        here = tmp_path / f"here{i}.onnx"
        export_onnx(job.module, job.example, here)
        ops_pool, weights_pool = _graph_content(job.path)
        ops_here, weights_here = _graph_content(here)
        assert ops_pool == ops_here
        assert len(weights_pool) == len(weights_here)
        for a, b in zip(weights_pool, weights_here):
            np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.part"))


def test_measure_many_with_a_pool_times_every_item_and_restores_modes() -> None:
    builders = unit_builders(TINY)
    items = []
    for key in space_keys(TINY)[:4]:
        module, x = builders[key]()
        module.train()
        items.append(TimingItem(key, module, x))
    items.append(TimingItem("callable", lambda x: x, torch.zeros(1)))  # not a module: left alone
    with ExportPool(2) as pool:
        measured = measure_many(items[:4], QUICK, export_pool=pool)
        with pytest.raises(UserError, match=r"nn\.Module"):
            measure_many(items, QUICK, export_pool=pool)
    assert sorted(measured) == sorted(item.key for item in items[:4])
    assert all(0 < m.latency_ms < 100 for m in measured.values())
    assert all(item.fn.training for item in items[:4])


def test_an_export_error_names_the_item(tmp_path) -> None:
    x = torch.randn(1, 3, 8, 8)
    items = [TimingItem("fine", nn.Conv2d(3, 4, 3), x), TimingItem("broken", NotExportable(), x)]
    with ExportPool(2) as pool, pytest.raises(UserError, match=r"NotExportable \(broken\)"):
        measure_many(items, QUICK, export_pool=pool)


def test_a_dead_worker_falls_back_to_exporting_here(tmp_path, caplog) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    jobs = [ExportJob(DiesInAWorker().eval(), x, tmp_path / f"m{i}.onnx") for i in range(3)]
    with ExportPool(2) as pool:
        assert pool.export(jobs, SETTINGS) == [None, None, None]
        assert "idle" in repr(pool)  # dropped after the death, and not started again
        assert pool.export(jobs[:2], SETTINGS) == [None, None]
    assert all(job.path.stat().st_size > 0 for job in jobs)
    assert "worker died" in caplog.text


def test_one_process_or_one_job_starts_no_workers(tmp_path) -> None:
    job = ExportJob(nn.Conv2d(3, 4, 3).eval(), torch.randn(1, 3, 8, 8), tmp_path / "one.onnx")
    with ExportPool(1) as pool:
        assert pool.export([job], SETTINGS) == [None]
        assert "idle" in repr(pool)
    with ExportPool(4) as pool:
        assert pool.export([job], SETTINGS) == [None]
        assert "idle" in repr(pool)
    with pytest.raises(ValueError, match="at least 1"):
        ExportPool(0)
    assert 1 <= default_export_workers() <= 4


@pytest.mark.long
def test_benchmark_writes_its_report(tmp_path) -> None:
    from nas.benchmarks import profile_workers

    out = tmp_path / "workers.md"
    argv = ["--space", "hybrid-tiny", "--workers", "2", "--rounds", "1", "--calibrate", "2",
            "--archs", "5", "--out", str(out)]
    assert profile_workers.main(argv) == 0
    text = out.read_text()
    assert "python -m nas.benchmarks.profile_workers --space hybrid-tiny" in text
    assert "Speed-up" in text and "repeatability" in text


def test_many_modules_at_once_do_not_exhaust_file_descriptors(tmp_path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:  # 300 tensors: sent as shared-memory descriptors they would pass the limit of 256
        jobs = [ExportJob(nn.Sequential(*[nn.Conv2d(2, 2, 1) for _ in range(5)]).eval(),
                          torch.randn(1, 2, 4, 4), tmp_path / f"m{i}.onnx") for i in range(30)]
        with ExportPool(2) as pool:
            assert pool.export(jobs, SETTINGS) == [None] * 30
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

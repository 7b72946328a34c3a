"""``nas sample``: measure the validation accuracy of many subnets of a trained supernet.

Every subnet is extracted, its BatchNorm statistics recalibrated on training batches drawn with a
seed derived from its ``arch_id`` (so its result depends on nothing else: not on the order, the
worker, or what was measured before), and evaluated on the VALIDATION split; the test split is never
touched here. Each evaluation runs with a fixed number of torch threads (``threads``, 1 by default)
because the thread count changes float rounding: with equal ``threads`` a 1-worker, an N-worker and
a Ray run write the same numbers (only ``seconds`` differs). Results are appended as they arrive and
a rerun skips the architectures already in the file (see :mod:`nas.sample.store`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.costs import costs
from nas.data import DatasetSplits
from nas.errors import IncompatibleFileError, UserError
from nas.sample.draw import DEFAULT_BINS, draw_architectures
from nas.sample.store import (
    SampleWriter,
    identity_differences,
    new_sidecar,
    read_samples,
    sidecar_path,
    write_sidecar,
)
from nas.spaces import SearchSpace

log = logging.getLogger(__name__)

SPLIT = "val"  # never "test": samples feed predictors, which feed selection


@dataclass(frozen=True)
class EvalSettings:
    """How each subnet is measured (recorded in the sidecar; a resumed run must use the same)."""

    recal_batches: int = 8
    recal_batch_size: int = 64
    batch_size: int = 256
    seed: int = 0  # mixed with each arch_id into that subnet's recalibration seed
    threads: int = 1  # torch CPU threads per evaluation (changes float rounding)

    def __post_init__(self) -> None:
        for name in ("recal_batches", "recal_batch_size", "batch_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name}={getattr(self, name)}: expected at least 1")
        if self.seed < 0:
            raise UserError(f"seed={self.seed}: expected >= 0")


def arch_seed(arch_id: str, base: int = 0) -> int:
    """The recalibration seed of one subnet: a hash of (base seed, arch_id), 31 bits."""
    digest = hashlib.sha256(f"{base}:{arch_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class SubnetEvaluator:
    """Picklable callable ``evaluator(arch) -> {"val_acc", "val_loss", "seconds"}``.

    Holds the supernet's weights and the data splits; the supernet is rebuilt lazily in each process
    it is sent to (pickling sends the state dict, not the module).
    """

    def __init__(
        self,
        space: SearchSpace,
        state_dict: Mapping[str, torch.Tensor],
        splits: DatasetSplits,
        settings: EvalSettings,
        *,
        device: str = "cpu",
        supernet: torch.nn.Module | None = None,
    ) -> None:
        self.space = space
        self.state_dict = dict(state_dict)
        self.splits = splits
        self.settings = settings
        self.device = device
        self._supernet = supernet

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_supernet"] = None
        return state

    def supernet(self) -> torch.nn.Module:
        if self._supernet is None:
            from nas.supernet import Supernet

            net = Supernet(self.space)
            net.load_state_dict(self.state_dict)
            self._supernet = net.to(self.device).eval()
        return self._supernet

    def __call__(self, arch: Architecture) -> dict[str, float]:
        from nas.train.evaluate import evaluate_subnet

        s = self.settings
        previous = torch.get_num_threads()
        torch.set_num_threads(s.threads)
        try:
            start = time.perf_counter()
            result = evaluate_subnet(
                self.supernet(),
                arch,
                self.splits,
                split=SPLIT,
                recal_batches=s.recal_batches,
                recal_batch_size=s.recal_batch_size,
                batch_size=s.batch_size,
                seed=arch_seed(arch.arch_id(), s.seed),
            )
            seconds = time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)
        return {"val_acc": float(result["acc"]), "val_loss": float(result["loss"]),
                "seconds": round(seconds, 4)}


def _measure(arch: Architecture, *, evaluator: SubnetEvaluator) -> dict[str, float]:
    """The task body for map_local / map_tasks."""
    return evaluator(arch)


def file_sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class LatencySource:
    """A latency table and how it is recorded in the sidecar."""

    table: Any  # nas.latency.table.LatencyTable
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike, space: SearchSpace) -> LatencySource:
        from nas.latency.table import LatencyTable

        table = LatencyTable.load(path, expected_space_hash=space.hash())
        csv_path, json_path = LatencyTable.paths(path)
        info = {
            "path": str(csv_path),
            "device": table.meta.device,
            "space_hash": table.meta.space_hash,
            "sha256": file_sha256(csv_path, json_path),
        }
        return cls(table, info)

    def predict(self, space: SearchSpace, archs: Sequence[Architecture],
                stats: Sequence[dict[str, int]]) -> np.ndarray:
        """Predicted latency (ms) of each architecture; every missing key is named at once."""
        from nas.units import arch_keys

        keys = [arch_keys(space, a) for a in archs]
        extra = {name: np.array([s[name] for s in stats], dtype=np.float64)
                 for name in ("macs", "flops", "params", "memory")}
        return self.table.predict_from_keys(keys, extra_features=extra)


def static_columns(
    space: SearchSpace, archs: Sequence[Architecture], latency: LatencySource | None = None
) -> list[dict[str, Any]]:
    """Per architecture: arch_id, arch, arch_json, exact costs and (with a table) latency_ms."""
    rows = []
    for arch in archs:
        c = costs(space, arch).as_dict()
        rows.append({"arch_id": arch.arch_id(), "arch": arch.to_str(), "arch_json": arch.to_json(),
                     "macs": c["macs"], "flops": c["flops"], "params": c["params"],
                     "memory": c["memory"], "latency_ms": None})
    if latency is not None and rows:
        for row, ms in zip(rows, latency.predict(space, archs, rows)):
            row["latency_ms"] = float(ms)
    return rows


@dataclass(frozen=True)
class SampleResult:
    """What :func:`sample_subnets` did."""

    path: Path
    drawn: int  # architectures in the drawn list
    measured: int  # measured by this call
    skipped: int  # already in the file
    total_rows: int  # rows in the file now
    seconds: float


def _check_resume(out: Path, meta: dict[str, Any]) -> set[str]:
    """arch_ids already in ``out`` (repairing a partial last row); refuse foreign files."""
    if not out.exists():
        return set()
    if not sidecar_path(out).exists():
        if out.stat().st_size == 0:
            return set()
        raise IncompatibleFileError(
            f"{out} exists without its sidecar {sidecar_path(out).name}: cannot tell what it was "
            "measured on; choose another --out or remove it"
        )
    existing = read_samples(out, repair=True)
    diffs = identity_differences(existing.meta, meta)
    if diffs:
        raise IncompatibleFileError(
            f"{out} holds samples measured differently, refusing to mix them: {'; '.join(diffs)} "
            "(choose another --out)"
        )
    draws = list(existing.meta.get("draws", []))
    key = ("strategy", "seed", "n", "bins")
    for draw in meta["draws"]:  # a rerun of the same draw is not a new draw
        if not any(all(d.get(k) == draw.get(k) for k in key) for d in draws):
            draws.append(draw)
    meta["draws"] = draws
    return existing.arch_ids


def sample_subnets(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int,
    strategy: str = "uniform",
    seed: int = 0,
    bins: int = DEFAULT_BINS,
    lut: str | os.PathLike | None = None,
    settings: EvalSettings | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    data_workers: int | None = None,
    precisions: str | Sequence[str] | None = None,
) -> SampleResult:
    """Draw ``n`` distinct subnets of the run's space and append their measurements to ``out``.

    ``workers``: local processes (``map_local``), or with ``ray_address`` (``"local"`` for a new
    local Ray instance of ``workers`` CPUs, ``"auto"``, ``"host:port"``) Ray tasks, the supernet's
    weights and the data put once in the object store. See the module docstring for determinism.
    ``data_workers``: processes reading an image folder (default: the run's setting, or 0 with
    ``workers`` > 1, whose processes already run side by side).
    ``precisions`` (``"fp32,int8"``): sample precision policies too (see
    :meth:`nas.spaces.SearchSpace.with_precisions`; the run's space by default).
    """
    from nas.train.rundir import RunPaths, load_supernet

    settings = settings or EvalSettings()
    if workers < 1:
        raise UserError(f"workers={workers}: expected at least 1")
    out = Path(out)
    sidecar_path(out)  # refuse a .json path early
    if out.suffix.lower() == ".gz":
        raise UserError(f"--out {out}: samples are appended to a plain .csv (gzip a copy later)")
    start = time.perf_counter()
    if data_workers is None and workers > 1:
        data_workers = 0
    run = load_supernet(run_dir, device=device, load_data=True, data_workers=data_workers)
    space, splits = run.space, run.splits
    if precisions is not None:
        space = space.with_precisions(precisions)
    assert splits is not None
    latency = LatencySource.load(lut, space) if lut is not None else None
    archs = draw_architectures(space, n, strategy=strategy, seed=seed, bins=bins)
    statics = static_columns(space, archs, latency)  # validates the table before any measuring
    meta = new_sidecar(
        space,
        run={
            "path": str(Path(run_dir)),
            "checkpoint_sha256": file_sha256(RunPaths(Path(run_dir)).checkpoint),
            "epoch": run.epoch,
            "data_fingerprint": splits.fingerprint(),
            "data": run.config.data,
        },
        evaluation={"split": SPLIT, **{k: v for k, v in asdict(settings).items() if k != "threads"}},
        latency_table=None if latency is None else latency.info,
        draws=[{"strategy": strategy, "seed": seed, "n": n,
                "bins": bins if strategy == "flops" else None,
                "threads": settings.threads, "workers": workers, "ray_address": ray_address,
                "device": device,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}],
    )
    done = _check_resume(out, meta)
    write_sidecar(out, meta)
    todo = [i for i, a in enumerate(archs) if statics[i]["arch_id"] not in done]
    log.info("%s: %d of %d drawn subnets already measured; measuring %d",
             out, len(archs) - len(todo), len(archs), len(todo))
    evaluator = SubnetEvaluator(space, run.supernet.state_dict(), splits, settings, device=device,
                                supernet=run.supernet)
    items = [archs[i] for i in todo]
    with SampleWriter(out) as writer:
        def on_result(k: int, measured: dict[str, float]) -> None:
            writer.write({**statics[todo[k]], **measured})

        _fan_out(items, evaluator, workers=workers, ray_address=ray_address, settings=settings,
                 on_result=on_result, progress=progress)
    total = len(read_samples(out).rows)
    return SampleResult(out, len(archs), len(todo), len(archs) - len(todo), total,
                        time.perf_counter() - start)


def _fan_out(items: list[Architecture], evaluator: SubnetEvaluator, *, workers: int,
             ray_address: str | None, settings: EvalSettings,
             on_result: Callable[[int, dict[str, float]], None], progress: bool) -> None:
    from nas.distributed import map_local, map_tasks

    if not items:
        return
    desc = "measuring subnets"
    if ray_address is None:
        map_local(_measure, items, processes=workers, shared={"evaluator": evaluator},
                  on_result=on_result, progress=progress, desc=desc)
        return
    address = None if ray_address == "local" else ray_address
    map_tasks(_measure, items, address=address, num_cpus=workers * settings.threads,
              shared={"evaluator": evaluator}, on_result=on_result, progress=progress,
              desc=desc, task_num_cpus=float(settings.threads))


def measure_architectures(
    run_dir: str | os.PathLike,
    archs: Sequence[Architecture],
    *,
    settings: EvalSettings | None = None,
    workers: int = 1,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Validation accuracy of given subnets (the same protocol as :func:`sample_subnets`), in the
    order given, without writing a file: for benchmarks and re-measurements."""
    from nas.train.rundir import load_supernet

    settings = settings or EvalSettings()
    run = load_supernet(run_dir, load_data=True)
    assert run.splits is not None
    for arch in archs:
        run.space.validate(arch)
    evaluator = SubnetEvaluator(run.space, run.supernet.state_dict(), run.splits, settings,
                                supernet=run.supernet)
    results: list[dict[str, float]] = [{} for _ in archs]

    def on_result(k: int, measured: dict[str, float]) -> None:
        results[k] = measured

    _fan_out(list(archs), evaluator, workers=workers, ray_address=None, settings=settings,
             on_result=on_result, progress=progress)
    return results

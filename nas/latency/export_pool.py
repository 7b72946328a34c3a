"""Export many modules to ONNX at once, in worker processes, before they are timed one at a time.

The dynamo exporter (:func:`nas.onnx_graph.export_onnx`) takes about half a second per unit of
hybrid-cifar (``torch.export``, decompositions, translation: single-threaded Python), so profiling
the space's 654 units spent about 445 of its 553 seconds exporting and about 110 timing. Exports
are independent of one another and of timing, so :func:`measure_many
<nas.latency.timing.measure_many>` hands the modules of a chunk to an :class:`ExportPool`, which
exports them in ``processes`` spawned workers at once; then the calling process times the files
one at a time, as before, while the workers wait idle (an idle process takes no CPU time from the
timing). The file is the one the calling process would have written: the same function with the
same settings, on a pickled copy of the module::

    with ExportPool(default_export_workers()) as pool:
        fill_missing(table, builders, path, protocol, rng=rng, export_pool=pool)

Workers are started on the first batch worth sending (:attr:`ExportPool.min_batch` modules), so a
pool that is never needed costs nothing. A worker that dies (out of memory, killed) does not lose
the batch: the pool is dropped and what is left is exported in the calling process. An exporter
error comes back as the exception it raised in the worker.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 4  # each worker holds torch (about 300 MB); more rarely pays on small units


def default_export_workers() -> int:
    """One export worker per core this process may use, at most :data:`MAX_DEFAULT_WORKERS`;
    1 (export in the calling process) on a one-core machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


@dataclass(frozen=True)
class ExportJob:
    """One module to export: the module (eval mode, on CPU), its one example input, the file."""

    module: nn.Module
    example: torch.Tensor
    path: Path


@dataclass(frozen=True)
class ExportSettings:
    """The :func:`~nas.onnx_graph.export_onnx` settings of a timing protocol."""

    opset: int
    exporter: str
    dynamic_batch: bool


class ExportPool:
    """Spawned worker processes that export modules to ONNX; a context manager (see the module
    docstring). ``processes=1`` exports in the calling process."""

    min_batch = 2  # fewer modules than this are exported here: starting workers would cost more

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes={processes}: expected at least 1")
        self.processes = int(processes)
        self._executor: ProcessPoolExecutor | None = None
        self._broken = False

    def __repr__(self) -> str:
        state = "started" if self._executor is not None else "idle"
        return f"ExportPool(processes={self.processes}, {state})"

    def __enter__(self) -> ExportPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the worker processes (a later export starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def export(self, jobs: Sequence[ExportJob], settings: ExportSettings) -> list[BaseException | None]:
        """Write every job's file; per job ``None`` or the exception its export raised."""
        results: list[BaseException | None] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        executor = self._started() if len(jobs) >= self.min_batch else None
        if executor is not None:
            # plain pickle bytes: multiprocessing's own pickler, with torch imported, would send
            # every tensor as a shared-memory file descriptor (a hundred networks exhaust the
            # process's open-file limit)
            futures: dict[int, Future[None]] = {
                i: executor.submit(_export_pickled, pickle.dumps(jobs[i]), settings) for i in todo
            }
            todo = []
            for i, future in futures.items():
                try:
                    future.result()
                except BrokenProcessPool:
                    todo.append(i)
                except Exception as exc:  # the exporter's own error, raised in the worker
                    results[i] = exc
            if todo:
                log.warning("an ONNX export worker died; exporting the %d remaining module(s) in "
                            "this process", len(todo))
                self._broken = True
                self.close()
        for i in todo:
            try:
                _export_job(jobs[i], settings)
            except Exception as exc:
                results[i] = exc
        return results

    def _started(self) -> ProcessPoolExecutor | None:
        if self.processes == 1 or self._broken:
            return None
        if self._executor is None:
            import multiprocessing

            self._executor = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init, initargs=(os.getpid(),),
            )
        return self._executor


def _worker_init(parent_pid: int) -> None:
    import torch

    from nas.distributed.ray_utils import die_with_parent

    die_with_parent(parent_pid)
    torch.set_num_threads(1)  # the workers share the cores: one thread each


def _export_pickled(job: bytes, settings: ExportSettings) -> None:
    _export_job(pickle.loads(job), settings)  # bytes this process's parent pickled just now


def _export_job(job: ExportJob, settings: ExportSettings) -> None:
    """Export one job to a temporary name and rename it, so a file that exists is whole."""
    from nas.onnx_graph import export_onnx

    tmp = job.path.with_name(job.path.name + ".part")
    try:
        export_onnx(job.module.eval(), job.example, tmp, opset=settings.opset,
                    exporter=settings.exporter, dynamic_batch=settings.dynamic_batch)
        os.replace(tmp, job.path)
    finally:
        tmp.unlink(missing_ok=True)

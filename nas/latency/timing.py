"""Latency timing protocol: warm-up, batched timer reads, per-round medians, lowest round kept.

One code path times one callable (:func:`measure_latency`) or many (:func:`measure_many`):

1. Preparation. A module is put in eval mode; on CUDA a copy is moved to the device; with
   ``runtime="onnxruntime"`` it is exported to ONNX (:func:`export_onnx`) in a temporary folder and run by an ``InferenceSession`` with ``intra_op_num_threads=threads``,
   ``inter_op_num_threads=1`` and sequential execution.
2. Warm-up: ``warmup`` calls (also lets oneDNN / cuDNN / ORT pick and cache their kernels).
3. Calls per timer read: the fastest of three single calls gives ``t``; one timer read then spans
   ``inner = ceil(min_time_per_read / t)`` calls, so sub-microsecond timer overhead and jitter do not
   dominate very short layers. One sample = read time / inner.
4. A round takes ``max(repeats, ceil(min_time_per_round / (inner * t)))`` samples and keeps their
   median. ``rounds`` rounds are run; the estimate is the LOWEST round median: interference from
   other processes only ever adds time, so the quietest round is the closest to the layer's cost.
5. Interleaving (:func:`measure_many`): round r visits every item once, in an order shuffled by the
   passed generator, so slow drift of the machine (frequency, other jobs) affects all items alike.

CUDA graphs (``cuda_graph=True``, torch on CUDA only): each item's call is captured once into a
``torch.cuda.CUDAGraph`` (after three eager calls on a side stream, as capture requires) and each
timed call is one graph replay, so a network pays one launch instead of one per kernel: the
latency of a deployment that replays graphs, where eager timing adds the CPU's launch time of
every kernel.

Timers: ``time.perf_counter_ns`` on CPU (and for onnxruntime, whose ``run`` is synchronous); CUDA
events recorded around each read and read after one ``torch.cuda.synchronize`` per round. With
``clock="thread"`` (CPU, 1 thread only) reads use ``time.thread_time_ns``, the CPU time of the
calling thread, which runs the whole computation when torch and ONNX Runtime have one thread: on a
machine shared with other jobs it leaves out the time the scheduler gives to other processes,
which wall time cannot separate from the network's own time once a call outlasts a time slice.
Torch runs under ``torch.inference_mode()`` with ``torch.set_num_threads(threads)`` (restored
afterwards) and the garbage collector paused during timed rounds.

Threads default to 1: on the 2-core development machines a second core busy with other work makes
2-thread timings 2-3x slower and far less repeatable, while 1-thread timings stay steady.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.devices import parse_device
from nas.errors import UserError
from nas.latency.export_pool import ExportJob, ExportPool, ExportSettings
from nas.latency.protocol import (  # noqa: F401 - re-exported: the protocol's old home
    CLOCKS,
    Runtime,
    TimingProtocol,
    protocol_description,
)
from nas.onnx_graph import export_onnx, ort_session
from nas.torchscript import trace_to_file

Inputs = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Measurement:
    """One timed item, in milliseconds per call.

    ``min_round_median_ms`` is the protocol's estimate (lowest per-round median); ``mean_ms``,
    ``std_ms`` and ``median_ms`` are over all samples of all rounds; ``count`` is the number of calls
    timed (samples x calls per read).
    """

    mean_ms: float
    std_ms: float
    median_ms: float
    count: int
    min_round_median_ms: float
    round_medians_ms: tuple[float, ...] = ()
    calls_per_read: int = 1

    @property
    def latency_ms(self) -> float:
        """The estimate a latency table stores: the lowest per-round median."""
        return self.min_round_median_ms


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file made beforehand (e.g. a quantized QDQ graph): with ``runtime="onnxruntime"``
    it is run as it is, in a session with the protocol's settings, instead of being exported."""

    path: Path


@dataclass(frozen=True)
class TimingItem:
    """One thing to time: a key, a module, callable or ready ONNX file, and its example input."""

    key: str
    fn: nn.Module | Callable[..., Any] | OnnxModel
    example_input: Inputs = field(repr=False)


def measure_latency(
    fn_or_module: nn.Module | Callable[..., Any],
    example_input: Inputs,
    *,
    device: str = "cpu",
    runtime: Runtime = "torch",
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 20,
    rounds: int = 5,
    min_time_per_round: float = 0.05,
    min_time_per_read: float = 2e-4,
) -> Measurement:
    """Time one module or callable with the protocol of this module; milliseconds per call."""
    protocol = TimingProtocol(
        device=device,
        runtime=runtime,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
        min_time_per_round=min_time_per_round,
        min_time_per_read=min_time_per_read,
    )
    item = TimingItem("item", fn_or_module, example_input)
    return measure_many([item], protocol)["item"]


def measure_many(
    items: Sequence[TimingItem],
    protocol: TimingProtocol | None = None,
    *,
    rng: np.random.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    export_pool: ExportPool | None = None,
) -> dict[str, Measurement]:
    """Time many items with interleaved rounds; returns ``{key: Measurement}``.

    ``rng`` shuffles the visiting order of each round (default: ``np.random.default_rng(0)``).
    ``progress(done, total)`` is called after each item-round. ``export_pool``: with the
    onnxruntime runtime, the items' modules are exported by it all at once before any is timed
    (:mod:`nas.latency.export_pool`); the same files, made in parallel.
    """
    protocol = protocol if protocol is not None else TimingProtocol()
    rng = rng if rng is not None else np.random.default_rng(0)
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise UserError(f"measure_many: duplicate keys {dup[:5]}")
    if not items:
        return {}
    device = parse_device(protocol.device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_threads(protocol.threads))
        for item in items:  # runners put modules in eval mode; restore the caller's mode after
            if isinstance(item.fn, nn.Module):
                stack.callback(item.fn.train, item.fn.training)
        tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nas-latency-")))
        if export_pool is not None and protocol.runtime == "onnxruntime":
            items = _exported_ahead(items, protocol, export_pool, tmpdir)
        runners = [_make_runner(item, protocol, device, tmpdir, i) for i, item in enumerate(items)]
        stack.enter_context(torch.inference_mode())
        for runner in runners:
            runner.warm_up(protocol)
        samples: list[list[np.ndarray]] = [[] for _ in runners]
        total, done = protocol.rounds * len(runners), 0
        for _ in range(protocol.rounds):
            for i in rng.permutation(len(runners)):
                with _gc_paused():
                    samples[i].append(runners[i].timed_round(protocol))
                done += 1
                if progress is not None:
                    progress(done, total)
    return {r.key: _summarise(s, r.inner) for r, s in zip(runners, samples)}


def _summarise(rounds: list[np.ndarray], inner: int) -> Measurement:
    per_call_ms = np.concatenate(rounds) * 1e3
    medians = tuple(float(np.median(r) * 1e3) for r in rounds)
    return Measurement(
        mean_ms=float(per_call_ms.mean()),
        std_ms=float(per_call_ms.std(ddof=1)) if per_call_ms.size > 1 else 0.0,
        median_ms=float(np.median(per_call_ms)),
        count=int(per_call_ms.size * inner),
        min_round_median_ms=min(medians),
        round_medians_ms=medians,
        calls_per_read=inner,
    )


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_tuple(x: Inputs) -> tuple[torch.Tensor, ...]:
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in x):
        return tuple(x)
    raise UserError(f"example input must be a tensor or a tuple of tensors, got {type(x).__name__}")


class _Runner:
    """A prepared item: ``call()`` runs it once; ``timed_round`` gives per-call seconds."""

    def __init__(
        self,
        key: str,
        call: Callable[[], Any],
        cuda: torch.device | None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.key = key
        self.call = call
        self.cuda = cuda
        self.clock = clock
        self.inner = 1
        self.call_s = 1e-3

    def _time_reads(self, n_reads: int, inner: int) -> np.ndarray:
        call = self.call
        if self.cuda is not None:
            # events on the current stream of the item's device (cuda:N need not be current)
            with torch.cuda.device(self.cuda):
                starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_reads)]
                ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_reads)]
                torch.cuda.synchronize(self.cuda)
                for start, end in zip(starts, ends):
                    start.record()
                    for _ in range(inner):
                        call()
                    end.record()
                torch.cuda.synchronize(self.cuda)
                return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)]) * 1e-3
        out = np.empty(n_reads)
        clock = self.clock
        for j in range(n_reads):
            t0 = clock()
            for _ in range(inner):
                call()
            out[j] = clock() - t0
        return out * 1e-9

    def warm_up(self, protocol: TimingProtocol) -> None:
        for _ in range(protocol.warmup):
            self.call()
        single = float(self._time_reads(3, 1).min())
        self.call_s = max(single, 1e-9)
        self.inner = max(1, math.ceil(protocol.min_time_per_read / self.call_s))

    def timed_round(self, protocol: TimingProtocol) -> np.ndarray:
        """Per-call seconds for one round of samples."""
        read_s = self.inner * self.call_s
        n_reads = max(protocol.repeats, math.ceil(protocol.min_time_per_round / read_s))
        n_reads = min(n_reads, max(protocol.repeats, 100_000))
        return self._time_reads(n_reads, self.inner) / self.inner


def _make_runner(
    item: TimingItem, protocol: TimingProtocol, device: torch.device, tmpdir: Path, index: int
) -> _Runner:
    args = _as_tuple(item.example_input)
    fn = item.fn
    if protocol.runtime == "onnxruntime" and isinstance(fn, OnnxModel):
        runner = _session_runner(item.key, fn.path, args, protocol, device)
        runner.clock = _clock(protocol)
        return runner
    if isinstance(fn, OnnxModel):
        raise UserError(f"item {item.key!r}: an ONNX file is timed with the onnxruntime runtime, "
                        f"not {protocol.runtime}")
    if protocol.runtime == "onnxruntime":
        if not isinstance(fn, nn.Module):
            raise UserError(
                f"item {item.key!r}: the onnxruntime runtime needs an nn.Module to export, "
                f"got {type(fn).__name__}"
            )
        runner = _onnx_runner(item.key, fn, args, protocol, device, tmpdir / f"item{index}.onnx")
        runner.clock = _clock(protocol)
        return runner
    if protocol.runtime == "torchscript":
        if not isinstance(fn, nn.Module) or device.type != "cpu" or len(args) != 1:
            raise UserError(f"item {item.key!r}: the torchscript runtime times one-input modules "
                            "on the CPU")
        fn = trace_to_file(fn, args[0], tmpdir / f"item{index}.pt")
    elif isinstance(fn, nn.Module):
        fn = fn.eval()
        if device.type != "cpu":
            fn = copy.deepcopy(fn).to(device)
    args = tuple(a.to(device) for a in args)
    cuda = device if device.type == "cuda" else None
    if protocol.cuda_graph:
        assert cuda is not None  # the protocol checks it
        return _Runner(item.key, cuda_graph_call(fn, args, cuda), cuda)
    return _Runner(item.key, lambda: fn(*args), cuda, _clock(protocol))


def cuda_graph_call(
    fn: Callable[..., Any], args: tuple[torch.Tensor, ...], device: torch.device
) -> Callable[[], None]:
    """``fn(*args)`` captured into a CUDA graph on ``device``; returns its replay. Three eager
    calls on a side stream come first (capture needs warmed-up kernels and allocator pools)."""
    with torch.cuda.device(device), torch.inference_mode():
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                fn(*args)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(*args)
        torch.cuda.synchronize(device)
    # the replay reads fn's weights and args' memory by address: keep them alive with the graph
    return functools.partial(_replay, graph, (fn, args))


def _replay(graph: torch.cuda.CUDAGraph, _keep_alive: object) -> None:
    graph.replay()


def _clock(protocol: TimingProtocol) -> Callable[[], int]:
    return time.thread_time_ns if protocol.clock == "thread" else time.perf_counter_ns


def _exported_ahead(items: Sequence[TimingItem], protocol: TimingProtocol, pool: ExportPool,
                    tmpdir: Path) -> list[TimingItem]:
    """``items`` with every module that :func:`_onnx_runner` would export (one input, weights on
    the CPU) exported by ``pool`` and replaced by its file."""
    chosen: list[int] = []
    jobs: list[ExportJob] = []
    for i, item in enumerate(items):
        fn, args = item.fn, _as_tuple(item.example_input)
        if (isinstance(fn, nn.Module) and len(args) == 1
                and all(t.device.type == "cpu" for t in itertools.chain(fn.parameters(), fn.buffers()))):
            chosen.append(i)
            jobs.append(ExportJob(fn.eval(), args[0].detach().cpu().clone(),
                                  tmpdir / f"ahead{i}.onnx"))
    settings = ExportSettings(protocol.onnx_opset, protocol.onnx_exporter,
                              protocol.onnx_dynamic_batch)
    out = list(items)
    for i, job, error in zip(chosen, jobs, pool.export(jobs, settings)):
        if error is not None:
            raise _export_error(items[i].key, job.module, error)
        out[i] = TimingItem(items[i].key, OnnxModel(job.path), (job.example,))
    return out


def _export_error(key: str, module: nn.Module, exc: BaseException) -> UserError:
    error = UserError(f"could not export {type(module).__name__} ({key}) to ONNX: "
                      f"{type(exc).__name__}: {str(exc)[:300]}")
    error.__cause__ = exc
    return error


def _onnx_runner(
    key: str,
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    protocol: TimingProtocol,
    device: torch.device,
    path: Path,
) -> _Runner:
    """Export with :func:`nas.onnx_graph.export_onnx` (the graph ``nas export`` writes) and run
    it in a session with :func:`nas.onnx_graph.session_options`."""
    if len(args) != 1:
        raise UserError(f"item {key!r}: the onnxruntime runtime times one-input modules, got "
                        f"{len(args)} inputs")
    x = args[0].detach().cpu().clone()
    try:
        export_onnx(module.eval(), x, path, opset=protocol.onnx_opset,
                    exporter=protocol.onnx_exporter, dynamic_batch=protocol.onnx_dynamic_batch)
    except Exception as exc:
        raise _export_error(key, module, exc) from exc
    return _session_runner(key, path, (x,), protocol, device)


def _session_runner(key: str, path: Path, args: tuple[torch.Tensor, ...],
                    protocol: TimingProtocol, device: torch.device) -> _Runner:
    """A runner calling an ONNX Runtime session of ``path`` (:func:`nas.onnx_graph.ort_session`)
    on the one input ``args[0]``."""
    if len(args) != 1:
        raise UserError(f"item {key!r}: the onnxruntime runtime times one-input models, got "
                        f"{len(args)} inputs")
    x = args[0].detach().cpu()
    try:
        session = ort_session(path, int(protocol.threads), str(device))
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    feeds = {session.get_inputs()[0].name: x.numpy()}
    return _Runner(key, lambda: session.run(None, feeds), None)


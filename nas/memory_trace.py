"""Measure peak activation memory by tracing every operator the dispatcher runs (needs torch).

This is the measurement the rule in :mod:`nas.memory` is tested against: a ``TorchDispatchMode``
records, for each aten operator, the storages it reads and writes; parameters and buffers are
excluded; a storage is alive from its first appearance to its last; the peak is the largest total
of bytes alive during one operator, at batch 1.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class _StorageTrace(TorchDispatchMode):
    def __init__(self, ignore: set[int]) -> None:
        super().__init__()
        self.ignore = ignore
        self.step = 0
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.nbytes: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keep tensors alive so storage addresses are not reused

    def _see(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self.ignore or storage.nbytes() == 0:
            return
        self.first.setdefault(ptr, self.step)
        self.last[ptr] = self.step
        self.nbytes[ptr] = storage.nbytes()
        self.keep.append(t)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                self._see(t)
        self.step += 1
        return out

    def peak(self) -> int:
        delta = [0] * (self.step + 2)
        for ptr, size in self.nbytes.items():
            delta[self.first[ptr]] += size
            delta[self.last[ptr] + 1] -= size
        peak = live = 0
        for d in delta[: self.step]:
            live += d
            peak = max(peak, live)
        return peak


@torch.no_grad()
def measure_peak_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Peak activation bytes of ``model(x)`` in eval mode, by dispatch-level liveness."""
    ignore = {p.untyped_storage().data_ptr() for p in model.parameters()}
    ignore |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    model.eval()
    trace = _StorageTrace(ignore)
    with trace:
        model(x)
    return trace.peak()

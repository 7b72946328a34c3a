"""The one TorchScript path: how a module becomes the ``.torchscript.pt`` file ``nas export`` writes
and a latency table of the ``torchscript`` runtime times.

:func:`trace_to_file` traces the module in eval mode with ``torch.jit.trace`` on a batch of at
least 2 (so the traced graph does not bake in a batch of 1 where it can avoid it), saves the file
and loads it back: what a deployment runs (``torch.jit.load``), and what every timing of this
runtime calls. A leaf module (torch only).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def trace_input(x: torch.Tensor) -> torch.Tensor:
    """The example the module is traced on: ``x``, doubled along the batch if its batch is 1."""
    return x if x.shape[0] >= 2 else torch.cat([x, x])


def trace_to_file(module: nn.Module, x: torch.Tensor, path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Trace ``module`` (eval mode, CPU) on :func:`trace_input` of ``x``, save it to ``path`` and
    return the file loaded back on the CPU. Tracing errors propagate."""
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), (trace_input(x.detach().cpu()),),
                                 check_trace=False)
    torch.jit.save(traced, str(Path(path)))
    return torch.jit.load(str(path), map_location="cpu").eval()

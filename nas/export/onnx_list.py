"""Export a list of architectures as ONNX files for timing on another device.

Latency does not depend on the weights, so each network is the space's static subnet with seeded
random weights (:func:`nas.latency.space_units.build_network`), exported by
:func:`nas.export.formats.export_model` (format ``onnx``, checked against the eager model with ONNX
Runtime) into ``<out>/<arch_id>/<arch_id>.onnx`` beside its manifest and example input. The folder
must be new or empty; nothing is left in it on error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Architecture
from nas.errors import UserError
from nas.export.formats import export_model
from nas.spaces.schema import SearchSpace


def export_archs_onnx(
    space: SearchSpace,
    archs: Sequence[Architecture],
    out: str | os.PathLike,
    *,
    batch: int = 1,
    seed: int = 0,
) -> list[Path]:
    """ONNX file of every architecture (weights of network ``i`` from ``default_rng([seed, i])``)."""
    from nas.latency.space_units import build_network

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--onnx {out}: must be a new or empty folder")
    if batch < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for i, arch in enumerate(archs):
            net, x = build_network(space, arch, batch, np.random.default_rng([seed, i]))
            name = arch.arch_id()
            files = export_model(net, x, out / name, formats="onnx", name=name,
                                 onnx_exporter="legacy", standalone_check=False)
            paths.append(files["onnx"])
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return paths

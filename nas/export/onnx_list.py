"""Export a list of architectures (ONNX by default) for timing on another device or here.

Latency does not depend on the weights, so each network is the space's static subnet with seeded
random weights (:func:`nas.latency.space_units.build_network`), exported by
:func:`nas.export.formats.export_model` (the function ``nas export`` writes its files with, so the
ONNX file comes from :func:`nas.onnx_graph.export_onnx`: the dynamo exporter at the opset a
latency table's units were profiled with, or the defaults without a table; every file checked
against the eager model) into ``<out>/<arch_id>/`` beside its manifest and example input, with a
``model_card.json`` naming the architecture, its space and the random weights, so ``nas latency
validate --exported`` can time the folder against a table. The folder must be new or empty;
nothing is left in it on error.
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
from nas.io import atomic_write_json
from nas.latency.table import LatencyTable
from nas.onnx_graph import DEFAULT_EXPORTER, DEFAULT_OPSET
from nas.spaces.schema import SearchSpace

CARD_JSON = "model_card.json"  # the name nas.export.run_card writes a real export's card under
WEIGHTS_NOTE = "random (seeded): a latency-only export, no accuracy"


def export_archs_onnx(
    space: SearchSpace,
    archs: Sequence[Architecture],
    out: str | os.PathLike,
    *,
    batch: int = 1,
    seed: int = 0,
    table: LatencyTable | None = None,
    formats: str | Sequence[str] = "onnx",
    resume: bool = False,
) -> list[Path]:
    """The ONNX file of every architecture (weights of network ``i`` from
    ``default_rng([seed, i])``); ``table``: export with the opset and exporter its units were
    profiled with. ``formats`` as :func:`export_model` takes them (``"onnx,torchscript"``).
    ``resume``: keep the folders a previous call finished (a folder with its card) and fill in
    the rest, instead of refusing a non-empty ``out``."""
    from nas.latency.space_units import build_network

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not resume)):
        raise UserError(f"--onnx {out}: must be a new or empty folder")
    if batch < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    proto = table.meta.protocol if table is not None else {}
    opset = int(proto.get("onnx_opset", DEFAULT_OPSET))
    exporter = str(proto.get("onnx_exporter", DEFAULT_EXPORTER))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for i, arch in enumerate(archs):
            name = arch.arch_id()
            folder = out / name
            if resume and (folder / CARD_JSON).is_file():
                paths.append(folder / f"{name}.onnx")
                continue
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished folder of a resumed call
            net, x = build_network(space, arch, batch, np.random.default_rng([seed, i]))
            files = export_model(net, x, folder, formats=formats, name=name, opset=opset,
                                 onnx_exporter=exporter, standalone_check=False)
            atomic_write_json(folder / CARD_JSON, {
                "architecture": {"string": arch.to_str(), "id": name,
                                 "search_space": space.name, "space_hash": space.hash()},
                "weights": WEIGHTS_NOTE, "seed": [int(seed), i], "batch": int(batch),
                "onnx": {"opset": opset, "exporter": exporter},
            })
            paths.append(files.get("onnx", folder / f"{name}.onnx"))
    except BaseException:
        if not resume:  # the folder was new or empty
            shutil.rmtree(out, ignore_errors=True)
        raise
    return paths

"""Fill a latency table with the units it lacks: chunked, interleaved, saved as it goes.

The space-specific part (which units exist, how to build each) is passed in as builders, so this
module knows nothing about search spaces::

    table = LatencyTable.load_or_create(path, meta)           # resume where a run stopped
    fill_missing(table, builders, path, protocol, rng=rng)    # builders: key -> () -> (module, x)

Units are measured in chunks of ``chunk_size`` with :func:`nas.latency.timing.measure_many`
(interleaved rounds inside a chunk); the table is saved atomically after a chunk whenever
``save_every_s`` seconds passed since the last save (by default after every chunk), and always at
the end, so an interrupted run, or one whose disk fills up, keeps every chunk saved before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from torch import nn

from nas.latency.export_pool import ExportPool
from nas.latency.table import LatencyTable
from nas.latency.timing import Inputs, TimingItem, TimingProtocol, measure_many

Builder = Callable[[], tuple[nn.Module, Inputs]]


def fill_missing(
    table: LatencyTable,
    builders: Mapping[str, Builder],
    path: str | Path,
    protocol: TimingProtocol,
    *,
    rng: np.random.Generator,
    chunk_size: int = 16,
    save_every_s: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    export_pool: ExportPool | None = None,
) -> list[str]:
    """Measure every key of ``builders`` missing from ``table``; returns the keys measured.

    ``progress(done_units, total_units)`` is called after each chunk. ``export_pool``: exports
    each chunk's modules in parallel before it is timed (ONNX Runtime; see :func:`measure_many`).
    """
    todo = table.missing(builders)
    last_save = time.monotonic()
    for start in range(0, len(todo), max(1, chunk_size)):
        chunk = todo[start : start + max(1, chunk_size)]
        items = []
        for key in chunk:
            module, example = builders[key]()
            items.append(TimingItem(key, module, example))
        table.update(measure_many(items, protocol, rng=rng, export_pool=export_pool))
        del items
        if progress is not None:
            progress(start + len(chunk), len(todo))
        if time.monotonic() - last_save >= save_every_s:
            table.save(path)
            last_save = time.monotonic()
    table.save(path)
    return todo

"""The in-process ask/tell loop of ``nas search``: evaluate in batches, refine LINAS-style at
multiples of ``every``, checkpoint every 30 s, time the search."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.search.base import Searcher

CHECKPOINT_SECONDS = 30.0


@dataclass
class Clock:
    """Seconds spent by a search, by part."""

    evaluate: float = 0.0
    refine: float = 0.0
    search: float = 0.0
    search_cpu: float = 0.0  # CPU seconds of this process during the search (steadier when shared)


def drive(
    searcher: Searcher,
    budget: int,
    *,
    refiner: Any,
    clock: Clock,
    checkpoint: Callable[[], None],
    progress: bool,
    desc: str,
) -> None:
    """ask/tell until ``budget`` evaluations, refining at multiples of ``refiner.every``."""
    from tqdm.auto import tqdm

    problem = searcher.problem
    last_save = time.perf_counter()
    start, start_cpu = time.perf_counter(), time.process_time()
    with tqdm(total=budget, initial=min(len(searcher.history), budget), desc=desc, unit="eval",
              disable=not progress, dynamic_ncols=True) as bar:
        while len(searcher.history) < budget:
            n = len(searcher.history)
            stop = budget if refiner is None else min(budget, refiner.next_stop(n))
            genes = searcher.ask(stop - n)
            if len(genes) == 0:
                warnings.warn(f"no new architecture left to propose after {n} evaluations; "
                              "stopping early", RuntimeWarning, stacklevel=2)
                break
            t = time.perf_counter()
            evaluation = problem.evaluate(genes)
            clock.evaluate += time.perf_counter() - t
            searcher.tell(genes, evaluation)
            bar.update(len(searcher.history) - n)
            if refiner is not None and refiner.due(len(searcher.history)):
                t = time.perf_counter()
                summary = refiner.refine(searcher)
                clock.refine += time.perf_counter() - t
                bar.set_postfix(round=summary["round"], tau=summary["kendall_tau"])
                checkpoint()
                last_save = time.perf_counter()
            elif time.perf_counter() - last_save >= CHECKPOINT_SECONDS:
                checkpoint()
                last_save = time.perf_counter()
    clock.search += time.perf_counter() - start
    clock.search_cpu += time.process_time() - start_cpu

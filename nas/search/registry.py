"""One registry and one front door for the searchers: ``make_searcher("guided", problem, seed=0)``.

A searcher registers itself with :func:`~nas.search.registration.register_searcher` in a module of
:mod:`nas.search.algorithms`; importing that package imports every module in it, so adding a
searcher is one new file in that folder (nothing else lists the names: ``nas search --algo``,
``nas run``, the benchmarks and the conformance tests all read :func:`searcher_names`).

The registering modules stay light (they import the searcher classes inside their factories), so
listing the names for ``nas search --help`` does not import pandas, scipy or Optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nas.search.algorithms  # noqa: F401  (registers every searcher)
from nas.errors import UserError
from nas.search.registration import OPTION_FLAGS, REGISTERED, SearcherSpec, register_searcher

if TYPE_CHECKING:
    from nas.search.base import Searcher
    from nas.search.problem import Problem

__all__ = ["OPTION_FLAGS", "SearcherSpec", "make_searcher", "register_searcher",
           "searcher_names", "searcher_spec", "searcher_specs"]


def searcher_names() -> tuple[str, ...]:
    """Every registered searcher name, sorted."""
    return tuple(sorted(REGISTERED))


def searcher_specs() -> dict[str, SearcherSpec]:
    """The registered searchers by name (a copy)."""
    return dict(sorted(REGISTERED.items()))


def searcher_spec(name: str) -> SearcherSpec:
    """The spec of ``name``; a one-line :class:`UserError` naming the choices if unknown."""
    if name not in REGISTERED:
        raise UserError(f"unknown search algorithm {name!r}; expected one of "
                        f"{', '.join(searcher_names())}")
    return REGISTERED[name]


def make_searcher(name: str, problem: Problem, *, seed: int = 0, **options: Any) -> Searcher:
    """Build the searcher registered as ``name`` for ``problem``.

    ``options`` go to its factory: the job options of :data:`OPTION_FLAGS` it takes (e.g.
    ``population``, ``sampler``) or its constructor's own keywords. An argument the searcher
    refuses (``ValueError``) becomes a one-line :class:`UserError` naming the searcher.
    """
    spec = searcher_spec(name)
    spec.check_objectives(len(problem.objectives))
    try:
        return spec.factory(problem, seed=seed, **options)
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"--algo {name}: {exc}") from None


def __getattr__(name: str) -> Any:
    if name == "ALGORITHMS":  # the old constant, now read from the registry
        return searcher_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

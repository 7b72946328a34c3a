"""One registry and one front door for the searchers: ``make_searcher("guided", problem, seed=0)``.

A searcher registers itself with :func:`register_searcher` in a module of
:mod:`nas.search.algorithms`; every module there is imported the first time the registry is read,
so adding a searcher is one new file in that folder (nothing else lists the names: ``nas search
--algo``, ``nas run``, the benchmarks and the conformance tests all read :func:`searcher_names`).

The registering modules stay light (they import the searcher classes inside their factories), so
listing the names for ``nas search --help`` does not import pandas, scipy or Optuna.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from nas.errors import UserError

if TYPE_CHECKING:
    from nas.search.base import Searcher
    from nas.search.problem import Problem

F = TypeVar("F", bound=Callable[..., Any])

# The options every searcher may take from a 'nas search' job, with the flag that sets each one.
OPTION_FLAGS: dict[str, str] = {
    "population": "--population",
    "sampler": "--sampler",
    "storage": "--storage",
    "study_name": "--study-name",
    "points": "--mp-points",
}


@dataclass(frozen=True)
class SearcherSpec:
    """What the registry knows of a searcher besides how to build it.

    ``factory(problem, *, seed, **options)`` returns a :class:`~nas.search.base.Searcher`.
    ``options``: the job options of :data:`OPTION_FLAGS` it takes (any other keyword goes to the
    factory unchecked from Python). ``space_only``: needs a
    :class:`~nas.search.space_problem.SpaceProblem` (a search space, not any problem).
    ``solver``: proposes a fixed set of solutions once (``budget`` does not drive it).
    ``refinable``: its whole state is the history, so LINAS refinement may re-score it.
    ``tune_trials``: runs as Ray Tune trials with ``--ray-address``.
    """

    name: str
    factory: Callable[..., Searcher]
    summary: str
    min_objectives: int = 1
    max_objectives: int | None = None
    options: frozenset[str] = frozenset()
    resumable: bool = True
    space_only: bool = False
    solver: bool = False
    refinable: bool = False
    tune_trials: bool = False

    def check_objectives(self, n: int) -> None:
        """Raise a one-line :class:`UserError` when this searcher cannot take ``n`` objectives."""
        top = self.max_objectives
        if n < self.min_objectives or (top is not None and n > top):
            low = self.min_objectives
            span = (f"{low} or more" if top is None else f"{low}" if top == low
                    else f"{low} or {top}" if top == low + 1 else f"{low} to {top}")
            hint = "; use --algo evolution for more" if top is not None and n > top else ""
            raise UserError(f"--algo {self.name} handles {span} objectives, got {n}{hint}")


_SEARCHERS: dict[str, SearcherSpec] = {}
_DISCOVERED = False


def register_searcher(
    name: str,
    *,
    summary: str,
    min_objectives: int = 1,
    max_objectives: int | None = None,
    options: tuple[str, ...] = (),
    resumable: bool = True,
    space_only: bool = False,
    solver: bool = False,
    refinable: bool = False,
    tune_trials: bool = False,
) -> Callable[[F], F]:
    """Decorator: register a searcher class or factory under ``name`` (returned unchanged)."""
    unknown = set(options) - set(OPTION_FLAGS)
    if unknown:
        raise ValueError(f"searcher {name!r}: unknown options {sorted(unknown)}; "
                         f"expected some of {sorted(OPTION_FLAGS)}")

    def add(factory: F) -> F:
        old = _SEARCHERS.get(name)
        if old is not None and old.factory is not factory:
            raise ValueError(f"searcher {name!r} is registered twice")
        _SEARCHERS[name] = SearcherSpec(
            name, factory, summary, min_objectives, max_objectives, frozenset(options),
            resumable, space_only, solver, refinable, tune_trials)
        return factory

    return add


def _discover() -> None:
    """Import every module of :mod:`nas.search.algorithms` (each registers its searchers)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import nas.search.algorithms as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    _DISCOVERED = True


def searcher_names() -> tuple[str, ...]:
    """Every registered searcher name, sorted."""
    _discover()
    return tuple(sorted(_SEARCHERS))


def searcher_specs() -> dict[str, SearcherSpec]:
    """The registered searchers by name (a copy)."""
    _discover()
    return dict(sorted(_SEARCHERS.items()))


def searcher_spec(name: str) -> SearcherSpec:
    """The spec of ``name``; a one-line :class:`UserError` naming the choices if unknown."""
    _discover()
    if name not in _SEARCHERS:
        raise UserError(f"unknown search algorithm {name!r}; expected one of "
                        f"{', '.join(searcher_names())}")
    return _SEARCHERS[name]


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

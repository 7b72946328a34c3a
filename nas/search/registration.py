"""How a searcher registers itself: :func:`register_searcher` and what it records,
:class:`SearcherSpec`. Read the registry through :mod:`nas.search.registry` (which imports every
registering module first); this module imports none of them, so there is no import circle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from nas.errors import UserError

if TYPE_CHECKING:
    from nas.search.base import Searcher

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


REGISTERED: dict[str, SearcherSpec] = {}  # filled by the modules of nas.search.algorithms


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
        old = REGISTERED.get(name)
        if old is not None and old.factory is not factory:
            raise ValueError(f"searcher {name!r} is registered twice")
        REGISTERED[name] = SearcherSpec(
            name, factory, summary, min_objectives, max_objectives, frozenset(options),
            resumable, space_only, solver, refinable, tune_trials)
        return factory

    return add

"""Detect infeasible constraint sets before searching, and re-check what a search emits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.errors import UserError
from nas.search.constraints import Constraint
from nas.search.problem import Problem


class InfeasibleError(UserError):
    """No genome of the space can meet the constraints."""


class ConstraintViolationError(RuntimeError):
    """A searcher was about to emit a genome that breaks a constraint (a bug, never user input)."""


@dataclass(frozen=True)
class ConstraintCheck:
    """One constraint against the best value its metric can reach (``None``: unknown)."""

    constraint: Constraint
    best_achievable: float | None

    @property
    def feasible(self) -> bool | None:
        if self.best_achievable is None:
            return None
        return bool(self.constraint.satisfied(self.best_achievable))

    def line(self) -> str:
        c = self.constraint
        word = "smallest" if c.op == "<=" else "largest"
        if self.best_achievable is None:
            return f"{c}: {word} achievable {c.metric} unknown"
        verdict = "ok" if self.feasible else "INFEASIBLE"
        return f"{c}: {word} achievable {c.metric} = {self.best_achievable:.6g} ({verdict})"


@dataclass(frozen=True)
class FeasibilityReport:
    """Per-constraint checks, and the joint answer when the problem can give it exactly."""

    checks: tuple[ConstraintCheck, ...]
    joint: bool | None

    @property
    def feasible(self) -> bool:
        """False only when infeasibility is proven; unknown counts as feasible."""
        return all(c.feasible is not False for c in self.checks) and self.joint is not False

    def message(self) -> str:
        lines = [c.line() for c in self.checks]
        if self.joint is False and all(c.feasible is not False for c in self.checks):
            lines.append("each constraint can be met alone, but no genome meets all of them at once")
        return "; ".join(lines) if lines else "no constraints"


def additive_range(constant: float, per_gene: Sequence[np.ndarray]) -> tuple[float, float]:
    """Exact range of ``constant + sum_i per_gene[i][g_i]`` over all genomes."""
    low = constant + sum(float(np.min(v)) for v in per_gene)
    high = constant + sum(float(np.max(v)) for v in per_gene)
    return low, high


def check_feasibility(problem: Problem) -> FeasibilityReport:
    """Smallest (for ``<=``) or largest (for ``>=``) achievable value of each constrained metric."""
    checks = []
    for c in problem.constraints:
        rng = problem.achievable_range(c.metric)
        best = None if rng is None else (rng[0] if c.op == "<=" else rng[1])
        checks.append(ConstraintCheck(c, best))
    return FeasibilityReport(tuple(checks), problem.jointly_feasible())


def ensure_feasible(problem: Problem) -> FeasibilityReport:
    """:func:`check_feasibility`, raising :class:`InfeasibleError` with the report when proven infeasible."""
    report = check_feasibility(problem)
    if not report.feasible:
        raise InfeasibleError(f"the constraints cannot be met: {report.message()}")
    return report


def recheck(problem: Problem, genes: np.ndarray) -> None:
    """Evaluate ``genes`` afresh and raise :class:`ConstraintViolationError` if any breaks a constraint."""
    if len(genes) == 0 or not problem.constraints:
        return
    evaluation = problem.evaluate(genes)
    bad = np.flatnonzero((evaluation.constraints > 0).any(axis=1))
    if bad.size:
        names = problem.constraint_names
        worst = evaluation.constraints[bad[0]]
        broken = [names[j] for j in np.flatnonzero(worst > 0)]
        raise ConstraintViolationError(
            f"{bad.size} emitted genome(s) break constraints, e.g. {genes[bad[0]].tolist()} breaks {broken}"
        )

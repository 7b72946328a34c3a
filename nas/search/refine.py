"""LINAS-style refinement: search on a predictor, measure the best candidates, refit, continue.

Every ``every`` evaluations (at exact multiples of ``every``, so a resumed search refines at the
same points as an uninterrupted one) a :class:`Refiner`:

1. picks ``top`` candidates not measured yet: with one objective the best feasible ones; with
   several, members of the current feasible front spread evenly along it (first objective order),
   topped up with the best feasible ones on the first objective;
2. measures their validation accuracy with the supernet (:class:`MeasuredAccuracy`: BN
   recalibrated, validation split, the evaluation settings of the predictor's samples file);
3. records predicted against measured (Kendall tau and mean absolute error per round);
4. refits a fresh copy of the predictor (``sklearn.base.clone``: same model, same parameters, same
   encoder) on its training samples plus every measurement so far;
5. re-scores the searcher's whole history with the refitted predictor (through the searcher's own
   ``state_dict``/``load_state_dict``), so selection continues on the new model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from nas.arch import Architecture
from nas.errors import UserError
from nas.search.base import Searcher
from nas.search.space_problem import MeasuredAccuracy, SpaceProblem


@dataclass(frozen=True)
class TrainingSet:
    """The predictor's own training samples (architectures and measured val_acc)."""

    archs: list[Architecture]
    y: np.ndarray
    path: Path

    @classmethod
    def of_predictor(cls, predictor: Any, space: Any, samples: str | os.PathLike | None = None
                     ) -> TrainingSet:
        from nas.sample.fit import load_training_data

        card = getattr(predictor, "card", {}) or {}
        path = samples or (card.get("samples") or {}).get("path")
        if not path or not Path(path).is_file():
            raise UserError(
                f"refinement refits the predictor on its training samples plus new measurements, "
                f"but its samples file {path!r} (from its card) is missing; pass the samples CSV "
                "explicitly (--samples)"
            )
        data = load_training_data(path, "val_acc")
        if data.space.hash() != space.hash():
            raise UserError(f"samples {path} were measured on space {data.space.name!r}, "
                            f"not {space.name!r}")
        return cls(list(data.archs), np.asarray(data.y, dtype=np.float64), Path(path))


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import kendalltau

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(kendalltau(a, b).statistic)


class Refiner:
    """Measure, refit and re-score every ``every`` evaluations (see the module docstring)."""

    def __init__(
        self,
        problem: SpaceProblem,
        measured: MeasuredAccuracy,
        *,
        every: int,
        top: int = 5,
        samples: str | os.PathLike | None = None,
    ) -> None:
        if every < 1 or top < 1:
            raise UserError(f"--validate-every {every} / --validate-top {top}: expected >= 1")
        if problem.accuracy_source != "predictor":
            raise UserError("refinement (--validate-every) needs an accuracy predictor (--predictor)"
                            " and a trained supernet (--run)")
        self.problem = problem
        self.measured = measured
        self.every = int(every)
        self.top = int(top)
        self.base = problem.predictor
        self.training = TrainingSet.of_predictor(self.base, problem.space, samples)
        self.new: dict[str, tuple[Architecture, float]] = {}
        self.records: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []

    # -- when -----------------------------------------------------------------------------------
    def next_stop(self, n: int) -> int:
        """The next evaluation count at which a round is due."""
        return (n // self.every + 1) * self.every

    def due(self, n: int) -> bool:
        return n > 0 and n % self.every == 0 and all(r["evaluations"] != n for r in self.rounds)

    # -- a round ----------------------------------------------------------------------------------
    def candidates(self, searcher: Searcher) -> np.ndarray:
        """History rows to measure this round (see the module docstring)."""
        res = searcher.result(recheck_emitted=False)
        feasible = np.flatnonzero(res.feasible)

        def fresh(i: int) -> bool:
            return self.problem.decode(res.genes[i])[0].arch_id() not in self.new

        picks: list[int] = []
        if len(res.objective_names) > 1:
            front = np.array([i for i in res.front if fresh(i)], dtype=np.int64)
            if len(front):
                spread = np.unique(np.round(np.linspace(0, len(front) - 1, self.top)).astype(int))
                picks = front[spread].tolist()
        for i in feasible[np.argsort(res.objectives[feasible, 0], kind="stable")].tolist():
            if len(picks) >= self.top:
                break
            if i not in picks and fresh(i):
                picks.append(i)
        return np.asarray(picks[: self.top], dtype=np.int64)

    def refine(self, searcher: Searcher) -> dict[str, Any]:
        """One round; returns its summary (also kept in :attr:`rounds`)."""
        n = len(searcher.history)
        rows = self.candidates(searcher)
        archs = self.problem.decode(searcher.history.genes[rows]) if len(rows) else []
        predicted = (np.asarray(self.problem.predictor.predict(archs), dtype=np.float64)
                     if archs else np.zeros(0))
        values = self.measured(archs) if archs else np.zeros(0)
        for arch, p, v in zip(archs, predicted, values):
            self.new[arch.arch_id()] = (arch, float(v))
            self.records.append({"round": len(self.rounds) + 1, "evaluations": n,
                                 "arch_id": arch.arch_id(), "arch": arch.to_str(),
                                 "predicted_val_acc": float(p), "measured_val_acc": float(v),
                                 "error": float(p - v)})
        summary = {
            "round": len(self.rounds) + 1,
            "evaluations": n,
            "measured": len(archs),
            "kendall_tau": kendall_tau(predicted, values),
            "mae": float(np.mean(np.abs(predicted - values))) if len(archs) else None,
            "n_train": len(self.training.y) + len(self.new),
        }
        self.rounds.append(summary)
        if archs:
            self.problem.predictor = self.refit()
            rescore(searcher, self.problem)
        return summary

    # -- the model --------------------------------------------------------------------------------
    def refit(self) -> Any:
        """A fresh copy of the base predictor fitted on its samples plus every new measurement."""
        from nas.sample.predictor import ArchPredictor

        base = self.base
        archs = self.training.archs + [a for a, _ in self.new.values()]
        y = np.concatenate([self.training.y, [v for _, v in self.new.values()]])
        estimator = clone(base.estimator).fit(base.encoder.transform(archs), y)
        card = {**base.card, "n_train": len(y),
                "refined": {"base_n_train": len(self.training.y), "measured": len(self.new)}}
        refit = ArchPredictor(base.space, estimator, base.encoder, card)
        if "_genome_encoder" in vars(base):  # same encoder: reuse its genome tables (built once)
            vars(refit)["_genome_encoder"] = vars(base)["_genome_encoder"]
        return refit

    def save_predictor(self, directory: str | os.PathLike) -> Path | None:
        """Save the refitted predictor (``nas fit``'s format) if any round measured something."""
        from predictors import persistence

        if not self.new:
            return None
        pred = self.problem.predictor
        reserved = set(getattr(persistence, "_RESERVED", ()))  # written by save_predictor itself
        card = {k: v for k, v in pred.card.items() if k not in reserved and k != "cv"}
        card["samples"] = {**(card.get("samples") or {}), "refined_with": len(self.new)}
        return Path(persistence.save_predictor(pred.estimator, directory, card)).parent

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "measured": [[i, a.to_json(), v] for i, (a, v) in self.new.items()],
            "records": list(self.records),
            "rounds": list(self.rounds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.new = {str(i): (Architecture.from_json(a), float(v))
                    for i, a, v in state.get("measured", [])}
        self.records = list(state.get("records", []))
        self.rounds = list(state.get("rounds", []))
        self.measured.remember(list(self.new), [v for _, v in self.new.values()])
        self.problem.predictor = self.refit() if self.new else self.base


def rescore(searcher: Searcher, problem: SpaceProblem) -> None:
    """Re-evaluate the searcher's whole history with ``problem`` as it is now (a refitted model)."""
    state = searcher.state_dict()
    history = state["history"]
    genes = np.asarray(history["genes"], dtype=np.int64).reshape(-1, problem.n_genes)
    if len(genes) == 0:
        return
    ev = problem.evaluate(genes)
    history["objectives"] = ev.objectives.tolist()
    history["constraints"] = ev.constraints.tolist()
    history["metrics"] = {k: np.asarray(v).tolist() for k, v in ev.metrics.items()}
    searcher.load_state_dict(state)

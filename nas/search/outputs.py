"""Write what a search found: the front, every evaluation, a Pareto plot, one JSON per front member.

Layout of ``--out`` (every file written atomically)::

    front.csv           the feasible Pareto front, best first on the first objective: arch_id, arch
                        (short string), arch_json, genome, every metric (recomputed architecture by
                        architecture: nas.costs, the latency table, the predictor), constraint values
    evaluated.csv       every evaluated architecture in evaluation order, the same columns plus
                        eval (its index), feasible and on_front
    front/<arch_id>.json one per front member: arch_id, arch, arch_json, genome, metrics, the
                        constraints it meets; 'nas export --arch <arch_id>' finds them
    pareto.png          2+ objectives: every evaluation (grey; infeasible ones faded), the front
                        highlighted, constraint bounds as dashed lines; 1 objective: the objective
                        per evaluation and the best feasible value so far
    refine.csv          (with --validate-every) predicted vs measured validation accuracy per round
    search.json         settings, seed, space hash, feasibility report, timings, counts
    state.json          what --resume continues from

Constraint columns follow Optuna's convention (``<= 0`` is feasible).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.arch import Architecture
from nas.io import atomic_write, atomic_write_json, atomic_write_text, real_folder
from nas.search.result import SearchResult

REPORTED: tuple[str, ...] = ("accuracy", "val_acc", "latency_ms", "flops", "macs", "params",
                             "param_memory", "memory", "deepmad_score")
FRONT_DIR = "front"
REFINE_COLUMNS: tuple[str, ...] = ("round", "evaluations", "arch_id", "arch", "predicted_val_acc",
                                   "measured_val_acc", "error")


@dataclass(frozen=True)
class FrontMember:
    """One emitted architecture: where it is in the history, and its exact metrics."""

    index: int  # row of the SearchResult
    arch: Architecture
    genome: tuple[int, ...]
    metrics: Mapping[str, float]

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id()

    def record(self) -> dict[str, Any]:
        """The JSON written to ``front/<arch_id>.json`` (what ``nas export --arch ID`` reads)."""
        return {
            "arch_id": self.arch_id,
            "arch": self.arch.to_str(),
            "arch_json": self.arch.to_json(),
            "genome": list(self.genome),
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
        }


def metric_columns(result: SearchResult, extra: Sequence[str] = ()) -> list[str]:
    """Objective metrics first, then the other reported metrics present in ``result``."""
    names = list(dict.fromkeys([*result.objective_names, *extra]))
    names += [m for m in REPORTED if m in result.metrics and m not in names]
    return [n for n in dict.fromkeys(names) if n in result.metrics]


def _num(value: Any) -> Any:
    value = float(value)
    if np.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return int(value)
    return value


def _genome_text(genes: np.ndarray) -> list[str]:
    return [" ".join(str(int(v)) for v in row) for row in genes]


def evaluated_frame(
    result: SearchResult,
    archs: Sequence[Architecture],
    front: Sequence[FrontMember],
    constraints: Sequence[Any] = (),
    *,
    measured: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per evaluation (see the module docstring)."""
    ids = [a.arch_id() for a in archs]
    data: dict[str, Any] = {
        "eval": np.arange(len(result)),
        "arch_id": ids,
        "arch": [a.to_str() for a in archs],
        "arch_json": [a.to_json() for a in archs],
        "genome": _genome_text(result.genes),
    }
    for name in metric_columns(result, [c.metric for c in constraints]):
        data[name] = result.metrics[name]
    if measured:
        data["measured_val_acc"] = [measured.get(i, np.nan) for i in ids]
    for j, name in enumerate(result.constraint_names):
        data[f"constraint[{name}]"] = result.constraints[:, j]
    data["feasible"] = result.feasible
    on_front = np.zeros(len(result), dtype=bool)
    on_front[[m.index for m in front]] = True
    data["on_front"] = on_front
    return pd.DataFrame(data)


def front_frame(
    result: SearchResult,
    front: Sequence[FrontMember],
    constraints: Sequence[Any],
    *,
    measured: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The front with its exact metrics, best first on the first objective."""
    names = metric_columns(result, [c.metric for c in constraints])
    rows = []
    for rank, m in enumerate(front):
        row: dict[str, Any] = {"rank": rank, "arch_id": m.arch_id, "arch": m.arch.to_str(),
                               "arch_json": m.arch.to_json(),
                               "genome": " ".join(str(v) for v in m.genome)}
        row.update({n: m.metrics[n] for n in names if n in m.metrics})
        if measured:
            row["measured_val_acc"] = measured.get(m.arch_id, np.nan)
        for c in constraints:
            row[f"constraint[{c}]"] = float(c.violation(m.metrics[c.metric]))
        row["eval"] = m.index
        rows.append(row)
    columns = ["rank", "arch_id", "arch", "arch_json", "genome", *names]
    if measured:
        columns.append("measured_val_acc")
    columns += [f"constraint[{c}]" for c in constraints] + ["eval"]
    return pd.DataFrame(rows, columns=columns)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Floats at full (round-trip) precision; integer-valued float columns (FLOPs, params, bytes)
    as integers."""
    frame = frame.copy()
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind == "f" and len(col) and col.notna().all():
            values = col.to_numpy()
            if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
                frame[name] = values.astype(np.int64)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return atomic_write_text(path, buf.getvalue())


def write_front_jsons(out: Path, front: Sequence[FrontMember], extra: Mapping[str, Any]) -> list[Path]:
    """``front/<arch_id>.json`` per member; stale files of an earlier front are removed."""
    folder = out / FRONT_DIR
    real_folder(folder)
    paths = []
    for rank, m in enumerate(front):
        paths.append(atomic_write_json(folder / f"{m.arch_id}.json",
                                       {**m.record(), "rank": rank, **extra}))
    keep = {p.name for p in paths}
    for old in folder.glob("*.json"):
        if old.name not in keep:
            old.unlink()
    return paths


def _bound_lines(ax: Any, constraints: Sequence[Any], x: str, y: str) -> None:
    for c in constraints:
        if c.metric == x:
            ax.axvline(c.bound, color="tab:red", linestyle="--", linewidth=1, label=str(c))
        elif c.metric == y:
            ax.axhline(c.bound, color="tab:red", linestyle="--", linewidth=1, label=str(c))


def _scatter(ax: Any, xs: np.ndarray, ys: np.ndarray, feasible: np.ndarray) -> None:
    for mask, color, label in ((~feasible, "0.8", "infeasible"), (feasible, "0.45", "feasible")):
        if mask.any():
            ax.scatter(xs[mask], ys[mask], s=6, color=color, label=f"{label} ({mask.sum()})",
                       rasterized=True)


def plot_pareto(
    path: str | os.PathLike,
    result: SearchResult,
    front: Sequence[FrontMember],
    constraints: Sequence[Any],
    *,
    title: str = "",
) -> Path:
    """The Pareto plot (see the module docstring), rendered with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    feasible = result.feasible
    names = result.objective_names
    if len(names) >= 2:
        x, y = names[1], names[0]  # cost on x, the first objective (usually accuracy) on y
        xs, ys = result.metrics[x], result.metrics[y]
        _scatter(ax, xs, ys, feasible)
        fx = [m.metrics[x] for m in front]
        fy = [m.metrics[y] for m in front]
        order = np.argsort(fx, kind="stable")
        ax.plot(np.asarray(fx)[order], np.asarray(fy)[order], "o-", color="tab:blue",
                markersize=5, label=f"front ({len(front)})")
        ax.set_xlabel(f"{x} ({result.directions[1][:3]})")
        ax.set_ylabel(f"{y} ({result.directions[0][:3]})")
        _bound_lines(ax, constraints, x, y)
    else:
        y = names[0]
        values = result.metrics[y]
        idx = np.arange(len(result))
        _scatter(ax, idx, values, feasible)
        sign = -1.0 if result.directions[0] == "maximize" else 1.0
        best = np.where(feasible, sign * values, np.inf)
        running = np.minimum.accumulate(best) if len(best) else best
        ok = np.isfinite(running)
        ax.plot(idx[ok], sign * running[ok], color="tab:blue", label="best feasible so far")
        ax.set_xlabel("evaluation")
        ax.set_ylabel(f"{y} ({result.directions[0][:3]})")
        _bound_lines(ax, constraints, "", y)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def write_outputs(
    out: str | os.PathLike,
    *,
    result: SearchResult,
    archs: Sequence[Architecture],
    front: Sequence[FrontMember],
    constraints: Sequence[Any],
    summary: Mapping[str, Any],
    measured: Mapping[str, float] | None = None,
    refine_records: Sequence[Mapping[str, Any]] | None = None,
    space: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write every output but the state file; returns their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "front": write_csv(out / "front.csv",
                           front_frame(result, front, constraints, measured=measured)),
        "evaluated": write_csv(out / "evaluated.csv",
                               evaluated_frame(result, archs, front, constraints,
                                               measured=measured)),
        "pareto": plot_pareto(out / "pareto.png", result, front, constraints,
                              title=str(summary.get("title", ""))),
    }
    write_front_jsons(out, front, {"space": dict(space or {})})
    paths["front_dir"] = out / FRONT_DIR
    if refine_records:
        paths["refine"] = write_csv(out / "refine.csv",
                                    pd.DataFrame(list(refine_records), columns=list(REFINE_COLUMNS)))
    paths["summary"] = atomic_write_json(out / "search.json", dict(summary))
    return paths

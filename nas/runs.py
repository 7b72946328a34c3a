"""What a run folder holds, read back from the files it wrote (no torch, no pandas): behind
``nas runs`` (list), ``nas show`` and ``nas compare``, and the weak-run warnings of ``nas run``.

A run is a ``nas run`` folder (``plan.json`` and ``stages.json``) or a ``nas train`` folder
(``config.json`` with the run format tag). :func:`read_run` gathers its stages, key numbers
(supernet accuracy of the largest and smallest subnets, predictor Kendall tau, latency
calibration error, search front, exported models) and :func:`weak_run_warnings` says what looks
weak, each warning with the number that triggered it.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import UserError

# The stages of a 'nas run' folder in pipeline order (nas.pipeline runs them; stages.json records them)
STAGES: tuple[str, ...] = ("train", "profile", "sample", "fit", "search", "export", "report")

# Thresholds of the weak-run warnings (each warning names its number and the threshold).
CHANCE_FACTOR = 1.5  # largest subnet's validation accuracy below 1.5x chance: near chance
SPREAD_MIN = 0.01  # largest and smallest within 1 point of accuracy: the supernet barely differs
TAU_MIN = 0.2  # predictor's cross-validated Kendall tau below 0.2: ranks little better than random
LATENCY_ERROR_MAX = 0.10  # latency table off by more than 10% (calibration fit, or measured exports)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_csv_row(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    return rows[-1] if rows else {}


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN -> None


def _num_classes(space_yaml: Path) -> int | None:
    import yaml

    try:
        data = yaml.safe_load(space_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    value = data.get("num_classes") if isinstance(data, dict) else None
    return int(value) if isinstance(value, int) else None


@dataclass
class RunInfo:
    """A run folder's summary; ``None`` where a stage has not written its number yet."""

    path: Path
    kind: str  # "run" (nas run) or "train" (nas train)
    space: str | None = None
    data: str | None = None
    stages_done: list[str] = field(default_factory=list)
    epochs_done: int | None = None
    epochs: int | None = None
    num_classes: int | None = None
    val_acc_largest: float | None = None
    val_acc_smallest: float | None = None
    predictor: str | None = None
    kendall_tau: float | None = None
    calibration_error: float | None = None  # median relative error of the table's calibration
    latency_bound_ms: float | None = None
    front: int | None = None
    exported: list[dict[str, Any]] = field(default_factory=list)
    random_search: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        if self.kind == "train":
            return self.epochs is not None and self.epochs_done == self.epochs
        return "report" in self.stages_done

    @property
    def best(self) -> dict[str, Any] | None:
        """The exported model with the best validation accuracy."""
        scored = [e for e in self.exported if _float(e.get("val_acc")) is not None]
        return max(scored, key=lambda e: float(e["val_acc"])) if scored else None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "path": str(self.path), "complete": self.complete,
                "warnings": weak_run_warnings(self)}


def is_run(path: Path) -> str | None:
    """``"run"``, ``"train"`` or None for a folder that is neither."""
    if (path / "stages.json").is_file() or (path / "plan.json").is_file():
        return "run"
    if _json(path / "config.json").get("format") is not None and (path / "space.yaml").is_file():
        return "train"
    return None


def _read_supernet(info: RunInfo, folder: Path) -> None:
    config = _json(folder / "config.json")
    train = config.get("train", {}) if isinstance(config.get("train"), dict) else {}
    info.space = info.space or train.get("space")
    info.data = info.data or train.get("data")
    info.epochs = int(train["epochs"]) if _float(train.get("epochs")) is not None else None
    last = _last_csv_row(folder / "metrics.csv")
    info.epochs_done = int(float(last["epoch"])) if _float(last.get("epoch")) is not None else None
    info.val_acc_largest = _float(last.get("val_acc_largest"))
    info.val_acc_smallest = _float(last.get("val_acc_smallest"))
    info.num_classes = _num_classes(folder / "space.yaml")


def read_run(path: str | os.PathLike) -> RunInfo:
    """The summary of the run folder ``path`` (UserError if it is not one)."""
    root = Path(path)
    kind = is_run(root)
    if kind is None:
        raise UserError(f"{root}: not a run folder (no stages.json/plan.json of 'nas run', no "
                        "config.json and space.yaml of 'nas train')")
    info = RunInfo(root, kind)
    if kind == "train":
        _read_supernet(info, root)
        return info
    plan = _json(root / "plan.json")
    info.space, info.data = plan.get("space"), plan.get("data")
    stages = _json(root / "stages.json").get("stages", {})
    stages = stages if isinstance(stages, dict) else {}
    info.stages_done = [s for s in STAGES if isinstance(stages.get(s), dict)
                        and stages[s].get("status") == "done"]
    if (root / "supernet" / "config.json").is_file():
        _read_supernet(info, root / "supernet")
    fit = stages.get("fit", {})
    if isinstance(fit, dict) and fit.get("chosen"):
        info.predictor = fit["chosen"]
        info.kendall_tau = _float(fit.get("cv_kendall_tau", {}).get(fit["chosen"]))
    calibration = stages.get("profile", {}).get("calibration") if isinstance(
        stages.get("profile"), dict) else None
    if isinstance(calibration, dict):
        info.calibration_error = _float(calibration.get("fit_median_ape"))
    search = stages.get("search", {})
    if isinstance(search, dict):
        info.front = search.get("front")
        info.latency_bound_ms = _float(search.get("bounds", {}).get("latency_ms"))
    export = stages.get("export", {})
    if isinstance(export, dict):
        rounds = export.get("rounds") or []
        info.exported = list(rounds[-1].get("exported", [])) if rounds else []
        info.random_search = export.get("random_search")
    return info


def find_runs(root: str | os.PathLike, max_depth: int = 3) -> list[RunInfo]:
    """Every run folder under ``root`` (itself included), at most ``max_depth`` levels down; the
    supernet folder inside a ``nas run`` folder is part of that run, not listed again."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    found: list[RunInfo] = []
    seen: set[Path] = set()

    def walk(folder: Path, depth: int) -> None:
        real = folder.resolve()
        if real in seen:  # a symbolic link to a folder already listed
            return
        seen.add(real)
        kind = is_run(folder)
        if kind is not None:
            found.append(read_run(folder))
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return found


def weak_run_warnings(info: RunInfo) -> list[str]:
    """What looks weak in a run, each line with the number that triggered it."""
    out = []
    largest, smallest = info.val_acc_largest, info.val_acc_smallest
    if largest is not None and info.num_classes:
        chance = 1.0 / info.num_classes
        if largest < CHANCE_FACTOR * chance:
            out.append(f"near-chance supernet: largest subnet's validation accuracy "
                       f"{100 * largest:.1f}% vs chance {100 * chance:.1f}% (below "
                       f"{CHANCE_FACTOR}x chance); train longer or check the data")
    if largest is not None and smallest is not None and abs(largest - smallest) < SPREAD_MIN:
        out.append(f"largest ~= smallest: validation accuracy {100 * largest:.2f}% vs "
                   f"{100 * smallest:.2f}% (within {100 * SPREAD_MIN:.0f} point); the space's "
                   "size barely matters here, so the search has little to find")
    if info.kendall_tau is not None and info.kendall_tau < TAU_MIN:
        out.append(f"predictor tau near 0: cross-validated Kendall tau {info.kendall_tau:.3f} "
                   f"({info.predictor}; below {TAU_MIN}); measure more subnets (--n-samples) or "
                   "train the supernet longer")
    if info.calibration_error is not None and info.calibration_error > LATENCY_ERROR_MAX:
        out.append(f"latency table far off: calibration median error "
                   f"{100 * info.calibration_error:.1f}% (above {100 * LATENCY_ERROR_MAX:.0f}%); "
                   "profile with more rounds and repeats on a quieter machine")
    ratios = [float(e["measured_ms"]) / float(e["predicted_ms"]) for e in info.exported
              if _float(e.get("measured_ms")) and _float(e.get("predicted_ms"))]
    if ratios:
        worst = max(ratios, key=lambda r: abs(r - 1.0))
        if abs(worst - 1.0) > LATENCY_ERROR_MAX:
            out.append(f"latency table far off: an exported model measured {worst:.2f}x its "
                       f"predicted latency (more than {100 * LATENCY_ERROR_MAX:.0f}% off)")
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _ms(value: Any) -> str:
    v = _float(value)
    return "-" if v is None else f"{v:.3f}"


def describe(info: RunInfo) -> str:
    """``nas show``: the run's stages, key numbers, exported models and warnings."""
    lines = [f"{info.path}: {'nas run' if info.kind == 'run' else 'nas train'} of "
             f"{info.space} on {info.data} ({'complete' if info.complete else 'unfinished'})"]
    if info.kind == "run":
        lines.append("stages done: " + (", ".join(info.stages_done) or "none"))
    if info.epochs is not None:
        lines.append(f"supernet: {info.epochs_done or 0} of {info.epochs} epochs; validation "
                     f"accuracy largest {_pct(info.val_acc_largest)}, smallest "
                     f"{_pct(info.val_acc_smallest)}")
    if info.kendall_tau is not None:
        lines.append(f"predictor: {info.predictor}, cross-validated Kendall tau "
                     f"{info.kendall_tau:.3f}")
    if info.calibration_error is not None:
        lines.append(f"latency table: calibration median error {100 * info.calibration_error:.1f}%")
    if info.front is not None:
        lines.append(f"search: front of {info.front} under {_ms(info.latency_bound_ms)} ms")
    if info.exported:
        lines.append(f"exported ({len(info.exported)}):")
        lines.append(f"  {'arch id':14} {'val acc':>8} {'test acc':>9} {'pred ms':>8} "
                     f"{'meas ms':>8} {'params':>8}  folder")
        for e in info.exported:
            lines.append(f"  {e.get('arch_id', '?'):14} {_pct(_float(e.get('val_acc'))):>8} "
                         f"{_pct(_float(e.get('test_acc'))):>9} {_ms(e.get('predicted_ms')):>8} "
                         f"{_ms(e.get('measured_ms')):>8} {e.get('params', '-'):>8}  "
                         f"{e.get('folder', '')}")
    rnd = (info.random_search or {}).get("exported") if info.random_search else None
    if rnd:
        lines.append(f"random search (same measured budget): {rnd.get('arch_id')} val "
                     f"{_pct(_float(rnd.get('val_acc')))}, test {_pct(_float(rnd.get('test_acc')))}")
    for w in weak_run_warnings(info):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


COMPARE_ROWS: tuple[tuple[str, Any], ...] = (
    ("kind", lambda i: i.kind),
    ("space", lambda i: i.space or "-"),
    ("data", lambda i: i.data or "-"),
    ("complete", lambda i: "yes" if i.complete else "no"),
    ("epochs", lambda i: f"{i.epochs_done or 0}/{i.epochs}" if i.epochs else "-"),
    ("supernet val acc largest", lambda i: _pct(i.val_acc_largest)),
    ("supernet val acc smallest", lambda i: _pct(i.val_acc_smallest)),
    ("predictor Kendall tau", lambda i: "-" if i.kendall_tau is None else f"{i.kendall_tau:.3f}"),
    ("latency bound ms", lambda i: _ms(i.latency_bound_ms)),
    ("front size", lambda i: "-" if i.front is None else str(i.front)),
    ("exported models", lambda i: str(len(i.exported))),
    ("best val acc", lambda i: _pct(_float((i.best or {}).get("val_acc")))),
    ("best test acc", lambda i: _pct(_float((i.best or {}).get("test_acc")))),
    ("best measured ms", lambda i: _ms((i.best or {}).get("measured_ms"))),
    ("best params", lambda i: str((i.best or {}).get("params", "-"))),
    ("best arch id", lambda i: (i.best or {}).get("arch_id", "-")),
    ("warnings", lambda i: str(len(weak_run_warnings(i)))),
)


def compare(infos: list[RunInfo]) -> str:
    """``nas compare``: one markdown table, a column per run, a row per key number."""
    header = "| | " + " | ".join(str(i.path) for i in infos) + " |"
    lines = [header, "|---" * (len(infos) + 1) + "|"]
    for name, get in COMPARE_ROWS:
        lines.append(f"| {name} | " + " | ".join(str(get(i)) for i in infos) + " |")
    return "\n".join(lines)


def listing(infos: list[RunInfo]) -> str:
    """``nas runs``: one line per run."""
    lines = [f"{'run':40} {'kind':5} {'space':14} {'data':14} {'status':10} {'best val':>8} "
             f"{'warn':>4}"]
    for i in infos:
        best = _pct(_float((i.best or {}).get("val_acc")))
        status = "complete" if i.complete else (i.stages_done[-1] if i.stages_done else "started")
        lines.append(f"{i.path!s:40} {i.kind:5} {i.space!s:14} {i.data!s:14} "
                     f"{status:10} {best:>8} {len(weak_run_warnings(i)):>4}")
    return "\n".join(lines)

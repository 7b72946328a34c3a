"""The end-to-end job behind ``nas run``: every stage of DESIGN.md's data flow, on files.

    train supernet -> profile this device -> measure subnets -> fit predictor
      -> constrained search -> export the front's best -> re-measure on the device -> report

Each stage writes its own folder (or file) in the run folder and is recorded in ``stages.json``;
a rerun skips the stages already done (and the resumable ones, training, profiling and sampling,
continue where they stopped), so any stage can also be rerun alone with its own command
(``nas train``, ``nas profile``, ``nas sample``, ``nas fit``, ``nas search``, ``nas export``) from
the files of the previous one. If an exported model's measured latency breaks its bound, the
search bound is tightened by the observed ratio and the search repeated (at most
``max_rounds`` rounds); the report says so.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.io import atomic_write_json
from nas.json_files import read_json_object
from nas.locks import output_lock
from nas.runs import STAGES  # re-exported: the stages' home is the run-folder reader
from nas.spaces import load_space


def constraint_strings(bounds: dict[str, float]) -> list[str]:
    """Search constraints for the bounds of a run (latency_ms, memory, optional params)."""
    out = [f"latency_ms<={bounds['latency_ms']:.6g}", f"memory<={bounds['memory']:.0f}B"]
    if "params" in bounds:
        out.append(f"params<={bounds['params']:.0f}")
    return out


def _acc(result: dict[str, float] | None) -> float | None:
    return None if result is None else float(result["acc"])


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (plan.json and stages.json carry no version: a setting added
    since has its default, see ``_check_plan``); a damaged file is one :class:`UserError`."""
    return read_json_object(path, what, hint="; remove it (and redo the run) or use another "
                            "--out folder")


Say = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """Every setting of ``nas run``; :meth:`default` and :meth:`quick` are the two presets."""

    space: str = "hybrid-cifar"
    data: str = "digits"
    seed: int = 0
    epochs: int = 15
    train_lr: float | None = None  # None: the optimizer's default (nas train --lr)
    train_batch_size: int | None = None  # None: nas train's default (--batch-size)
    samples: int = 100
    sample_strategy: str = "flops"
    predictor_models: tuple[str, ...] = ("ridge", "gbm")
    device: str = "onnxruntime"  # latency runtime: onnxruntime (CPU) or cpu (torch eager)
    threads: int = 1
    profile_rounds: int = 5
    profile_repeats: int = 20
    calibrate: int = 20
    algo: str = "evolution"
    budget: int = 20000
    top: int = 3
    latency_bound_ms: float | None = None  # None: the median predicted latency of random subnets
    memory_bound_bytes: float | None = None  # None: the 75th percentile of random subnets
    max_rounds: int = 3
    params_bound: float | None = None  # None: no parameter-count constraint
    formats: tuple[str, ...] = ("pt", "torchscript", "onnx")
    standalone_checks: int = 3  # how many exported models are verified in a clean interpreter
    finetune_epochs: int = 0  # OFA-style fine-tune of each exported subnet (0: inherited weights)
    finetune_lr: float | None = None  # None: nas.train.finetune.FinetuneConfig's default
    train_threads: int | None = None  # None: ``threads`` (the latency threads) for training too
    workers: int = 1
    data_workers: int | None = None  # image-folder reader processes (None: nas.data's default)
    ray_address: str | None = None
    # the search's objectives (val_acc maximised among them: exports are picked by it) and
    # constraints beyond the derived latency and memory bounds ('flops<=60M', 'params:le:50K')
    objectives: tuple[str, ...] = ("max:val_acc", "min:latency_ms")
    constraints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from nas.search.constraints import parse_constraints, parse_objective

        parsed = [parse_objective(o) for o in self.objectives]
        if not any(o.metric == "val_acc" and o.direction == "maximize" for o in parsed):
            raise UserError(
                f"objectives {list(self.objectives)}: 'max:val_acc' must be one of them (the "
                "exported models are the front's best by validation accuracy)"
            )
        parse_constraints(self.constraints)
        from nas.sample.options import DEFAULT_FOLDS

        if self.samples < 2 * DEFAULT_FOLDS:  # refused now, not after training and profiling
            raise UserError(f"--n-samples {self.samples}: the predictor's {DEFAULT_FOLDS}-fold "
                            f"cross-validation needs at least {2 * DEFAULT_FOLDS} samples")

    @classmethod
    def default(cls, **overrides: Any) -> RunPlan:
        return replace(cls(), **overrides)

    @classmethod
    def quick(cls, **overrides: Any) -> RunPlan:
        """A small end-to-end run (hybrid-tiny) for CI and a first look: a few minutes on 2 cores."""
        plan = cls(
            space="hybrid-tiny",
            epochs=10,
            train_lr=0.01,
            train_batch_size=64,
            samples=40,
            profile_rounds=3,
            profile_repeats=10,
            calibrate=8,
            budget=2000,
            formats=("onnx",),
            standalone_checks=1,
        )
        return replace(plan, **overrides)

    @classmethod
    def fashion_mnist(cls, **overrides: Any) -> RunPlan:
        """Fashion-MNIST on ``hybrid-fmnist`` (28x28 grayscale), under 100K parameters and the
        derived latency bound, each export fine-tuned 10 epochs: 95 minutes measured on 2 shared cores
        (results/benchmarks/fashion_mnist.md says where the time goes)."""
        plan = cls(
            space="hybrid-fmnist",
            data="fashion-mnist",
            epochs=4,
            train_batch_size=128,
            train_threads=2,
            samples=300,
            params_bound=100_000,
            finetune_epochs=10,
            workers=2,
        )
        return replace(plan, **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RunPlan:
        """One of :data:`PRESETS` by name, with ``overrides``."""
        if name not in PRESETS:
            raise UserError(f"preset {name!r}: expected one of {', '.join(PRESETS)}")
        return getattr(cls, PRESETS[name])(**overrides)


PRESETS: dict[str, str] = {"default": "default", "quick": "quick", "fashion-mnist": "fashion_mnist"}


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The settings in a ``nas run --config`` YAML file: any :class:`RunPlan` field (``space``,
    ``epochs``, ``constraints``, ...) and ``preset``; lists become tuples. Read with
    ``yaml.safe_load`` (no code runs); an unknown key or a non-mapping is one UserError."""
    from dataclasses import fields

    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings (space: ..., epochs: ...)")
    known = {f.name for f in fields(RunPlan)} | {"preset"}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise UserError(f"{path}: unknown settings {unknown}; expected any of {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


@dataclass
class Ledger:
    """``stages.json``: which stages are done, how long they took and what they said."""

    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        if not path.exists():
            return cls(path)
        data = _read_json_object(path, "a stages ledger written by 'nas run'")
        stages = data.get("stages", {})
        if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
            raise UserError(f"{path}: not a stages ledger written by 'nas run' (bad 'stages')")
        return cls(path, dict(stages))

    def done(self, stage: str) -> bool:
        return self.stages.get(stage, {}).get("status") == "done"

    def record(self, stage: str, seconds: float, info: dict[str, Any]) -> None:
        self.stages[stage] = {"status": "done", "seconds": round(seconds, 2), **info}
        atomic_write_json(self.path, {"stages": self.stages})

    def forget_from(self, stage: str) -> None:
        for name in STAGES[STAGES.index(stage) :]:
            self.stages.pop(name, None)
        atomic_write_json(self.path, {"stages": self.stages})


@dataclass
class RunPaths:
    root: Path

    @property
    def supernet(self) -> Path:
        return self.root / "supernet"

    @property
    def table(self) -> Path:
        return self.root / "latency" / "table.csv"

    @property
    def samples(self) -> Path:
        return self.root / "samples.csv"

    @property
    def predictor(self) -> Path:
        return self.root / "predictor"

    def search(self, round_: int) -> Path:
        return self.root / "search" / f"round{round_}"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def folders(self) -> tuple[Path, ...]:
        """The folders the stages write into (each stage's command makes its own)."""
        return (self.supernet, self.table.parent, self.predictor, self.search(0).parent,
                self.export)

    def linked_folder(self) -> Path | None:
        """The first of :meth:`folders` that is a symbolic link (written through, it would put
        the run's files outside the run folder), if any."""
        return next((folder for folder in self.folders() if folder.is_symlink()), None)


class Pipeline:
    """Runs the stages of a :class:`RunPlan` in a run folder (see the module docstring)."""

    def __init__(self, plan: RunPlan, root: str | Path, *, progress: bool = True, say: Say = print):
        self.plan = plan
        self.paths = RunPaths(Path(root))
        self.progress = progress
        self.say = say
        self.paths.root.mkdir(parents=True, exist_ok=True)
        linked = self.paths.linked_folder()
        if linked is not None:
            raise UserError(f"{linked} is a symbolic link: a run writes its stages into real "
                            "folders inside --out; remove the link or choose another --out")
        self._check_plan()
        self.ledger = Ledger.load(self.paths.root / "stages.json")
        self.space = load_space(plan.space)

    def _check_plan(self) -> None:
        path = self.paths.root / "plan.json"
        current = asdict(self.plan)
        if path.exists():
            saved = _read_json_object(path, "a run plan written by 'nas run'")
            # a setting added since the run was written has its default there
            defaults = json.loads(json.dumps(asdict(RunPlan())))
            saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
            diff = {
                k: (saved.get(k), v)
                for k, v in json.loads(json.dumps(current)).items()
                if saved.get(k) != v
            }
            diff.pop("workers", None)
            diff.pop("data_workers", None)
            diff.pop("ray_address", None)
            if diff:
                lines = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())
                raise UserError(
                    f"{self.paths.root} holds a run with other settings ({lines}); "
                    "use another --out folder or the same settings"
                )
        atomic_write_json(path, current)

    # ----- driver -----
    def run(self, rerun: str | None = None) -> dict[str, Any]:
        if rerun is not None:
            if rerun not in STAGES:
                raise UserError(f"--rerun {rerun!r}: expected one of {', '.join(STAGES)}")
            self.ledger.forget_from(rerun)
        for stage in STAGES:
            if self.ledger.done(stage):
                self.say(
                    f"[{stage}] done earlier ({self.ledger.stages[stage]['seconds']:.0f} s); skipped"
                )
                continue
            self.say(f"[{stage}] ...")
            start = time.perf_counter()
            info = getattr(self, f"_stage_{stage}")()
            self.ledger.record(stage, time.perf_counter() - start, info)
            self.say(f"[{stage}] done in {time.perf_counter() - start:.0f} s")
        return self.ledger.stages

    # ----- stages -----
    def _stage_train(self) -> dict[str, Any]:
        from nas.train.config import TrainConfig
        from nas.train.loop import train

        p = self.plan
        config = TrainConfig(
            space=p.space,
            data=p.data,
            epochs=p.epochs,
            lr=p.train_lr,
            seed=p.seed,
            **({} if p.train_batch_size is None else {"batch_size": p.train_batch_size}),
            threads=p.train_threads or p.threads,
            data_workers=p.data_workers,
        )
        # a run killed after config.json but before the first checkpoint continues too (train
        # starts it afresh then); nas run's own plan check has already matched the settings
        folder = self.paths.supernet
        resume = (folder / "checkpoint.pt").exists() or (folder / "config.json").exists()
        with output_lock(folder, folder=True, command="nas run (train)"):
            result = train(config, folder, resume=resume, progress=self.progress, echo=False)
        summary = self.paths.supernet / "summary.json"
        return {"summary": json.loads(summary.read_text()) if summary.exists() else repr(result)}

    def _stage_profile(self) -> dict[str, Any]:
        from nas.latency.space_profile import profile_space, protocol_for

        p = self.plan
        protocol = protocol_for(
            p.device, p.threads, rounds=p.profile_rounds, repeats=p.profile_repeats
        )
        with output_lock(self.paths.table, folder=False, command="nas run (profile)"):
            result = profile_space(
                self.space,
                self.paths.table,
                protocol,
                calibrate=p.calibrate,
                seed=p.seed,
                ray_address=p.ray_address,
                progress=self.progress,
                say=self.say,
            )
        cal = result.table.calibration
        return {
            "keys": result.n_keys,
            "measured": result.measured,
            "calibration": cal.to_dict() if cal is not None else None,
        }

    def _stage_sample(self) -> dict[str, Any]:
        from nas.sample.measure import sample_subnets

        p = self.plan
        with output_lock(self.paths.samples, folder=False, command="nas run (sample)"):
            result = sample_subnets(
                self.paths.supernet,
                self.paths.samples,
                n=p.samples,
                strategy=p.sample_strategy,
                seed=p.seed,
                lut=self.paths.table,
                workers=p.workers,
                ray_address=p.ray_address,
                progress=self.progress,
                data_workers=p.data_workers,
            )
        return {"rows": result.total_rows, "measured": result.measured}

    def _stage_fit(self) -> dict[str, Any]:
        """Fit each candidate model; keep the one with the best cross-validated Kendall tau."""
        from nas.sample.fit import fit_predictor

        p = self.plan
        scores = {}
        for model in p.predictor_models:
            fitted = fit_predictor(self.paths.samples, target="val_acc", model=model, seed=p.seed)
            scores[model] = float(fitted.card["cv"]["kendall_tau"]["mean"])
            self.say(f"  {model}: cross-validated Kendall tau {scores[model]:.3f}")
        best = max(scores, key=scores.get)
        if self.paths.predictor.exists():
            shutil.rmtree(self.paths.predictor)
        fit_predictor(
            self.paths.samples, target="val_acc", model=best, seed=p.seed, out=self.paths.predictor
        )
        return {"chosen": best, "cv_kendall_tau": scores}

    def _bounds(self) -> dict[str, float]:
        """The plan's bounds, or ones derived from the space: the median predicted latency and the
        75th percentile of peak memory over 2,000 random subnets (seeded)."""
        from nas.latency.space_units import predict_latency
        from nas.latency.table import LatencyTable
        from nas.spaces.tables import GenomeTables

        rng = np.random.default_rng([self.plan.seed, 0xB0])
        archs = [self.space.sample(rng) for _ in range(2000)]
        bounds = {}
        if self.plan.latency_bound_ms is not None:
            bounds["latency_ms"] = float(self.plan.latency_bound_ms)
        else:
            table = LatencyTable.load(self.paths.table, expected_space_hash=self.space.hash())
            bounds["latency_ms"] = float(np.median(predict_latency(table, self.space, archs)))
        if self.plan.memory_bound_bytes is not None:
            bounds["memory"] = float(self.plan.memory_bound_bytes)
        else:
            from nas.spaces import encode

            genes = np.stack([encode(self.space, a) for a in archs])
            memory = GenomeTables(self.space).costs(genes)["memory"]
            bounds["memory"] = float(np.percentile(memory, 75))
        if self.plan.params_bound is not None:
            bounds["params"] = float(self.plan.params_bound)
        return bounds

    def _search(self, round_: int, bounds: dict[str, float]) -> Any:
        from nas.latency.table import LatencyTable
        from nas.sample.predictor import load_predictor_for
        from nas.search.space_search import run_search

        table = LatencyTable.load(self.paths.table, expected_space_hash=self.space.hash())
        predictor = load_predictor_for(self.space, self.paths.predictor)
        out = self.paths.search(round_)
        if out.exists():
            shutil.rmtree(out)
        return run_search(
            self.space,
            objectives=list(self.plan.objectives),
            constraints=[*constraint_strings(bounds), *self.plan.constraints],
            algo=self.plan.algo,
            budget=self.plan.budget,
            seed=self.plan.seed + round_,
            predictor=predictor,
            table=table,
            run_dir=self.paths.supernet,
            out=out,
            progress=self.progress,
        )

    def _stage_search(self) -> dict[str, Any]:
        bounds = self._bounds()
        outcome = self._search(0, bounds)
        return {"bounds": bounds, "search_bounds": bounds, "round": 0, "front": len(outcome.front)}

    def _picks(self, round_: int, k: int, kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """K different choices along the round's front (:func:`nas.search.picks.pick_choices`),
        earlier rounds' exports that met the bound (``kept``) competing with the new front; each
        row gains ``why``, the one-line reason it was picked."""
        import pandas as pd

        from nas.search.picks import pick_choices

        front = pd.read_csv(self.paths.search(round_) / "front.csv").to_dict("records")
        ids = {row["arch_id"] for row in front}
        rows = front + [e["front_row"] for e in kept if e["arch_id"] not in ids]
        picks = pick_choices([r["val_acc"] for r in rows], [r["latency_ms"] for r in rows], k)
        return [{**rows[p.index], "why": p.reason} for p in picks]

    def _stage_export(self) -> dict[str, Any]:
        """Export K different choices along the front (most accurate, fastest near it, knee),
        re-measure them; if a measured latency breaks the bound, name the mispredicted units
        (ONNX Runtime's profiler inside the exported file), tighten the search bound only by what
        the worst violator needs and search again (at most ``max_rounds`` rounds in all). Exports
        that met the bound stay candidates in later rounds and are not exported again."""
        from nas.arch import Architecture

        p = self.plan
        info = self.ledger.stages["search"]
        bound = float(info["bounds"]["latency_ms"])
        search_bounds = dict(info["search_bounds"])
        rounds: list[dict[str, Any]] = []
        done: dict[str, dict[str, Any]] = {}  # arch_id -> its export entry (any round)
        round_ = 0
        while True:
            kept = [e for e in done.values()
                    if e["measured_ms"] is not None and e["measured_ms"] <= bound]
            picked = self._picks(round_, p.top, kept)
            exported = []
            for k, row in enumerate(picked):
                arch = Architecture.from_json(row["arch_json"])
                if arch.arch_id() in done:  # met the bound in an earlier round: not redone
                    entry = {**done[arch.arch_id()], "why": row["why"]}
                else:
                    out = self.paths.export / f"round{round_}" / arch.arch_id()
                    entry = self._export(
                        arch, out, standalone_check=k < p.standalone_checks, finetune=False
                    )
                    entry["predicted_acc"] = float(row["val_acc"])
                    entry["front_row"] = {key: row[key] for key in
                                          ("arch_id", "arch_json", "val_acc", "latency_ms")}
                    entry["why"] = row["why"]
                    done[arch.arch_id()] = entry
                exported.append(entry)
            violators = [e for e in exported
                         if e["measured_ms"] is not None and e["measured_ms"] > bound]
            worst = max(
                (e["measured_ms"] / bound for e in exported if e["measured_ms"] is not None),
                default=0.0,
            )
            record: dict[str, Any] = {
                "round": round_,
                "search_bound_ms": search_bounds["latency_ms"],
                "worst_ratio": worst,
                "exported": exported,
            }
            rounds.append(record)
            self.say(
                f"  round {round_}: search bound {search_bounds['latency_ms']:.3f} ms, worst measured/bound "
                f"{worst:.3f}"
            )
            if not violators:
                break
            record["mispredicted"] = {e["arch_id"]: self._mispredicted_units(e) for e in violators}
            for arch_id, text in record["mispredicted"].items():
                self.say(f"  {arch_id}: {text}")
            if round_ + 1 >= p.max_rounds:
                break
            round_ += 1
            # only as far as the worst violator needs: its measured latency scaled to the bound
            search_bounds = {**search_bounds, "latency_ms": search_bounds["latency_ms"] / worst}
            self.say(
                f"  measured latency broke the bound: searching again under {search_bounds['latency_ms']:.3f} ms"
            )
            from nas.search.feasibility import InfeasibleError

            try:
                self._search(round_, search_bounds)
            except InfeasibleError as err:  # tightened below what the space can reach: keep this round
                record["stopped"] = str(err)
                self.say(f"  stopped tightening (the last round's exports stand): {err}")
                break
        for r in rounds:
            for e in r["exported"]:
                e.pop("front_row", None)
        if self._finetune_config() is not None:  # latency is settled: fine-tune the last round's
            final = rounds[-1]
            self.say(
                f"  fine-tuning the {len(final['exported'])} exported models "
                f"{p.finetune_epochs} epoch(s) each"
            )
            for k, entry in enumerate(final["exported"]):
                arch = Architecture.from_str(entry["arch"])
                tuned = self._export(
                    arch,
                    self.paths.root / entry["folder"],
                    standalone_check=k < p.standalone_checks,
                    finetune=True,
                )
                final["exported"][k] = {**tuned, "predicted_acc": entry["predicted_acc"],
                                        "why": entry["why"]}
        return {
            "bound_ms": bound,
            "rounds": rounds,
            "within_bound": rounds[-1]["worst_ratio"] <= 1.0,
            "random_search": self._random_baseline(info["bounds"]),
        }

    def _mispredicted_units(self, entry: dict[str, Any]) -> str:
        """The units whose kernel time inside the exported ONNX file (ONNX Runtime's profiler)
        exceeds the table's entry most, as one line; why not, where that cannot be measured."""
        from nas.arch import Architecture
        from nas.latency.onnx_units import describe_units, mispredicted_units, unit_times_in_file
        from nas.latency.space_profile import call_overhead_of
        from nas.latency.table import LatencyTable

        folder = self.paths.root / entry["folder"]
        onnx = folder / "model.onnx"
        if not onnx.exists():
            return "no .onnx file was exported: units not profiled"
        table = LatencyTable.load(self.paths.table, expected_space_hash=self.space.hash())
        x = np.load(folder / "model.example.npz")["input"]
        try:
            times = unit_times_in_file(self.space, Architecture.from_str(entry["arch"]), onnx,
                                       table, x, threads=self.plan.threads,
                                       call_overhead_ms=call_overhead_of(table) or 0.0)
        except Exception as exc:  # a diagnosis; the round goes on without it
            return f"units not profiled: {type(exc).__name__}: {exc}"
        worst = mispredicted_units(times)
        if not worst:
            return ("no unit runs more than 10% over its table entry inside the file: the "
                    "difference is between units (calibration), not in one of them")
        return "mispredicted units: " + describe_units(worst)

    def _finetune_config(self) -> Any:
        from nas.train.finetune import FinetuneConfig

        p = self.plan
        if p.finetune_epochs <= 0:
            return None
        lr = {} if p.finetune_lr is None else {"lr": p.finetune_lr}
        return FinetuneConfig(epochs=p.finetune_epochs, seed=p.seed, **lr)

    def _export(
        self, arch: Any, out: Path, *, standalone_check: bool, finetune: bool = True
    ) -> dict[str, Any]:
        """Export ``arch`` to ``out`` (fine-tuned if the plan says so); its row for the report."""
        from nas.export.pipeline import export_architecture

        p = self.plan
        result = export_architecture(
            self.paths.supernet,
            arch,
            out,
            formats=p.formats,
            lut=self.paths.table,
            threads=p.threads,
            seed=p.seed,
            overwrite=True,
            standalone_check=standalone_check,
            finetune=self._finetune_config() if finetune else None,
        )
        runtime = "onnxruntime" if p.device == "onnxruntime" else "torch"
        measured = result.measured.get(runtime)
        inherited = result.finetune["before"] if result.finetune else result.accuracy
        return {
            "arch_id": arch.arch_id(),
            "arch": arch.to_str(),
            "folder": str(out.relative_to(self.paths.root)),
            "flops": result.costs.flops,
            "params": result.costs.params,
            "memory": result.costs.peak_memory_bytes,
            "val_acc": result.val_acc,
            "test_acc": result.test_acc,
            "val_acc_inherited": _acc(inherited["val"]),
            "test_acc_inherited": _acc(inherited["test"]),
            "finetune_epochs": p.finetune_epochs if result.finetune else 0,
            "predicted_ms": result.predicted_ms,
            "measured_ms": None if measured is None else measured.latency_ms,
            "runtime": runtime,
        }

    def _random_baseline(self, bounds: dict[str, float]) -> dict[str, Any] | None:
        """Random search at the same measured-subnet budget: of the sampled subnets that meet the
        search's bounds (predicted latency, memory, params), the best by validation accuracy,
        exported like the searched ones. None when no sampled subnet meets the bounds."""
        import pandas as pd

        from nas.arch import Architecture

        rows = pd.read_csv(self.paths.samples)
        ok = (rows["latency_ms"] <= bounds["latency_ms"]) & (rows["memory"] <= bounds["memory"])
        if "params" in bounds:
            ok &= rows["params"] <= bounds["params"]
        from nas.search.constraints import parse_constraints

        for c in parse_constraints(self.plan.constraints):  # the user's own, where measured
            if c.metric in rows:
                ok &= c.satisfied(rows[c.metric].to_numpy())
        feasible = rows[ok]
        self.say(
            f"  random search: {len(feasible)} of {len(rows)} measured subnets meet the bounds"
        )
        if feasible.empty:
            return None
        best = feasible.sort_values(["val_acc", "arch_id"], ascending=[False, True]).iloc[0]
        arch = Architecture.from_json(best["arch_json"])
        entry = self._export(
            arch, self.paths.export / "random" / arch.arch_id(), standalone_check=False
        )
        entry["predicted_acc"] = float(best["val_acc"])  # measured when sampled, not predicted
        return {"measured": len(rows), "feasible": len(feasible), "exported": entry}

    def _stage_report(self) -> dict[str, Any]:
        from nas.report import write_report

        path = write_report(self.paths.root, self.plan, self.ledger.stages)
        return {"report": str(path.relative_to(self.paths.root))}


def run_pipeline(
    plan: RunPlan,
    out: str | Path,
    *,
    rerun: str | None = None,
    progress: bool | None = None,
    say: Say = print,
) -> dict[str, Any]:
    """Run every stage of ``plan`` in the run folder ``out`` (locked against a second writer),
    continuing a run stopped earlier; ``nas run`` from Python. Returns the stages ledger."""
    from nas.progress import progress_enabled

    with output_lock(Path(out), folder=True, command="nas run"):
        return Pipeline(plan, out, progress=progress_enabled(progress), say=say).run(rerun=rerun)

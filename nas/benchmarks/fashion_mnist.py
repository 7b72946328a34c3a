"""Benchmark: Fashion-MNIST end to end, and whether search beats random search and hand design.

Reproduce (after ``scripts/install.sh --fashion-mnist``)::

    .venv/bin/python -m nas.benchmarks.fashion_mnist

All numbers come from one work folder (``--work``, default ``results/fmnist``), built in
resumable parts; a finished part is reused, an interrupted one continues (``--only PART`` runs one):

``run``       ``nas run --preset fashion-mnist --out WORK``: supernet (hybrid-fmnist, 4 epochs),
              latency table, 300 measured subnets, predictor, NSGA-II under the derived latency
              bound and 100K parameters, three exports fine-tuned 10 epochs, and the best of random
              search (the measured subnets that meet the bounds) exported the same way.
``heldout``   200 more subnets (another seed), and 100 of them measured again with other BN
              recalibration batches (the measurement's own repeatability: the ceiling of any
              predictor's ranking).
``scratch``   6 subnets spanning the FLOPs range, largest and smallest, each trained alone with the
              supernet's recipe and epochs (BigNAS: inherited vs from scratch).
``frontier``  3 seeds: predictor-guided NSGA-II vs random sampling at an equal budget of measured
              subnets; hypervolume of the measured fronts (validation accuracy vs the table's
              latency), and the best subnet under the run's bounds.

Selection uses the validation split only; test accuracy is reported for the exported models, the
scratch/inherited pairs and nothing else. The report (``results/benchmarks/fashion_mnist.md``,
``.csv`` with one row per model, ``.json`` with every number) says which settings made each part.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.arch import Architecture
from nas.costs import costs
from nas.io import atomic_write_json, atomic_write_text
from nas.pipeline import STAGES, Pipeline, RunPlan, constraint_strings
from nas.report import si as _si
from nas.spaces import SearchSpace, load_space

PARTS: tuple[str, ...] = ("run", "heldout", "scratch", "frontier")
PREDICTOR_MODELS = ("ridge", "gbm", "mlp", "ensemble")


@dataclass(frozen=True)
class Settings:
    """What each part does; :meth:`full` is the benchmark, tests use a tiny one."""

    plan: RunPlan = field(default_factory=RunPlan.fashion_mnist)
    heldout_n: int = 200
    heldout_seed: int = 1001
    remeasure_n: int = 100
    remeasure_eval_seed: int = 1  # mixed into every subnet's BN-recalibration seed (samples: 0)
    scratch_n: int = 6
    scratch_seed: int = 2002
    frontier_seeds: tuple[int, ...] = (0, 1, 2)
    frontier_fit: int = 100  # measured subnets the predictor is fitted on, per seed
    frontier_measure: int = 20  # front members measured after the search, per seed
    frontier_budget: int = 20000  # predictor evaluations of each NSGA-II search

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Published hand-designed baselines: the benchmark table of the Fashion-MNIST README
# (github.com/zalandoresearch/fashion-mnist), test accuracy, with their size as published.
PUBLISHED = (
    ("2 Conv <100K parameters", 100_000, "< 100K", 0.925),
    ("2 Conv+3 FC ~500K, augmentation, BN", 500_000, "~500K", 0.934),
    ("DenseNet-BC 768K", 768_000, "768K", 0.954),
)
Say = Callable[[str], None]


# ----------------------------------------------------------------------------------- parts
class Bench:
    """The work folder and its parts; each part writes ``bench/<part>.json`` when it is done."""

    def __init__(
        self,
        work: Path,
        settings: Settings | None = None,
        *,
        workers: int = 2,
        progress: bool = True,
        say: Say = print,
    ) -> None:
        self.settings = settings or Settings()
        self.plan = self.settings.plan
        self.work = work
        self.bench = work / "bench"
        self.workers = workers
        self.progress = progress
        self.say = say
        self.bench.mkdir(parents=True, exist_ok=True)

    @property
    def space(self) -> SearchSpace:
        return load_space(self.plan.space)

    def record(self, part: str) -> Path:
        return self.bench / f"{part}.json"

    def done(self, part: str) -> dict[str, Any] | None:
        path = self.record(part)
        return json.loads(path.read_text()) if path.is_file() else None

    def ensure(self, part: str) -> dict[str, Any]:
        found = self.done(part)
        if found is not None:
            self.say(f"[{part}] done earlier; reused")
            return found
        self.say(f"[{part}] ...")
        start = time.perf_counter()
        result = getattr(self, f"part_{part}")()
        result = {**result, "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(self.record(part), result)
        self.say(f"[{part}] done in {result['seconds']:.0f} s")
        return result

    # ----- run: the nas run preset itself -----
    def part_run(self) -> dict[str, Any]:
        stages = Pipeline(self.plan, self.work, progress=self.progress, say=self.say).run()
        return {"settings": self.settings.to_dict(), "stages": stages}

    # ----- heldout: 200 more subnets and the measurement's repeatability -----
    def part_heldout(self) -> dict[str, Any]:
        from nas.sample.measure import EvalSettings, measure_architectures, sample_subnets

        st = self.settings
        out = self.bench / "heldout.csv"
        sample_subnets(
            self.work / "supernet",
            out,
            n=st.heldout_n,
            strategy=self.plan.sample_strategy,
            seed=st.heldout_seed,
            lut=self.work / "latency" / "table.csv",
            workers=self.workers,
            progress=self.progress,
        )
        rows = pd.read_csv(out, comment="#").head(st.remeasure_n)
        archs = [Architecture.from_json(a) for a in rows["arch_json"]]
        again = measure_architectures(
            self.work / "supernet",
            archs,
            settings=EvalSettings(seed=st.remeasure_eval_seed),
            workers=self.workers,
            progress=self.progress,
        )
        remeasured = rows[["arch_id", "val_acc"]].assign(
            val_acc_again=[r["val_acc"] for r in again]
        )
        remeasured.to_csv(self.bench / "remeasured.csv", index=False)
        return {"heldout": str(out), "remeasured": len(rows)}

    # ----- scratch: inherited vs trained alone -----
    def scratch_archs(self) -> list[tuple[str, Architecture]]:
        """The smallest subnet and ``scratch_n - 1`` random ones at evenly spaced FLOPs quantiles
        (1/10, 3/10, ..., 9/10 for 6) of 2,000 seeded random draws: the FLOPs range that search
        and sampling explore. The largest subnet is left out: trained alone it would cost as much
        as all the others together (all-attention at 7x7 and 4x4) on these 2 cores."""
        space = self.space
        rng = np.random.default_rng(self.settings.scratch_seed)
        draws = [space.sample(rng) for _ in range(2000)]
        draws.sort(key=lambda a: costs(space, a).flops)
        n_mid = self.settings.scratch_n - 1
        picks = [("smallest", space.smallest())]
        picks += [
            (f"q{2 * i + 1}/{2 * n_mid}", draws[int((2 * i + 1) / (2 * n_mid) * len(draws))])
            for i in range(n_mid)
        ]
        return picks

    def part_scratch(self) -> dict[str, Any]:
        from nas.train import TrainConfig, evaluate_subnet, load_supernet, train
        from nas.train.rundir import read_config

        base, _ = read_config(self.work / "supernet")
        inherited = load_supernet(self.work / "supernet")
        spread = {
            name: float(evaluate_subnet(inherited.supernet, arch, inherited.splits)["acc"])
            for name, arch in (
                ("largest", self.space.largest()),
                ("smallest", self.space.smallest()),
            )
        }
        rows = []
        for name, arch in self.scratch_archs():
            config = TrainConfig(
                **{**base.to_dict(), "schedule": "fixed", "arch": arch.to_str(), "distill": "none"}
            )
            run_dir = self.bench / "scratch" / arch.arch_id()
            start = time.perf_counter()
            resume = (run_dir / "checkpoint.pt").exists()
            result = train(config, run_dir, resume=resume, progress=self.progress, echo=False)
            seconds = time.perf_counter() - start
            row = {
                "name": name,
                "arch_id": arch.arch_id(),
                "arch": arch.to_str(),
                "flops": costs(self.space, arch).flops,
                "params": costs(self.space, arch).params,
                "train_s": round(seconds, 1),
            }
            for label, net in (("inherited", inherited.supernet), ("scratch", result.supernet)):
                for split in ("val", "test"):
                    acc = evaluate_subnet(net, arch, inherited.splits, split=split)["acc"]
                    row[f"{label}_{split}"] = float(acc)
            self.say(
                f"  {name}: inherited val {row['inherited_val']:.2%}, scratch val "
                f"{row['scratch_val']:.2%} ({seconds:.0f} s)"
            )
            rows.append(row)
        return {
            "config": {**base.to_dict(), "schedule": "fixed", "distill": "none"},
            "rows": rows,
            "spread": spread,
        }

    # ----- frontier: search vs random at equal measured budget, 3 seeds -----
    def pool(self) -> pd.DataFrame:
        """Every measured random subnet: the run's samples and the held-out ones (distinct)."""
        a = pd.read_csv(self.work / "samples.csv", comment="#")
        b = pd.read_csv(self.bench / "heldout.csv", comment="#")
        return pd.concat([a, b]).drop_duplicates("arch_id").reset_index(drop=True)

    def part_frontier(self) -> dict[str, Any]:
        from nas.latency.space_units import predict_latency
        from nas.latency.table import LatencyTable
        from nas.sample.fit import make_encoder, make_estimator
        from nas.sample.measure import measure_architectures
        from nas.sample.predictor import ArchPredictor
        from nas.search.space_search import run_search

        space = self.space
        table = LatencyTable.load(
            self.work / "latency" / "table.csv", expected_space_hash=space.hash()
        )
        pool = self.pool()
        bounds = self.done("run")["stages"]["search"]["bounds"]
        st = self.settings
        seeds = []
        for seed in st.frontier_seeds:
            order = np.random.default_rng([seed, 0xF5]).permutation(len(pool))
            random_rows = pool.iloc[order[: st.frontier_fit + st.frontier_measure]]
            fit_rows = pool.iloc[order[: st.frontier_fit]]
            archs = [Architecture.from_json(a) for a in fit_rows["arch_json"]]
            encoder = make_encoder(space)
            estimator = make_estimator("gbm", seed).fit(
                encoder.transform(archs), fit_rows["val_acc"].to_numpy()
            )
            predictor = ArchPredictor(space, estimator, encoder, {"target": "val_acc"})
            outcome = run_search(
                space,
                objectives=["max:val_acc", "min:latency_ms"],
                constraints=[],
                algo="evolution",
                budget=st.frontier_budget,
                seed=seed,
                predictor=predictor,
                table=table,
                progress=False,
            )
            front = outcome.archs
            front = [front[i] for i in _spread(len(front), st.frontier_measure)]
            measured = measure_architectures(
                self.work / "supernet", front, workers=self.workers, progress=self.progress
            )
            searched = pd.DataFrame(
                {
                    "arch_id": [a.arch_id() for a in front],
                    "arch_json": [a.to_json() for a in front],
                    "val_acc": [m["val_acc"] for m in measured],
                    "latency_ms": predict_latency(table, space, front).astype(float),
                    "memory": [costs(space, a).peak_memory_bytes for a in front],
                    "params": [costs(space, a).params for a in front],
                }
            )
            search_rows = pd.concat([fit_rows, searched]).drop_duplicates("arch_id")
            seeds.append(
                {
                    "seed": seed,
                    "random": _points(random_rows),
                    "search": _points(search_rows),
                    "search_measured_after": len(searched),
                    "random_best_in_bounds": _best_in_bounds(random_rows, bounds),
                    "search_best_in_bounds": _best_in_bounds(search_rows, bounds),
                }
            )
            self.say(
                f"  seed {seed}: best in bounds random "
                f"{_acc_text(seeds[-1]['random_best_in_bounds'])}, search "
                f"{_acc_text(seeds[-1]['search_best_in_bounds'])}"
            )
        return {"bounds": bounds, "constraints": constraint_strings(bounds), "seeds": seeds}


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when ``n <= k``)."""
    if n <= k:
        return list(range(n))
    return sorted({round(float(i)) for i in np.linspace(0, n - 1, k)})


def _points(rows: pd.DataFrame) -> list[list[float]]:
    return rows[["val_acc", "latency_ms"]].astype(float).to_numpy().tolist()


def _best_in_bounds(rows: pd.DataFrame, bounds: dict[str, float]) -> dict[str, Any] | None:
    ok = (rows["latency_ms"] <= bounds["latency_ms"]) & (rows["memory"] <= bounds["memory"])
    if "params" in bounds:
        ok &= rows["params"] <= bounds["params"]
    feasible = rows[ok]
    if feasible.empty:
        return None
    best = feasible.sort_values(["val_acc", "arch_id"], ascending=[False, True]).iloc[0]
    return {
        "arch_id": best["arch_id"],
        "val_acc": float(best["val_acc"]),
        "latency_ms": float(best["latency_ms"]),
        "params": int(best["params"]),
        "feasible": int(ok.sum()),
    }


def _acc_text(best: dict[str, Any] | None) -> str:
    return "none" if best is None else f"{best['val_acc']:.2%}"


# ----------------------------------------------------------------------------------- analysis
def hypervolumes(seeds: list[dict[str, Any]]) -> tuple[list[dict[str, float]], list[float]]:
    """Normalised hypervolume (max accuracy, min latency) of each method's measured points, per
    seed, against one reference for all: the worst accuracy and the largest latency seen."""
    from nas.search.pareto import hypervolume_2d

    every = np.array([p for s in seeds for m in ("random", "search") for p in s[m]], float)
    ref = np.array([-every[:, 0].min(), every[:, 1].max()])
    ideal = np.array([-every[:, 0].max(), every[:, 1].min()])
    area = float(np.prod(ref - ideal))
    out = []
    for s in seeds:
        row = {"seed": s["seed"]}
        for method in ("random", "search"):
            pts = np.array(s[method], float)
            row[method] = hypervolume_2d(np.c_[-pts[:, 0], pts[:, 1]], ref) / area
        out.append(row)
    return out, ref.tolist()


def predictor_quality(bench: Bench) -> dict[str, Any]:
    """Each predictor fitted on the run's measured subnets, ranked on the held-out ones; FLOPs as
    a predictor; the measurement's own repeatability (the ceiling)."""
    from nas.sample.fit import make_encoder, make_estimator
    from predictors.metrics import kendall_tau, spearman

    space = bench.space
    train = pd.read_csv(bench.work / "samples.csv", comment="#")
    test = pd.read_csv(bench.bench / "heldout.csv", comment="#")
    test = test[~test["arch_id"].isin(train["arch_id"])]
    encoder = make_encoder(space)
    x_train = encoder.transform([Architecture.from_json(a) for a in train["arch_json"]])
    x_test = encoder.transform([Architecture.from_json(a) for a in test["arch_json"]])
    y_train, y_test = train["val_acc"].to_numpy(), test["val_acc"].to_numpy()
    rows = []
    for model in PREDICTOR_MODELS:
        pred = make_estimator(model, 0).fit(x_train, y_train).predict(x_test)
        rows.append(
            {
                "predictor": model,
                "kendall": kendall_tau(y_test, pred),
                "spearman": spearman(y_test, pred),
            }
        )
    for stat in ("flops", "params", "latency_ms"):
        rows.append(
            {
                "predictor": f"{stat} alone",
                "kendall": kendall_tau(y_test, test[stat]),
                "spearman": spearman(y_test, test[stat]),
            }
        )
    again = pd.read_csv(bench.bench / "remeasured.csv")
    ceiling = {
        "kendall": kendall_tau(again["val_acc"], again["val_acc_again"]),
        "spearman": spearman(again["val_acc"], again["val_acc_again"]),
        "mean_abs_diff": float((again["val_acc"] - again["val_acc_again"]).abs().mean()),
        "n": len(again),
    }
    return {
        "n_train": len(train),
        "n_test": len(test),
        "rows": rows,
        "ceiling": ceiling,
        "val_acc_range": [
            float(min(y_train.min(), y_test.min())),
            float(max(y_train.max(), y_test.max())),
        ],
    }


# ----------------------------------------------------------------------------------- report
def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _kendall(a: list[float], b: list[float]) -> float:
    from predictors.metrics import kendall_tau

    return float(kendall_tau(np.asarray(a), np.asarray(b)))


def build_report(
    bench: Bench, records: dict[str, dict[str, Any]], command: str
) -> tuple[str, pd.DataFrame, dict[str, Any]]:
    from nas.latency.environment import cpu_model_name

    run = records["run"]
    stages = run["stages"]
    p, st = bench.plan, bench.settings
    numbers: dict[str, Any] = {"command": command, "settings": st.to_dict()}
    lines = [
        "# Fashion-MNIST: search vs random search vs hand design",
        "",
        f"Reproduce: `{command}` (after `scripts/install.sh --fashion-mnist`). Machine: "
        f"{cpu_model_name()}, {os.cpu_count()} logical CPUs shared with other work.",
        "",
        "Data: Fashion-MNIST from Debian's `dataset-fashion-mnist`, 55,000 train / 5,000 "
        "validation (stratified, seed 0, from the training file) / 10,000 test. Every choice "
        "(predictor, search, which subnet to export, random search's best) uses validation "
        "accuracy; test accuracy is reported only. Space `hybrid-fmnist` "
        f"({load_space(p.space).size():.3e} subnets, 23K-1.08M parameters).",
        "",
    ]

    # where the time goes
    lines += [
        "## 1. The run (`nas run --preset fashion-mnist`)",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    train = stages["train"]["summary"]
    # the supernet may have been trained before the stage ran (then the stage only resumed a
    # finished run): its own summary holds the real training and validation time
    trained_s = float(train.get("train_s", 0)) + float(train.get("eval_s", 0))
    total = 0.0
    for name in sorted(stages, key=lambda n: STAGES.index(n) if n in STAGES else len(STAGES)):
        info = stages[name]
        seconds = float(info.get("seconds", 0))
        if name == "train":
            seconds = max(seconds, trained_s)
        lines.append(f"| {name} | {seconds:.0f} |")
        total += seconds
    lines += [f"| **total** | **{total:.0f}** ({total / 60:.1f} min) |", ""]
    numbers["run_seconds"] = total
    lines.append(
        f"Supernet: {p.epochs} epochs x {train.get('train_s', 0) / max(p.epochs, 1):.0f} s "
        f"(batch {p.train_batch_size}, {p.train_threads} threads, 4 subnets per step); the train "
        "row is the run's own training and validation time from its summary.json. These 2 cores "
        "were shared with other work during the run (tests and code reviews of other issues), so "
        "every time here is an upper bound."
    )

    # spread and scratch
    scratch = records["scratch"]["rows"]
    ends = records["scratch"]["spread"]
    spread = ends["largest"] - ends["smallest"]
    diffs = [r["inherited_val"] - r["scratch_val"] for r in scratch]
    tau_scratch = _kendall(
        [r["inherited_val"] for r in scratch], [r["scratch_val"] for r in scratch]
    )
    numbers.update(
        spread=spread,
        inherited_minus_scratch=float(np.mean(diffs)),
        scratch_kendall=tau_scratch,
        scratch=scratch,
    )
    lines += [
        "",
        "## 2. Spread and inherited vs from scratch",
        "",
        f"Largest vs smallest subnet with inherited weights: {_pct(ends['largest'])} "
        f"vs {_pct(ends['smallest'])} validation, a spread of "
        f"**{100 * spread:.2f} points** (target >= 3).",
        "",
        f"Each subnet below was also trained alone (schedule `fixed`, no distillation) with "
        f"the supernet's recipe and epochs ({p.epochs} epochs, batch {p.train_batch_size}, "
        "AdamW). Validation and test accuracy, BN recalibrated the same way for both:",
        "",
        "| subnet | FLOPs | params | inherited val | scratch val | diff | inherited test | "
        "scratch test | scratch train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, d in zip(scratch, diffs):
        lines.append(
            f"| {r['name']} `{r['arch_id']}` | {_si(r['flops'])} | {_si(r['params'])} | "
            f"{_pct(r['inherited_val'])} | {_pct(r['scratch_val'])} | {100 * d:+.2f} | "
            f"{_pct(r['inherited_test'])} | {_pct(r['scratch_test'])} | "
            f"{r['train_s']:.0f} |"
        )
    lines += [
        "",
        f"Mean inherited - scratch: **{100 * np.mean(diffs):+.2f} points** (target >= "
        f"-1.0); Kendall tau of the two rankings: **{tau_scratch:.2f}** (target >= 0.6).",
    ]

    # predictors
    pq = predictor_quality(bench)
    numbers["predictors"] = pq
    ceiling = pq["ceiling"]
    lines += [
        "",
        "## 3. Measurement reliability and predictors",
        "",
        f"The same {ceiling['n']} subnets measured twice with different BN-recalibration "
        f"batches agree at Kendall **{ceiling['kendall']:.3f}** (Spearman "
        f"{ceiling['spearman']:.3f}, mean |difference| {100 * ceiling['mean_abs_diff']:.2f} "
        "points; target >= 0.9): the ceiling of any predictor's ranking.",
        "",
        f"Predictors fitted on the run's {pq['n_train']} measured subnets, ranked on "
        f"{pq['n_test']} held-out ones (validation accuracy "
        f"{_pct(pq['val_acc_range'][0])}-{_pct(pq['val_acc_range'][1])}):",
        "",
        "| predictor | Kendall tau | Spearman |",
        "|---|---:|---:|",
    ]
    for r in pq["rows"]:
        lines.append(f"| {r['predictor']} | {r['kendall']:.3f} | {r['spearman']:.3f} |")
    lines.append(f"| measurement ceiling | {ceiling['kendall']:.3f} | {ceiling['spearman']:.3f} |")
    best_pred = max(
        (r for r in pq["rows"] if "alone" not in r["predictor"]), key=lambda r: r["kendall"]
    )
    lines += [
        "",
        f"Best of ours: {best_pred['predictor']}, Kendall **{best_pred['kendall']:.3f}** "
        "(target >= 0.8).",
    ]

    # search vs random, 3 seeds
    frontier = records["frontier"]
    hv, ref = hypervolumes(frontier["seeds"])
    numbers["frontier"] = {
        "hypervolume": hv,
        "reference": ref,
        "seeds": [
            {k: v for k, v in s.items() if k not in ("random", "search")} for s in frontier["seeds"]
        ],
    }
    wins = sum(r["search"] > r["random"] for r in hv)
    lines += [
        "",
        f"## 4. Search vs random sampling at an equal measured budget "
        f"({len(st.frontier_seeds)} seeds)",
        "",
        f"Per seed, {st.frontier_fit + st.frontier_measure} measured subnets each. Random: "
        f"{st.frontier_fit + st.frontier_measure} subnets drawn from the pool of measured random "
        f"subnets (run + held-out). Search: a GBM predictor fitted on the first "
        f"{st.frontier_fit} of the same draw, NSGA-II ({st.frontier_budget:,} predictor "
        f"evaluations, max accuracy / min latency), then {st.frontier_measure} members of its "
        "front measured. Hypervolume of each method's measured points (validation accuracy "
        "vs the latency table's prediction, normalised; one reference for all: worst "
        f"accuracy {_pct(-ref[0])}, slowest {ref[1]:.3f} ms):",
        "",
        "| seed | random HV | search HV | best in bounds: random | best in bounds: search |",
        "|---|---:|---:|---:|---:|",
    ]
    for r, s in zip(hv, frontier["seeds"]):
        lines.append(
            f"| {r['seed']} | {r['random']:.4f} | {r['search']:.4f} | "
            f"{_acc_text(s['random_best_in_bounds'])} | "
            f"{_acc_text(s['search_best_in_bounds'])} |"
        )
    hv_r = np.array([r["random"] for r in hv])
    hv_s = np.array([r["search"] for r in hv])
    lines += [
        f"| mean ± std | {hv_r.mean():.4f} ± {hv_r.std():.4f} | "
        f"{hv_s.mean():.4f} ± {hv_s.std():.4f} | | |",
        "",
        f"Search's hypervolume is higher in **{wins} of {len(hv)}** seeds. Bounds: "
        f"{', '.join(frontier['constraints'])} (validation accuracy, not fine-tuned).",
    ]

    # exported models vs random search vs published
    export = stages["export"]
    exported = export["rounds"][-1]["exported"]
    baseline = export.get("random_search")
    table_rows = [{"model": f"searched {e['arch_id']}", **e} for e in exported]
    if baseline is not None:
        table_rows.append(
            {"model": f"random search {baseline['exported']['arch_id']}", **baseline["exported"]}
        )
    lines += [
        "",
        "## 5. Exported models vs random search vs hand-designed baselines",
        "",
        f"Under latency <= {export['bound_ms']:.3f} ms (ONNX Runtime, batch 1, 1 thread; "
        "the median predicted latency of random subnets), peak memory <= "
        f"{stages['search']['bounds']['memory'] / 1024:.0f} KiB and params <= "
        f"{_si(p.params_bound or 0)}. Each exported model fine-tuned {p.finetune_epochs} epochs "
        "from its inherited weights (AdamW lr 1e-3, cosine); random search's best is the best "
        f"by validation accuracy of the {baseline['feasible'] if baseline else 0} measured "
        f"subnets (of {baseline['measured'] if baseline else 0}) that meet the bounds, "
        "exported the same way: the same measured budget.",
        "",
        "| model | params | FLOPs | predicted ms | measured ms | val (inherited) | "
        "test (inherited) | val (fine-tuned) | test (fine-tuned) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table_rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {_si(r['flops'])} | "
            f"{r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | "
            f"{_pct(r['val_acc_inherited'])} | {_pct(r['test_acc_inherited'])} | "
            f"{_pct(r['val_acc'])} | {_pct(r['test_acc'])} |"
        )
    for name, _params, size, acc in PUBLISHED:
        lines.append(f"| published: {name} | {size} | - | - | - | - | - | - | {_pct(acc, 1)} |")
    chosen = max(exported, key=lambda e: e["val_acc"])  # chosen on validation
    numbers["chosen"] = chosen
    numbers["random_search"] = baseline
    lines += [
        "",
        f"Chosen on validation: `{chosen['arch_id']}`, {chosen['params']:,} parameters, "
        f"test **{_pct(chosen['test_acc'])}** (target >= 92.5% under 100K parameters; "
        "published 2-conv baseline 92.5%)"
        + (
            f"; random search's best: test {_pct(baseline['exported']['test_acc'])}."
            if baseline
            else "."
        ),
    ]
    frame = pd.DataFrame(
        [
            {
                k: r.get(k)
                for k in (
                    "model",
                    "arch_id",
                    "arch",
                    "params",
                    "flops",
                    "memory",
                    "predicted_ms",
                    "measured_ms",
                    "val_acc_inherited",
                    "test_acc_inherited",
                    "val_acc",
                    "test_acc",
                    "finetune_epochs",
                )
            }
            for r in table_rows
        ]
    )
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(
            {
                **st.to_dict(),
                "part_seconds": {k: v.get("seconds") for k, v in records.items()},
            },
            indent=2,
        ),
        "```",
        "",
    ]
    return "\n".join(lines), frame, numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="results/fmnist", help="work folder (resumable)")
    parser.add_argument("--only", choices=PARTS, help="run this part only (no report)")
    parser.add_argument("--workers", type=int, default=2, help="processes measuring subnets")
    parser.add_argument(
        "--out",
        default="results/benchmarks/fashion_mnist",
        help="report path without suffix (.md, .csv, .json)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    bench = Bench(Path(args.work), Settings(), workers=args.workers, progress=not args.no_progress)
    parts = (args.only,) if args.only else PARTS
    records = {part: bench.ensure(part) for part in parts}
    if args.only:
        return 0
    command = " ".join(
        [
            ".venv/bin/python -m nas.benchmarks.fashion_mnist",
            *(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        ]
    )
    text, frame, numbers = build_report(bench, records, command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_text(out.with_suffix(".csv"), frame.to_csv(index=False))
    atomic_write_json(out.with_suffix(".json"), numbers)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

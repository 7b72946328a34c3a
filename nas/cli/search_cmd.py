"""``nas search``: constrained multi-objective search over a space; writes the Pareto front."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

# Read from the searcher registry, whose registering modules are light: building the parser does
# not import the search engine (pandas, scipy, optuna).
from nas.cli import types as argtypes
from nas.cli.options import deprecated_alias
from nas.search.algorithms.optuna_samplers import SAMPLERS
from nas.search.registry import searcher_names, searcher_specs


def _algo_help() -> str:
    specs = searcher_specs()
    return "; ".join(f"{n}: {s.summary}" for n, s in specs.items()) + " (default evolution)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="constrained search (evolution, MILP, Optuna, random); writes the Pareto front",
        description=(
            "Search a space for architectures that optimise the objectives under the "
            "constraints. Accuracy comes from a predictor (--predictor, from 'nas fit') or is "
            "measured with a trained supernet on the validation split (--run without "
            "--predictor); latency from a table (--table, from 'nas profile'); FLOPs, MACs, params "
            "and memory are exact. Constraints no architecture can meet are reported before "
            "searching with the smallest achievable value of each constrained quantity (exit "
            "code 2). Every emitted architecture is re-checked against every constraint. Writes "
            "front.csv, evaluated.csv, pareto.png, front/<arch_id>.json (what 'nas export --arch "
            "ID' finds), search.json and state.json (--resume continues)."
        ),
        epilog=(
            "metrics: accuracy (percent) and val_acc (fraction), latency_ms, flops, macs, "
            "params, memory (peak activation bytes), param_memory (weight bytes). "
            "Quote constraints with '<' or '>' (the shell reads them as redirects), or use the "
            "shell-safe form METRIC:le:VALUE. Example: nas search --space hybrid-tiny --table "
            "latency.csv --predictor predictor --objective max:accuracy --objective "
            "min:latency_ms --constraint 'latency_ms<=5' --constraint memory:le:512KB "
            "--constraint 'flops<=60M' --out search"
        ),
    )
    p.add_argument("--space", required=True, help="shipped space name or a YAML file")
    p.add_argument("--out", required=True, help="output folder, e.g. results/<run>/search/")
    p.add_argument("--objective", action="append", required=True, metavar="[max:|min:]METRIC",
                   help="objective; repeat for a Pareto front (e.g. max:accuracy, min:latency_ms)")
    p.add_argument("--constraint", action="append", default=[], metavar="'METRIC<=VALUE[UNIT]'",
                   help="constraint, quoted, or shell-safe METRIC:le:VALUE / METRIC:ge:VALUE; "
                        "repeatable ('latency_ms<=5', flops:le:60M, 'memory<=512KB', "
                        "params:le:1.5M)")
    p.add_argument("--algo", choices=searcher_names(), default="evolution", metavar="ALGO",
                   help=_algo_help())
    p.add_argument("--budget", type=int, default=1000,
                   help="architectures to evaluate (1000); for mp the number of MILP solutions "
                        "is --mp-points")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed (0): same seed, same search")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (same settings; --budget may grow)")
    src = p.add_argument_group("what the metrics come from")
    src.add_argument("--predictor", default=None, help="accuracy predictor folder ('nas fit')")
    src.add_argument("--table", dest="lut", default=None,
                     help="latency table CSV ('nas profile')")
    deprecated_alias(p, "search", "--lut", "--table", dest="lut")
    src.add_argument("--run", default=None,
                     help="trained supernet run ('nas train'): accuracy is measured on the "
                          "validation split when no --predictor is given")
    src.add_argument("--workers", type=argtypes.parallel, default=1,
                     help="parallel measurements with --run (local processes, or Ray CPUs)")
    src.add_argument("--device", default="cpu", help="device for measurements (cpu, cuda)")
    algo = p.add_argument_group("algorithm options")
    algo.add_argument("--population", type=int, default=None,
                      help="population: NSGA-II and Optuna NSGA-II (default 20); regularised "
                           "evolution (default 50; tournaments and batches of population/5)")
    algo.add_argument("--sampler", choices=SAMPLERS, default=None,
                      help="optuna: tpe or nsga2 (default nsga2 for several objectives, tpe "
                           "for one)")
    algo.add_argument("--storage", default=None,
                      help="optuna: any Optuna storage URL (sqlite:///study.db, ...) to watch the "
                           "study with Optuna's tools; default in memory, resumable from "
                           "state.json")
    algo.add_argument("--study-name", default=None,
                      help="optuna: study name (nas-search-<space>-seed<seed>)")
    algo.add_argument("--mp-points", type=int, default=None,
                      help="mp: solutions (top-k for one objective, swept bounds for two); "
                           "default min(--budget, 20)")
    algo.add_argument("--ray-address", default=None,
                      help="optuna: run trials as Ray Tune trials; measured accuracy: measure as "
                           "Ray tasks. 'local' (a new local instance), 'auto' or HOST:PORT")
    ref = p.add_argument_group("LINAS-style refinement (needs --run and --predictor)")
    ref.add_argument("--validate-every", type=argtypes.positive_int, default=None, metavar="N",
                     help="every N evaluations measure the front's best candidates with the "
                          "supernet, refit the predictor on its samples plus them, continue")
    ref.add_argument("--validate-top", type=argtypes.positive_int, default=5,
                     help="candidates measured per round (5)")
    ref.add_argument("--samples", default=None,
                     help="the predictor's training samples CSV (default: the path in its card)")
    p.add_argument("--top", type=int, default=None, metavar="K",
                   help="pick K models worth exporting from the front (needs an accuracy and a "
                        "latency_ms objective): the most accurate, the fastest within 1 accuracy "
                        "point of it, the knee, then K spread in latency; never two within 3%% "
                        "latency unless the front has nothing else. Writes picks.csv with the "
                        "reason for each")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _pick_metrics(objectives: list[str], top: int | None) -> tuple[str, str] | None:
    """The accuracy and latency metric ``--top`` picks by; a clear error before searching."""
    if top is None:
        return None
    from nas.errors import UserError

    if top < 1:
        raise UserError(f"--top {top}: expected >= 1")
    names = [o.split(":", 1)[-1].strip() for o in objectives]
    acc = next((n for n in names if n in ("val_acc", "accuracy")), None)
    if acc is None or "latency_ms" not in names:
        raise UserError("--top picks along an accuracy/latency front: give --objective "
                        "max:val_acc (or max:accuracy) and --objective min:latency_ms")
    return acc, "latency_ms"


def _write_picks(outcome, metrics: tuple[str, str], top: int, out: str) -> None:
    import csv
    import io
    from pathlib import Path

    from nas.io import atomic_write_text
    from nas.search.picks import pick_choices

    acc_name, lat_name = metrics
    scale = 100.0 if acc_name == "accuracy" else 1.0  # percent -> fraction
    front = outcome.front
    picks = pick_choices([m.metrics[acc_name] / scale for m in front],
                         [m.metrics[lat_name] for m in front], top)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "arch_id", "role", acc_name, lat_name, "why", "arch"])
    print(f"{len(picks)} pick(s) worth exporting (picks.csv):")
    for rank, p in enumerate(picks, 1):
        m = front[p.index]
        writer.writerow([rank, m.arch_id, p.role, m.metrics[acc_name], m.metrics[lat_name],
                         p.reason, m.arch.to_str()])
        print(f"  {m.arch_id}  {p.reason}")
    atomic_write_text(Path(out) / "picks.csv", buf.getvalue())


def run(args: argparse.Namespace) -> int:
    from nas.search.space_search import SearchJob, run_job

    pick_metrics = _pick_metrics(list(args.objective), args.top)

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass
    job = SearchJob(
        args.space,
        objectives=tuple(args.objective),
        constraints=tuple(args.constraint),
        algo=args.algo,
        budget=args.budget,
        seed=args.seed,
        predictor=args.predictor,
        table=args.lut,
        run_dir=args.run,
        out=args.out,
        validate_every=args.validate_every,
        ray_address=args.ray_address,
        progress=not args.no_progress,
        sampler=args.sampler,
        storage=args.storage,
        study_name=args.study_name,
        resume=args.resume,
        population=args.population,
        mp_points=args.mp_points,
        validate_top=args.validate_top,
        samples=args.samples,
        workers=args.workers,
        device=args.device,
        command=shlex.join(["nas", *sys.argv[1:]]) if sys.argv else None,
    )
    outcome = run_job(job)
    s = outcome.summary
    counts, timings = s["counts"], s["timings"]
    print(f"{s['space']['name']}: {args.algo}, {counts['evaluated']} architectures evaluated "
          f"({counts['feasible']} feasible) in {timings['search_s']:.2f} s; "
          f"front of {counts['front']}")
    if not outcome.front:
        proven = s["feasibility"]["joint"] is True
        why = ("some architecture meets them (proven by the MILP); raise --budget or use --algo mp"
               if proven else "raise --budget or relax the constraints")
        print(f"  no feasible architecture among the {counts['evaluated']} evaluated: {why}")
    names = list(outcome.result.objective_names)
    for m in outcome.front[:10]:
        values = ", ".join(f"{n}={m.metrics[n]:.6g}" for n in names)
        print(f"  {m.arch_id}  {values}  {m.arch.to_str()}")
    if len(outcome.front) > 10:
        print(f"  ... {len(outcome.front) - 10} more in front.csv")
    if pick_metrics is not None and outcome.front:
        _write_picks(outcome, pick_metrics, args.top, args.out)
    print(f"wrote {args.out} (front.csv, evaluated.csv, pareto.png, front/, search.json"
          + (", picks.csv" if pick_metrics is not None and outcome.front else "") + ")")
    return 0

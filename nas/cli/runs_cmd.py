"""``nas runs``, ``nas show`` and ``nas compare``: what run folders hold, from their own files
(see :mod:`nas.runs`)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs", help="list the run folders under a folder (nas run and nas train)",
        description="List every 'nas run' and 'nas train' folder under FOLDER (3 levels deep): "
        "space, data, how far it got, the best exported model's validation accuracy and the "
        "number of weak-run warnings ('nas show RUN' prints them).",
    )
    p.add_argument("folder", nargs="?", default="results", help="where to look")
    p.add_argument("--json", action="store_true", help="one JSON object per run instead")
    p.set_defaults(func=run_list)

    s = subparsers.add_parser(
        "show", help="a run's stages, key numbers, exported models and warnings",
        description="Read a 'nas run' or 'nas train' folder and print its stages, supernet "
        "accuracy (largest and smallest subnets), predictor Kendall tau, latency calibration "
        "error, search front, exported models (validation and test accuracy, predicted and "
        "measured latency) and weak-run warnings, each with the number that triggered it.",
    )
    s.add_argument("run", help="run folder")
    s.add_argument("--json", action="store_true", help="the summary as JSON")
    s.set_defaults(func=run_show)

    c = subparsers.add_parser(
        "compare", help="key numbers of several runs side by side (a markdown table)",
        description="One markdown table, a column per run: supernet accuracy, predictor tau, "
        "latency bound, front size, the best exported model and the number of warnings.",
    )
    c.add_argument("runs", nargs="+", help="run folders")
    c.add_argument("--json", action="store_true", help="the summaries as a JSON list")
    c.set_defaults(func=run_compare)


def run_list(args: argparse.Namespace) -> int:
    from nas.runs import find_runs, listing

    infos = find_runs(args.folder)
    if args.json:
        for info in infos:
            print(json.dumps(info.to_dict(), default=str))
    elif infos:
        print(listing(infos))
    else:
        print(f"no run folders under {args.folder}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from nas.runs import describe, read_run

    info = read_run(args.run)
    print(json.dumps(info.to_dict(), indent=2, default=str) if args.json else describe(info))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from nas.runs import compare, read_run

    infos = [read_run(r) for r in args.runs]
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2, default=str))
    else:
        print(compare(infos))
    return 0

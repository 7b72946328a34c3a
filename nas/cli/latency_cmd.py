"""``nas latency``: validate, merge, inspect latency tables and predict with them."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nas.cli import types as argtypes


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "latency",
        help="latency tables: validate against the device, merge, predict, show",
        description="Work with latency tables written by 'nas profile'.",
    )
    sub = p.add_subparsers(dest="latency_command", required=True, metavar="ACTION")

    v = sub.add_parser(
        "validate",
        help="measure fresh random subnets end to end and compare with the table's predictions",
        description=(
            "Measure N fresh random subnets (never the table's calibration subnets) end to end "
            "with the table's own timing protocol, in interleaved rounds, and report the median "
            "absolute percentage error, the share within +/-10%%, Kendall tau and Spearman of the "
            "table's predictions, beside the device's repeatability: a subset of the networks "
            "timed again in a separate pass. Writes a Markdown report (the command first), a CSV "
            "of every network and a scatter plot PNG."
        ),
    )
    v.add_argument("--space", required=True, help="shipped space name or a YAML file")
    v.add_argument("--table", required=True, help="latency table (CSV or its JSON sidecar)")
    v.add_argument("--n", type=argtypes.positive_int, default=100, help="subnets to measure (100)")
    v.add_argument("--repeat-subset", type=argtypes.non_negative_int, default=30,
                   help="of those, how many are measured again in a second pass (30)")
    v.add_argument("--seed", type=argtypes.seed, default=1, help="seed of the validation subnets (1)")
    v.add_argument("--out", default=None,
                   help="report path (default results/benchmarks/latency_<device>_<runtime>.md); "
                        "the PNG and CSV go beside it")
    v.add_argument("--exported", default=None, metavar="DIR",
                   help="instead of fresh random subnets, time the files 'nas export' wrote "
                        "under DIR (every folder with manifest.json and model_card.json) twice "
                        "against the table's prediction of their architectures: the .onnx with "
                        "ONNX Runtime, the TorchScript and .pt2 files and the eager module with "
                        "torch (default: the runtimes of the table); report at --out (default "
                        "DIR/latency_validation.md)")
    v.add_argument("--runtimes", default=None,
                   help="with --exported: comma-separated runtimes to time, of onnxruntime, "
                        "eager, torchscript, pt2 (default: onnxruntime for an ONNX Runtime "
                        "table, eager,torchscript,pt2 for a torch table)")
    v.add_argument("--precisions", default=None,
                   help="precisions of the subnets' policies, e.g. fp32,int8 (default: those the "
                        "table was profiled at); subnets with int8 genes are timed as the QDQ "
                        "files 'nas export' writes")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=run_validate)

    m = sub.add_parser(
        "merge",
        help="merge partial tables of the same device and protocol (or re-fit one's calibration)",
        description=(
            "Join two or more tables measured on the same device with the same protocol, "
            "batch, threads and space. For a key in several tables the lowest median is kept. "
            "The calibration is re-fitted from the end-to-end measurements stored in the "
            "sidecars when every key they need is present (give --space), else dropped. "
            "Given one table, it re-fits that table's calibration (after a change of the "
            "calibration rule, say) without the device."
        ),
    )
    m.add_argument("tables", nargs="+", help="tables to merge (CSV or JSON paths)")
    m.add_argument("--out", required=True, help="merged table CSV path")
    m.add_argument("--space", default=None,
                   help="the tables' space; needed to re-fit the calibration")
    m.set_defaults(func=run_merge)

    pr = sub.add_parser(
        "predict",
        help="predicted latency of architectures",
        description="Print the table's predicted end-to-end latency of each architecture.",
    )
    pr.add_argument("--space", required=True, help="shipped space name or a YAML file")
    pr.add_argument("--table", required=True, help="latency table (CSV or its JSON sidecar)")
    pr.add_argument("archs", nargs="+",
                    help="architectures: short strings such as 'r16 | w8: ir_k3_e1 | w16: "
                         "at_h2_m2', JSON text, or JSON files")
    pr.add_argument("--precisions", default=None,
                    help="precisions the architectures may use, e.g. fp32,int8 (default: those "
                         "the table was profiled at)")
    pr.set_defaults(func=run_predict)

    f = sub.add_parser(
        "fewshot",
        help="a latency table for a new device from a few whole-network times and other "
             "devices' tables",
        description=(
            "For a device that can only run whole networks: fit how its latencies relate to "
            "the prior tables (other devices, same space) from a few measured networks, and "
            "write a latency table of the space that every command accepts. The model: per "
            "prior and unit kind a non-negative weight on the prior's unit costs, shrunk "
            "towards one scale per prior, plus a per-network overhead; which priors and how "
            "much shrinkage are chosen by cross-validation on the measurements (leave-one-out "
            "up to 20 networks). Prints the cross-validated error; the sidecar records the "
            "method, the priors with their SHA-256 and the measurements. Measure the networks "
            "'nas latency suggest' lists."
        ),
    )
    f.add_argument("--space", required=True, help="shipped space name or a YAML file")
    f.add_argument("--measured", required=True,
                   help="CSV with columns arch (architecture string) and latency_ms, one row "
                        "per measured network")
    f.add_argument("--prior", action="append", required=True, metavar="TABLE",
                   help="latency table of another device of the same space (repeatable)")
    f.add_argument("--out", required=True, help="table CSV path (its sidecar: same name, .json)")
    f.add_argument("--latency-device", dest="device", default="cpu",
                   help="the measured device as 'nas latency validate' would time it here "
                        "(cpu, cuda[:N]; default cpu), or any name for a device elsewhere")
    f.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"),
                   help="runtime the times were measured with (torch)")
    f.add_argument("--threads", type=argtypes.parallel, default=1, help="threads of the measurements (1)")
    f.add_argument("--batch", type=argtypes.positive_int, default=1, help="batch of the measurements (1)")
    f.set_defaults(func=run_fewshot)

    g = sub.add_parser(
        "suggest",
        help="which networks to measure on a new device for 'nas latency fewshot'",
        description=(
            "Pick N subnets to measure on a new device: from a seeded pool of random subnets, "
            "farthest-point sampling over the priors' predicted latency, the share of each "
            "block kind in it and the priors' disagreement, so the measured networks span the "
            "latency range, the block kinds and the ways devices differ. Writes a CSV (arch, "
            "arch_id, prior_mean_ms, and an empty latency_ms column to fill in and pass to "
            "'nas latency fewshot --measured'); --onnx also writes each network as "
            "<arch_id>.onnx (random weights: latency does not depend on them) to run on the "
            "device. For trained weights export each row with 'nas export --run RUN --arch "
            "\"<arch>\"'."
        ),
    )
    g.add_argument("--space", required=True, help="shipped space name or a YAML file")
    g.add_argument("--prior", action="append", required=True, metavar="TABLE",
                   help="latency table of another device of the same space (repeatable)")
    g.add_argument("--n", type=argtypes.positive_int, default=10, help="networks to measure (10)")
    g.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the candidate pool (0)")
    g.add_argument("--pool", type=argtypes.positive_int, default=2000, help="random candidates to pick from (2000)")
    g.add_argument("--out", required=True, help="CSV path of the list")
    g.add_argument("--onnx", default=None, metavar="DIR",
                   help="also export the networks as ONNX files into DIR (new or empty)")
    g.add_argument("--batch", type=argtypes.positive_int, default=1, help="batch of the ONNX inputs (1)")
    g.set_defaults(func=run_suggest)

    s = sub.add_parser("show", help="metadata, calibration and size of a table")
    s.add_argument("table", help="latency table (CSV or its JSON sidecar)")
    s.add_argument("--space", default=None, help="check coverage of this space's keys")
    s.set_defaults(func=run_show)


def _validate_command(args: argparse.Namespace, out: object) -> str:
    """The command that reproduces a validation, every setting spelled out."""
    parts = ["nas", "latency", "validate", "--space", args.space, "--table", args.table,
             "--n", str(args.n), "--repeat-subset", str(args.repeat_subset),
             "--seed", str(args.seed), "--out", str(out)]
    if getattr(args, "precisions", None):
        parts += ["--precisions", args.precisions]
    return " ".join(shlex.quote(p) for p in parts)


def run_validate_exported(args: argparse.Namespace) -> int:
    from nas.io import check_writable
    from nas.latency.validate_exported import summary_lines, validate_exported, write_report
    from nas.spaces import load_space

    out = Path(args.out) if args.out is not None else Path(args.exported) / "latency_validation.md"
    check_writable(out.parent)
    space = load_space(args.space)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()] if args.runtimes else None
    result = validate_exported(
        space, args.table, args.exported, runtimes=runtimes, seed=args.seed,
        say=lambda text: print(f"nas latency validate: {text}", file=sys.stderr, flush=True),
    )
    parts = ["nas", "latency", "validate", "--space", args.space, "--table", args.table,
             "--exported", args.exported, "--seed", str(args.seed), "--out", str(out)]
    if args.runtimes:
        parts += ["--runtimes", args.runtimes]
    md = write_report(result, out, " ".join(shlex.quote(p) for p in parts))
    for line in summary_lines(result):
        print(line)
    print(f"report: {md}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    if args.exported is not None:
        return run_validate_exported(args)
    from nas.io import check_writable
    from nas.latency.table import LatencyTable
    from nas.latency.validate import (
        REPORT_DIR,
        check_report_keeps,
        default_report_path,
        summary_lines,
        validate_table,
        write_report,
    )
    from nas.spaces import load_space

    # the report's folder and files, checked before the measurements, not after them
    check_writable(Path(args.out).parent if args.out is not None else REPORT_DIR)
    if args.out is not None:
        check_report_keeps(args.out, LatencyTable.paths(args.table))
    space = load_space(args.space)
    result = validate_table(
        space,
        args.table,
        n=args.n,
        repeat_subset=args.repeat_subset,
        seed=args.seed,
        progress=not args.no_progress,
        say=lambda text: print(f"nas latency validate: {text}", file=sys.stderr, flush=True),
        precisions=args.precisions,
    )
    out = args.out if args.out is not None else default_report_path(result)
    md, png, csv = write_report(result, out, _validate_command(args, out))
    for line in summary_lines(result):
        print(line)
    print(f"report: {md} (plot {png.name}, networks {csv.name})")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nas.latency.space_profile import recalibrate_from_notes
    from nas.latency.table import LatencyTable

    tables = [LatencyTable.load(p) for p in args.tables]
    merged = tables[0]
    for other in tables[1:]:
        merged = merged.merge(other)
    note = "no calibration (re-fit it with 'nas profile' on the merged table)"
    if args.space is not None:
        from nas.latency.space_units import check_table
        from nas.spaces import load_space

        space = load_space(args.space)
        check_table(merged, space)
        if not merged.meta.notes.get("calibration_set"):
            for t in tables:  # take the end-to-end measurements of any input
                record = t.meta.notes.get("calibration_set")
                if record:
                    notes = {**merged.meta.notes, "calibration_set": record}
                    merged.meta = replace(merged.meta, notes=notes)
                    break
        cal = recalibrate_from_notes(merged, space)
        if cal is not None:
            note = f"calibration re-fitted: {cal.to_dict()['formula']}"
    path = merged.save(args.out)
    print(f"{path}: {len(merged)} entries from {len(tables)} tables; {note}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from nas.latency.space_profile import space_for_table
    from nas.latency.space_units import predict_latency
    from nas.latency.table import LatencyTable
    from nas.precision import PRECISIONS
    from nas.spaces import load_space

    space = load_space(args.space)
    archs = [_parse_arch(text) for text in args.archs]
    _check_inside(space.with_precisions(PRECISIONS), archs)  # before reading the table
    table = LatencyTable.load(args.table, expected_space_hash=space.hash())
    space = space_for_table(space, table, args.precisions)
    _check_inside(space, archs)  # precisions the table (or --precisions) allows
    for arch, ms in zip(archs, predict_latency(table, space, archs)):
        print(f"{ms:.4f} ms  {arch.to_str()}")
    return 0


def _check_inside(space, archs) -> None:
    from nas.errors import SpaceError

    for arch in archs:
        try:
            space.validate(arch)
        except SpaceError as exc:
            raise SpaceError(
                f"{arch.to_str()} is outside the space {space.name!r} ({exc}); a table only "
                "predicts the space's own architectures"
            ) from None


def _parse_arch(text: str):
    from nas.arch import Architecture

    stripped = text.strip()
    if stripped.startswith("{"):
        return Architecture.from_json(stripped)
    path = Path(stripped)
    if path.suffix == ".json" and path.is_file():
        return Architecture.from_json(path.read_text(encoding="utf-8"))
    return Architecture.from_str(stripped)


def run_fewshot(args: argparse.Namespace) -> int:
    from nas.io import check_writable
    from nas.latency.fewshot import fit_fewshot_table, load_priors, read_measurements
    from nas.spaces import load_space

    check_writable(Path(args.out).parent)
    space = load_space(args.space)
    priors = load_priors(args.prior, space)
    measured = read_measurements(args.measured, space)
    result = fit_fewshot_table(
        space, measured, priors, device=args.device, runtime=args.runtime,
        threads=args.threads, batch=args.batch,
    )
    path = result.table.save(args.out)
    record = result.table.meta.notes["fewshot"]
    print(f"{path}: {len(result.table)} entries from {len(measured.archs)} measured networks "
          f"and {len(priors)} prior table(s); model: {record['chosen']}")
    print(f"cross-validated ({record['cv']}) RMS relative error {100 * result.cv_rms_relative:.1f}%;"
          f" in sample: median |error| {result.in_sample['median_ape_pct']:.1f}%, "
          f"{result.in_sample['within10_pct']:.0f}% within +/-10%")
    if result.n_clipped:
        print(f"note: {result.n_clipped} unit(s) transferred to <= 0 ms were stored as 1e-6 ms")
    return 0


def run_suggest(args: argparse.Namespace) -> int:
    import numpy as np

    from nas.io import check_writable
    from nas.latency.fewshot import load_priors, suggest_networks, write_suggestions
    from nas.spaces import load_space

    check_writable(Path(args.out).parent)
    space = load_space(args.space)
    priors = load_priors(args.prior, space)
    picks = suggest_networks(space, priors, args.n, np.random.default_rng(args.seed),
                             pool=args.pool)
    if args.onnx is not None:
        from nas.export.onnx_list import export_archs_onnx

        export_archs_onnx(space, [a for a, _ in picks], args.onnx, batch=args.batch)
    path = write_suggestions(args.out, picks)
    ms = [m for _, m in picks]
    print(f"{path}: {len(picks)} networks to measure (priors' mean prediction "
          f"{min(ms):.3g}-{max(ms):.3g} ms); fill in latency_ms and run 'nas latency fewshot "
          f"--measured {path}'" + (f"; ONNX files in {args.onnx}" if args.onnx else ""))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from collections import Counter

    from nas.latency.table import LatencyTable

    table = LatencyTable.load(args.table)
    m = table.meta
    print(repr(table))
    print(f"created {m.created}, updated {m.updated}; versions {m.versions}")
    kinds = Counter(k.split(":", 1)[0] for k in table.keys())
    print("entries by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    cal = m.calibration
    print(f"calibration: {cal['formula'] + ' ms' if cal else 'none'}")
    if args.space is not None:
        from nas.latency.space_units import check_table, space_keys
        from nas.spaces import load_space

        space = load_space(args.space)
        check_table(table, space)
        missing = table.missing(space_keys(space))
        print(f"coverage of {space.name}: {len(space_keys(space)) - len(missing)}/"
              f"{len(space_keys(space))} keys" + (f"; missing e.g. {missing[0]}" if missing else ""))
    return 0

"""``nas spaces [NAME|PATH]``: list shipped spaces with exact counts and cost ranges, or show one."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.spaces import load_space, shipped_spaces
from nas.spaces.extremes import cost_ranges
from nas.spaces.ops import stage_layer_choices
from nas.spaces.schema import SearchSpace, stage_input_sizes


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "spaces",
        help="list the shipped search spaces, or print one in full",
        description="Without NAME: every shipped space with its exact subnet count and the exact "
        "min/max FLOPs, params and peak activation memory (batch 1, float32). With NAME (a shipped "
        "name or a YAML path): the space in full.",
    )
    p.add_argument("name", nargs="?", help="a shipped space name or a path to a space YAML file")
    p.set_defaults(func=run)


def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{prefix}{unit}"
    return f"{value:.0f}{unit}"


def _bytes(value: float) -> str:
    for factor, unit in ((2**20, "MiB"), (2**10, "KiB")):
        if value >= factor:
            return f"{value / factor:.1f}{unit}"
    return f"{value:.0f}B"


def summary_rows(names: list[str]) -> list[dict[str, str]]:
    rows = []
    for name in names:
        space = load_space(name)
        r = cost_ranges(space)
        rows.append(
            {
                "space": name,
                "subnets": f"{space.size():.3e}",
                "FLOPs": f"{_si(2 * r['macs'][0])} - {_si(2 * r['macs'][1])}",
                "params": f"{_si(r['params'][0])} - {_si(r['params'][1])}",
                "peak memory": f"{_bytes(r['memory'][0])} - {_bytes(r['memory'][1])}",
                "hash": space.hash(),
            }
        )
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def describe(space: SearchSpace) -> str:
    """The space in full: its YAML-equivalent definition plus derived facts."""
    r = cost_ranges(space)
    lines = [
        f"# {space.name} ({space.source})",
        f"# hash {space.hash()}, {space.size():,} distinct subnets",
        f"# FLOPs {_si(2 * r['macs'][0])} - {_si(2 * r['macs'][1])}, params {_si(r['params'][0])} - "
        f"{_si(r['params'][1])}, peak memory {_bytes(r['memory'][0])} - {_bytes(r['memory'][1])}",
        f"# largest (max MACs):  {space.largest()}",
        f"# smallest (min MACs): {space.smallest()}",
    ]
    for res in space.resolutions[:: max(1, len(space.resolutions) - 1)]:
        sizes = stage_input_sizes(space, res)
        lines.append(
            f"# feature map at resolution {res}: stage inputs {sizes[:-1]}, head {sizes[-1]}"
        )
    for i, stage in enumerate(space.stages):
        lines.append(
            f"# stage {i} ({stage.name}): {len(stage_layer_choices(stage))} layer choices per slot"
        )
    lines.append(Path(space.source).read_text().rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.name:
        print(describe(load_space(args.name)))
    else:
        print(format_table(summary_rows(shipped_spaces())))
    return 0

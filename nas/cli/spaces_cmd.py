"""``nas spaces [NAME|PATH]``: list shipped spaces with exact counts and cost ranges, or show one."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas import budget
from nas.cli import types as argtypes
from nas.errors import UserError
from nas.spaces import load_space, shipped_spaces
from nas.spaces.extremes import cost_ranges
from nas.spaces.ops import format_size, stage_layer_choices
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
    p.add_argument("--batch", type=argtypes.positive_int, default=16,
                   help="batch of the memory estimates printed for NAME (16: nas train's default)")
    p.set_defaults(func=run)


# spaces deeper than this are not listed layer by layer (largest/smallest)
LIST_DEPTH_LIMIT = 1000


def _si(value: float, unit: str = "") -> str:
    if abs(value) >= 1e15:
        return f"{budget.format_count(int(value))}{unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{prefix}{unit}"
    return f"{value:.0f}{unit}"


def _bytes(value: float) -> str:
    return budget.format_bytes(int(value)).replace(" ", "")


def summary_rows(names: list[str]) -> list[dict[str, str]]:
    rows = []
    for name in names:
        space = load_space(name)
        r = cost_ranges(space)
        rows.append(
            {
                "space": name,
                "subnets": format_size(space, exact=False),
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


def estimate_lines(space: SearchSpace, batch: int) -> list[str]:
    """Memory before allocation: the supernet's exact size and what each command will need."""
    params = budget.supernet_params(space)
    return [
        f"# supernet: {budget.format_count(params)} parameters "
        f"({budget.format_bytes(params * budget.BYTES_PER_PARAM)} float32); largest subnet's "
        f"peak activations {budget.format_bytes(budget.peak_activation_bytes(space) * batch)} "
        f"at batch {batch}",
        f"# {budget.training_estimate(space, batch).describe()}",
        f"# {budget.sampling_estimate(space, batch).describe()}",
        f"# {budget.profiling_estimate(space, 1).describe()}",
    ]


def describe(space: SearchSpace, batch: int = 16) -> str:
    """The space in full: its YAML-equivalent definition plus derived facts."""
    r = cost_ranges(space)
    lines = [
        f"# {space.name} ({space.source})",
        f"# hash {space.hash()}, {format_size(space)} distinct subnets",
        f"# FLOPs {_si(2 * r['macs'][0])} - {_si(2 * r['macs'][1])}, params {_si(r['params'][0])} - "
        f"{_si(r['params'][1])}, peak memory {_bytes(r['memory'][0])} - {_bytes(r['memory'][1])}",
        *estimate_lines(space, batch),
    ]
    if max(stage.max_depth for stage in space.stages) <= LIST_DEPTH_LIMIT:
        lines += [
            f"# largest (max MACs):  {space.largest()}",
            f"# smallest (min MACs): {space.smallest()}",
        ]
    else:
        lines.append(f"# largest/smallest not listed: a stage is deeper than {LIST_DEPTH_LIMIT}")
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
        if args.batch < 1:
            raise UserError(f"--batch {args.batch}: expected a positive batch size")
        print(describe(load_space(args.name), args.batch))
    else:
        print(format_table(summary_rows(shipped_spaces())))
    return 0

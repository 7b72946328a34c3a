"""The ``nas`` command line: a table of small command modules, each with its arguments and one action.

Every module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
sub-command and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
Errors a user can fix (:class:`nas.errors.UserError`) are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nas.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "nas.cli.spaces_cmd", "nas.cli.train_cmd", "nas.cli.export_cmd",
    "nas.cli.sample_cmd", "nas.cli.fit_cmd", "nas.cli.predictors_cmd",
    "nas.cli.profile_cmd", "nas.cli.latency_cmd",
    "nas.cli.search_cmd", "nas.cli.run_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = argparse.ArgumentParser(
        prog="nas", description="Hardware-aware neural architecture search."
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``nas`` command line: a table of small command modules, each with its arguments and one action.

Every module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
sub-command and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
Building the parser imports no torch, scikit-learn or pandas (a command imports them when it
runs), so ``nas --help`` and every ``nas COMMAND --help`` print at once; every option's help states
its default. Flag names and their deprecated old spellings: :mod:`nas.cli.options`. Progress bars
are drawn only when stderr is a terminal (one line per epoch or stage in a log file).
Errors a user can fix (:class:`nas.errors.UserError`, and OSErrors of the user's paths and disks:
permissions, read-only or full disks, missing files) are printed as one line with exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from nas.cli.options import use_defaults_formatter
from nas.errors import UserError
from nas.progress import progress_enabled

COMMAND_MODULES: tuple[str, ...] = (
    "nas.cli.spaces_cmd", "nas.cli.train_cmd", "nas.cli.export_cmd",
    "nas.cli.sample_cmd", "nas.cli.fit_cmd", "nas.cli.predictors_cmd",
    "nas.cli.profile_cmd", "nas.cli.latency_cmd",
    "nas.cli.search_cmd", "nas.cli.run_cmd",
    "nas.cli.runs_cmd",
)


# errors of the user's paths and disks: a missing or unreadable file, a read-only or full disk
USER_ERRNOS: frozenset[int] = frozenset(
    getattr(errno, name)
    for name in (
        "EACCES", "EPERM", "ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "ENOTEMPTY", "EROFS",
        "ENOSPC", "EDQUOT", "EFBIG", "ENAMETOOLONG", "ELOOP", "EXDEV", "EBUSY", "ETXTBSY",
    )
    if hasattr(errno, name)
)


def user_os_error(exc: OSError) -> str | None:
    """One line for an OSError a user's path or disk caused (see :data:`USER_ERRNOS`), naming the
    path when the error carries it; ``None`` for any other OSError (a bug: keep the traceback)."""
    if exc.errno not in USER_ERRNOS:
        return None
    reason = exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "while writing or reading a file"
    hint = {
        errno.ENOSPC: "; free some space or choose another --out",
        errno.EROFS: "; choose a writable --out",
        errno.EACCES: "; check the permissions or choose another path",
        errno.EPERM: "; check the permissions or choose another path",
    }.get(exc.errno, "")
    return f"{where}: {reason}{hint}"


def build_parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = argparse.ArgumentParser(
        prog="nas", description="Hardware-aware neural architecture search."
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    use_defaults_formatter(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "no_progress", None) is False and not progress_enabled():
        args.no_progress = True  # a log file gets one line per epoch, not bar updates
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = user_os_error(exc)
        if line is None:
            raise
        print(f"nas {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

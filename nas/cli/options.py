"""Shared pieces of the command line: the help formatter that states defaults, and old flag
spellings kept as deprecated aliases.

One flag name per concept across commands:

- ``--table``: a latency table (``--lut`` is its old spelling in export, sample and search);
- ``--no-progress``: no progress bars (``--quiet`` is its old spelling in export); bars are off
  anyway when stderr is not a terminal, with one line per epoch or stage instead;
- ``--device``: where torch trains and evaluates (train, sample, search);
  ``--latency-device``: where latency is measured, ``cpu``, ``cuda[:N]`` or ``onnxruntime``
  (profile, export, run; ``--device`` is its old spelling there);
- ``--samples``: a samples CSV path (fit, predictors, search); ``nas run --n-samples`` is how
  many subnets to measure (``--samples`` is its old spelling there).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# (command, old flag) -> new flag, for the deprecation message and the CLI reference
DEPRECATED_FLAGS: dict[tuple[str, str], str] = {}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already states it (or the
    default is None/False: nothing given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default in ([], "")
                or default is argparse.SUPPRESS or not action.option_strings
                or "default" in text.lower()):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        spellings = {shown, f"{default:g}"} if isinstance(default, float) else {shown}
        if any(f"({s}" in text for s in spellings):
            return text
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


def use_defaults_formatter(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command parser below it :class:`DefaultsHelpFormatter`."""
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                use_defaults_formatter(sub)


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, *, new: str, command: str,
                 flag: bool = False, **kwargs: Any) -> None:
        self.new, self.command, self.flag = new, command, flag
        super().__init__(option_strings, dest, nargs=0 if flag else None, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"nas {self.command}: warning: {option_string} is deprecated; use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, True if self.flag else values)


def deprecated_alias(parser: argparse.ArgumentParser, command: str, old: str, new: str, *,
                     dest: str, flag: bool = False, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden spelling of ``new`` (same ``dest``), with a warning on stderr.
    ``flag``: a store_true option; ``kwargs`` (type, choices) as for ``new``."""
    DEPRECATED_FLAGS[(command, old)] = new
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, command=command,
                        flag=flag, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

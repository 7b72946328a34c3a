"""Load search spaces from YAML (shipped names or a user's path), with errors that name the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

import search_spaces
from nas.blocks.base import check_choices as _choices
from nas.blocks.base import check_int as _int
from nas.errors import SpaceError
from nas.precision import FP32, parse_precisions
from nas.spaces.schema import (
    HeadSpec,
    SearchSpace,
    StageSpec,
    StemSpec,
    _check_act,
    block_spec,
    validate_space,
)

SHIPPED_DIR = Path(search_spaces.__file__).resolve().parent

_TOP_KEYS = {
    "name",
    "description",
    "in_channels",
    "num_classes",
    "resolutions",
    "stem",
    "stages",
    "head",
    "precisions",
}
_STAGE_KEYS = {"name", "widths", "depths", "stride", "act", "blocks"}


def shipped_spaces() -> list[str]:
    """Names of the spaces shipped with the package."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where, and what (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "python/" in problem:
        problem += " (Python tags are refused: a space file is data, never code)"
    return f"malformed YAML{where}: {problem}"


def load_space(name_or_path: str | os.PathLike | SearchSpace) -> SearchSpace:
    """A shipped space by name (``hybrid-cifar``) or a user's YAML file by path."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    text = str(name_or_path)
    shipped = SHIPPED_DIR / f"{text}.yaml"
    if shipped.is_file():
        path = shipped
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise SpaceError(
                f"search space {text!r}: not a shipped space and no such file; "
                f"shipped spaces: {', '.join(shipped_spaces())}"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: {yaml_error_line(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read the file: {exc}") from None
    return space_from_dict(data, where=str(path))


def _require(data: dict, key: str, where: str) -> Any:
    if key not in data:
        raise SpaceError(f"{where}: missing field {key!r}")
    return data[key]


def _check_keys(data: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise SpaceError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return data


def space_from_dict(data: Any, *, where: str = "<space>") -> SearchSpace:
    """Build and validate a SearchSpace from parsed YAML."""
    data = _check_keys(data, _TOP_KEYS, where)
    stem_d = _check_keys(
        _require(data, "stem", where), {"width", "kernel", "stride", "act"}, f"{where}: stem"
    )
    head_d = _check_keys(
        _require(data, "head", where), {"width", "hidden", "act", "dropout"}, f"{where}: head"
    )
    stem = StemSpec(
        width=_int(_require(stem_d, "width", f"{where}: stem"), f"{where}: stem.width"),
        kernel=_int(stem_d.get("kernel", 3), f"{where}: stem.kernel"),
        stride=_int(stem_d.get("stride", 1), f"{where}: stem.stride"),
        act=_check_act(stem_d.get("act", "relu"), f"{where}: stem.act"),
    )
    hidden = head_d.get("hidden")
    head = HeadSpec(
        width=_int(_require(head_d, "width", f"{where}: head"), f"{where}: head.width"),
        hidden=None if hidden is None else _int(hidden, f"{where}: head.hidden"),
        act=_check_act(head_d.get("act", "relu"), f"{where}: head.act"),
        dropout=float(head_d.get("dropout", 0.0)),
    )
    stages_d = _require(data, "stages", where)
    if not isinstance(stages_d, list) or not stages_d:
        raise SpaceError(f"{where}: stages: expected a non-empty list of stages")
    stages = []
    for i, sd in enumerate(stages_d):
        sw = f"{where}: stages[{i}]"
        sd = _check_keys(sd, _STAGE_KEYS, sw)
        from nas.blocks.registry import kind_names  # loads the kinds (and torch) on first use

        kinds = kind_names()
        blocks_d = _check_keys(_require(sd, "blocks", sw), set(kinds), f"{sw}.blocks")
        if not blocks_d:
            raise SpaceError(f"{sw}.blocks: empty; allowed kinds: {', '.join(kinds)}")
        blocks = tuple(
            block_spec(k, blocks_d[k], f"{sw}.blocks.{k}") for k in kinds if k in blocks_d
        )
        stages.append(
            StageSpec(
                widths=_choices(_require(sd, "widths", sw), f"{sw}.widths", kind=int),
                depths=_choices(_require(sd, "depths", sw), f"{sw}.depths", kind=int),
                stride=_int(_require(sd, "stride", sw), f"{sw}.stride"),
                blocks=blocks,
                act=_check_act(sd.get("act", "relu"), f"{sw}.act"),
                name=str(sd.get("name", f"stage{i + 1}")),
            )
        )
    space = SearchSpace(
        name=str(_require(data, "name", where)),
        in_channels=_int(_require(data, "in_channels", where), f"{where}: in_channels"),
        num_classes=_int(_require(data, "num_classes", where), f"{where}: num_classes"),
        resolutions=_choices(
            _require(data, "resolutions", where), f"{where}: resolutions", kind=int
        ),
        stem=stem,
        stages=tuple(stages),
        head=head,
        description=str(data.get("description", "")),
        source=where,
        precisions=parse_precisions(data.get("precisions", [FP32]), f"{where}: precisions"),
    )
    validate_space(space, where)
    return space

"""The samples file: an append-only CSV, one measured subnet per row, and its JSON sidecar.

``samples.csv`` has the columns :data:`COLUMNS`; ``samples.json`` beside it (same stem) says what
the rows were measured on: the space (name, hash and full definition, so the file can be used
without the run folder), the supernet run and the SHA-256 of its checkpoint, the data fingerprint,
the evaluation settings and the latency table, plus the history of draws. Rows are appended one at
a time (flush + fsync), so a crash loses at most the row being written; a partial last line left by
a crash is dropped when the file is opened again. Rows measured under another sidecar (another
space, supernet, data, evaluation settings or table) are refused, never mixed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, SpaceError, UserError
from nas.io import atomic_write_json, open_for_append
from nas.json_files import read_versioned_json
from nas.spaces import SearchSpace, space_from_dict

FORMAT = "nas-samples"
FORMAT_VERSION = 1
COLUMNS: tuple[str, ...] = (
    "arch_id",
    "arch",
    "arch_json",
    "macs",
    "flops",
    "params",
    "memory",
    "latency_ms",
    "val_acc",
    "val_loss",
    "seconds",
)
NUMERIC: tuple[str, ...] = COLUMNS[3:]
# Sidecar sections that must agree for rows to be comparable (a resumed run checks them all).
IDENTITY_KEYS: tuple[str, ...] = ("space", "run", "evaluation", "latency_table")


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """``samples.csv`` (or ``samples.csv.gz``, read-only) -> ``samples.json``."""
    path = Path(csv_path)
    if path.suffix.lower() == ".json":
        raise UserError(f"{path}: the samples file must be a .csv (its sidecar is the .json)")
    if _gzipped(path):
        path = path.with_suffix("")
    return path.with_suffix(".json")


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def read_sidecar(csv_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of ``csv_path``; refuses a missing or foreign one."""
    path = sidecar_path(csv_path)
    if not path.is_file():
        raise IncompatibleFileError(
            f"{path}: missing; a samples CSV needs the JSON sidecar 'nas sample' writes beside it "
            "(it names the space and the supernet the rows were measured on)"
        )
    return read_versioned_json(path, "a 'nas sample' sidecar", format=FORMAT,
                               versions=range(1, FORMAT_VERSION + 1))


def space_of(meta: Mapping[str, Any], where: str = "samples sidecar") -> SearchSpace:
    """The search space a sidecar describes, checked against its recorded hash."""
    info = meta.get("space") or {}
    space = space_from_dict(info.get("definition"), where=f"{where}: space")
    if space.hash() != info.get("hash"):
        raise IncompatibleFileError(
            f"{where}: the space definition hashes to {space.hash()}, not the recorded "
            f"{info.get('hash')}; the sidecar was edited"
        )
    return space


def identity_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two sidecars in what makes rows comparable."""
    out = []
    for key in IDENTITY_KEYS:
        a, b = old.get(key), new.get(key)
        if key == "space":  # the hash covers everything that shapes weights and costs
            a = {"name": (a or {}).get("name"), "hash": (a or {}).get("hash")}
            b = {"name": (b or {}).get("name"), "hash": (b or {}).get("hash")}
            if a["hash"] == b["hash"]:
                continue
        if key == "run" and a and b:  # the same checkpoint may be reached by another path
            a = {k: v for k, v in a.items() if k != "path"}
            b = {k: v for k, v in b.items() if k != "path"}
        if key == "latency_table" and a and b:
            a = {k: v for k, v in a.items() if k != "path"}
            b = {k: v for k, v in b.items() if k != "path"}
        if a != b:
            out.append(f"{key}: file has {json.dumps(a, sort_keys=True)}, now {json.dumps(b, sort_keys=True)}")
    return out


@dataclass(frozen=True)
class SampleRows:
    """Rows of a samples CSV (values as written: strings) with their sidecar."""

    path: Path
    meta: dict[str, Any]
    rows: list[dict[str, str]]

    @property
    def arch_ids(self) -> set[str]:
        return {r["arch_id"] for r in self.rows}

    def architectures(self) -> list[Architecture]:
        return [Architecture.from_json(r["arch_json"]) for r in self.rows]

    def column(self, name: str) -> list[float]:
        """A numeric column as floats (NaN where empty)."""
        if name not in NUMERIC:
            raise UserError(f"column {name!r}: expected one of {', '.join(NUMERIC)}")
        return [float(r[name]) if r[name] != "" else float("nan") for r in self.rows]


def _drop_partial_tail(path: Path) -> None:
    """Truncate a last line without its newline (the row a crash interrupted)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))  # never truncate a link's target
    with os.fdopen(fd, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        cut = f.read().rfind(b"\n")
        keep = cut + 1 if cut >= 0 else 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"{path}: dropped a partial last row left by an interrupted run", stacklevel=3)


def _parse(path: Path, text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != COLUMNS:
        raise IncompatibleFileError(
            f"{path}: columns {header} are not those of a 'nas sample' file ({list(COLUMNS)})"
        )
    rows = []
    for line, values in enumerate(reader, start=2):
        if len(values) != len(COLUMNS):
            raise IncompatibleFileError(
                f"{path}, line {line}: {len(values)} fields, expected {len(COLUMNS)}"
            )
        row = dict(zip(COLUMNS, values))
        try:
            arch = Architecture.from_json(row["arch_json"])
        except SpaceError as exc:
            raise IncompatibleFileError(f"{path}, line {line}: {exc}") from None
        if arch.arch_id() != row["arch_id"]:
            raise IncompatibleFileError(
                f"{path}, line {line}: arch_id {row['arch_id']} is not that of its arch_json "
                f"({arch.arch_id()}); the row was edited"
            )
        for name in NUMERIC:
            try:
                float(row[name] or "nan")
            except ValueError:
                raise IncompatibleFileError(
                    f"{path}, line {line}: {name}={row[name]!r} is not a number"
                ) from None
        rows.append(row)
    return rows


def read_samples(path: str | os.PathLike, *, repair: bool = False) -> SampleRows:
    """Read a samples CSV (or a gzipped copy) and its sidecar (``repair``: first drop a partial
    last row in place)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such samples file; write one with 'nas sample'")
    meta = read_sidecar(path)
    if _gzipped(path):
        import gzip

        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            return SampleRows(path, meta, _parse(path, f.read()))
    if repair:
        _drop_partial_tail(path)
    text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's save starts with a BOM
    if not repair and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # ignore a row being written right now
    return SampleRows(path, meta, _parse(path, text))


class SampleWriter:
    """Appends rows to a samples CSV, each flushed and fsynced. Use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> SampleWriter:
        if _gzipped(self.path):
            raise UserError(f"{self.path}: samples are appended to a plain .csv, not a .gz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open_for_append(self.path)
        self._writer = csv.writer(self._file, lineterminator="\n")
        if new:
            self._writer.writerow(COLUMNS)
            self._sync()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, row: Mapping[str, Any]) -> None:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"sample row lacks columns {missing}")
        self._writer.writerow([_fmt(row[c]) for c in COLUMNS])
        self._sync()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_sidecar(csv_path: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    return atomic_write_json(sidecar_path(csv_path), dict(meta))


def new_sidecar(space: SearchSpace, **sections: Any) -> dict[str, Any]:
    """A sidecar with the format tag, the space (name, hash, definition) and ``sections``."""
    from nas.train.rundir import space_to_dict

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "columns": list(COLUMNS),
        "space": {"name": space.name, "hash": space.hash(), "definition": space_to_dict(space)},
        **sections,
    }

"""Per-device latency lookup table: a CSV of entries plus a JSON metadata sidecar.

Files (``table.csv`` and ``table.json``, the sidecar has the same stem):

- CSV columns ``key, mean_ms, std_ms, median_ms, count``; one row per unit key (a canonical string for
  one layer configuration at one input shape). ``median_ms`` is the timing protocol's estimate, the
  LOWEST per-round median (:attr:`nas.latency.timing.Measurement.min_round_median_ms`); ``mean_ms`` and
  ``std_ms`` are over all samples, ``count`` is the number of timed calls. Predictions use ``median_ms``.
- JSON: device string, processor or GPU name, runtime and versions, threads, batch, dtype, space name
  and hash, creation and update dates, the timing protocol, and an optional calibration
  (:class:`nas.latency.calibration.Calibration`).

Both files are replaced atomically on every save, and the pair is atomic as a set: the JSON is
written last and records the CSV's SHA-256 and entry count, and until it is written the CSV it
replaces stays readable as ``.<name>.csv.prev`` (a hard link, removed after the save). A save killed
between the two files leaves the new CSV beside the old JSON; loading then reads the entries the
JSON describes from ``.prev`` (the previous good pair), and the next save completes the switch. A
table's first save writes the JSON first (a JSON without its CSV is an empty table to resume).
Sidecars without ``csv_sha256`` (older saves) are checked by their entry count only. Loading checks
columns, values and metadata and raises :class:`IncompatibleFileError` with the file and the reason.

Merging two partial tables of the same device (:meth:`LatencyTable.merge`): the metadata fields in
:data:`COMPAT_FIELDS` must be equal. For a key in both tables the entry with the LOWER median is kept
(the lowest median is the protocol's estimate: interference only adds time) and its count becomes the
sum of both counts (the calls timed for that key overall). A calibration is dropped by a merge, as it
was fitted to the old entries: re-fit it after merging.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write, atomic_write_json, atomic_write_text, read_csv_rows
from nas.json_files import read_versioned_json
from nas.latency.calibration import Calibration
from nas.latency.environment import processor_name, runtime_versions
from nas.latency.timing import Measurement, TimingProtocol
from nas.precision import INT8, SUFFIX

TABLE_COLUMNS: tuple[str, ...] = ("key", "mean_ms", "std_ms", "median_ms", "count")
FORMAT = "nas-latency-table"
FORMAT_VERSION = 1
COMPAT_FIELDS: tuple[str, ...] = (
    "device",
    "processor",
    "runtime",
    "versions",
    "threads",
    "batch",
    "dtype",
    "space_hash",
    "protocol",
)
_SHOW = 5  # missing keys named in an error


class MissingKeysError(UserError, KeyError):
    """Keys asked for that the table does not hold; ``.keys`` lists them all."""

    def __init__(self, keys: Sequence[str], table: str = "latency table") -> None:
        self.keys = list(keys)
        shown = ", ".join(repr(k) for k in self.keys[:_SHOW])
        more = f" and {len(self.keys) - _SHOW} more" if len(self.keys) > _SHOW else ""
        super().__init__(
            f"{table} has no entry for {len(self.keys)} key(s): {shown}{more}; "
            "profile them first (nas profile resumes and measures only missing keys)"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class TableEntry:
    """One row of the table (milliseconds per call)."""

    mean_ms: float
    std_ms: float
    median_ms: float
    count: int

    @classmethod
    def from_measurement(cls, m: Measurement) -> TableEntry:
        return cls(m.mean_ms, m.std_ms, m.min_round_median_ms, m.count)


@dataclass(frozen=True)
class TableMeta:
    """The JSON sidecar's content (minus the format tag)."""

    device: str
    processor: str
    runtime: str
    versions: dict[str, str]
    threads: int
    batch: int
    dtype: str
    space_name: str
    space_hash: str
    protocol: dict[str, Any]
    created: str
    updated: str | None = None
    calibration: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_this_machine(
        cls,
        *,
        device: str,
        runtime: str,
        threads: int,
        batch: int,
        dtype: str,
        space_name: str,
        space_hash: str,
        protocol: Mapping[str, Any],
    ) -> TableMeta:
        """Metadata for a table measured here now (processor and versions looked up)."""
        return cls(
            device=device,
            processor=processor_name(device),
            runtime=runtime,
            versions=runtime_versions(runtime),
            threads=int(threads),
            batch=int(batch),
            dtype=str(dtype),
            space_name=space_name,
            space_hash=space_hash,
            protocol=json.loads(json.dumps(dict(protocol))),  # JSON-normalised
            created=_now(),
        )

    @classmethod
    def for_protocol(
        cls,
        protocol: TimingProtocol,
        *,
        batch: int,
        dtype: str,
        space_name: str,
        space_hash: str,
    ) -> TableMeta:
        """Metadata for a table measured here now with ``protocol`` (device, runtime, threads)."""
        return cls.for_this_machine(
            device=protocol.device,
            runtime=protocol.runtime,
            threads=protocol.threads,
            batch=batch,
            dtype=dtype,
            space_name=space_name,
            space_hash=space_hash,
            protocol=protocol.describe(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TableMeta:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IncompatibleFileError(
                f'{where}: not a latency table sidecar (expected "format": "{FORMAT}")'
            )
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IncompatibleFileError(
                f"{where}: format_version {version!r} is not supported (this code reads "
                f"<= {FORMAT_VERSION})"
            )
        names = {f.name for f in fields(cls)}
        required = {
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        }
        absent = sorted(required - set(data))
        if absent:
            raise IncompatibleFileError(f"{where}: metadata lacks fields {absent}")
        meta = cls(**{k: v for k, v in data.items() if k in names})
        for name, kind in (
            ("threads", int),
            ("batch", int),
            ("versions", dict),
            ("protocol", dict),
        ):
            if not isinstance(getattr(meta, name), kind):
                raise IncompatibleFileError(f"{where}: field {name!r} must be a {kind.__name__}")
        if meta.calibration is not None:
            Calibration.from_dict(meta.calibration, where=f"{where}: calibration")
        return meta

    def differences(self, other: TableMeta) -> list[str]:
        """Compatibility fields whose values differ, as ``name (a vs b)``."""
        out = []
        for name in COMPAT_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out.append(f"{name} ({_short(a)} vs {_short(b)})")
        return out


class LatencyTable:
    """Entries by key plus metadata; see the module docstring for the file format."""

    def __init__(self, meta: TableMeta, entries: Mapping[str, TableEntry] | None = None) -> None:
        self.meta = meta
        self.entries: dict[str, TableEntry] = dict(entries or {})

    # -- container -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def keys(self) -> list[str]:
        return list(self.entries)

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"LatencyTable({len(self)} entries, {m.device}/{m.runtime}, {m.processor!r}, "
            f"threads={m.threads}, batch={m.batch}, space={m.space_name}:{m.space_hash})"
        )

    # -- lookup and prediction --------------------------------------------------------------
    def lookup(self, keys: Iterable[str]) -> np.ndarray:
        """Median latency (ms) of each key; raises :class:`MissingKeysError` naming absent keys."""
        keys = list(keys)
        absent = self.missing(keys)
        if absent:
            raise MissingKeysError(absent, table=self._name())
        return np.array([self.entries[k].median_ms for k in keys], dtype=np.float64)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not in the table, deduplicated, in first-seen order (what is left to profile)."""
        seen: dict[str, None] = {}
        for k in keys:
            if k not in self.entries:
                seen.setdefault(k, None)
        return list(seen)

    def lut_sums(self, keys_per_arch: Sequence[Sequence[str]]) -> np.ndarray:
        """Sum of unit medians per architecture (every missing key of every arch named at once)."""
        absent = self.missing(k for keys in keys_per_arch for k in keys)
        if absent:
            raise MissingKeysError(absent, table=self._name())
        return np.array(
            [sum(self.entries[k].median_ms for k in keys) for keys in keys_per_arch],
            dtype=np.float64,
        )

    def calibration_features(self, keys_per_arch: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """Features the table computes itself, per architecture: ``lut_sum``, ``n_units`` and,
        for each key kind (the text before a key's first ``:``, e.g. ``conv``), ``n_<kind>``:
        how many of its units are of that kind (per-kind overheads in a calibration)."""
        features = {
            "lut_sum": self.lut_sums(keys_per_arch),
            "n_units": np.array([len(k) for k in keys_per_arch], dtype=np.float64),
        }
        kinds = {k.split(":", 1)[0] for k in self.entries if ":" in k}
        kinds.update(k.split(":", 1)[0] for keys in keys_per_arch for k in keys if ":" in k)
        for kind in sorted(kinds):
            name = f"n_{kind}"
            if name not in features:
                features[name] = np.array(
                    [sum(1 for k in keys if k.split(":", 1)[0] == kind) for keys in keys_per_arch],
                    dtype=np.float64,
                )
        features.update(self.int8_excess_features(keys_per_arch))
        return features

    def int8_excess_features(self, keys_per_arch: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """``int8_excess_<kind>`` per architecture, for each kind with an ``@int8`` key among the
        architectures: the sum over its int8 units of that kind of (int8 median - the same
        unit's fp32 median), the time the table says switching them to int8 adds (negative: saves).
        A calibration coefficient ``c`` on it scales that switch by ``1 + c / a`` (``a`` on
        ``lut_sum``): a unit timed alone can misprice what the switch costs inside a network
        (``nas.benchmarks.int8_switch_cost``). One column per kind with an ``@int8`` entry in
        the table or among the keys (zero where an architecture has none); empty for an
        fp32-only table."""
        suffix = SUFFIX + INT8
        kinds = sorted({k.split(":", 1)[0] for k in self.entries if k.endswith(suffix)}
                       | {k.split(":", 1)[0] for keys in keys_per_arch for k in keys
                          if k.endswith(suffix)})
        if not kinds:
            return {}
        fp32_keys = {k[: -len(suffix)] for keys in keys_per_arch for k in keys if k.endswith(suffix)}
        absent = self.missing(fp32_keys)
        if absent:
            raise MissingKeysError(absent, table=self._name())
        out = {f"int8_excess_{kind}": np.zeros(len(keys_per_arch)) for kind in kinds}
        for i, keys in enumerate(keys_per_arch):
            for k in keys:
                if k.endswith(suffix):
                    fp32 = self.entries[k[: -len(suffix)]].median_ms
                    out[f"int8_excess_{k.split(':', 1)[0]}"][i] += self.entries[k].median_ms - fp32
        return out

    def predict_from_keys(
        self,
        keys_per_arch: Sequence[Sequence[str]],
        extra_features: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Predicted end-to-end latency (ms): the sum of unit medians, calibrated when fitted.

        ``extra_features`` supplies calibration features the keys cannot give (by name).
        """
        features = self.calibration_features(keys_per_arch)
        calibration = self.calibration
        if calibration is None:
            return features["lut_sum"]
        features.update(extra_features or {})
        return calibration.predict(features)

    # -- calibration -------------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration | None:
        if self.meta.calibration is None:
            return None
        return Calibration.from_dict(self.meta.calibration)

    def set_calibration(self, calibration: Calibration | None) -> None:
        self.meta = replace(
            self.meta, calibration=None if calibration is None else calibration.to_dict()
        )

    def fit_calibration(
        self,
        keys_per_arch: Sequence[Sequence[str]],
        measured_ms: Sequence[float],
        extra_features: Mapping[str, Any] | None = None,
    ) -> Calibration:
        """Fit ``measured ~= a*lut_sum + c*n_units (+ extra) + b`` and store it in the metadata."""
        features: dict[str, Any] = dict(self.calibration_features(keys_per_arch))
        features.update(extra_features or {})
        calibration = Calibration.fit(features, measured_ms)
        self.set_calibration(calibration)
        return calibration

    # -- filling (resumable profiling) ----------------------------------------------------------
    def record(self, key: str, value: Measurement | TableEntry) -> None:
        """Store one measured key (a Measurement is stored by its lowest round median)."""
        if not isinstance(key, str) or not key or key != key.strip() or "\n" in key:
            raise UserError(f"latency table key {key!r} must be a non-empty single-line string")
        entry = TableEntry.from_measurement(value) if isinstance(value, Measurement) else value
        _check_entry(entry, where=f"key {key!r}")
        self.entries[key] = entry

    def update(self, values: Mapping[str, Measurement | TableEntry]) -> None:
        for key, value in values.items():
            self.record(key, value)

    def merge(self, other: LatencyTable) -> LatencyTable:
        """A new table with the entries of both (rule in the module docstring)."""
        diffs = self.meta.differences(other.meta)
        if diffs:
            raise IncompatibleFileError(
                f"cannot merge latency tables measured differently: {'; '.join(diffs)}"
            )
        merged = dict(self.entries)
        for key, theirs in other.entries.items():
            ours = merged.get(key)
            if ours is None:
                merged[key] = theirs
            else:
                best = theirs if theirs.median_ms < ours.median_ms else ours
                merged[key] = replace(best, count=ours.count + theirs.count)
        created = min(self.meta.created, other.meta.created)
        meta = replace(self.meta, created=created, updated=_now(), calibration=None)
        return LatencyTable(meta, merged)

    # -- files --------------------------------------------------------------------------------
    @staticmethod
    def paths(path: str | os.PathLike) -> tuple[Path, Path]:
        """``(csv_path, json_path)`` for a table given by either of its two files."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            return path.with_suffix(".csv"), path
        return path, path.with_suffix(".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the CSV and the JSON sidecar, atomically as a pair (see the module docstring);
        returns the CSV path."""
        csv_path, json_path = self.paths(path)
        if csv_path == json_path:
            raise UserError(f"latency table path {path} must not end in .json")
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(TABLE_COLUMNS)
        for key in sorted(self.entries):
            e = self.entries[key]
            writer.writerow([key, repr(e.mean_ms), repr(e.std_ms), repr(e.median_ms), e.count])
        text = buf.getvalue()
        self.meta = replace(self.meta, updated=_now())
        sidecar = {
            **self.meta.to_dict(),
            "n_entries": len(self.entries),
            "csv_sha256": _sha256(text.encode("utf-8")),
        }
        if _keep_committed_csv(csv_path, json_path):
            atomic_write_text(csv_path, text)  # a kill here: .prev still holds the JSON's entries
            atomic_write_json(json_path, sidecar)  # the commit
        else:  # nothing to keep: JSON first, so that a kill leaves no CSV without its JSON
            atomic_write_json(json_path, sidecar)
            atomic_write_text(csv_path, text)
        _backup_path(csv_path).unlink(missing_ok=True)
        return csv_path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        expected_space_hash: str | None = None,
        expected_device: str | None = None,
    ) -> LatencyTable:
        """Read a table; refuse a foreign file or one made for another space hash or device."""
        csv_path, json_path = cls.paths(path)
        if not csv_path.is_file():
            raise UserError(f"latency table not found: {csv_path}")
        if not json_path.is_file():
            raise IncompatibleFileError(
                f"{csv_path}: no metadata sidecar {json_path.name} beside it; a latency table is "
                "a CSV plus its JSON written by LatencyTable.save"
            )
        data = read_versioned_json(json_path, "a latency table sidecar", format=FORMAT,
                                   versions=range(1, FORMAT_VERSION + 1))
        meta = TableMeta.from_dict(data, where=str(json_path))
        if expected_space_hash is not None and meta.space_hash != expected_space_hash:
            raise IncompatibleFileError(
                f"{csv_path} was profiled for space {meta.space_name!r} with hash "
                f"{meta.space_hash}, not for the expected space hash {expected_space_hash}"
            )
        if expected_device is not None and meta.device != expected_device:
            raise IncompatibleFileError(
                f"{csv_path} was measured on device {meta.device!r} ({meta.processor}), "
                f"not on {expected_device!r}"
            )
        return cls(meta, _committed_entries(csv_path, data))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike, meta: TableMeta) -> LatencyTable:
        """Resume: load ``path`` if it exists (its metadata must match ``meta``), else start empty."""
        csv_path, _ = cls.paths(path)
        if not csv_path.exists():
            return cls(meta)
        table = cls.load(csv_path)
        diffs = table.meta.differences(meta)
        if diffs:
            raise IncompatibleFileError(
                f"{csv_path} exists but was measured differently, cannot resume it: "
                f"{'; '.join(diffs)} (choose another --out or delete it)"
            )
        return table

    def _name(self) -> str:
        m = self.meta
        return f"latency table ({m.space_name}, {m.device}/{m.runtime})"


def _backup_path(csv_path: Path) -> Path:
    """Where a save keeps the CSV it replaces until the new JSON is written."""
    return csv_path.with_name(f".{csv_path.name}.prev")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _csv_digests(data: bytes) -> set[str]:
    """SHA-256 of the CSV as read, and as saved before a spreadsheet re-saved it (its UTF-8 BOM
    removed, CRLF line ends back to LF): a table re-saved unchanged still matches its sidecar."""
    plain = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    return {_sha256(data), _sha256(plain)}


def _committed_entries(csv_path: Path, sidecar: Mapping[str, Any]) -> dict[str, TableEntry]:
    """The entries ``sidecar`` describes: the CSV's or, after a save killed between the two
    files, those of the CSV it was replacing (kept as ``.prev``)."""
    try:
        return _read_matching(csv_path, sidecar, shown=csv_path)
    except IncompatibleFileError:
        backup = _backup_path(csv_path)
        if backup.is_file():
            try:
                return _read_matching(backup, sidecar, shown=csv_path)
            except IncompatibleFileError:
                pass
        raise


def _read_matching(path: Path, sidecar: Mapping[str, Any], shown: Path) -> dict[str, TableEntry]:
    """Read ``path``; refuse it when its entry count or SHA-256 differs from ``sidecar``'s."""
    entries = _read_csv(path)
    expected_n = sidecar.get("n_entries")
    if isinstance(expected_n, int) and expected_n != len(entries):
        raise IncompatibleFileError(
            f"{shown} has {len(entries)} entries but its sidecar says {expected_n}; "
            "the two files are from different saves"
        )
    digest = sidecar.get("csv_sha256")
    if isinstance(digest, str) and digest not in _csv_digests(path.read_bytes()):
        raise IncompatibleFileError(
            f"{shown} differs from the SHA-256 its sidecar records; the two files are from "
            "different saves"
        )
    return entries


def _keep_committed_csv(csv_path: Path, json_path: Path) -> bool:
    """Before a save replaces the CSV: make ``.prev`` hold the entries the current JSON describes.

    False when there is no such pair (no JSON, a foreign or unreadable one, a CSV that matches
    neither), i.e. nothing a reader could load that the save must not break.
    """
    try:
        sidecar = json.loads(json_path.read_text(encoding="utf-8"))
        TableMeta.from_dict(sidecar, where=str(json_path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, UserError):
        return False
    backup = _backup_path(csv_path)
    for source in (csv_path, backup):
        try:
            _read_matching(source, sidecar, shown=csv_path)
        except (OSError, IncompatibleFileError):
            continue
        if source == csv_path:
            _link_or_copy(csv_path, backup)
        return True
    return False


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` hold ``src``'s current content (a hard link where the file system allows).

    Not atomic, and need not be: ``src`` is still in place and still matches its JSON meanwhile.
    """
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        data = src.read_bytes()
        atomic_write(dst, lambda f: f.write(data))


def _read_csv(path: Path) -> dict[str, TableEntry]:
    rows = read_csv_rows(path, IncompatibleFileError)  # a spreadsheet's BOM is removed
    if not rows or tuple(c.strip() for c in rows[0]) != TABLE_COLUMNS:
        found = rows[0] if rows else []
        raise IncompatibleFileError(
            f"{path}: expected the columns {', '.join(TABLE_COLUMNS)}; found {found[:8]}"
        )
    entries: dict[str, TableEntry] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        where = f"{path}, line {line}"
        if len(row) != len(TABLE_COLUMNS):
            raise IncompatibleFileError(
                f"{where}: {len(row)} fields; expected {len(TABLE_COLUMNS)}"
            )
        key = row[0]
        if key in entries:
            raise IncompatibleFileError(f"{where}: duplicate key {key!r}")
        try:
            entry = TableEntry(float(row[1]), float(row[2]), float(row[3]), int(row[4]))
        except ValueError:
            raise IncompatibleFileError(f"{where}: non-numeric value in {row[1:]}") from None
        try:
            _check_entry(entry, where=where)
        except UserError as exc:
            raise IncompatibleFileError(str(exc)) from None
        entries[key] = entry
    return entries


def _check_entry(e: TableEntry, where: str) -> None:
    values = (e.mean_ms, e.std_ms, e.median_ms)
    if not all(math.isfinite(v) and v >= 0 for v in values) or e.median_ms <= 0 or e.count < 1:
        raise UserError(
            f"{where}: a table entry needs finite times >= 0 ms, a median > 0 ms and count >= 1; "
            f"got {e}"
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."

"""The run folder of ``nas train`` and :func:`load_supernet`, which re-creates a trained run from it.

Layout (every file written atomically)::

    <run>/config.json    every setting (TrainConfig under "train"), the space's name, hash and
                         source, the data spec, split seed/fractions and fingerprint, versions
    <run>/space.yaml     the resolved search space (reloaded and hash-checked by load_supernet)
    <run>/checkpoint.pt  the latest end-of-epoch checkpoint (see nas.train.checkpoint)
    <run>/metrics.csv    one row per completed epoch
    <run>/train.log      the log (appended to when a run is resumed)
    <run>/summary.json   written once the last epoch is done: final metrics and timings
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml

from nas.data import DatasetSplits, load_dataset
from nas.data.torch_data import PYTHON_SPEC
from nas.devices import parse_device
from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write_json, atomic_write_text
from nas.spaces import SearchSpace, space_from_dict
from nas.supernet import Supernet
from nas.train.checkpoint import load_checkpoint
from nas.train.config import TrainConfig

RUN_FORMAT = "nas-train-run"
RUN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def space(self) -> Path:
        return self.root / "space.yaml"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


# ----- the space, as YAML -----
def _list(values: tuple) -> list:
    return list(values)


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The YAML mapping that :func:`nas.spaces.space_from_dict` turns back into ``space``."""
    s, h = space.stem, space.head
    return {
        "name": space.name,
        "description": space.description,
        "in_channels": space.in_channels,
        "num_classes": space.num_classes,
        "resolutions": _list(space.resolutions),
        "stem": {"width": s.width, "kernel": s.kernel, "stride": s.stride, "act": s.act},
        "stages": [
            {
                "name": st.name,
                "widths": _list(st.widths),
                "depths": _list(st.depths),
                "stride": st.stride,
                "act": st.act,
                "blocks": {b.kind: b.to_yaml() for b in st.blocks},
            }
            for st in space.stages
        ],
        "head": {"width": h.width, "hidden": h.hidden, "act": h.act, "dropout": h.dropout},
        **({"precisions": list(space.precisions)} if space.searches_precision else {}),
    }


def write_space(path: Path, space: SearchSpace) -> None:
    text = yaml.safe_dump(space_to_dict(space), sort_keys=False)
    again = space_from_dict(yaml.safe_load(text), where=str(path))
    if again.hash() != space.hash():  # pragma: no cover - guards the round trip above
        raise RuntimeError(f"space {space.name!r} does not survive a YAML round trip")
    atomic_write_text(path, f"# search space of this run (hash {space.hash()})\n{text}")


def read_space(path: Path, expected_hash: str | None = None) -> SearchSpace:
    if not path.is_file():
        raise IncompatibleFileError(f"{path}: missing; expected the run's search space YAML")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise IncompatibleFileError(f"{path}: unreadable search space: {exc}") from None
    space = space_from_dict(data, where=str(path))
    if expected_hash is not None and space.hash() != expected_hash:
        raise IncompatibleFileError(
            f"{path}: space hash {space.hash()} differs from the run's {expected_hash}; "
            "the file was edited after training"
        )
    return space


# ----- config.json -----
def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    try:
        out["nas"] = metadata.version("nas")
    except metadata.PackageNotFoundError:
        out["nas"] = "unknown"
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    return out


def data_record(config: TrainConfig, splits: DatasetSplits) -> dict[str, Any]:
    return {
        "spec": config.data,
        "seed": config.data_seed,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "image_size": config.image_size,
        "name": splits.name,
        "fingerprint": splits.fingerprint(),
        "num_classes": splits.num_classes,
        "in_channels": splits.in_channels,
        "native_size": list(splits.image_size),
        "sizes": {k: len(getattr(splits, k)) for k in ("train", "val", "test")},
    }


def run_record(
    config: TrainConfig, space: SearchSpace, splits: DatasetSplits, *, threads: int
) -> dict[str, Any]:
    """Everything ``config.json`` holds."""
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "train": config.to_dict(),
        "space": {
            "name": space.name,
            "hash": space.hash(),
            "source": space.source,
            "file": "space.yaml",
        },
        "data": data_record(config, splits),
        "versions": versions(),
        "runtime": {
            "threads": threads,
            "device": config.device,
            "command": " ".join(sys.argv),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }


def write_config(paths: RunPaths, record: dict[str, Any]) -> None:
    atomic_write_json(paths.config, record)


def read_config(run_dir: str | os.PathLike) -> tuple[TrainConfig, dict[str, Any]]:
    """``(TrainConfig, full record)`` from ``<run_dir>/config.json``."""
    from nas.json_files import read_versioned_json

    path = RunPaths(Path(run_dir)).config
    if not path.is_file():
        raise UserError(f"{path}: missing; expected a run folder written by 'nas train'")
    record = read_versioned_json(path, "a 'nas train' run config", format=RUN_FORMAT,
                                 versions=range(1, RUN_FORMAT_VERSION + 1))
    return TrainConfig.from_dict(record.get("train"), where=str(path)), record


# ----- metrics.csv -----
def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from all rows (atomic: it always matches the checkpoint)."""
    buf = io.StringIO()
    if rows:
        names = list(rows[0])
        for r in rows[1:]:
            names += [k for k in r if k not in names]
        writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ----- reloading a run -----
class TrainedRun(NamedTuple):
    """What :func:`load_supernet` returns."""

    supernet: Supernet
    space: SearchSpace
    splits: DatasetSplits | None
    config: TrainConfig
    epoch: int  # completed epochs (== config.epochs for a finished run)


def load_splits(
    config: TrainConfig,
    expected_fingerprint: str | None = None,
    *,
    data_workers: int | None = None,
) -> DatasetSplits:
    """Reload the run's data (same spec, seed and fractions); the fingerprint must match. Image
    folders are read by ``data_workers`` processes (default: ``config.data_workers``)."""
    if config.data.split(":")[0] == PYTHON_SPEC:
        raise UserError(
            f"this run was trained on data given from Python ({config.data!r}), which a run "
            "folder cannot reload; pass the same data again, e.g. nas.load_model(run, arch, "
            "data=(train, val))"
        )
    splits = load_dataset(
        config.data,
        seed=config.data_seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        image_size=config.image_size,
        workers=config.data_workers if data_workers is None else data_workers,
    )
    if expected_fingerprint is not None and splits.fingerprint() != expected_fingerprint:
        raise IncompatibleFileError(
            f"data {config.data!r} (seed {config.data_seed}) now has fingerprint "
            f"{splits.fingerprint()}, but the run was trained on {expected_fingerprint}: the data "
            "changed since training, so its validation/test splits are not the run's"
        )
    return splits


def load_supernet(
    run_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    load_data: bool = True,
    data_workers: int | None = None,
    splits: DatasetSplits | None = None,
) -> TrainedRun:
    """Re-create a trained supernet (eval mode) from its run folder, with its space and data splits.

    Checks that ``space.yaml``, ``config.json`` and ``checkpoint.pt`` agree (space hash) and that
    the data reloads to the same splits (fingerprint); ``splits`` gives the data instead (a run
    trained on data from Python), checked by fingerprint too. Warns when the run is unfinished. Its
    BatchNorm statistics are the training mixture: evaluate or export subnets through
    :func:`nas.train.evaluate.evaluate_subnet` / :func:`nas.train.bn.recalibrate_bn`.
    """
    paths = RunPaths(Path(run_dir))
    config, record = read_config(paths.root)
    space_hash = record.get("space", {}).get("hash")
    space = read_space(paths.space, space_hash)
    state = load_checkpoint(paths.checkpoint, space_hash=space.hash(), map_location="cpu")
    torch_device = parse_device(device)
    supernet = Supernet(space)
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise IncompatibleFileError(
            f"{paths.checkpoint}: weights do not fit the space: {exc}"
        ) from None
    supernet = supernet.to(torch_device).eval()
    epoch = int(state["epoch"])
    if epoch < config.epochs:
        warnings.warn(
            f"{paths.root}: unfinished run ({epoch} of {config.epochs} epochs); "
            "resume it with 'nas train --out ... --resume'",
            stacklevel=2,
        )
    expected = record.get("data", {}).get("fingerprint")
    if splits is not None:  # data given from Python: it must be the run's
        if splits.fingerprint() != expected:
            raise IncompatibleFileError(
                f"{paths.root}: the data given has fingerprint {splits.fingerprint()}, but the "
                f"run was trained on {expected}; pass the data it was trained on"
            )
    elif load_data:
        splits = load_splits(config, expected, data_workers=data_workers)
    return TrainedRun(supernet, space, splits, config, epoch)

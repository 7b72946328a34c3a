"""Keyword front ends of the pipeline's stages for use from Python (``nas.train_supernet``, ...).

Each is a thin call of the function behind the matching command (``nas train``, ``nas profile``,
``nas sample``, ``nas fit``, ``nas search``, ``nas export``) and writes the same files, so a run
started from Python continues from the command line and back. Imported lazily by :mod:`nas`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from nas.arch import Architecture
    from nas.latency.space_profile import ProfileResult
    from nas.latency.table import LatencyTable
    from nas.sample.measure import SampleResult
    from nas.sample.predictor import ArchPredictor
    from nas.spaces.schema import SearchSpace
    from nas.train.loop import TrainResult
    from nas.train.rundir import TrainedRun

PathLike = str | os.PathLike


def supernet_dir(run: PathLike) -> Path:
    """The folder holding the trained supernet of ``run``: a ``nas train`` folder itself, or the
    ``supernet/`` folder of a ``nas run`` folder."""
    root = Path(run)
    if (root / "config.json").is_file():
        return root
    if (root / "supernet" / "config.json").is_file():
        return root / "supernet"
    raise UserError(
        f"{root}: not a run folder (no config.json, no supernet/config.json); expected a folder "
        "written by 'nas train' or 'nas run'"
    )


def load_supernet(run: PathLike, *, device: str = "cpu", load_data: bool = True,
                  data: Any = None, data_workers: int | None = None) -> TrainedRun:
    """The trained supernet of ``run`` (a ``nas train`` or ``nas run`` folder) with its space,
    data splits and settings (:class:`nas.train.rundir.TrainedRun`). ``data``: the data of a run
    trained on data given from Python (as for :func:`train_supernet`), checked by fingerprint;
    ``data_workers``: processes reading an image folder (default: the run's setting)."""
    from nas.train.rundir import load_supernet as _load

    splits = None
    if data is not None:
        from nas.data.torch_data import as_splits

        splits = as_splits(data)
    return _load(supernet_dir(run), device, load_data=load_data, splits=splits,
                 data_workers=data_workers)


def load_model(
    run: PathLike,
    arch: Architecture | str,
    *,
    device: str = "cpu",
    recal_batches: int | None = None,
    seed: int = 0,
    data: Any = None,
) -> nn.Module:
    """A standalone subnet of a trained run, like ``timm.create_model``: the architecture ``arch``
    (an :class:`~nas.arch.Architecture`, an ID from the run's search, samples or exports, a short
    string, JSON text or a JSON file) extracted from the supernet with its inherited weights,
    BatchNorm recalibrated on the run's training split, in eval mode on ``device``. It takes
    images normalised as the run's data were (``nas.load_supernet(run).splits.mean/std``).
    ``data``: the data of a run trained on data given from Python (see :func:`train_supernet`)."""
    from nas.export.resolve import resolve_architecture
    from nas.train.bn import DEFAULT_RECAL_BATCHES
    from nas.train.evaluate import recalibrated_subnet

    trained = load_supernet(run, device=device, data=data)
    root = Path(run)
    lookup = root if (root / "search").is_dir() or root != supernet_dir(run) else supernet_dir(run)
    resolved = resolve_architecture(arch, trained.space, run_dir=lookup)
    assert trained.splits is not None
    return recalibrated_subnet(
        trained.supernet,
        resolved.arch,
        trained.splits.train,
        recal_batches=DEFAULT_RECAL_BATCHES if recal_batches is None else recal_batches,
        seed=seed,
    )


def train_supernet(
    space: str | PathLike,
    out: PathLike,
    *,
    data: Any = "digits",
    resume: bool = False,
    progress: bool | None = None,
    **settings: Any,
) -> TrainResult:
    """Train a once-for-all supernet of ``space`` (a shipped name or a YAML path) on ``data``
    into the run folder ``out``, as ``nas train`` does; ``settings`` are the other fields of
    :class:`nas.train.config.TrainConfig` (``epochs``, ``batch_size``, ``lr``, ``seed``,
    ``data_workers``, ...). ``progress`` (default: only when stderr is a terminal) shows a bar
    per epoch.

    ``data``: a spec string (``"digits"``, ``"folder:PATH"``, ...), or your own torch data:
    ``(train, val[, test])`` Datasets or DataLoaders (items ``(image (C, H, W), label)``,
    already transformed), or :func:`nas.data_from_torch`'s result. Those are read batch by batch
    in the run's seeded order; the run records ``python:NAME`` as its data, so later calls that
    need the data take it again (``nas.load_model(run, arch, data=...)``)."""
    from nas.progress import progress_enabled
    from nas.train.config import TrainConfig
    from nas.train.loop import train

    splits = None
    if not isinstance(data, str):
        from nas.data.torch_data import as_splits

        splits = as_splits(data)
        data = splits.source
    config = TrainConfig(space=str(space), data=data, **settings)
    show = progress_enabled(progress)
    return train(config, out, resume=resume, progress=show, echo=show, splits=splits)


def load_table(path: PathLike) -> LatencyTable:
    """A latency table written by ``nas profile`` (its CSV or JSON path)."""
    from nas.latency.table import LatencyTable

    return LatencyTable.load(path)


def profile_latency(
    space: SearchSpace | str | PathLike,
    out: PathLike,
    *,
    device: str = "cpu",
    threads: int = 1,
    batch: int = 1,
    calibrate: int | None = None,
    seed: int = 0,
    precisions: str | Sequence[str] | None = None,
    progress: bool | None = None,
    workers: int | None = None,
    **protocol: Any,
) -> ProfileResult:
    """Measure every unit of ``space`` on this machine into the latency table ``out`` (a CSV
    path) and calibrate it on ``calibrate`` whole subnets (default 20, 40 with int8), as
    ``nas profile`` does. ``device``:
    ``cpu``, ``cuda[:i]`` (torch eager), ``onnxruntime`` or ``torchscript``; ``precisions``
    (``"fp32,int8"``, ONNX Runtime only): every unit at each precision and the quantize /
    dequantize boundaries; ``workers``: processes exporting to ONNX ahead of timing (default
    one per core, at most 4); ``protocol``: timing settings (``rounds``, ``repeats``, ...)."""
    from nas.latency.space_profile import profile_space, protocol_for
    from nas.progress import progress_enabled

    return profile_space(
        _space(space),
        out,
        protocol_for(device, threads, **protocol),
        batch=batch,
        calibrate=calibrate,
        seed=seed,
        precisions=precisions,
        progress=progress_enabled(progress),
        say=lambda _line: None,
        workers=workers,
    )


def sample_subnets(
    run: PathLike,
    out: PathLike,
    *,
    n: int,
    strategy: str = "flops",
    table: PathLike | None = None,
    seed: int = 0,
    workers: int = 1,
    data_workers: int | None = None,
    precisions: str | Sequence[str] | None = None,
    progress: bool | None = None,
) -> SampleResult:
    """Measure ``n`` distinct subnets of the trained ``run`` (validation accuracy, BN
    recalibrated; costs; predicted latency with ``table``) and append them to the CSV ``out``,
    as ``nas sample`` does. ``data_workers``: processes reading an image folder;
    ``precisions`` (``"fp32,int8"``): sample precision policies too, int8 layers measured
    through the QDQ graph ``nas export`` writes."""
    from nas.progress import progress_enabled
    from nas.sample.measure import sample_subnets as _sample

    return _sample(
        supernet_dir(run), out, n=n, strategy=strategy, seed=seed, lut=table, workers=workers,
        progress=progress_enabled(progress), data_workers=data_workers, precisions=precisions,
    )


def fit_predictor(
    samples: PathLike,
    out: PathLike | None = None,
    *,
    target: str = "val_acc",
    model: str = "ridge",
    seed: int = 0,
    **options: Any,
) -> ArchPredictor:
    """Fit a predictor of ``target`` on a samples CSV (cross-validated; the card in
    ``.card["cv"]``), save it to ``out`` when given, as ``nas fit`` does; returns it ready to
    call on architectures."""
    from nas.sample.fit import fit_predictor as _fit
    from nas.sample.predictor import ArchPredictor

    fitted = _fit(samples, target=target, model=model, seed=seed, out=out, **options)
    return ArchPredictor(fitted.encoder.space, fitted.estimator, fitted.encoder, fitted.card)


def load_predictor(path: PathLike, space: SearchSpace | str | PathLike) -> ArchPredictor:
    """A predictor saved by ``nas fit`` (its folder) for architectures of ``space``."""
    from nas.sample.predictor import load_predictor_for

    return load_predictor_for(_space(space), path)


def _space(space: SearchSpace | str | PathLike) -> SearchSpace:
    from nas.spaces import load_space
    from nas.spaces.schema import SearchSpace

    return space if isinstance(space, SearchSpace) else load_space(str(space))


def model_input(space: SearchSpace, arch: Architecture, x: Any) -> Any:
    """Normalised images of a run's data (B, C, H, W) as ``arch`` takes them: resized to its
    resolution and, for 1-channel data and a 3-channel space, the channel repeated (what training
    and evaluation do to every batch: :func:`nas.train.inputs.model_input`)."""
    from nas.train.inputs import model_input as _model_input

    return _model_input(x, arch.resolution, space.in_channels, channels_last=False)

"""A supernet trained in the user's own loop, registered as a run folder that every later
command reads (``nas sample``, ``nas export``, ``nas search --run``, ``nas show``, ``nas.load_model``).

The folder is what ``nas train`` writes: ``config.json`` (the data spec and settings, so the
splits reload and are checked by fingerprint), ``space.yaml``, ``checkpoint.pt`` (the weights,
marked ``registered``: no optimizer state, so ``nas train --resume`` refuses it), ``metrics.csv``
(the largest and smallest subnets' validation accuracy, measured here with BN recalibrated) and
``summary.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nas.errors import UserError
from nas.io import atomic_write_json
from nas.locks import output_lock
from nas.supernet import Supernet
from nas.train.checkpoint import save_checkpoint
from nas.train.config import TrainConfig
from nas.train.evaluate import evaluate_subnet
from nas.train.rundir import (
    RunPaths,
    load_splits,
    run_record,
    write_config,
    write_metrics,
    write_space,
)


def register_run(
    supernet: Supernet,
    out: str | os.PathLike,
    *,
    data: str = "digits",
    epochs: int = 1,
    evaluate: bool = True,
    **settings: Any,
) -> Path:
    """Write the run folder ``out`` for ``supernet`` (a :class:`~nas.supernet.Supernet` trained
    on ``data`` for ``epochs`` epochs in your own loop); ``settings`` are other
    :class:`~nas.train.config.TrainConfig` fields worth recording (``data_seed``, ``batch_size``,
    ``lr``, ...; ``data_seed``/fractions must be those of the splits you trained on). With
    ``evaluate`` the largest and smallest subnets are measured on the validation split (BN
    recalibrated) for ``metrics.csv``. Returns the folder."""
    if not isinstance(supernet, Supernet):
        raise UserError(f"register_run needs a nas Supernet, got {type(supernet).__name__}")
    space = supernet.space
    root = Path(out)
    paths = RunPaths(root)
    if paths.checkpoint.exists() or paths.config.exists():
        raise UserError(f"{root} already holds a run; choose another folder")
    config = TrainConfig(space=space.source or space.name, data=data, epochs=epochs, **settings)
    splits = load_splits(config)
    if splits.num_classes != space.num_classes:
        raise UserError(f"data {data!r} has {splits.num_classes} classes, the space "
                        f"{space.name!r} {space.num_classes}")
    model = supernet.eval()
    row: dict[str, Any] = {"epoch": epochs, "phase": "registered"}
    if evaluate:
        for name, arch in (("largest", space.largest()), ("smallest", space.smallest())):
            result = evaluate_subnet(model, arch, splits, recal_batches=config.recal_batches,
                                     seed=config.seed)
            row[f"val_acc_{name}"], row[f"val_loss_{name}"] = result["acc"], result["loss"]
    root.mkdir(parents=True, exist_ok=True)
    with output_lock(root, folder=True, command="nas.register_run"):
        write_space(paths.space, space)
        write_config(paths, run_record(config, space, splits, threads=torch.get_num_threads()))
        save_checkpoint(paths.checkpoint, {
            "space_hash": space.hash(), "space_name": space.name, "epoch": epochs,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": {}, "scheduler": {}, "rng": {}, "registered": True,
            "config": config.to_dict(), "history": [row],
            "data_fingerprint": splits.fingerprint(),
        })
        write_metrics(paths.metrics, [row])
        atomic_write_json(paths.summary, {"complete": True, "epochs": epochs, "final": row,
                                          "registered": True})
    return root

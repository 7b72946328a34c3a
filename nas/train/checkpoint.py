"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``, checked.

A checkpoint is a dict of tensors and plain values (no pickled objects), so loading never runs
code from the file::

    format          "nas-supernet-checkpoint"
    format_version  1
    space_hash      hash of the search space the weights belong to
    space_name      its name (for messages)
    epoch           number of completed epochs
    model           supernet state_dict
    optimizer       optimizer state_dict
    scheduler       LR scheduler state_dict
    rng             {"torch": uint8 tensor, "cuda": [uint8 tensors], "numpy": JSON text of the
                     subnet sampler's bit-generator state, "python": JSON text of random.getstate()}
    config          the run's TrainConfig as a dict
    history         the metrics rows of the completed epochs (so metrics.csv can be rebuilt)
    data_fingerprint  fingerprint of the data splits

Anything else (a truncated file, another program's state_dict, a text file, a checkpoint of
another space or a newer format) raises :class:`nas.errors.IncompatibleFileError`; loading never
writes to disk.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write

FORMAT = "nas-supernet-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format_version", "space_hash", "epoch", "model", "optimizer", "scheduler", "rng")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format tags) to ``path`` atomically: a crash leaves the old file."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    try:
        return atomic_write(path, lambda f: torch.save(payload, f))
    except RuntimeError as exc:  # torch's zip writer reports a failed write (full disk) this way
        text = str(exc)
        if "PytorchStreamWriter" not in text and "unexpected pos" not in text:
            raise
        reason = text.strip().splitlines()[0][:200]
        raise UserError(
            f"{path}: writing the checkpoint failed ({reason}); is the disk full? The previous "
            "checkpoint is kept"
        ) from None


def load_checkpoint(
    path: str | os.PathLike,
    *,
    space_hash: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read and check a checkpoint; ``space_hash`` (if given) must match the one it was made for."""
    path = Path(path)
    if not path.is_file():
        raise IncompatibleFileError(f"{path}: no checkpoint file there")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by cause
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IncompatibleFileError(
            f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file: "
            f"{reason[:200]}); expected a {FORMAT} file written by 'nas train'"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise IncompatibleFileError(
            f"{path}: a torch file, but not a {FORMAT} (no format tag; a plain state_dict or "
            "another program's file?); expected a checkpoint written by 'nas train'"
        )
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IncompatibleFileError(
            f"{path}: checkpoint format version {version!r}; this version of nas reads up to "
            f"{FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise IncompatibleFileError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if space_hash is not None and state["space_hash"] != space_hash:
        raise IncompatibleFileError(
            f"{path}: checkpoint made for search space {state.get('space_name', '?')!r} "
            f"(hash {state['space_hash']}), but this run's space has hash {space_hash}; "
            "use the space the checkpoint was trained on, or another --out folder"
        )
    return state


def capture_rng(sampler: np.random.Generator) -> dict[str, Any]:
    """The random states a resumed run needs, as tensors and JSON text (``weights_only``-safe)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(sampler.bit_generator.state),
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any], sampler: np.random.Generator) -> None:
    """Inverse of :func:`capture_rng` (``sampler`` is updated in place)."""
    torch.set_rng_state(state["torch"].cpu())
    sampler.bit_generator.state = json.loads(state["numpy"])
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        # a checkpoint from a machine with more GPUs than this one: restore those that exist
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)

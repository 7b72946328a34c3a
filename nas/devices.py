"""Torch devices named by the user (``--device cpu|cuda|cuda:N``): parsed and checked in one place."""

from __future__ import annotations

import torch

from nas.errors import UserError


def parse_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a torch device; CUDA must be available.

    ``"cuda"`` becomes ``cuda:0`` (an explicit index, so that events, streams and
    ``torch.cuda.device(...)`` always name the device that holds the tensors).
    """
    text = str(device).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(
                f"device {str(device)!r} requested but CUDA is not available here "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        dev = torch.device(text)
        index = dev.index if dev.index is not None else 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    raise UserError(f"device {str(device)!r} not understood; expected 'cpu', 'cuda' or 'cuda:N'")

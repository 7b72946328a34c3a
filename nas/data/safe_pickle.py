"""A restricted unpickler for data files that are pickles by design (the CIFAR python batches).

Only plain containers, strings, numbers and numpy arrays can be rebuilt: every global a pickle
names is looked up in a fixed allow-list, so a crafted file that names ``os.system`` (or anything
else) is refused before any of its code could run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import DataError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of ``bytes`` (protocol 2) call; limited to the latin-1 codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    reconstruct = _multiarray._reconstruct
    scalar = _multiarray.scalar
    frombuffer = _numeric._frombuffer
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = reconstruct
        table[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = frombuffer
    for module in ("builtins", "__builtin__"):
        for name, obj in (
            ("dict", dict),
            ("list", list),
            ("bytes", bytes),
            ("str", str),
            ("int", int),
            ("float", float),
            ("tuple", tuple),
        ):
            table[(module, name)] = obj
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns allow-listed data constructors."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: only plain data and numpy arrays are allowed"
            ) from None


def load_restricted(path: str | Path) -> Any:
    """Load one pickle file with :class:`RestrictedUnpickler` (Python 2 strings read as latin-1).

    Raises :class:`DataError` naming the file when it is unreadable, truncated, or names a
    global outside the allow-list.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: not loaded, {exc}") from None
    except Exception as exc:  # a corrupt pickle can raise almost anything; none of it is code
        raise DataError(
            f"{path}: not a readable python pickle ({type(exc).__name__}: {exc})"
        ) from None

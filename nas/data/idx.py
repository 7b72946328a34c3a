"""IDX files (the format of MNIST, Fashion-MNIST, KMNIST and EMNIST), plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. :func:`read_idx` checks every part
of that against the file's real size *before* allocating, so a crafted header cannot ask for
terabytes, and a truncated or padded file is refused with one line naming it.

A folder source holds four files named like MNIST's (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``;
EMNIST's ``emnist-<split>-train-images-idx3-ubyte`` and ``test`` in place of ``t10k`` match too).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from nas.data.checks import RawData, check_labels, existing_path
from nas.data.splits import require_nonempty, stratified_split
from nas.errors import DataError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_VAL = 5000  # 55,000 train / 5,000 validation, carved from the 60,000 training images
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist, or scripts/install.sh "
    "--fashion-mnist) or pass fashion-mnist:PATH to a folder holding the four IDX files"
)

# type code -> big-endian numpy dtype (the IDX specification's six types)
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAX_RATIO = 1100  # deflate cannot expand more than ~1032:1; bounds a gzip bomb's claim
_ROLES = {
    "train_images": (("train-images",), 3),
    "train_labels": (("train-labels",), 1),
    "test_images": (("t10k-images", "test-images"), 3),
    "test_labels": (("t10k-labels", "test-labels"), 1),
}


def _open_stream(path: Path):
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """The array stored in one IDX file (``.gz`` or plain), in native byte order.

    Raises :class:`DataError` for a wrong magic number, an unknown type code, an unexpected number
    of dimensions, a header claiming more values than the file holds, and a truncated or padded
    body.
    """
    p = Path(path)
    size_on_disk = p.stat().st_size
    try:
        with _open_stream(p) as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise DataError(f"idx: {p} is truncated: {len(magic)} bytes, no IDX header")
            zero, code, dims = struct.unpack(">HBB", magic)
            if zero != 0 or code not in IDX_TYPES or dims == 0:
                raise DataError(
                    f"idx: {p} has magic number 0x{magic.hex()}, not an IDX file (expected "
                    f"0x0000 then a type code in {sorted(hex(c) for c in IDX_TYPES)} and 1-255 "
                    "dimensions)"
                )
            if ndim is not None and dims != ndim:
                raise DataError(
                    f"idx: {p} has {dims} dimension(s); expected {ndim} "
                    f"({'labels' if ndim == 1 else 'images N x H x W'})"
                )
            header = f.read(4 * dims)
            if len(header) < 4 * dims:
                raise DataError(f"idx: {p} is truncated inside its header of {dims} dimensions")
            shape = struct.unpack(f">{dims}I", header)
            dtype = IDX_TYPES[code]
            count = 1
            for d in shape:
                count *= d
            nbytes = count * dtype.itemsize
            limit = size_on_disk * (GZIP_MAX_RATIO if isinstance(f, gzip.GzipFile) else 1)
            if nbytes > limit:
                raise DataError(
                    f"idx: {p} header claims shape {shape} ({nbytes:.3g} bytes) but the file holds "
                    f"at most {limit:.3g}: truncated or not an IDX file"
                )
            body = f.read(nbytes)
            if len(body) < nbytes:
                raise DataError(
                    f"idx: {p} is truncated: shape {shape} needs {nbytes} bytes of values, "
                    f"found {len(body)}"
                )
            if f.read(1):
                raise DataError(
                    f"idx: {p} has data after the {nbytes} bytes its header {shape} describes"
                )
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"idx: {p} cannot be read ({exc})") from None
    return np.frombuffer(body, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The four MNIST-layout files in ``folder``; a DataError names what is missing or ambiguous."""
    found: dict[str, Path] = {}
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    for role, (stems, dims) in _ROLES.items():
        suffix = f"idx{dims}-ubyte"
        hits = [
            f
            for f in files
            if any(s in f.name for s in stems) and f.name.removesuffix(".gz").endswith(suffix)
        ]
        if len(hits) > 1:  # e.g. both the .gz and the unpacked file: prefer the unpacked one
            plain = [f for f in hits if not f.name.endswith(".gz")]
            hits = plain if len(plain) == 1 else hits
        if len(hits) != 1:
            what = (
                "no file" if not hits else f"{len(hits)} files ({', '.join(h.name for h in hits)})"
            )
            raise DataError(
                f"idx: {folder} has {what} for {role.replace('_', ' ')}; expected one named like "
                f"{stems[0]}-{suffix}[.gz]"
            )
        found[role] = hits[0]
    return found


def _images(path: Path) -> np.ndarray:
    x = read_idx(path, ndim=3)
    if x.dtype != np.uint8:
        raise DataError(f"idx: {path} holds {x.dtype} values; expected uint8 pixels")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(f"idx: {path} holds no images (shape {x.shape})")
    return x[:, None, :, :]  # (N, 1, H, W)


def _labels(path: Path, n: int, num_classes: int | None) -> np.ndarray:
    return check_labels(read_idx(path, ndim=1), n=n, num_classes=num_classes, where=f"idx: {path}")


def load_idx_raw(
    path: str,
    *,
    seed: int,
    val_fraction: float,
    kind: str = "idx",
    class_names: tuple[str, ...] | None = None,
    expected: str = "a folder with train/t10k images and labels in IDX format (MNIST layout)",
) -> RawData:
    """Train and test IDX files from a folder; validation is a stratified, seeded part of train."""
    folder = existing_path(path, kind, expected)
    if not folder.is_dir():
        raise DataError(f"{kind}: {folder} is a file; expected {expected}")
    files = find_idx_files(folder)
    x_train = _images(files["train_images"])
    x_test = _images(files["test_images"])
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"idx: {files['test_images']} holds {x_test.shape[2]}x{x_test.shape[3]} images but "
            f"{files['train_images'].name} holds {x_train.shape[2]}x{x_train.shape[3]}"
        )
    n_classes = len(class_names) if class_names else None
    y_train = _labels(files["train_labels"], x_train.shape[0], n_classes)
    if n_classes is None:
        n_classes = int(y_train.max()) + 1
        class_names = tuple(str(i) for i in range(n_classes))
    y_test = _labels(files["test_labels"], x_test.shape[0], n_classes)
    tr, va, _ = stratified_split(
        y_train, val_fraction=val_fraction, test_fraction=0.0, rng=np.random.default_rng(seed)
    )
    require_nonempty("validation", len(va), val_fraction, f"{kind}: {folder}")
    assert class_names is not None
    return RawData(
        name=kind,
        source=f"{kind}:{folder.resolve()}",
        train=(x_train[tr], y_train[tr]),
        val=(x_train[va], y_train[va]),
        test=(x_test, y_test),
        class_names=class_names,
        pixel_scale=255.0,
    )


def load_fashion_mnist_raw(path: str, *, seed: int, val_fraction: float | None) -> RawData:
    """Fashion-MNIST from ``path`` (default: Debian's folder); 55,000 / 5,000 / 10,000 by default."""
    folder = Path(path or FASHION_MNIST_DIR).expanduser()
    if not folder.exists():
        raise DataError(
            f"fashion-mnist: {folder} does not exist; {HOW_TO_GET} (nothing is downloaded)"
        )
    raw = load_idx_raw(
        str(folder),
        seed=seed,
        val_fraction=FASHION_MNIST_VAL / 60000 if val_fraction is None else val_fraction,
        kind="fashion-mnist",
        class_names=FASHION_MNIST_CLASSES,
        expected=f"the four Fashion-MNIST IDX files; {HOW_TO_GET}",
    )
    return raw

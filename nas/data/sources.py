"""Array data sources: scikit-learn digits, CIFAR-10/100 python batches, and .npz archives.

Each loader returns :class:`RawData` (validated, in pixel units, split); nothing is downloaded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.checks import RawData, check_finite, check_labels, existing_path
from nas.data.safe_pickle import load_restricted
from nas.data.splits import require_nonempty, stratified_split
from nas.errors import DataError


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[idx], y[idx]


def load_digits_raw(*, seed: int, val_fraction: float, test_fraction: float) -> RawData:
    """scikit-learn's 8x8 handwritten digits (1,797 images, values 0..16), stratified split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[:, None, :, :].astype(np.float32)  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    tr, va, te = stratified_split(
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        rng=np.random.default_rng(seed),
    )
    return RawData(
        name="digits",
        source="digits",
        train=_take(x, y, tr),
        val=_take(x, y, va),
        test=_take(x, y, te),
        class_names=tuple(str(int(c)) for c in bunch.target_names),
        pixel_scale=16.0,
    )


# ----------------------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class _CifarLayout:
    kind: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    subdir: str
    archive: str


def _cifar_layout(kind: str) -> _CifarLayout:
    if kind == "cifar10":
        return _CifarLayout(
            kind,
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test_batch",
            "batches.meta",
            "labels",
            "label_names",
            10,
            "cifar-10-batches-py",
            "cifar-10-python.tar.gz",
        )
    return _CifarLayout(
        kind,
        ("train",),
        "test",
        "meta",
        "fine_labels",
        "fine_label_names",
        100,
        "cifar-100-python",
        "cifar-100-python.tar.gz",
    )


def _str_keys(obj: object, path: Path, expected: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: expected a pickled dict with {expected}, got {type(obj).__name__}"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_cifar_batch(path: Path, layout: _CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    expected = f"keys 'data' and '{layout.label_key}'"
    batch = _str_keys(load_restricted(path), path, expected)
    missing = [k for k in ("data", layout.label_key) if k not in batch]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}; expected {expected}")
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or (data.shape[1:] not in ((3072,), (3, 32, 32)))
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    x = data.reshape(-1, 3, 32, 32)
    labels = batch[layout.label_key]
    if isinstance(labels, list) and not all(isinstance(v, int) for v in labels):
        raise DataError(f"{path}: '{layout.label_key}' must be a list of integer class indices")
    y = check_labels(
        np.asarray(labels),
        n=x.shape[0],
        num_classes=layout.num_classes,
        where=f"{path} '{layout.label_key}'",
    )
    return x, y


def _cifar_names(folder: Path, layout: _CifarLayout) -> tuple[str, ...]:
    path = folder / layout.meta_file
    if not path.exists():  # names are cosmetic; a copy without the meta file still trains
        return tuple(str(i) for i in range(layout.num_classes))
    meta = _str_keys(load_restricted(path), path, f"key '{layout.names_key}'")
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or len(names) != layout.num_classes:
        raise DataError(
            f"{path}: expected '{layout.names_key}' with {layout.num_classes} class names"
        )
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _cifar_folder(path: str, layout: _CifarLayout) -> Path:
    expected = (
        f"a folder with the CIFAR python layout ({', '.join(layout.train_files)}, "
        f"{layout.test_file}, {layout.meta_file}) as extracted from {layout.archive}"
    )
    p = existing_path(path, layout.kind, expected)
    if p.is_file():
        hint = (
            f"; extract it first (tar -xzf {p}) and pass the {layout.subdir} folder"
            if (p.name.endswith((".tar.gz", ".tgz", ".tar")))
            else ""
        )
        raise DataError(f"{layout.kind}: {p} is a file, expected {expected}{hint}")
    if not (p / layout.test_file).exists() and (p / layout.subdir).is_dir():
        p = p / layout.subdir
    missing = [f for f in (*layout.train_files, layout.test_file) if not (p / f).is_file()]
    if missing:
        raise DataError(f"{layout.kind}: {p} is missing {', '.join(missing)}; expected {expected}")
    return p


def load_cifar_raw(kind: str, path: str, *, seed: int, val_fraction: float) -> RawData:
    """CIFAR-10 or CIFAR-100 (fine labels); validation carved from train, test = the test batch."""
    layout = _cifar_layout(kind)
    folder = _cifar_folder(path, layout)
    parts = [_read_cifar_batch(folder / f, layout) for f in layout.train_files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    test = _read_cifar_batch(folder / layout.test_file, layout)
    tr, va, _ = stratified_split(
        y, val_fraction=val_fraction, test_fraction=0.0, rng=np.random.default_rng(seed)
    )
    require_nonempty("validation", len(va), val_fraction, str(folder))
    return RawData(
        name=kind,
        source=f"{kind}:{folder.resolve()}",
        train=_take(x, y, tr),
        val=_take(x, y, va),
        test=test,
        class_names=_cifar_names(folder, layout),
        pixel_scale=255.0,
    )


# ------------------------------------------------------------------------------------------- npz


def _to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} -> (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim != 4:
        raise DataError(
            f"{where}: expected images of shape (N, H, W, C) or (N, C, H, W) with C = 1 or 3, "
            f"got shape {x.shape}"
        )
    channels_first = x.shape[1] in (1, 3)
    channels_last = x.shape[3] in (1, 3)
    if channels_first and channels_last:  # e.g. (N, 3, 3, 3): trust the square spatial dims
        channels_first = x.shape[2] == x.shape[3] and x.shape[1] != x.shape[2]
        channels_last = not channels_first and x.shape[1] == x.shape[2]
        if not (channels_first or channels_last):
            raise DataError(f"{where}: cannot tell channels-first from channels-last in {x.shape}")
    if channels_first:
        return x
    if channels_last:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DataError(
        f"{where}: expected a channel dimension of 1 or 3 (NHWC or NCHW), got shape {x.shape}"
    )


def _as_unit_float(x: np.ndarray, where: str) -> np.ndarray:
    """Pixels as float32: unsigned integers scaled to [0, 1] by their maximum, floats as given."""
    if x.dtype.kind == "u":
        return (x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)).astype(np.float32)
    if x.dtype.kind in "if":
        out = x.astype(np.float32)
        check_finite(out, where)
        return out
    raise DataError(f"{where}: expected numeric pixels (uint8 or float), got dtype {x.dtype}")


def _npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        raise DataError(f"{path}: array '{key}' cannot be read without pickle ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: array '{key}' is corrupt ({exc})") from None


def load_npz_raw(path: str, *, seed: int, val_fraction: float, test_fraction: float) -> RawData:
    """Arrays ``x_train, y_train[, x_val, y_val, x_test, y_test][, class_names]`` from a .npz."""
    expected = "an .npz file with arrays x_train, y_train[, x_val, y_val, x_test, y_test]"
    p = existing_path(path, "npz", expected)
    if not p.is_file():
        raise DataError(f"npz: {p} is a folder, expected {expected}")
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"npz: {p} is not a readable .npz archive ({exc}); expected {expected}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"npz: {p} holds a single array (.npy); expected {expected}")
    with archive:
        keys = set(archive.files)
        missing = [k for k in ("x_train", "y_train") if k not in keys]
        if missing:
            raise DataError(
                f"npz: {p} has no {', '.join(missing)} "
                f"(found: {', '.join(sorted(keys)) or 'none'}); expected {expected}"
            )
        for split in ("val", "test"):
            have = [f"{a}_{split}" in keys for a in ("x", "y")]
            if any(have) and not all(have):
                present, absent = (f"x_{split}", f"y_{split}")[:: 1 if have[0] else -1]
                raise DataError(
                    f"npz: {p} has {present} but no {absent}; give both arrays or neither"
                )
        arrays = {
            split: (_npz_array(archive, f"x_{split}", p), _npz_array(archive, f"y_{split}", p))
            for split in ("train", "val", "test")
            if f"x_{split}" in keys
        }
        names = _npz_array(archive, "class_names", p) if "class_names" in keys else None

    num_classes = None
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US" or len(names) == 0:
            raise DataError(f"npz: {p} 'class_names' must be a 1-D array of strings")
        num_classes = len(names)
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ref = None
    for split, (x, y) in arrays.items():
        where = f"npz: {p} 'x_{split}'"
        x = _as_unit_float(_to_nchw(x, where), where)
        if ref is None:
            ref = x.shape[1:]
        elif x.shape[1:] != ref:
            raise DataError(
                f"{where}: images are {'x'.join(map(str, x.shape[1:]))} (C x H x W) but x_train "
                f"images are {'x'.join(map(str, ref))}; all splits must share one shape"
            )
        y = check_labels(y, n=x.shape[0], num_classes=num_classes, where=f"npz: {p} 'y_{split}'")
        data[split] = (x, y)
    if data["train"][0].shape[0] == 0:
        raise DataError(f"npz: {p} 'x_train' is empty; expected at least one training image")
    if num_classes is None:
        num_classes = int(max(int(y.max()) for _, y in data.values() if len(y)) + 1)
    class_names = (
        tuple(str(n) for n in names)
        if names is not None
        else tuple(str(i) for i in range(num_classes))
    )

    vf = 0.0 if "val" in data else val_fraction
    tf = 0.0 if "test" in data else test_fraction
    x, y = data["train"]
    tr, va, te = stratified_split(
        y, val_fraction=vf, test_fraction=tf, rng=np.random.default_rng(seed)
    )
    require_nonempty("validation", len(va), vf, f"npz: {p}")
    require_nonempty("test", len(te), tf, f"npz: {p}")
    return RawData(
        name=f"npz:{p.stem}",
        source=f"npz:{p.resolve()}",
        train=_take(x, y, tr),
        val=data.get("val", _take(x, y, va)),
        test=data.get("test", _take(x, y, te)),
        class_names=class_names,
        pixel_scale=1.0,
    )

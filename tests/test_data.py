"""Tests for nas.data: every source on small generated fixtures, every bad input, and batching."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nas.data import (
    BatchLoader,
    DatasetSplits,
    describe,
    iterate_batches,
    load_dataset,
    parse_spec,
    random_translate,
    resize_images,
)
from nas.data.safe_pickle import load_restricted
from nas.data.splits import Split, stratified_split
from nas.errors import DataError, UserError

# ------------------------------------------------------------------------------------ fixtures


def _pixels(splits: DatasetSplits, split: Split) -> np.ndarray:
    """Undo the normalisation: pixels in [0, 1] units."""
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    return (split.x * std + mean).numpy()


def _write_pickle(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar_batch(rng: np.random.Generator, n: int, classes: int, key: str) -> dict:
    return {
        "batch_label": "fixture",
        key: [int(i % classes) for i in range(n)],
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)],
    }


def write_cifar10(root: Path, per_batch: int = 20, *, meta: bool = True) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        _write_pickle(root / f"data_batch_{i}", _cifar_batch(rng, per_batch, 10, "labels"), 2)
    _write_pickle(root / "test_batch", _cifar_batch(rng, 30, 10, "labels"))
    if meta:
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
        _write_pickle(root / "batches.meta", {"label_names": names, "num_vis": 3072})
    return root


def write_cifar100(root: Path) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 400), ("test", 100)):
        batch = _cifar_batch(rng, n, 100, "fine_labels")
        batch["coarse_labels"] = [i % 20 for i in range(n)]
        # bytes keys, as pickle.load(encoding="bytes") users sometimes re-save them
        _write_pickle(root / name, {k.encode(): v for k, v in batch.items()})
    names = [f"class_{i:02d}".encode() for i in range(100)]
    _write_pickle(root / "meta", {"fine_label_names": names, "coarse_label_names": []}, 5)
    return root


def _py2_str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2 / numpy 1 wrote the original CIFAR files (protocol 2)."""
    n = data.shape[0]
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
        + b"K\x00\x85" + _py2_str(b"b") + b"\x87R"
        + b"(K\x01" + b"J" + struct.pack("<i", n) + b"M" + struct.pack("<H", 3072) + b"\x86"
        + dtype + b"\x89" + _py2_str(data.tobytes()) + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (
        b"\x80\x02}(" + _py2_str(b"data") + array + _py2_str(b"labels") + label_list + b"u."
    )


def write_image_tree(root: Path, classes: dict[str, int], *, size=(10, 12), mode="RGB",
                     seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            h, w = size
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(
                folder / f"{i:03d}.png"
            )
    return root


def indexed_npz(path: Path, n: int = 60, classes: int = 3, **extra: np.ndarray) -> Path:
    """x_train[i] is filled with the value i, so a loaded image tells where it came from."""
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 4, 4, 1)).copy()
    np.savez(path, x_train=x, y_train=np.arange(n) % classes, **extra)
    return path


def _ids(splits: DatasetSplits, split: Split) -> list[int]:
    return [round(float(v)) for v in _pixels(splits, split)[:, 0, 0, 0]]


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits", seed=0)


# ---------------------------------------------------------------------------------- digits


def test_digits_shapes_and_classes(digits):
    assert (digits.name, digits.num_classes, digits.in_channels) == ("digits", 10, 1)
    assert digits.image_size == (8, 8)
    assert digits.class_names == tuple(str(i) for i in range(10))
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(digits.test) == round(0.15 * 1797)
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.float32 and split.x.shape[1:] == (1, 8, 8)
        assert split.y.dtype == torch.int64
        assert set(split.y.tolist()) == set(range(10))  # every class in every split
        counts = np.bincount(split.y.numpy(), minlength=10) / len(split)
        assert np.all(np.abs(counts - 0.1) < 0.02)  # stratified: each class near 10 %
    assert "digits: 10 classes, 1x8x8, train 1258 / val 269 / test 270" in describe(digits)


def test_digits_split_is_seeded(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(digits, name).x, getattr(again, name).x)
        assert torch.equal(getattr(digits, name).y, getattr(again, name).y)
    assert not torch.equal(digits.val.y, other.val.y)
    assert digits.fingerprint() == again.fingerprint() != other.fingerprint()


def test_normalisation_uses_train_statistics(digits):
    x = digits.train.x
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(1), atol=1e-4)
    # val/test are shifted by the train statistics, not by their own
    assert abs(float(digits.val.x.mean())) > 1e-4
    # mean/std are recorded in [0, 1] pixel units: undoing them gives the original 0..16 grid
    for split in (digits.train, digits.val, digits.test):
        pixels = _pixels(digits, split) * 16
        assert np.allclose(pixels, np.round(pixels), atol=1e-3)
        assert pixels.min() > -1e-3 and pixels.max() < 16 + 1e-3


def test_image_size_resizes_at_load():
    splits = load_dataset("digits", image_size=16)
    assert splits.image_size == (16, 16) and splits.train.x.shape[2:] == (16, 16)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 12), min_size=1, max_size=300),
    val=st.floats(0.0, 0.45),
    test=st.floats(0.0, 0.45),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_invariants(labels, val, test, seed):
    y = np.asarray(labels)
    tr, va, te = stratified_split(y, val_fraction=val, test_fraction=test,
                                  rng=np.random.default_rng(seed))
    joined = np.concatenate([tr, va, te])
    assert sorted(joined.tolist()) == list(range(len(y)))  # disjoint and complete
    assert len(te) == int(np.floor(len(y) * test + 0.5))
    assert abs(len(va) - len(y) * val) <= 1.5
    for c in np.unique(y):
        n_c = int((y == c).sum())
        assert abs(int((y[te] == c).sum()) - n_c * test) < 1 + 1e-9
        assert abs(int((y[va] == c).sum()) - n_c * val) < 2 + 1e-9
    again = stratified_split(y, val_fraction=val, test_fraction=test,
                             rng=np.random.default_rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imagenet:/data", "expected digits, fashion-mnist"),
        ("cifar10:", "no path; expected cifar10:PATH"),
        ("digits:/x", "digits takes no path"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse_spec(spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "must be < 1"),
        ({"val_fraction": -0.1}, r"must lie in \[0, 1\)"),
        ({"seed": -1}, "non-negative integer"),
        ({"image_size": 0}, "positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", **kwargs)


# ----------------------------------------------------------------------------------- CIFAR


def test_cifar10(tmp_path):
    root = write_cifar10(tmp_path / "c10")
    splits = load_dataset(f"cifar10:{root}", seed=3, val_fraction=0.1)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 3, (32, 32))
    assert splits.class_names[0] == "airplane" and len(splits.class_names) == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 30)
    assert set(splits.val.y.tolist()) == set(range(10))
    # the test split is the test batch, unchanged, in file order
    test_batch = pickle.loads((root / "test_batch").read_bytes())
    assert splits.test.y.tolist() == test_batch["labels"]
    expected = test_batch["data"].reshape(-1, 3, 32, 32) / 255.0
    assert np.allclose(_pixels(splits, splits.test), expected, atol=1e-5)
    assert splits.source == f"cifar10:{root.resolve()}"


def test_cifar10_parent_folder_and_missing_meta(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", meta=False)
    splits = load_dataset(f"cifar10:{tmp_path}")
    assert splits.class_names == tuple(str(i) for i in range(10))


def test_cifar100_fine_labels_and_bytes_keys(tmp_path):
    root = write_cifar100(tmp_path / "c100")
    splits = load_dataset(f"cifar100:{root}", seed=0)
    assert splits.num_classes == 100 and splits.class_names[99] == "class_99"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (340, 60, 100)
    assert splits.train.y.max() == 99


def test_python2_cifar_pickle_loads(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, size=(7, 3072), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5, 9, 2]
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_cifar_pickle(data, labels))
    batch = load_restricted(path)
    assert batch["labels"] == labels
    assert batch["data"].dtype == np.uint8 and np.array_equal(batch["data"], data)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_reads_plain_data(tmp_path, protocol):
    obj = {"a": np.arange(12, dtype=np.uint8).reshape(3, 4), "b": [1, 2.5, "x", b"y", (1, 2)],
           "c": np.float32(1.5)}
    path = tmp_path / "ok.pkl"
    _write_pickle(path, obj, protocol)
    out = load_restricted(path)
    assert np.array_equal(out["a"], obj["a"]) and out["b"] == obj["b"] and out["c"] == 1.5


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    root = write_cifar10(tmp_path / "c10")
    batch = _cifar_batch(np.random.default_rng(0), 20, 10, "labels")
    batch["filenames"] = _Evil(f"touch {marker}")
    _write_pickle(root / "data_batch_2", batch, protocol)
    refused = r"data_batch_2: not loaded, refusing global (posix|os)\.system"
    with pytest.raises(DataError, match=refused):
        load_dataset(f"cifar10:{root}")
    assert not marker.exists()
    _write_pickle(root / "data_batch_2", {"data": _EvalEvil()}, protocol)
    with pytest.raises(DataError, match=r"refusing global (builtins|__builtin__)\.eval"):
        load_dataset(f"cifar10:{root}")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "data_batch_3").unlink(), r"is missing data_batch_3; expected"),
        (lambda r: (r / "test_batch").write_bytes(b"\x80\x04garbage"), "test_batch: not"),
        (lambda r: (r / "test_batch").write_bytes(
            (r / "data_batch_1").read_bytes()[:200]), "test_batch: not"),
        (lambda r: _write_pickle(r / "data_batch_1", [1, 2, 3]), "expected a pickled dict"),
        (lambda r: _write_pickle(r / "data_batch_1", {"data": np.zeros((2, 3072), np.uint8)}),
         "missing key.*labels"),
        (lambda r: _write_pickle(r / "data_batch_1", {"data": np.zeros((2, 100), np.uint8),
                                                      "labels": [0, 1]}),
         r"'data' must be a uint8 array of shape \(N, 3072\)"),
        (lambda r: _write_pickle(r / "data_batch_1", {"data": np.zeros((2, 3072), np.uint8),
                                                      "labels": [0, 10]}),
         r"'labels': labels must be in 0\.\.9, found 10 at index 1"),
        (lambda r: _write_pickle(r / "data_batch_1", {"data": np.zeros((2, 3072), np.uint8),
                                                      "labels": [0, 1, 2]}),
         "2 images but 3 labels"),
        (lambda r: _write_pickle(r / "batches.meta", {"label_names": ["a"]}),
         "expected 'label_names' with 10 class names"),
    ],
)
def test_cifar_bad_layouts(tmp_path, damage, message):
    root = write_cifar10(tmp_path / "c10")
    damage(root)
    with pytest.raises(DataError, match=message):
        load_dataset(f"cifar10:{root}")


def test_cifar_bad_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected a folder with the CIFAR"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}")
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"")
    with pytest.raises(DataError, match="extract it first"):
        load_dataset(f"cifar10:{archive}")
    with pytest.raises(DataError, match="is missing train, test"):
        load_dataset(f"cifar100:{tmp_path}")


# ------------------------------------------------------------------------------ image folder


def test_folder_rgb_split(tmp_path):
    root = write_image_tree(tmp_path / "imgs", {"cat": 10, "dog": 10, "eel": 10})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "README").write_text("ignored, not in a class folder")
    splits = load_dataset(f"folder:{root}", seed=0)
    assert splits.class_names == ("cat", "dog", "eel")
    assert (splits.in_channels, splits.image_size) == (3, (10, 12))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (21, 4, 5)
    assert splits.name == "folder:imgs"
    again = load_dataset(f"folder:{root}", seed=0, workers=0)
    (x1, y1), = splits.val.fetch([range(4)])
    (x2, y2), = again.val.fetch([range(4)])
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_folder_grayscale_mixed_sizes_and_image_size(tmp_path):
    root = tmp_path / "gray"
    write_image_tree(root, {"a": 7}, size=(20, 16), mode="L")
    write_image_tree(root, {"b": 7}, size=(12, 14), mode="L", seed=1)
    splits = load_dataset(f"folder:{root}")
    assert splits.in_channels == 1
    assert splits.image_size == (12, 14)  # the largest size every image reaches (min h, min w)
    sized = load_dataset(f"folder:{root}", image_size=9)
    assert sized.image_size == (9, 9)
    # one colour image makes the whole set RGB
    write_image_tree(root, {"c": 7}, size=(12, 14), mode="RGB", seed=2)
    assert load_dataset(f"folder:{root}").in_channels == 3


def test_folder_train_val_test_trees(tmp_path):
    write_image_tree(tmp_path / "train", {"x": 8, "y": 8, "z": 8})
    write_image_tree(tmp_path / "val", {"x": 2, "y": 3}, seed=1)
    write_image_tree(tmp_path / "test", {"x": 1, "y": 1, "z": 4}, seed=2)
    splits = load_dataset(f"folder:{tmp_path}")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 5, 6)
    assert splits.val.y.tolist() == [0, 0, 1, 1, 1]
    assert splits.test.y.tolist() == [0, 1, 2, 2, 2, 2]
    # without test/, a test split is carved from train
    for f in (tmp_path / "test").rglob("*.png"):
        f.unlink()
    for d in (tmp_path / "test").iterdir():
        d.rmdir()
    (tmp_path / "test").rmdir()
    splits = load_dataset(f"folder:{tmp_path}", test_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 5, 6)


def test_folder_bad_inputs(tmp_path):
    with pytest.raises(DataError, match=r"folder: .* does not exist; expected an image folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "img.png").write_bytes(b"")
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_dataset(f"folder:{tmp_path / 'flat'}")
    root = write_image_tree(tmp_path / "t", {"a": 6, "b": 6})
    (root / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*c holds no images"):
        load_dataset(f"folder:{root}")
    (root / "c").rmdir()
    (root / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        load_dataset(f"folder:{root}")
    (root / "b" / "broken.png").unlink()
    write_image_tree(tmp_path / "tv" / "train", {"a": 6})
    write_image_tree(tmp_path / "tv" / "val", {"zz": 2})
    with pytest.raises(DataError, match=r"class folder.*zz that train/ does not have"):
        load_dataset(f"folder:{tmp_path / 'tv'}")
    tiny = write_image_tree(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(DataError, match="too few samples for a validation split"):
        load_dataset(f"folder:{tiny}")


# -------------------------------------------------------------------------------------- npz


def test_npz_carves_disjoint_splits(tmp_path):
    path = indexed_npz(tmp_path / "d.npz", class_names=np.array(["r", "g", "b"]))
    splits = load_dataset(f"npz:{path}", seed=4)
    assert splits.class_names == ("r", "g", "b") and splits.in_channels == 1
    ids = [_ids(splits, s) for s in (splits.train, splits.val, splits.test)]
    assert sorted(i for part in ids for i in part) == list(range(60))
    assert [len(i) for i in ids] == [42, 9, 9]
    for split, split_ids in zip((splits.train, splits.val, splits.test), ids):
        assert split.y.tolist() == [i % 3 for i in split_ids]  # labels travel with their images


def test_npz_given_splits_nchw_uint8(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        f"x_{s}": rng.integers(0, 256, size=(n, 3, 6, 5), dtype=np.uint8)
        for s, n in (("train", 20), ("val", 6), ("test", 4))
    }
    arrays.update(y_train=np.arange(20) % 4, y_val=np.arange(6) % 4,
                  y_test=np.array([[0], [1], [2], [3]]))
    np.savez(tmp_path / "g.npz", **arrays)
    splits = load_dataset(f"npz:{tmp_path / 'g.npz'}")
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (4, 3, (6, 5))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 6, 4)
    assert np.allclose(_pixels(splits, splits.val), arrays["x_val"] / 255.0, atol=1e-5)
    assert splits.test.y.tolist() == [0, 1, 2, 3]


def test_npz_nhwc_float_and_only_val(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", x_train=rng.random((40, 7, 7, 3)), y_train=np.arange(40.0) % 2,
             x_val=rng.random((5, 7, 7, 3)), y_val=np.zeros(5, dtype=np.int32))
    splits = load_dataset(f"npz:{tmp_path / 'f.npz'}", test_fraction=0.2)
    assert (splits.in_channels, splits.image_size, splits.num_classes) == (3, (7, 7), 2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (32, 5, 8)


def _npz_case(tmp_path: Path, **arrays: np.ndarray) -> str:
    np.savez(tmp_path / "bad.npz", **arrays)
    return f"npz:{tmp_path / 'bad.npz'}"


X = np.zeros((10, 8, 8), np.uint8)
Y = np.arange(10) % 2


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": X, "y": Y}, r"has no x_train, y_train \(found: x, y\)"),
        ({"x_train": X, "y_train": Y, "x_val": X}, "has x_val but no y_val"),
        ({"x_train": X, "y_train": Y, "y_test": Y}, "has y_test but no x_test"),
        ({"x_train": X, "y_train": Y[:7]}, "'y_train': 10 images but 7 labels"),
        ({"x_train": X, "y_train": Y - 1}, "'y_train': labels must be non-negative, found -1"),
        ({"x_train": X, "y_train": Y, "class_names": np.array(["a"])},
         r"'y_train': labels must be in 0\.\.0, found 1 at index 1"),
        ({"x_train": X, "y_train": Y + 0.5}, "labels must be integer class indices, found 0.5"),
        ({"x_train": X, "y_train": np.array(["a"] * 10)}, "labels must be integer class indices"),
        ({"x_train": X, "y_train": np.eye(10)}, "one-hot labels are not accepted"),
        ({"x_train": np.zeros((10, 8, 8, 5)), "y_train": Y},
         "expected a channel dimension of 1 or 3"),
        ({"x_train": np.zeros((10, 8)), "y_train": Y}, r"expected images of shape \(N, H, W, C\)"),
        ({"x_train": X, "y_train": Y, "x_val": np.zeros((2, 9, 9), np.uint8), "y_val": Y[:2]},
         "'x_val': images are 1x9x9 .* but x_train images are 1x8x8"),
        ({"x_train": np.full((10, 8, 8), np.nan), "y_train": Y}, "NaN or infinite"),
        ({"x_train": X[:0], "y_train": Y[:0]}, "'x_train' is empty"),
        ({"x_train": X[:2], "y_train": Y[:2]}, "too few samples for a validation split"),
    ],
)
def test_npz_bad_inputs(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_dataset(_npz_case(tmp_path, **arrays))


def test_npz_bad_files(tmp_path):
    with pytest.raises(DataError, match=r"npz: .*nope\.npz does not exist; expected an \.npz file"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    np.save(tmp_path / "one.npy", X)
    with pytest.raises(DataError, match=r"holds a single array \(.npy\)"):
        load_dataset(f"npz:{tmp_path / 'one.npy'}")
    (tmp_path / "junk.npz").write_bytes(b"definitely not a zip")
    with pytest.raises(DataError, match=r"is not a readable \.npz archive"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}] * 10, dtype=object), y_train=Y)
    with pytest.raises(DataError, match="'x_train' cannot be read without pickle"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


# ---------------------------------------------------------------------------------- batches


def test_batches_resize_and_channels(digits):
    for resolution in (4, 8, 32):
        batches = list(iterate_batches(digits.val, batch_size=100, resolution=resolution,
                                       in_channels=3))
        assert [len(y) for _, y in batches] == [100, 100, 69]
        for x, y in batches:
            assert x.shape == (len(y), 3, resolution, resolution) and x.dtype == torch.float32
            assert torch.equal(x[:, 0], x[:, 2])  # gray repeated into every channel
    x, y = next(iterate_batches(digits.val, batch_size=8, resolution=None))
    assert torch.equal(x, digits.val.x[:8]) and torch.equal(y, digits.val.y[:8])
    assert len(list(iterate_batches(digits.val, batch_size=100, resolution=8, drop_last=True))) == 2


def test_channel_mismatch_is_a_user_error():
    split = Split(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(UserError, match=r"the data has 3 channel.* model expects 1"):
        iterate_batches(split, batch_size=2, resolution=8, in_channels=1)
    with pytest.raises(UserError, match=r"3 channel.* expects 4"):
        BatchLoader(split, batch_size=2, resolution=8, in_channels=4)


def test_resize_is_antialiased_when_shrinking():
    x = torch.zeros(1, 1, 32, 32)
    x[..., ::2, :] = 1.0  # stripes a plain bilinear shrink would alias
    small = resize_images(x, 8)
    assert small.shape == (1, 1, 8, 8)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)
    assert torch.allclose(resize_images(torch.ones(2, 3, 5, 5), 11), torch.ones(2, 3, 11, 11))


def test_same_seed_same_batches_and_full_coverage(digits):
    def run(seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(digits.train, batch_size=64, resolution=12, in_channels=1,
                             shuffle=True, seed=seed, augment=True)
        loader.set_epoch(epoch)
        return list(loader)

    a, b = run(0, 1), run(0, 1)
    assert len(a) == 20
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    c = run(0, 2)
    assert not torch.equal(a[0][1], c[0][1])  # another epoch, another order
    d = run(1, 1)
    assert not torch.equal(a[0][1], d[0][1])
    ys = torch.cat([y for _, y in a])
    assert torch.equal(ys.sort().values, digits.train.y.sort().values)  # each sample once


def test_loader_resumes_mid_run(digits):
    kwargs = dict(batch_size=128, resolution=8, shuffle=True, seed=7, augment=True)
    first = BatchLoader(digits.train, **kwargs)
    epochs = []
    for epoch in range(3):
        first.set_epoch(epoch)
        epochs.append(list(first))
    resumed = BatchLoader(digits.train, **kwargs)
    resumed.set_epoch(2)
    assert len(resumed) == len(epochs[2])
    for (xa, ya), (xb, yb) in zip(epochs[2], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augment_is_a_seeded_translation():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    out = random_translate(x, np.random.default_rng(0))
    assert out.shape == x.shape
    offsets = np.random.default_rng(0).integers(0, 5, size=(2, 2))  # pad = 16 / 8 = 2
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for i, (dy, dx) in enumerate(offsets):
        assert torch.equal(out[i], padded[i, :, dy : dy + 16, dx : dx + 16])
    assert torch.equal(out, random_translate(x, np.random.default_rng(0)))


def test_augment_keeps_shapes_and_changes_images(digits):
    plain = next(iterate_batches(digits.train, batch_size=32, resolution=16))
    aug = next(iterate_batches(digits.train, batch_size=32, resolution=16, augment=True,
                               rng=np.random.default_rng(0)))
    assert aug[0].shape == plain[0].shape == (32, 1, 16, 16)
    assert torch.equal(aug[1], plain[1])
    assert not torch.equal(aug[0], plain[0])


def test_batching_argument_errors(digits):
    with pytest.raises(ValueError, match="needs rng"):
        iterate_batches(digits.val, batch_size=4, resolution=8, shuffle=True)
    with pytest.raises(DataError, match="batch size must be a positive integer"):
        BatchLoader(digits.val, batch_size=0, resolution=8)
    with pytest.raises(DataError, match="resolution must be a positive integer"):
        iterate_batches(digits.val, batch_size=4, resolution=0)

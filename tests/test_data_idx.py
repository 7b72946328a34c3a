"""The IDX reader and the fashion-mnist / idx sources, on small IDX files the tests write."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from nas.data import SOURCES, load_dataset, parse_spec
from nas.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx
from nas.errors import DataError

TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
              np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    head = struct.pack(">HBB", 0, TYPE_CODES[a.dtype], a.ndim)
    head += struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, *, gz: bool = False) -> Path:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_folder(root: Path, *, n_train: int = 120, n_test: int = 30, classes: int = 10,
                       size: int = 6, gz: bool = True, seed: int = 0) -> Path:
    """An MNIST-layout folder; image i of train is filled with i % 256 (to trace the split)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    x_train = np.broadcast_to((np.arange(n_train) % 256).astype(np.uint8)[:, None, None],
                              (n_train, size, size)).copy()
    write_idx(root / f"train-images-idx3-ubyte{ext}", x_train, gz=gz)
    write_idx(root / f"train-labels-idx1-ubyte{ext}",
              (np.arange(n_train) % classes).astype(np.uint8), gz=gz)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}",
              rng.integers(0, 256, (n_test, size, size), dtype=np.uint8), gz=gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}",
              (np.arange(n_test) % classes).astype(np.uint8), gz=gz)
    return root


@pytest.mark.parametrize("dtype", list(TYPE_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype.kind == "u":
        a = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    got = read_idx(write_idx(tmp_path / "a.idx", a, gz=gz))
    assert got.dtype == dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, a)
    got[0, 0, 0] = 1  # writable: torch.from_numpy must not warn


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "truncated: shape"),
        (lambda b: b[:3], "truncated: 3 bytes"),
        (lambda b: b[:6], "truncated inside its header"),
        (lambda b: b + b"\0", "data after"),
        (lambda b: b"\x01\x00" + b[2:], "magic number 0x0100"),
        (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),
        # a header claiming 2^32-1 x 2^32-1 x 4 values must be refused before allocating
        (lambda b: b[:4] + struct.pack(">III", 2**32 - 1, 2**32 - 1, 4) + b[16:], "header claims"),
    ],
)
def test_read_idx_refuses_damaged_files(tmp_path, damage, message):
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(damage(good))
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_gzip_bomb_header_is_refused_before_reading(tmp_path):
    head = struct.pack(">HBBIII", 0, 0x08, 3, 60000, 10000, 10000)  # 6e12 bytes claimed
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(head + b"\0" * 100))
    with pytest.raises(DataError, match="header claims"):
        read_idx(path)


def test_corrupt_gzip_is_one_line(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)))[:-12])
    with pytest.raises(DataError, match=r"cannot be read|truncated"):
        read_idx(path)


def test_idx_source_split_sizes_and_held_out_test(tmp_path):
    root = write_mnist_folder(tmp_path / "mnist")
    splits = load_dataset(f"idx:{root}", seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (110, 10, 30)
    assert splits.in_channels == 1 and splits.image_size == (6, 6) and splits.num_classes == 10
    np.testing.assert_array_equal(np.bincount(splits.val.y.numpy()), np.ones(10))
    again = load_dataset(f"idx:{root}", seed=0)
    assert splits.fingerprint() == again.fingerprint()
    assert load_dataset(f"idx:{root}", seed=1).fingerprint() != splits.fingerprint()


def test_plain_and_gz_files_load_the_same(tmp_path):
    a = load_dataset(f"idx:{write_mnist_folder(tmp_path / 'a', gz=True)}", seed=0)
    b = load_dataset(f"idx:{write_mnist_folder(tmp_path / 'b', gz=False)}", seed=0)
    assert a.fingerprint() == b.fingerprint()


def test_fashion_mnist_source_names_classes_and_takes_a_path(tmp_path):
    root = write_mnist_folder(tmp_path / "fm", n_train=240)
    splits = load_dataset(f"fashion-mnist:{root}", seed=0, val_fraction=0.25)
    assert splits.class_names == FASHION_MNIST_CLASSES
    assert (len(splits.train), len(splits.val)) == (180, 60)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("labels_out_of_range", r"labels must be in 0..9, found 12"),
        ("count_mismatch", "120 images but 119 labels"),
        ("missing_test_labels", "no file for test labels"),
        ("images_2d", "has 2 dimension"),
        ("test_size", "holds 5x5 images"),
    ],
)
def test_bad_fashion_mnist_folders(tmp_path, damage, message):
    root = write_mnist_folder(tmp_path / "fm")
    labels = root / "train-labels-idx1-ubyte.gz"
    if damage == "labels_out_of_range":
        write_idx(labels, np.full(120, 12, np.uint8), gz=True)
    elif damage == "count_mismatch":
        write_idx(labels, np.zeros(119, np.uint8), gz=True)
    elif damage == "missing_test_labels":
        (root / "t10k-labels-idx1-ubyte.gz").unlink()
    elif damage == "images_2d":
        write_idx(root / "train-images-idx3-ubyte.gz", np.zeros((120, 36), np.uint8), gz=True)
    elif damage == "test_size":
        write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((30, 5, 5), np.uint8), gz=True)
    with pytest.raises(DataError, match=message):
        load_dataset(f"fashion-mnist:{root}", seed=0)


def test_missing_folder_says_how_to_get_the_files(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset(f"fashion-mnist:{tmp_path / 'nowhere'}", seed=0)


def test_spec_grammar():
    assert parse_spec("fashion-mnist") == ("fashion-mnist", "")
    assert parse_spec("Fashion-MNIST:/x") == ("fashion-mnist", "/x")
    assert parse_spec("idx:/data/kmnist") == ("idx", "/data/kmnist")
    with pytest.raises(DataError, match="no path; expected idx:PATH"):
        parse_spec("idx")
    assert set(SOURCES) >= {"digits", "fashion-mnist", "idx", "cifar10", "npz", "folder"}


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_when_installed():
    splits = load_dataset("fashion-mnist", seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    np.testing.assert_array_equal(np.bincount(splits.val.y.numpy()), np.full(10, 500))
    np.testing.assert_array_equal(np.bincount(splits.test.y.numpy()), np.full(10, 1000))


def test_cli_reports_a_bad_idx_file_in_one_line(tmp_path, capsys):
    from nas.cli import main

    root = write_mnist_folder(tmp_path / "fm")
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 5))
    rc = main(["train", "--space", "hybrid-tiny", "--data", f"idx:{root}", "--epochs", "1",
               "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "truncated" in err
    assert "Traceback" not in err

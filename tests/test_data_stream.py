"""Data read batch by batch: image folders decoded on access by DataLoader workers, and torch
Datasets / DataLoaders given from Python, for training and evaluation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import nas
from nas.cli import main
from nas.data import BatchLoader, DataError, Split, StreamSplit, load_dataset
from nas.errors import UserError
from nas.spaces import load_space
from nas.supernet import Supernet
from nas.train import evaluate_subnet
from tests.test_data import write_image_tree


def _all(split) -> tuple[torch.Tensor, torch.Tensor]:
    (x, y), = split.fetch([range(len(split))])
    return x, y


def test_folder_split_is_read_on_access_and_normalised_by_train_statistics(tmp_path):
    root = write_image_tree(tmp_path / "imgs", {"a": 9, "b": 9, "c": 9}, size=(8, 6))
    splits = load_dataset(f"folder:{root}", seed=3, workers=0)
    assert all(isinstance(s, StreamSplit) for s in (splits.train, splits.val, splits.test))
    files = splits.train.dataset.files + splits.val.dataset.files
    pixels = np.stack([np.asarray(Image.open(f)).transpose(2, 0, 1) for f in files]).astype(float)
    train_pixels = pixels[: len(splits.train)] / 255.0
    mean = train_pixels.mean(axis=(0, 2, 3))
    std = train_pixels.std(axis=(0, 2, 3))
    np.testing.assert_allclose(splits.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(splits.std, std, rtol=1e-9)
    x, y = _all(splits.val)
    expected = (pixels[len(splits.train):] / 255.0 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)
    assert y.tolist() == [int(splits.class_names.index(f.split("/")[-2]))
                          for f in splits.val.dataset.files]
    assert splits.train.shape == (len(splits.train), 3, 8, 6)


def test_same_seed_same_batches_whatever_the_worker_count(tmp_path):
    root = write_image_tree(tmp_path / "imgs", {"a": 12, "b": 12}, size=(10, 10))
    splits = load_dataset(f"folder:{root}", seed=0, workers=0)
    runs = []
    for workers in (0, 2):
        loader = BatchLoader(replace(splits.train, workers=workers), batch_size=5,
                             resolution=8, shuffle=True, seed=4, augment=True, drop_last=True)
        loader.set_epoch(1)
        runs.append(list(loader))
    assert len(runs[0]) == len(runs[1]) == len(splits.train) // 5
    for (x0, y0), (x2, y2) in zip(*runs):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    assert load_dataset(f"folder:{root}", seed=0, workers=2).fingerprint() == splits.fingerprint()


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still reads; the pixels do not


def test_a_file_that_does_not_decode_stops_with_one_line_naming_it(tmp_path, capsys):
    write_image_tree(tmp_path / "tv" / "train", {"a": 6, "b": 6}, size=(16, 16))
    write_image_tree(tmp_path / "tv" / "val", {"a": 3, "b": 3}, size=(16, 16), seed=1)
    bad = tmp_path / "tv" / "val" / "b" / "001.png"
    _truncate(bad)
    splits = load_dataset(f"folder:{tmp_path / 'tv'}", workers=1)  # headers are fine
    with pytest.raises(DataError, match=r"001\.png is not a readable image") as info:
        _all(splits.val)
    assert "\n" not in str(info.value)
    # in the training split it stops the command before training, with exit code 2
    root = write_image_tree(tmp_path / "flat", {"a": 6, "b": 6}, size=(16, 16))
    for f in (root / "a").iterdir():
        _truncate(f)
    code = main(["train", "--space", "hybrid-tiny", "--data", f"folder:{root}", "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--data-workers", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{root / 'a'}/0" in err and ".png is not a readable image" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


class Blobs(Dataset):
    """A tiny in-memory data set of your own: class k is an image of mean k / 10 plus noise."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 10
        self.images = self.labels.float().view(-1, 1, 1, 1) / 10 + 0.1 * torch.randn(
            n, 3, 16, 16, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def test_your_own_dataset_trains_and_evaluates_through_the_api(tmp_path):
    train_ds, val_ds = Blobs(64, seed=0), Blobs(30, seed=1)
    data = (train_ds, DataLoader(val_ds, batch_size=7, num_workers=1))
    settings = dict(epochs=1, batch_size=16, sandwich_n=0, recal_batches=1, threads=1)
    result = nas.train_supernet("hybrid-tiny", tmp_path / "run", data=data, **settings)
    assert result.splits.source == "python:torch" and len(result.splits.val) == 30
    again = nas.train_supernet("hybrid-tiny", tmp_path / "run2", data=data, **settings)
    for a, b in zip(result.supernet.state_dict().values(), again.supernet.state_dict().values()):
        assert torch.equal(a, b)  # same seed, same batches, same weights
    space = load_space("hybrid-tiny")
    arch = space.smallest()
    model = nas.load_model(tmp_path / "run", arch, data=data, recal_batches=1)
    assert model(torch.zeros(2, 3, 12, 12)).shape == (2, 10)
    with pytest.raises(UserError, match="given from Python"):
        nas.load_model(tmp_path / "run", arch)
    with pytest.raises(UserError, match="fingerprint"):
        nas.load_model(tmp_path / "run", arch, data=(Blobs(64, seed=0), Blobs(29, seed=1)))


def test_a_streamed_split_evaluates_exactly_as_the_same_data_in_memory():
    space = load_space("hybrid-tiny")
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    train_ds, val_ds = Blobs(48, seed=0), Blobs(20, seed=1)
    streamed = nas.data_from_torch(train_ds, val_ds, workers=1)
    in_memory = replace(streamed, train=Split(train_ds.images, train_ds.labels.long()),
                        val=Split(val_ds.images, val_ds.labels.long()))
    arch = space.largest()
    kw = dict(split="val", recal_batches=2, recal_batch_size=16, batch_size=8)
    assert evaluate_subnet(supernet, arch, streamed, **kw) == evaluate_subnet(
        supernet, arch, in_memory, **kw)


def test_data_workers_option_reaches_each_command(capsys):
    import argparse

    from nas.cli import run_cmd, sample_cmd, train_cmd

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for module in (run_cmd, sample_cmd, train_cmd):
        module.register(sub)
    run_args = parser.parse_args(["run", "--quick", "--data-workers", "3"])
    assert run_cmd.plan_from_args(run_args).data_workers == 3
    sample_args = parser.parse_args(["sample", "--run", "r", "--n", "2", "--out", "s.csv",
                                     "--data-workers", "0"])
    assert sample_args.data_workers == 0
    train_args = parser.parse_args(["train", "--space", "hybrid-tiny", "--out", "o",
                                    "--data-workers", "2"])
    assert train_cmd.build_config(train_args).data_workers == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "o", "--data-workers", "-1"])
    assert "expected an integer from 0 to" in capsys.readouterr().err

"""Data-parallel supernet training: gradient reduction, batch shards, bit-identity of a one-worker
run with a single process, and a real two-worker Ray Train run whose ranks train the same subnets."""

from __future__ import annotations

import hashlib
import itertools
import secrets

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from nas.errors import UserError
from nas.spaces import load_space
from nas.train import loop as loop_mod
from nas.train import step_archs, train
from nas.train.distributed import (
    DistributedContext,
    ReplicasDisagree,
    arch_digest_update,
    read_record,
    reduce_gradients,
    shard_bounds,
    train_distributed,
)
from nas.train.loop import SAMPLER_STREAM
from tests.test_train import SPACE, state_equal, tiny_config, write_digits_npz


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    return "npz:" + str(write_digits_npz(tmp_path_factory.mktemp("data") / "digits.npz"))


@given(n=st.integers(0, 200), world=st.integers(1, 9))
def test_shards_tile_the_batch(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def _grads(model, x, y, *, skip_last: bool = False) -> None:
    model.zero_grad(set_to_none=True)
    h = model[1](model[0](x))
    out = h[:, :2] if skip_last else model[2](h)  # skip_last: the last layer gets no gradient
    torch.nn.functional.cross_entropy(out, y).backward()


def test_two_simulated_ranks_give_the_full_batch_gradient():
    """Unequal shards (3 + 2 of 5): the weighted sum of shard-mean gradients is the full-batch
    mean gradient; a parameter only one rank touched gets that rank's weighted gradient."""
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    full = _model()
    _grads(full, x, y)
    expected = [p.grad.clone() for p in full.parameters()]

    ranks = [_model(), _model()]
    _grads(ranks[0], x[:3], y[:3])
    _grads(ranks[1], x[3:], y[3:])
    buffers = {}

    def capture(t):  # rank 0 "sends" its buffer
        buffers[0] = t.clone()

    def add_rank0(t):  # rank 1 receives the sum
        t += buffers[0]

    reduce_gradients(ranks[0].parameters(), 3 / 5, extra=torch.tensor([2.0, 3.0]),
                     all_reduce=capture)
    losses = reduce_gradients(
        ranks[1].parameters(), 2 / 5, extra=torch.tensor([1.0, 0.5]), all_reduce=add_rank0
    )
    for p, e in zip(ranks[1].parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-6)
    assert losses.tolist() == pytest.approx([1.6, 2.0])  # weighted means of the losses

    only = [_model(), _model()]
    _grads(only[0], x[:3], y[:3])
    _grads(only[1], x[3:], y[3:], skip_last=True)
    assert only[1][2].weight.grad is None
    reduce_gradients(only[0].parameters(), 0.5, all_reduce=capture)
    reduce_gradients(only[1].parameters(), 0.5, all_reduce=add_rank0)
    rank0 = only[0][2].weight.grad  # already weighted in place: 0.5 * its own gradient
    torch.testing.assert_close(only[1][2].weight.grad, rank0)


def test_untouched_parameters_keep_no_gradient():
    model = _model()
    _grads(model, torch.randn(3, 4), torch.tensor([0, 1, 0]), skip_last=True)
    reduce_gradients(model.parameters(), 1.0, all_reduce=lambda t: None)
    assert model[2].weight.grad is None and model[0].weight.grad is not None


def test_disagreeing_ranks_stop_the_run():
    space = load_space(SPACE)
    ctx = DistributedContext(0, 2, gather=lambda mine: [mine, {**mine, "digest": "other"}])
    x, y = torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    _, ys = ctx.on_step([space.largest()], x, y)
    assert len(ys) == 2
    lines: list[str] = []
    with pytest.raises(ReplicasDisagree, match="different subnets"):
        ctx.end_epoch(0, lines.append)
    assert lines and lines[0].startswith("ERROR")
    with pytest.raises(UserError, match="cannot be split"):
        DistributedContext(1, 5).on_step([space.largest()], x, y)


@pytest.fixture
def gloo_world_one(tmp_path):
    """A real one-process gloo group (all_reduce and all_gather_object really run)."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_one_worker_is_bit_identical_to_one_process(data_spec, tmp_path, gloo_world_one):
    config = tiny_config(data_spec, epochs=2)
    plain = train(config, tmp_path / "plain", progress=False)
    ctx = DistributedContext(0, 1, record_path=tmp_path / "dp" / "distributed.json")
    dp = train(config, tmp_path / "dp", progress=False, distributed=ctx)
    assert state_equal(plain.supernet.state_dict(), dp.supernet.state_dict())
    for a, b in zip(plain.history, dp.history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_acc_largest"] == b["val_acc_largest"]
    record = read_record(tmp_path / "dp")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]


def replay_digest(config, steps: int, epoch: int = 0) -> str:
    """The digest of the subnets a single process samples in ``epoch`` (0-based)."""
    space = load_space(config.space)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(SAMPLER_STREAM,)))
    h = hashlib.sha256()
    for e in range(epoch + 1):
        for _ in range(steps):
            archs = step_archs(config.schedule, space, e, config.epochs, rng,
                               sandwich_n=config.sandwich_n)
            if e == epoch:
                arch_digest_update(h, archs)
    return h.hexdigest()


@pytest.fixture
def ray_env(tmp_path, monkeypatch):
    """Local Ray with a token of its own (never ~/.ray), usage stats off."""
    pytest.importorskip("ray.train.torch")
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.long
def test_two_ray_workers_train_the_same_subnets_and_resume(data_spec, tmp_path, ray_env,
                                                           monkeypatch):
    from nas.distributed import ray_session

    config = tiny_config(data_spec, epochs=1)
    with ray_session(None, num_cpus=2):  # one local instance for the three runs below
        fresh = train_distributed(config, tmp_path / "run", workers=2, address="local")
        assert fresh.workers == 2 and len(fresh.history) == 1
        assert (tmp_path / "run" / "checkpoint.pt").is_file()
        assert fresh.history[0]["val_acc_largest"] > 0.2  # 10 classes: chance is 0.1
        ranks = fresh.record["epochs"][0]["ranks"]
        assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["steps"] > 1
        assert len({r["digest"] for r in ranks}) == 1
        assert ranks[0]["digest"] == replay_digest(config, ranks[0]["steps"])
        with pytest.raises(UserError, match="already holds a run"):
            train_distributed(config, tmp_path / "run", workers=2, address="local")

        # A single-process run dies in its second epoch; two workers resume it. Rank 1 must
        # start from the checkpoint too (weights and sampler state), or the digests differ.
        two = tiny_config(data_spec, epochs=2)
        out = tmp_path / "resumed"
        real = loop_mod._train_epoch

        def dies_in_second_epoch(run, epoch):
            if epoch == 1:
                raise KeyboardInterrupt
            return real(run, epoch)

        monkeypatch.setattr(loop_mod, "_train_epoch", dies_in_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            train(two, out, progress=False)
        monkeypatch.setattr(loop_mod, "_train_epoch", real)
        resumed = train_distributed(two, out, workers=2, address="local", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    (epoch,) = resumed.record["epochs"]
    assert epoch["epoch"] == 2 and len({r["digest"] for r in epoch["ranks"]}) == 1
    assert epoch["ranks"][0]["digest"] == replay_digest(two, epoch["ranks"][0]["steps"], 1)
    assert "resumed" in (out / "train.log").read_text()


def _cli(*argv: str):
    import argparse

    from nas.cli import train_cmd

    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers())
    return parser.parse_args(["train", *argv])


def test_cli_routes_workers_to_ray_train(data_spec, tmp_path, monkeypatch, capsys):
    import nas.train.distributed as dist_mod
    from nas.train.distributed import DistributedTrainResult

    calls = []

    def fake(config, out, *, workers, address, resume):
        calls.append((config.epochs, workers, address, resume))
        row = {"epoch": 1, "val_acc_largest": 0.5, "val_acc_smallest": 0.25}
        return DistributedTrainResult(tmp_path, workers, [row], {}, 1.0)

    monkeypatch.setattr(dist_mod, "train_distributed", fake)
    base = ("--out", str(tmp_path / "r"), "--space", SPACE, "--data", data_spec, "--epochs", "1")
    args = _cli(*base, "--workers", "2")
    assert args.func(args) == 0
    args = _cli(*base, "--ray-address", "auto")
    assert args.func(args) == 0
    assert calls == [(1, 2, None, False), (1, 1, "auto", False)]
    assert "on 2 workers" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # refused by the parser (nas.cli.types), exit code 2
        _cli(*base, "--workers", "0")

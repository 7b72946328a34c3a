"""Shared fixtures: shipped spaces and small supernets with non-trivial BN statistics."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
torch.set_num_threads(1)

# Same seed, same result: property tests draw the same examples on every run, CI's included (a
# counterexample found once is pinned with @example). HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

from nas.spaces.loader import shipped_spaces  # noqa: E402

SHIPPED = tuple(shipped_spaces())  # every YAML in search_spaces/, so a new space is tested too


def randomise_bn(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics so equivalence tests can fail."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return module


def train_tiny_run(out) -> None:
    """A finished 1-epoch hybrid-tiny run on digits in ``out`` (seconds; for export tests)."""
    from nas.cli import main

    rc = main(["train", "--space", "hybrid-tiny", "--data", "digits", "--epochs", "1",
               "--out", str(out), "--no-progress", "--threads", "1", "--sandwich-n", "1",
               "--recal-batches", "2", "--batch-size", "128"])
    assert rc == 0


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished 1-epoch hybrid-tiny run for the whole session: read it, never write into it
    (copy it first)."""
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train_tiny_run(out)
    return out

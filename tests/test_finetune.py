"""OFA-style fine-tuning of an extracted subnet: ``nas export --finetune`` and its building block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.arch import Architecture
from nas.cli import main
from nas.errors import UserError
from nas.train import load_supernet
from nas.train.evaluate import evaluate_model, recalibrated_subnet
from nas.train.finetune import FinetuneConfig, finetune_model
from tests.conftest import train_tiny_run

ARCH = Architecture.from_str("r12 | w12: ir_k5_e2 ir_k3_e1 | w16: mx_t1_c2 ir_k3_e3_se")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    train_tiny_run(out)
    return out


def _tuned(run_dir: Path, epochs: int, seed: int = 0) -> tuple[torch.nn.Module, list[dict]]:
    run = load_supernet(run_dir)
    model = recalibrated_subnet(run.supernet, ARCH, run.splits.train, recal_batches=2)
    history = finetune_model(model, run.splits, resolution=ARCH.resolution,
                             in_channels=run.space.in_channels,
                             config=FinetuneConfig(epochs=epochs, lr=3e-3, seed=seed))
    return model, history


def test_finetuning_a_barely_trained_subnet_improves_it(run_dir):
    run = load_supernet(run_dir)
    before = recalibrated_subnet(run.supernet, ARCH, run.splits.train, recal_batches=2)
    acc0 = evaluate_model(before, run.splits.val, resolution=12, in_channels=run.space.in_channels)["acc"]
    model, history = _tuned(run_dir, epochs=4)
    acc = evaluate_model(model, run.splits.val, resolution=12, in_channels=run.space.in_channels)["acc"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert acc > acc0 + 0.05, (acc0, acc)
    assert not model.training


def test_same_seed_same_weights_other_seed_other_weights(run_dir):
    a, _ = _tuned(run_dir, epochs=1, seed=0)
    b, _ = _tuned(run_dir, epochs=1, seed=0)
    c, _ = _tuned(run_dir, epochs=1, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_export_finetune_reports_before_and_after(run_dir, tmp_path):
    out = tmp_path / "exp"
    rc = main(["export", "--run", str(run_dir), "--arch", ARCH.to_str(), "--out", str(out),
               "--formats", "pt", "--no-measure", "--no-standalone-check", "--no-progress",
               "--finetune", "2", "--finetune-lr", "3e-3"])
    assert rc == 0
    card = json.loads((out / "model_card.json").read_text())
    ft = card["details"]["weights"]["finetune"]
    assert ft["config"]["epochs"] == 2 and ft["config"]["lr"] == 3e-3
    assert len(ft["history"]) == 2
    assert card["accuracy"]["validation"] == ft["after"]["val"]["acc"]
    assert ft["before"]["val"]["acc"] != ft["after"]["val"]["acc"]
    assert "Fine-tuned 2 epoch(s)" in (out / "MODEL_CARD.md").read_text()
    # the exported weights are the fine-tuned ones, not the inherited ones
    exported = torch.load(out / "model.state_dict.pt", weights_only=True)
    run = load_supernet(run_dir)
    inherited = recalibrated_subnet(run.supernet, ARCH, run.splits.train).state_dict()
    assert exported.keys() == inherited.keys()
    assert not all(torch.equal(exported[k], inherited[k]) for k in exported)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--finetune", "0"], "fine-tune epochs = 0"),
     (["--finetune", "1", "--finetune-lr", "-1"], "fine-tune lr"),
     (["--finetune-lr", "1e-3"], "--finetune-lr needs --finetune")],
)
def test_bad_finetune_options_exit_2(run_dir, tmp_path, capsys, args, message):
    rc = main(["export", "--run", str(run_dir), "--arch", ARCH.to_str(), "--out",
               str(tmp_path / "x"), "--formats", "pt", "--no-measure", "--no-progress", *args])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_config_validation():
    with pytest.raises(UserError):
        FinetuneConfig(epochs=1, batch_size=0)
    assert FinetuneConfig(epochs=3).to_dict()["epochs"] == 3

"""Supernet training: loss goes down, determinism, schedules, distillation, BN recalibration,
evaluation, NaN stop. Small: hybrid-tiny on a 300-image subset of digits (an .npz fixture)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import UserError
from nas.spaces import load_space
from nas.supernet import Supernet
from nas.train import (
    TrainConfig,
    TrainingDiverged,
    calibration_inputs,
    evaluate_subnet,
    load_checkpoint,
    load_supernet,
    recalibrate_bn,
    recalibrate_supernet_bn,
    restricted_space,
    step_archs,
    train,
)
from nas.train import loop as loop_mod
from nas.train.distill import distill_loss, student_loss
from nas.train.optim import WarmupCosine
from nas.train.rundir import space_to_dict
from nas.train.schedules import largest, phase_of, smallest
from tests.conftest import randomise_bn

SPACE = "hybrid-tiny"


def write_digits_npz(path: Path, n_train: int = 300, n_val: int = 100, n_test: int = 100) -> Path:
    """A small, fixed subset of scikit-learn's digits as an .npz data set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 15.9375).astype(np.uint8)  # 0..16 -> 0..255
    y = d.target.astype(np.int64)
    a, b = n_train, n_train + n_val
    np.savez(
        path,
        x_train=x[:a],
        y_train=y[:a],
        x_val=x[a:b],
        y_val=y[a:b],
        x_test=x[b : b + n_test],
        y_test=y[b : b + n_test],
    )
    return path


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    return "npz:" + str(write_digits_npz(tmp_path_factory.mktemp("data") / "digits.npz"))


def tiny_config(data_spec: str, **kw) -> TrainConfig:
    base = dict(
        space=SPACE,
        data=data_spec,
        epochs=3,
        batch_size=32,
        sandwich_n=1,
        lr=5e-3,
        recal_batches=2,
        eval_batch_size=128,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(data_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    return train(tiny_config(data_spec), out, progress=False)


# ----- the training run -----
def test_short_run_lowers_the_loss_and_writes_the_run_folder(trained):
    h = trained.history
    assert len(h) == 3
    assert h[-1]["train_loss"] < h[0]["train_loss"] - 0.1
    assert h[-1]["val_loss_largest"] < h[0]["val_loss_largest"] - 0.1
    assert h[-1]["val_acc_largest"] > 0.2  # 10 classes: chance is 0.1
    root = trained.run_dir
    for name in ("config.json", "space.yaml", "checkpoint.pt", "metrics.csv", "train.log"):
        assert (root / name).is_file(), name
    record = json.loads((root / "config.json").read_text())
    assert record["space"]["hash"] == load_space(SPACE).hash()
    assert record["data"]["fingerprint"] == trained.splits.fingerprint()
    assert {"torch", "numpy", "python"} <= set(record["versions"])
    assert record["train"]["lr"] == 5e-3 and record["train"]["schedule"] == "sandwich"
    lines = (root / "metrics.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,phase,lr,train_loss")
    assert "epoch 3/3" in (root / "train.log").read_text()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["complete"] and summary["epochs"] == 3


def test_load_supernet_recreates_the_run(trained):
    run = load_supernet(trained.run_dir)
    assert state_equal(run.supernet.state_dict(), trained.supernet.state_dict())
    assert run.space.hash() == trained.space.hash() and run.epoch == 3
    assert run.splits.fingerprint() == trained.splits.fingerprint()
    assert run.config == TrainConfig.from_dict(run.config.to_dict())
    arch = run.space.largest()
    a = evaluate_subnet(run.supernet, arch, run.splits, recal_batches=2)
    b = evaluate_subnet(trained.supernet, arch, trained.splits, recal_batches=2)
    assert a == b


def test_same_seed_same_weights_other_seed_other_weights(data_spec, tmp_path):
    cfg = tiny_config(data_spec, epochs=1)
    a = train(cfg, tmp_path / "a", progress=False).supernet.state_dict()
    b = train(cfg, tmp_path / "b", progress=False).supernet.state_dict()
    c = train(tiny_config(data_spec, epochs=1, seed=1), tmp_path / "c", progress=False)
    assert state_equal(a, b)
    assert not state_equal(a, c.supernet.state_dict())


def test_training_leaves_the_callers_random_state_alone(data_spec, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(tiny_config(data_spec, epochs=1, eval_every=1), tmp_path / "r", progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_progressive_and_delayed_and_fixed_runs(data_spec, tmp_path):
    for schedule, extra in (
        ("progressive", {"epochs": 4}),
        ("delayed", {"epochs": 2}),
        ("fixed", {"epochs": 1, "arch": load_space(SPACE).smallest().to_str(), "sandwich_n": 0}),
    ):
        res = train(
            tiny_config(data_spec, schedule=schedule, **extra), tmp_path / schedule, progress=False
        )
        phases = [r["phase"] for r in res.history]
        per_step = [r["subnets_per_step"] for r in res.history]
        if schedule == "progressive":
            assert phases == ["largest", "operator", "depth", "width"]
            assert per_step == [1.0, 3.0, 3.0, 3.0]
        elif schedule == "delayed":
            assert phases == ["largest", "sandwich"] and per_step == [1.0, 3.0]
        else:
            assert phases == ["fixed"] and per_step == [1.0]


def test_refuses_bad_settings(data_spec, tmp_path):
    with pytest.raises(UserError, match="--arch"):
        tiny_config(data_spec, schedule="fixed")
    with pytest.raises(UserError, match="lr"):
        tiny_config(data_spec, lr=-1.0)
    with pytest.raises(UserError, match="phase_fractions"):
        tiny_config(data_spec, phase_fractions=(0.5, 0.2, 0.9))
    with pytest.raises(UserError, match="classes"):
        train(tiny_config(data_spec, space="ofa-mbv3"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


# ----- NaN / inf -----
def test_absurd_learning_rate_stops_with_a_message(data_spec, tmp_path):
    cfg = tiny_config(data_spec, lr=1e30, grad_clip=0.0, warmup_epochs=0.0, epochs=2)
    with pytest.raises(TrainingDiverged, match=r"is (nan|inf|-inf) at epoch \d/2, step \d+/9"):
        train(cfg, tmp_path / "r", progress=False)


def test_injected_nan_keeps_the_last_good_checkpoint(data_spec, tmp_path, monkeypatch):
    real = loop_mod.supervised_loss
    calls = {"n": 0}
    steps_per_epoch = 300 // 32

    def flaky(logits, targets, **kw):
        calls["n"] += 1
        loss = real(logits, targets, **kw)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 3 else loss

    monkeypatch.setattr(loop_mod, "supervised_loss", flaky)
    out = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match=r"epoch 2/3, step 3/9") as info:
        train(tiny_config(data_spec), out, progress=False)
    assert "checkpoint" in str(info.value) and "after epoch 1" in str(info.value)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert len((out / "metrics.csv").read_text().splitlines()) == 2
    assert "ERROR" in (out / "train.log").read_text()


def test_fixed_runs_validate_their_own_architecture(data_spec, tmp_path):
    arch = load_space(SPACE).smallest()
    cfg = tiny_config(data_spec, schedule="fixed", arch=arch.to_str(), epochs=1, sandwich_n=0)
    row = train(cfg, tmp_path / "f", progress=False).history[0]
    assert "val_acc_arch" in row and "val_acc_largest" not in row


def test_zero_init_makes_every_residual_branch_the_identity():
    from nas.arch import AttnLayer, ConvLayer, MixerLayer
    from nas.train.init import zero_init_residual_branches

    torch.manual_seed(0)
    net = Supernet(load_space(SPACE)).eval()
    assert zero_init_residual_branches(net) > 0
    slot = net.stages[1][1]  # second layer of the hybrid stage: residual for every kind
    x = torch.randn(2, 24, 4, 4)
    for layer in (ConvLayer(3, 2, True), AttnLayer(2, 2), MixerLayer(1, 2)):
        assert torch.allclose(slot(x, layer, 24), x), layer
    first = net.stages[0][0]  # a stage's first conv layer has no skip: it must not output zeros
    assert first(torch.randn(2, 8, 8, 8), ConvLayer(3, 2), 12).abs().sum() > 0


# ----- schedules -----
@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["hybrid-tiny", "hybrid-cifar"]),
    schedule=st.sampled_from(["sandwich", "progressive", "delayed"]),
    total=st.integers(1, 12),
    data=st.data(),
    seed=st.integers(0, 2**16),
    n=st.integers(0, 3),
)
def test_schedules_give_valid_archs_of_the_right_phase(name, schedule, total, data, seed, n):
    space = load_space(name)
    epoch = data.draw(st.integers(0, total - 1))
    archs = step_archs(schedule, space, epoch, total, np.random.default_rng(seed), sandwich_n=n)
    again = step_archs(schedule, space, epoch, total, np.random.default_rng(seed), sandwich_n=n)
    assert archs == again  # a pure function of its arguments
    for a in archs:
        space.validate(a)
    assert archs[0] == space.largest()
    phase = phase_of(schedule, epoch, total)
    if phase == "largest":
        assert len(archs) == 1
        return
    assert len(archs) == 2 + n
    if schedule == "progressive" and phase != "width":
        idx = ("largest", "operator", "depth").index(phase)
        sub = restricted_space(space, idx)
        assert archs[1] == sub.smallest()
        for a in archs[1:]:
            sub.validate(a)
            assert a.widths == tuple(max(s.widths) for s in space.stages)
            if phase == "operator":
                assert a.depths == tuple(s.max_depth for s in space.stages)
    else:
        assert archs[1] == space.smallest()


@pytest.mark.parametrize("name", ["hybrid-tiny", "hybrid-cifar", "ofa-mbv3"])
def test_restricted_spaces_nest_and_contain_the_largest(name):
    space = load_space(name)
    subs = [restricted_space(space, p) for p in (1, 2, 3)]
    assert subs[2] == space
    assert subs[0].size() < subs[1].size() < space.size()
    for sub in subs:
        assert sub.contains(space.largest())
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = subs[0].sample(rng)
        assert subs[1].contains(a) and space.contains(a)
        # operator phase: kernel, layer kind and resolution vary; hidden sizes do not
        for spec, stage in zip(space.stages, a.stages):
            for layer in stage.layers:
                opts = layer.options()
                for key in ("expand", "heads", "mlp_ratio", "token_ratio", "channel_ratio"):
                    if key in opts:
                        allowed = spec.block(layer.kind).option_choices()[key]
                        assert opts[key] == max(allowed)


def test_fixed_and_delayed_schedules():
    space = load_space(SPACE)
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    assert step_archs("fixed", space, 0, 5, rng, arch=arch) == [arch]
    assert step_archs("delayed", space, 4, 10, rng, delay_fraction=0.5) == [space.largest()]
    assert len(step_archs("delayed", space, 5, 10, rng, delay_fraction=0.5, sandwich_n=2)) == 4
    assert largest(space) == space.largest() and smallest(space) == space.smallest()


# ----- losses and LR -----
def test_distillation_losses():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(8, 10, generator=gen, requires_grad=True)
    t = torch.randn(8, 10, generator=gen, requires_grad=True)
    p = torch.softmax(t, -1)
    entropy = -(p * torch.log(p)).sum(-1).mean()
    ce = distill_loss(s, t, kind="soft_ce")
    kl = distill_loss(s, t, kind="kl")
    assert torch.allclose(ce, kl + entropy, atol=1e-5)
    assert distill_loss(t, t, kind="kl").abs().item() < 1e-5
    ce.backward()
    assert t.grad is None  # the teacher's logits are detached
    hot = distill_loss(s, t, kind="soft_ce", temperature=4.0)
    assert torch.allclose(
        hot, 16 * -(torch.softmax(t / 4, -1) * torch.log_softmax(s / 4, -1)).sum(-1).mean()
    )
    y = torch.randint(0, 10, (8,), generator=gen)
    mixed = student_loss(s, y, t, weight=0.25)
    hard = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(mixed, 0.25 * distill_loss(s, t) + 0.75 * hard)
    assert torch.allclose(student_loss(s, y, None), hard)


def test_warmup_cosine():
    f = WarmupCosine(total=100, warmup=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1)
    values = [f(s) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert math.isclose(f(55), 0.55, rel_tol=1e-9)


# ----- BN recalibration and evaluation -----
@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    return randomise_bn(Supernet(load_space(SPACE)))


def _bn_stats(model):
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def test_bn_recalibration_changes_running_stats_only(random_net, trained):
    space = random_net.space
    arch = space.largest()
    model = random_net.extract(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = {k: v.clone() for k, v in model.named_parameters()}
    inputs = list(
        calibration_inputs(
            trained.splits.train,
            resolution=arch.resolution,
            in_channels=3,
            batches=3,
            batch_size=32,
        )
    )
    new = recalibrate_bn(model, inputs)
    assert new is not model
    assert state_equal(model.state_dict(), before)  # the input model is untouched
    for k, v in new.named_parameters():
        assert torch.equal(v, params[k]), k
    changed = [k for k, v in _bn_stats(new).items() if not torch.equal(v, before[k])]
    assert changed and all(
        k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed
    )
    assert len([k for k in changed if k.endswith("running_mean")]) == len(
        [m for m in new.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    )
    assert not new.training and all(not m.training for m in new.modules())
    assert all(m.momentum == 0.1 for m in new.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # cumulative average: the stem BN's running mean is the mean of the per-batch means
    stem_conv = new.stem[0]
    with torch.no_grad():
        means = [stem_conv(x).mean((0, 2, 3)) for x in inputs]
    assert torch.allclose(new.stem[1].running_mean, torch.stack(means).mean(0), atol=1e-5)


def test_supernet_variant_matches_recalibrating_the_extracted_model(random_net, trained):
    import copy

    net = copy.deepcopy(random_net)
    arch = net.space.smallest()
    params = {k: v.clone() for k, v in net.named_parameters()}

    def inputs():
        return calibration_inputs(
            trained.splits.train,
            resolution=arch.resolution,
            in_channels=3,
            batches=3,
            batch_size=32,
        )

    a = recalibrate_bn(net.extract(arch), inputs())
    recalibrate_supernet_bn(net, arch, inputs())
    b = net.extract(arch)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.allclose(va.float(), vb.float(), atol=1e-5), ka
    for k, v in net.named_parameters():
        assert torch.equal(v, params[k]), k


def test_evaluate_subnet_leaves_the_supernet_untouched(trained):
    net = trained.supernet
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = evaluate_subnet(net, net.space.smallest(), trained.splits, recal_batches=2)
    assert 0.0 <= res["acc"] <= 1.0 and res["n"] == len(trained.splits.val) and res["loss"] > 0
    test = evaluate_subnet(net, net.space.smallest(), trained.splits, split="test", recal_batches=2)
    assert test["n"] == len(trained.splits.test)
    assert state_equal(net.state_dict(), before)
    with pytest.raises(UserError, match="split"):
        evaluate_subnet(net, net.space.smallest(), trained.splits, split="holdout")


def test_recalibration_helps_a_trained_supernet(trained):
    """Without recalibration, subnets run on the mixed statistics of all subnets; with it, the
    smallest subnet's accuracy should not be worse."""
    net, splits = trained.supernet, trained.splits
    arch = net.space.smallest()
    from nas.train.evaluate import evaluate_model

    raw = evaluate_model(net.extract(arch), splits.val, resolution=arch.resolution, in_channels=3)
    recal = evaluate_subnet(net, arch, splits, recal_batches=8)
    assert recal["loss"] <= raw["loss"] + 0.05


def test_space_yaml_round_trip():
    from nas.spaces import space_from_dict

    for name in ("hybrid-tiny", "hybrid-cifar", "ofa-mbv3"):
        space = load_space(name)
        assert space_from_dict(space_to_dict(space)).hash() == space.hash()


def test_benchmark_replay_of_the_sampler_matches_training(data_spec, tmp_path, monkeypatch):
    from nas.benchmarks.supernet_digits import slot_updates

    seen: dict = {}
    real = loop_mod.step_archs

    def record(*args, **kw):
        archs = real(*args, **kw)
        for arch in archs:
            for i, stage in enumerate(arch.stages):
                for j, layer in enumerate(stage.layers):
                    seen[(i, j, layer.kind)] = seen.get((i, j, layer.kind), 0) + 1
        return archs

    monkeypatch.setattr(loop_mod, "step_archs", record)
    cfg = tiny_config(data_spec, epochs=2, schedule="progressive", eval_every=2)
    train(cfg, tmp_path / "r", progress=False)
    assert slot_updates(cfg, 300 // 32) == seen


def test_sweep_variants_are_distinct_and_its_best_is_the_default():
    from nas.benchmarks.supernet_sweep import SPACE, VARIANTS, variant_config

    configs = {name: variant_config(overrides) for name, overrides in VARIANTS.items()}
    settings = [json.dumps(c.to_dict(), sort_keys=True) for c in configs.values()]
    assert len(set(settings)) == len(settings)
    default = TrainConfig(space=SPACE, data="digits", threads=1, eval_every=100)
    assert configs["bs16-lr3e-3-kd0.25-15ep"].differences(default) == {}



def test_amp_is_precision_bf16():
    """--amp is the familiar spelling of --precision bf16 (tests/test_gpu_check.py trains it)."""
    from nas.cli import build_parser
    from nas.cli.train_cmd import build_config

    args = build_parser().parse_args(["train", "--space", "hybrid-tiny", "--out", "x", "--amp"])
    assert build_config(args).precision == "bf16"

"""The Python front door: ``import nas`` is light, every public name resolves, reprs are short,
the ask/tell study, and docs/quickstart.py end to end (which also checks nas.load_model)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_import_nas_is_light_and_versioned():
    code = ("import sys, nas; print(nas.__version__); "
            "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'scipy', 'optuna', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.splitlines()
    assert out[0] and out[1] == "[]"


def test_every_public_name_resolves():
    for name in nas.__all__:
        assert getattr(nas, name) is not None, name
    with pytest.raises(AttributeError):
        nas.no_such_name  # noqa: B018


def test_reprs_are_short():
    for name in nas.shipped_spaces():
        space = nas.load_space(name)
        arch = space.sample(np.random.default_rng(0))
        assert len(repr(space)) <= 400, repr(space)
        assert eval(repr(arch), {"Architecture": nas.Architecture.from_str}) == arch
        assert len(repr(nas.Supernet(space))) <= 200
    study = nas.create_study("hybrid-tiny", direction="max", metric="acc")
    assert len(repr(study)) <= 200 and len(repr(study.ask())) <= 300


def _toy_acc(costs: dict[str, float]) -> float:
    return -abs(costs["params"] - 15_000) / 1e4


def test_study_asks_distinct_architectures_and_keeps_the_front():
    study = nas.create_study("hybrid-tiny", {"acc": "max", "params": "min"},
                             constraints=["params<=20K"], seed=3)
    for _ in range(40):
        trial = study.ask()
        study.tell(trial, {"acc": _toy_acc(trial.costs), "params": trial.costs["params"]})
    ids = [t.arch_id for t in study.trials]
    assert len(set(ids)) == len(ids) == 40
    front = study.best_trials
    feasible = [t for t in study.trials if t.costs["params"] <= 20_000]
    assert front and all(study.feasible(t) for t in front)
    for t in feasible:  # nothing feasible dominates a front member
        for f in front:
            assert not (t.values["acc"] >= f.values["acc"] and t.values["params"] <= f.values["params"]
                        and (t.values["acc"], t.values["params"]) != (f.values["acc"], f.values["params"]))
    # the best accuracy of the feasible trials is on the front, first
    assert front[0].values["acc"] == max(t.values["acc"] for t in feasible)
    frame = study.trials_dataframe()
    assert list(frame["arch_id"]) == ids and "values_acc" in frame


def test_study_same_seed_same_proposals_and_clear_errors():
    def run(seed):
        study = nas.create_study("hybrid-tiny", direction="max", metric="acc", seed=seed,
                                 algo="evolution")
        study.optimize(lambda arch: {"acc": float(arch.resolution + sum(arch.widths))}, 25)
        return [t.arch_id for t in study.trials]

    assert run(1) == run(1)
    study = nas.create_study("hybrid-tiny", direction="max", metric="acc")
    trial = study.ask()
    with pytest.raises(UserError, match="missing"):
        study.tell(trial, {"loss": 1.0})
    study.tell(trial, {"acc": 0.5})
    with pytest.raises(UserError, match="already told"):
        study.tell(trial, {"acc": 0.5})
    with pytest.raises(UserError, match="expected 'max' or 'min'"):
        nas.create_study("hybrid-tiny", {"acc": "up"})
    assert study.best_trial.number == 0


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_quickstart_runs_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "docs" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(tmp_path)
    assert out["front"] >= 1 and out["study_trials"] == 30
    assert (tmp_path / "export" / "model.onnx").is_file()
    # load_model by ID (found in the search outputs of the folder), eval mode, BN recalibrated:
    # the same outputs as the architecture given directly
    by_id = nas.load_model(tmp_path, out["best"])
    trained = nas.load_supernet(tmp_path)
    from nas.export.resolve import find_by_id

    found, _ = find_by_id(out["best"], tmp_path)
    direct = nas.load_model(tmp_path / "supernet", found)
    assert not by_id.training
    x = nas.model_input(trained.space, found, trained.splits.val.x[:16])
    with torch.no_grad():
        torch.testing.assert_close(by_id(x), direct(x))
        assert by_id(x).shape == (16, trained.space.num_classes)
    with pytest.raises(UserError, match="not a run folder"):
        nas.load_model(tmp_path / "export", out["best"])
    _check_onnx_metadata(tmp_path / "export", found, trained.splits)


def _check_onnx_metadata(folder, arch, splits):
    """The exported ONNX file carries its preprocessing and architecture; the card agrees."""
    import json

    import onnx
    import onnxruntime as ort

    model = onnx.load(str(folder / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["arch"] == arch.to_str() and meta["arch_id"] == arch.arch_id()
    assert json.loads(meta["class_names"]) == list(splits.class_names)
    assert json.loads(meta["mean"]) == pytest.approx(list(splits.mean))
    assert json.loads(meta["std"]) == pytest.approx(list(splits.std))
    assert json.loads(meta["input_shape"]) == ["batch", 3, arch.resolution, arch.resolution]
    assert meta["channel_order"] == "gray repeated to 3 channels"  # digits are 1-channel
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(folder / "model.onnx"))
    assert session.get_modelmeta().custom_metadata_map["arch_id"] == arch.arch_id()
    pre = json.loads((folder / "model_card.json").read_text())["details"]["preprocessing"]
    assert pre["channel_order"] == meta["channel_order"]
    assert pre["class_names"] == json.loads(meta["class_names"])



def test_a_supernet_from_your_own_loop_registers_as_a_run(tmp_path, capsys):
    """A few steps of a user's own training loop, registered: load_model, nas show and the
    weak-run checks read it; nas train --resume refuses it in one line."""
    from nas.cli import main
    from nas.data import load_dataset

    space = nas.load_space("hybrid-tiny")
    torch.manual_seed(0)
    supernet = nas.Supernet(space)
    splits = load_dataset("digits", seed=0)
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=3e-3)
    arch = space.largest()
    for step in range(3):  # "your own loop"
        x = nas.model_input(space, arch, splits.train.x[step * 32:(step + 1) * 32])
        loss = torch.nn.functional.cross_entropy(supernet(x, arch), splits.train.y[step * 32:
                                                                                 (step + 1) * 32])
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    run = nas.register_run(supernet, tmp_path / "mine", data="digits", epochs=1)
    model = nas.load_model(run, space.smallest())
    assert not model.training
    from nas.runs import read_run

    info = read_run(run)
    assert info.kind == "train" and info.complete and info.val_acc_largest is not None
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "own loop" in capsys.readouterr().err
    with pytest.raises(UserError, match="already holds a run"):
        nas.register_run(supernet, run)


def test_study_with_a_storage_opens_in_optuna(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'mine.db'}"
    study = nas.create_study("hybrid-tiny", {"acc": "max", "params": "min"}, storage=url,
                             study_name="mine", constraints=["params<=20K"])
    study.optimize(lambda arch: {"acc": arch.resolution / 16, "params": 1.0}, 5)
    trials = optuna.load_study(study_name="mine", storage=url).get_trials()
    assert [t.user_attrs["arch_id"] for t in trials] == [t.arch_id for t in study.trials]
    assert trials[0].values == [study.trials[0].values["acc"], 1.0]
    assert trials[0].params["resolution"] == study.trials[0].arch.resolution
    assert trials[0].user_attrs["flops"] == study.trials[0].costs["flops"]


def test_profile_and_sample_pass_batch_precisions_and_data_workers_through(monkeypatch, tmp_path):
    """The front door offers what `nas profile --batch --precisions` and `nas sample
    --data-workers --precisions` do, and hands it to the functions those commands call."""
    from nas.latency import space_profile
    from nas.sample import measure

    seen: dict[str, dict] = {}
    monkeypatch.setattr(space_profile, "profile_space",
                        lambda *a, **kw: seen.setdefault("profile", kw))
    monkeypatch.setattr(measure, "sample_subnets",
                        lambda *a, **kw: seen.setdefault("sample", kw))
    nas.profile_latency("hybrid-tiny", tmp_path / "t.csv", device="onnxruntime", batch=32,
                        precisions="fp32,int8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # only its presence is checked here
    nas.sample_subnets(tmp_path / "run", tmp_path / "s.csv", n=4, data_workers=2,
                       precisions=["fp32", "int8"])
    assert (seen["profile"]["batch"], seen["profile"]["precisions"]) == (32, "fp32,int8")
    assert (seen["sample"]["data_workers"], seen["sample"]["precisions"]) == (2, ["fp32", "int8"])

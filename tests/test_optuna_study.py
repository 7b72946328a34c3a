"""A study written by ``nas search --algo optuna --storage`` opens in Optuna's own tools: one trial
per distinct architecture, parameters named by meaning, the architecture and its exact costs as
user attributes, and a resumed search never publishes an architecture twice."""

from __future__ import annotations

import optuna
import pytest

from nas.arch import Architecture
from nas.cli import main
from nas.costs import costs
from nas.spaces import load_space


def _search(tmp_path, budget: int, *extra: str) -> int:
    return main(["search", "--space", "hybrid-tiny", "--algo", "optuna", "--objective",
                 "min:flops", "--objective", "max:params", "--constraint", "params:le:20K",
                 "--budget", str(budget), "--storage", f"sqlite:///{tmp_path / 'study.db'}",
                 "--study-name", "tiny", "--out", str(tmp_path / "search"), "--no-progress",
                 *extra])


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("optuna")
    assert _search(path, 30) == 0
    return path


def test_one_trial_per_distinct_architecture_with_named_params(study_dir):
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir / 'study.db'}")
    trials = study.get_trials()
    ids = [t.user_attrs["arch_id"] for t in trials]
    assert len(trials) == 30 == len(set(ids))
    space = load_space("hybrid-tiny")
    for t in trials:
        arch = Architecture.from_str(t.user_attrs["arch"])
        assert arch.arch_id() == t.user_attrs["arch_id"]
        c = costs(space, arch)
        assert (t.user_attrs["flops"], t.user_attrs["params"]) == (c.flops, c.params)
        assert t.values == [c.flops, c.params]
        assert t.params["resolution"] == arch.resolution
        assert t.params["hybrid.depth"] == arch.stages[1].depth
        kinds = [t.params[f"hybrid.layer{j}.kind"] for j in range(arch.stages[1].depth)]
        assert kinds == [layer.kind for layer in arch.stages[1].layers]
        assert f"hybrid.layer{arch.stages[1].depth}" not in t.params  # beyond the depth: absent
        assert list(t.constraints) == ["params<=20000"]
    frame = study.trials_dataframe()
    assert "params_hybrid.layer0.kind" in frame and "user_attrs_arch" in frame


def test_resume_adds_only_new_architectures(study_dir):
    assert _search(study_dir, 45, "--resume") == 0
    trials = optuna.load_study(study_name="tiny",
                               storage=f"sqlite:///{study_dir / 'study.db'}").get_trials()
    assert len(trials) == 45 == len({t.user_attrs["arch_id"] for t in trials})

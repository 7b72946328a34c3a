"""``nas search`` end to end on hybrid-tiny: every algorithm writes every output, nothing emitted
breaks a constraint, resumed == uninterrupted, infeasible constraints exit 2 with the minima,
accuracy measured with a supernet, LINAS-style refinement, and front IDs resolvable by
``nas export``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas import costs
from nas.arch import Architecture
from nas.cli import main
from nas.export.resolve import resolve_architecture
from nas.latency.space_units import predict_latency
from nas.sample import sample_subnets
from nas.sample.fit import fit_predictor
from nas.sample.measure import EvalSettings, SubnetEvaluator
from nas.search.constraints import parse_constraint
from nas.search.pareto import nondominated_mask
from nas.search.space_search import run_search
from nas.spaces import load_space
from nas.train import TrainConfig, load_supernet, train
from tests.test_fit_cli import write_synthetic_samples
from tests.test_sampling import write_digits_npz
from tests.test_search_space_problem import PER_KIND, fake_table

SPACE = "hybrid-tiny"
TINY = load_space(SPACE)
SETTINGS = EvalSettings(recal_batches=2, recal_batch_size=32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search_inputs")
    write_synthetic_samples(root / "samples.csv", n=90)
    fit_predictor(root / "samples.csv", out=root / "ridge")
    fit_predictor(root / "samples.csv", model="gbm", out=root / "gbm")
    fake_table(TINY, root / "lut.csv", calibration=PER_KIND)
    return {"ridge": root / "ridge", "gbm": root / "gbm", "lut": root / "lut.csv"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A 1-epoch hybrid-tiny supernet, 30 measured subnets and a ridge fitted on them."""
    root = tmp_path_factory.mktemp("search_run")
    data = "npz:" + str(write_digits_npz(root / "digits.npz", n_train=200, n_val=60, n_test=60))
    config = TrainConfig(space=SPACE, data=data, epochs=1, batch_size=32, sandwich_n=1, lr=5e-3,
                         threads=1, eval_every=1, recal_batches=2)
    train(config, root / "run", progress=False)
    sample_subnets(root / "run", root / "samples.csv", n=30, settings=SETTINGS, progress=False)
    fit_predictor(root / "samples.csv", out=root / "ridge")
    return {"run": root / "run", "samples": root / "samples.csv", "ridge": root / "ridge"}


def lat_bound(lut: Path, q: float = 0.5) -> float:
    """A latency bound at quantile ``q`` of random hybrid-tiny subnets (so it binds)."""
    from nas.latency.table import LatencyTable
    from nas.sample import draw_architectures

    table = LatencyTable.load(lut)
    return float(np.quantile(predict_latency(table, TINY, draw_architectures(TINY, 200, seed=9)),
                             q))


def search(out: Path, *extra: str, budget: int = 40, algo: str = "evolution",
           objectives=("max:accuracy", "min:latency_ms"), constraints=()) -> int:
    argv = ["search", "--space", SPACE, "--out", str(out), "--algo", algo,
            "--budget", str(budget), "--seed", "1", "--no-progress"]
    argv += [a for o in objectives for a in ("--objective", o)]
    argv += [a for c in constraints for a in ("--constraint", c)]
    return main([*argv, *extra])


def check_front_is_valid(out: Path, constraints: list[str], lut: Path | None) -> pd.DataFrame:
    """Every front member meets every constraint by the exact per-architecture functions, and no
    feasible evaluated architecture dominates it."""
    from nas.latency.table import LatencyTable

    front = pd.read_csv(out / "front.csv")
    evaluated = pd.read_csv(out / "evaluated.csv")
    table = LatencyTable.load(lut) if lut is not None else None
    parsed = [parse_constraint(c) for c in constraints]
    for _, row in front.iterrows():
        arch = Architecture.from_json(row["arch_json"])
        assert arch.arch_id() == row["arch_id"] and arch.to_str() == row["arch"]
        exact = costs.costs(TINY, arch).as_dict()
        exact["latency_ms"] = float(predict_latency(table, TINY, [arch])[0]) if table else None
        for c in parsed:
            assert c.satisfied(exact[c.metric]), (row["arch_id"], str(c), exact[c.metric])
        for name in ("flops", "params", "memory"):
            assert row[name] == exact[name]
    summary = json.loads((out / "search.json").read_text())
    signs = [-1.0 if o.startswith("max:") else 1.0 for o in summary["settings"]["objectives"]]
    names = [o.split(":", 1)[1] for o in summary["settings"]["objectives"]]
    feasible = evaluated[evaluated["feasible"]]
    f = feasible[names].to_numpy() * np.array(signs)
    on_front = feasible["on_front"].to_numpy()
    assert on_front.sum() == len(front)
    assert nondominated_mask(f)[on_front].all()
    return front


@pytest.mark.parametrize("algo", ["evolution", "random", "mp", "optuna"])
def test_every_algorithm_writes_every_output_and_emits_only_feasible_archs(algo, inputs,
                                                                           tmp_path, capsys):
    bound = lat_bound(inputs["lut"])
    cons = [f"latency_ms<={bound:.6f}", "memory<=64KB"]
    out = tmp_path / "run" / "search"
    rc = search(out, "--predictor", str(inputs["ridge"]), "--table", str(inputs["lut"]), algo=algo,
                constraints=cons)
    assert rc == 0, capsys.readouterr().err
    for name in ("front.csv", "evaluated.csv", "pareto.png", "search.json", "state.json"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front = check_front_is_valid(out, cons, inputs["lut"])
    assert len(front) >= 1
    for col in ("arch_id", "arch", "arch_json", "accuracy", "val_acc", "latency_ms", "flops",
                "params", "memory"):
        assert col in front.columns
    evaluated = pd.read_csv(out / "evaluated.csv")
    if algo != "mp":
        assert len(evaluated) == 40 and evaluated["arch_id"].is_unique
    # one JSON per front member, found by 'nas export --arch ID' in the run folder
    files = sorted((out / "front").glob("*.json"))
    assert {p.stem for p in files} == set(front["arch_id"])
    record = json.loads(files[0].read_text())
    assert {"arch_id", "arch", "arch_json", "metrics"} <= set(record)
    resolved = resolve_architecture(record["arch_id"], TINY, run_dir=out.parent)
    assert resolved.arch.arch_id() == record["arch_id"] and resolved.how == "id"
    summary = json.loads((out / "search.json").read_text())
    assert summary["space"]["hash"] == TINY.hash() and summary["settings"]["seed"] == 1
    assert summary["feasibility"]["feasible"] and summary["feasibility"]["joint"] is True
    assert summary["counts"]["front"] == len(front)
    assert summary["timings"]["search_s"] >= 0
    assert "front of" in capsys.readouterr().out


def test_mp_without_predictor_maximises_deepmad_and_equals_the_milp_optimum(tmp_path):
    from nas.search.mp import MILPSearch

    outcome = run_search(SPACE, objectives=["max:accuracy"], constraints=["flops<=400K"],
                         algo="mp", budget=3, out=tmp_path / "mp", progress=False)
    best = MILPSearch(TINY, constraints={"flops": 400e3}).solve()
    # the optimum's value, not its architecture: interchangeable slots of a stage tie (at_h1 then
    # at_h2 scores as at_h2 then at_h1), and the two solves may return different ones of a tie
    assert outcome.best.metrics["deepmad_score"] == pytest.approx(best.objective, rel=1e-9)
    assert outcome.best.metrics["flops"] <= 400e3
    assert len(outcome.result) == 3  # top-3 by no-good cuts


def test_single_objective_evolution_is_regularised_evolution(inputs, tmp_path):
    outcome = run_search(SPACE, objectives=["max:accuracy"], constraints=["flops<=300K"],
                         algo="evolution", budget=60, seed=0, predictor=inputs["ridge"],
                         out=tmp_path / "re", progress=False)
    assert outcome.result.algorithm == "regularized_evolution"
    feasible = outcome.result.feasible
    assert outcome.best.metrics["accuracy"] == pytest.approx(
        outcome.result.metrics["accuracy"][feasible].max())
    assert (tmp_path / "re" / "pareto.png").is_file()


@pytest.mark.parametrize("algo", ["evolution", "random", "optuna"])
def test_resumed_search_equals_the_uninterrupted_one(algo, inputs, tmp_path):
    kw = ("--predictor", str(inputs["ridge"]))
    cons = ["flops<=1.2M"]
    assert search(tmp_path / "a", *kw, budget=37, algo=algo, constraints=cons,
                  objectives=("max:accuracy", "min:flops")) == 0
    if algo == "evolution":  # a state.json as version 1 wrote it resumes the same
        state_file = tmp_path / "a" / "state.json"
        state = json.loads(state_file.read_text())
        assert (state.pop("format"), state.pop("format_version")) == ("nas.search.state", 2)
        state.pop("problem")
        state_file.write_text(json.dumps({"format": "nas.search.run-state/1", **state}))
    assert search(tmp_path / "a", *kw, "--resume", budget=90, algo=algo, constraints=cons,
                  objectives=("max:accuracy", "min:flops")) == 0
    assert search(tmp_path / "b", *kw, budget=90, algo=algo, constraints=cons,
                  objectives=("max:accuracy", "min:flops")) == 0
    a = pd.read_csv(tmp_path / "a" / "evaluated.csv")
    b = pd.read_csv(tmp_path / "b" / "evaluated.csv")
    pd.testing.assert_frame_equal(a, b)
    assert json.loads((tmp_path / "a" / "search.json").read_text())["counts"]["resumed_at"] == 37


def test_resume_refuses_other_settings_and_a_used_out_needs_resume(inputs, tmp_path, capsys):
    kw = ("--predictor", str(inputs["ridge"]))
    assert search(tmp_path / "a", *kw, budget=20, objectives=("max:accuracy",)) == 0
    assert search(tmp_path / "a", *kw, budget=20, objectives=("max:accuracy",)) == 2
    assert "--resume" in capsys.readouterr().err
    assert search(tmp_path / "a", *kw, "--resume", budget=30, objectives=("max:accuracy",),
                  constraints=("flops<=1M",)) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "constraints" in err and len(err.strip().splitlines()) == 1


def test_infeasible_constraints_exit_2_with_the_minima_before_searching(inputs, tmp_path, capsys):
    out = tmp_path / "never"
    rc = search(out, "--predictor", str(inputs["ridge"]), "--table", str(inputs["lut"]),
                constraints=("flops<=50K", "memory<=1KB", "latency_ms<=0.0001"))
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "smallest achievable flops = 98784 (INFEASIBLE)" in err
    assert "smallest achievable memory = 9216 (INFEASIBLE)" in err
    assert "smallest achievable latency_ms" in err
    assert not out.exists()
    # each bound reachable alone, not together: the MILP says so
    from nas.sample.predictor import load_predictor_for
    from nas.search.space_problem import SpaceProblem

    problem = SpaceProblem(TINY, ["max:accuracy"], predictor=load_predictor_for(TINY,
                                                                               inputs["ridge"]))
    top = problem.achievable_range("accuracy")[1]
    rc = search(out, "--predictor", str(inputs["ridge"]), algo="random",
                constraints=("flops<=98784", f"accuracy>={top - 1e-6:.9f}"),
                objectives=("max:accuracy",))
    err = capsys.readouterr().err
    assert rc == 2 and "no genome meets all of them at once" in err
    assert "(ok)" in err and not out.exists()


def test_clear_errors_for_missing_sources_and_unsupported_combinations(inputs, tmp_path, capsys):
    assert search(tmp_path / "x", objectives=("min:latency_ms",)) == 2
    assert "--table" in capsys.readouterr().err
    assert search(tmp_path / "x", "--predictor", str(inputs["gbm"]), algo="mp",
                  objectives=("max:accuracy",)) == 2
    assert "additive predictor" in capsys.readouterr().err
    assert search(tmp_path / "x", "--predictor", str(inputs["ridge"]), "--validate-every", "5",
                  objectives=("max:accuracy",)) == 2
    assert "--run" in capsys.readouterr().err


def test_accuracy_measured_with_the_supernet_when_no_predictor(trained, tmp_path):
    out = tmp_path / "measured"
    cons = ["flops<=600K"]
    outcome = run_search(SPACE, objectives=["max:accuracy", "min:flops"], constraints=cons,
                         algo="evolution", budget=12, seed=0, run_dir=trained["run"], out=out,
                         progress=False, population=6, eval_settings=SETTINGS)
    run = load_supernet(trained["run"])
    evaluator = SubnetEvaluator(TINY, run.supernet.state_dict(), run.splits, SETTINGS,
                                supernet=run.supernet)
    evaluated = pd.read_csv(out / "evaluated.csv")
    for _, row in evaluated.iterrows():
        arch = Architecture.from_json(row["arch_json"])
        if row["feasible"]:  # infeasible ones are never measured
            assert row["val_acc"] == pytest.approx(evaluator(arch)["val_acc"], abs=1e-12)
            assert row["measured_val_acc"] == row["val_acc"]
        else:
            assert row["val_acc"] == 0 and np.isnan(row["measured_val_acc"])
    assert outcome.summary["inputs"]["metrics"]["accuracy"]["source"] == "measured"
    check_front_is_valid(out, cons, None)


def test_linas_refinement_measures_refits_and_resumes_identically(trained, tmp_path):
    kw = dict(objectives=["max:accuracy", "min:flops"], constraints=["flops<=900K"],
              algo="evolution", seed=0, predictor=trained["ridge"], run_dir=trained["run"],
              validate_every=15, validate_top=3, progress=False, population=8)
    full = run_search(SPACE, budget=45, out=tmp_path / "full", **kw)
    refine = pd.read_csv(tmp_path / "full" / "refine.csv")
    assert len(full.summary["refine"]["rounds"]) == 3 and len(refine) == 9
    assert refine["arch_id"].is_unique and set(refine["round"]) == {1, 2, 3}
    run = load_supernet(trained["run"])
    evaluator = SubnetEvaluator(TINY, run.supernet.state_dict(), run.splits,
                                EvalSettings(**_sample_eval(trained["samples"])),
                                supernet=run.supernet)
    for _, row in refine.head(3).iterrows():
        measured = evaluator(Architecture.from_str(row["arch"]))["val_acc"]
        assert row["measured_val_acc"] == pytest.approx(measured, abs=1e-12)
    # the refitted predictor was trained on the samples plus the 9 measurements, and saved
    card = json.loads((tmp_path / "full" / "predictor" / "card.json").read_text())
    assert card["n_train"] == 30 + 9
    evaluated = pd.read_csv(tmp_path / "full" / "evaluated.csv")
    assert evaluated["measured_val_acc"].notna().sum() == 9
    # interrupted after the first round, resumed: the same search
    run_search(SPACE, budget=15, out=tmp_path / "part", **kw)
    run_search(SPACE, budget=45, out=tmp_path / "part", resume=True, **kw)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part" / "evaluated.csv"), evaluated)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part" / "refine.csv"), refine)


def _sample_eval(samples: Path) -> dict:
    from nas.sample.store import read_sidecar

    ev = read_sidecar(samples)["evaluation"]
    return {k: ev[k] for k in ("recal_batches", "recal_batch_size", "batch_size", "seed")}


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_ray_tune_trials_give_the_in_process_optuna_search(inputs, tmp_path, monkeypatch):
    """Two objectives (Optuna's NSGA-II sampler, which holds a lock Ray Tune cannot pickle) as
    Ray Tune trials through our ask/tell searcher: the same trials as in process, constraints set
    on every Optuna trial. A local Ray instance of 2 CPUs; about 20 s."""
    pytest.importorskip("ray")
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cons = ["flops<=1.2M"]
    kw = ("--predictor", str(inputs["ridge"]))
    objectives = ("max:accuracy", "min:flops")
    assert search(tmp_path / "tune", *kw, "--ray-address", "local", budget=4, algo="optuna",
                  constraints=cons, objectives=objectives) == 0
    assert search(tmp_path / "local", *kw, budget=4, algo="optuna", constraints=cons,
                  objectives=objectives) == 0
    a = pd.read_csv(tmp_path / "tune" / "evaluated.csv")
    b = pd.read_csv(tmp_path / "local" / "evaluated.csv")
    assert list(a["arch_id"]) == list(b["arch_id"]) and len(a) == 4
    check_front_is_valid(tmp_path / "tune", cons, None)
    summary = json.loads((tmp_path / "tune" / "search.json").read_text())
    assert summary["ray_tune"]["trials"] == 4 and summary["optuna"]["sampler"] == "nsga2"
    state = json.loads((tmp_path / "tune" / "state.json").read_text())
    trials = state["optuna_study"]["trials"]
    assert len(trials) >= 4
    assert all("constraints:flops<=1200000" in t["system_attrs"] for t in trials)


def test_a_front_member_that_breaks_a_bound_by_its_exact_metrics_is_never_emitted(inputs,
                                                                                 monkeypatch):
    """Float rounding at a bound: the vectorised value meets it, the per-architecture one does
    not. That member is dropped and the front recomputed without it."""
    from nas.sample.predictor import load_predictor_for
    from nas.search.emit import emitted_front
    from nas.search.emit import result_of as _result_of
    from nas.search.space_problem import SpaceProblem

    predictor = load_predictor_for(TINY, inputs["ridge"])
    probe = SpaceProblem(TINY, ["max:accuracy", "min:flops"], predictor=predictor)
    genes = np.stack([g for g in probe.canonical(np.random.default_rng(0).integers(
        0, probe.cardinalities, size=(300, probe.n_genes)))])
    first = emitted_front(probe, _result_of(probe, genes, "test", 0))[0]
    victim = first[0]  # the most accurate front member: a bound exactly at its FLOPs
    bound = victim.metrics["flops"]
    problem = SpaceProblem(TINY, ["max:accuracy", "min:flops"], [f"flops<={bound!r}"],
                           predictor=predictor)
    result = _result_of(problem, genes, "test", 0)
    real = problem.exact_metrics

    def nudged(arch):
        out = real(arch)
        if arch.arch_id() == victim.arch_id:
            out["flops"] = out["flops"] * (1 + 1e-12)  # within the consistency tolerance
        return out

    monkeypatch.setattr(problem, "exact_metrics", nudged)
    front, dropped = emitted_front(problem, result)
    assert dropped == 1 and victim.arch_id not in {m.arch_id for m in front}
    assert front and all(m.metrics["flops"] <= bound for m in front)


def test_a_calibration_that_predicts_negative_latency_is_reported(tmp_path):
    from nas.latency.calibration import Calibration

    bad = Calibration(features=("lut_sum",), coef=(1.0,), intercept=-50.0, n_fit=20,
                      nonnegative=False)
    fake_table(TINY, tmp_path / "neg.csv", calibration=bad)
    outcome = run_search(SPACE, objectives=["min:latency_ms"], constraints=["flops<=1M"],
                         algo="random", budget=5, table=tmp_path / "neg.csv", progress=False)
    assert len(outcome.summary["warnings"]) == 1
    assert "below zero" in outcome.summary["warnings"][0]


def test_cli_offers_every_registered_searcher():
    import argparse

    from nas.cli import search_cmd
    from nas.search.registry import searcher_names

    parser = argparse.ArgumentParser()
    search_cmd.register(parser.add_subparsers())
    algo = next(a for a in parser._subparsers._group_actions[0].choices["search"]._actions
                if a.dest == "algo")
    assert tuple(algo.choices) == searcher_names()
    assert {"guided", "mp", "optuna", "evolution", "random"} <= set(searcher_names())


@pytest.mark.parametrize(("extra", "algo", "message"), [
    (("--population", "0"), "evolution", "--population 0: expected an integer of at least 2"),
    (("--population", "1"), "evolution", "--population 1: expected an integer of at least 2"),
    (("--population", "1"), "optuna", "--population 1: expected an integer of at least 2"),
    (("--mp-points", "0"), "mp", "--mp-points 0: expected an integer of at least 1"),
    (("--budget", "0"), "random", "--budget 0: expected an integer of at least 1"),
    (("--workers", "0"), "random", "argument --workers: expected an integer from 1 to 1024, got 0"),
    (("--population", "10"), "random", "--population is not an option of --algo random"),
    (("--mp-points", "5"), "evolution", "--mp-points is not an option of --algo evolution"),
    (("--sampler", "tpe"), "evolution", "--sampler is not an option of --algo evolution"),
    (("--population", "10", "--sampler", "tpe"), "optuna", "TPE has none"),
])
def test_an_option_is_honoured_or_refused_in_one_line(extra, algo, message, inputs, tmp_path,
                                                      capsys):
    """Never silently replaced by a default (the old --population 0 became 50, --mp-points 0
    became 20), never a traceback (the old --population 1)."""
    out = tmp_path / "x"
    rc = search(out, "--predictor", str(inputs["ridge"]), *extra, algo=algo,
                objectives=("max:accuracy",))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_population_and_mp_points_are_honoured(inputs, tmp_path):
    kw = {"objectives": ["max:accuracy"], "predictor": inputs["ridge"], "progress": False}
    small = run_search(SPACE, algo="evolution", budget=12, population=2, **kw)
    assert small.result.algorithm == "regularized_evolution" and len(small.result) == 12
    mp = run_search(SPACE, algo="mp", budget=50, mp_points=3, **kw)
    assert mp.summary["mp"]["points"] == 3 and len(mp.result) == 3


@pytest.mark.parametrize("algo", ["guided", "nsga2", "optuna-nsga2"])
def test_every_registered_searcher_is_choosable_from_nas_search(algo, inputs, tmp_path):
    bound = lat_bound(inputs["lut"])
    cons = [f"latency_ms<={bound:.6f}"]
    out = tmp_path / algo
    assert search(out, "--predictor", str(inputs["ridge"]), "--table", str(inputs["lut"]),
                  algo=algo, budget=30, constraints=cons) == 0
    check_front_is_valid(out, cons, inputs["lut"])
    assert json.loads((out / "search.json").read_text())["settings"]["algo"] == algo


def test_search_job_validates_before_loading_anything():
    from nas.errors import UserError
    from nas.search.job import SearchJob

    job = SearchJob("no-such-space", ("max:accuracy", "min:flops"), ("flops<=1M",), algo="guided")
    assert [str(o) for o in job.objectives] == ["max:accuracy", "min:flops"]
    with pytest.raises(UserError, match="--algo guided handles 1 or 2 objectives, got 3"):
        SearchJob("no-such-space", ("max:accuracy", "min:flops", "min:params"), algo="guided")
    with pytest.raises(UserError, match="unknown search algorithm 'annealing'"):
        SearchJob("no-such-space", ("max:accuracy",), algo="annealing")
    with pytest.raises(UserError, match="--ray-address is for Ray Tune trials"):
        SearchJob("no-such-space", ("max:accuracy",), algo="mp", ray_address="local")
    with pytest.raises(UserError, match="cannot refine --algo optuna"):
        SearchJob("s", ("max:accuracy",), algo="optuna", validate_every=5, predictor="p",
                  run_dir="r")


def test_top_k_picks_different_choices_with_reasons(inputs, tmp_path, capsys):
    """--top 3: picks.csv holds front members, the most accurate first, each with its reason,
    none within 3% latency of another unless the front had nothing else."""
    from itertools import pairwise

    from nas.search.picks import MIN_GAP, pick_choices

    out = tmp_path / "search"
    rc = search(out, "--predictor", str(inputs["ridge"]), "--table", str(inputs["lut"]),
                "--top", "3")
    assert rc == 0, capsys.readouterr().err
    front = pd.read_csv(out / "front.csv")
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == min(3, len(front)) and set(picks["arch_id"]) <= set(front["arch_id"])
    assert picks["accuracy"].iloc[0] == front["accuracy"].max()
    expected = pick_choices(front["accuracy"] / 100, front["latency_ms"], 3)
    assert list(picks["arch_id"]) == [front["arch_id"].iloc[p.index] for p in expected]
    assert list(picks["why"]) == [p.reason for p in expected]
    lat = sorted(picks["latency_ms"])
    spread_ok = all(b / a - 1 >= MIN_GAP for a, b in pairwise(lat))
    assert spread_ok or "nothing else" in set(picks["role"])
    assert "pick(s) worth exporting" in capsys.readouterr().out


def test_top_without_an_accuracy_latency_front_exits_2(inputs, tmp_path, capsys):
    rc = search(tmp_path / "s", "--predictor", str(inputs["ridge"]), "--top", "2",
                objectives=("max:accuracy", "min:flops"))
    assert rc == 2
    assert "--top picks along an accuracy/latency front" in capsys.readouterr().err

"""Few-shot latency tables (nas.latency.fewshot, ``nas latency fewshot`` / ``suggest``) on
hybrid-tiny, with synthetic prior tables: no timing, so the numbers are exact."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from nas.cli import main
from nas.latency.fewshot import (
    Measurements,
    fit_fewshot_table,
    load_priors,
    read_measurements,
    suggest_networks,
)
from nas.latency.space_profile import distinct_archs
from nas.latency.space_units import UNIT_KINDS, predict_latency, space_keys, unit_kind
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.spaces import load_space

SPACE = "hybrid-tiny"


def _table(space, rng: np.random.Generator, device: str, kind_scale: dict[str, float]) -> LatencyTable:
    """A prior table: random unit costs (log-normal around a size-like base), rescaled per kind."""
    meta = TableMeta(
        device="cpu", processor="synthetic", runtime=device, versions={}, threads=1, batch=1,
        dtype="float32", space_name=space.name, space_hash=space.hash(), protocol={},
        created="2026-01-01T00:00:00+00:00",
    )
    entries = {}
    for i, key in enumerate(space_keys(space)):
        base = 0.05 + 0.01 * (i % 13) + rng.lognormal(-3.0, 0.6)
        ms = base * kind_scale.get(unit_kind(key), 1.0)
        entries[key] = TableEntry(ms, 0.0, ms, 1)
    return LatencyTable(meta, entries)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two prior tables on disk and a target device = prior A with per-kind costs rescaled."""
    space = load_space(SPACE)
    folder = tmp_path_factory.mktemp("fewshot")
    rng = np.random.default_rng(7)
    a = _table(space, rng, "prior-a", {})
    b = _table(space, rng, "prior-b", {"attn": 3.0, "conv": 0.5})
    paths = [a.save(folder / "a.csv"), b.save(folder / "b.csv")]
    scales = {"conv": 1.8, "attn": 0.6, "mixer": 1.2}
    target = _table(space, np.random.default_rng(7), "target", scales)  # same draws as a
    archs = distinct_archs(space, 140, np.random.default_rng(1))
    truth = predict_latency(target, space, archs) + 0.3  # a per-network overhead
    return space, folder, paths, archs, truth


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def test_fewshot_recovers_a_per_kind_rescaled_prior(world) -> None:
    space, _, paths, archs, truth = world
    priors = load_priors(paths, space)
    shots = Measurements(archs[:20], truth[:20])
    result = fit_fewshot_table(space, shots, priors)
    test_pred = predict_latency(result.table, space, archs[40:])
    rel = np.abs(test_pred - truth[40:]) / truth[40:]
    assert np.max(rel) < 0.02  # exact up to the shrinkage
    weights = result.table.meta.notes["fewshot"]["kind_weights"]
    assert result.fit.candidate.priors == (0,)  # prior a, whose kinds were rescaled
    w = weights[Path(paths[0]).stem]
    # kinds that vary between networks are identified, up to the shrinkage towards one scale (stem and head: one per network, they
    # trade off against the intercept)
    assert w["attn"] / w["conv"] == pytest.approx(0.6 / 1.8, rel=0.1)
    assert w["mixer"] / w["conv"] == pytest.approx(1.2 / 1.8, rel=0.1)
    assert result.cv_rms_relative < 0.02


def test_fewshot_with_ten_shots_ranks_well_and_beats_the_wrong_prior(world) -> None:
    space, _, paths, archs, truth = world
    priors = load_priors(paths, space)
    result = fit_fewshot_table(space, Measurements(archs[:10], truth[:10]), priors)
    pred = predict_latency(result.table, space, archs[40:])
    wrong = predict_latency(priors[1], space, archs[40:])
    rho = spearmanr(pred, truth[40:]).statistic
    assert rho > 0.97
    assert rho > spearmanr(wrong, truth[40:]).statistic


def test_cli_fewshot_writes_a_table_every_command_loads(world, tmp_path: Path, capsys) -> None:
    space, _, paths, archs, truth = world
    measured = _write(tmp_path / "times.csv", [["arch", "latency_ms"]]
                      + [[a.to_str(), repr(float(t))] for a, t in zip(archs[:12], truth[:12])])
    out = tmp_path / "new.csv"
    rc = main(["latency", "fewshot", "--space", SPACE, "--measured", str(measured),
               "--prior", str(paths[0]), "--prior", str(paths[1]), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cross-validated" in printed
    table = LatencyTable.load(out, expected_space_hash=space.hash())
    record = table.meta.notes["fewshot"]
    assert record["n_measurements"] == 12
    assert [p["csv_sha256"] for p in record["priors"]] == [
        _sha(p) for p in paths
    ]
    assert set(table.keys()) == set(space_keys(space))
    assert main(["latency", "predict", "--space", SPACE, "--table", str(out), archs[50].to_str()]) == 0
    line = capsys.readouterr().out
    ms = float(line.split()[0])
    assert ms == pytest.approx(float(predict_latency(table, space, [archs[50]])[0]), rel=1e-3)
    assert main(["latency", "show", str(out), "--space", SPACE]) == 0
    capsys.readouterr()
    report = tmp_path / "validate" / "v.md"
    rc = main(["latency", "validate", "--space", SPACE, "--table", str(out), "--n", "3",
               "--repeat-subset", "0", "--out", str(report), "--no-progress"])
    assert rc == 0, capsys.readouterr().err  # times 3 fresh networks here (never the shots)
    assert report.is_file()
    rc = main(["search", "--space", SPACE, "--table", str(out), "--objective", "min:latency_ms",
               "--objective", "min:params", "--budget", "30", "--algo", "random",
               "--out", str(tmp_path / "search"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rc = main(["search", "--space", SPACE, "--table", str(out), "--objective", "min:latency_ms",
               "--objective", "min:params", "--algo", "mp", "--mp-points", "2",
               "--out", str(tmp_path / "search-mp"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err  # the vectorised per-unit costs of the table


def _sha(path) -> str:
    import json

    return json.loads(LatencyTable.paths(path)[1].read_text())["csv_sha256"]


def test_suggest_is_deterministic_per_seed_and_spreads(world, tmp_path: Path) -> None:
    space, _, paths, _, _ = world
    priors = load_priors(paths, space)
    one = suggest_networks(space, priors, 10, np.random.default_rng(3), pool=500)
    two = suggest_networks(space, priors, 10, np.random.default_rng(3), pool=500)
    other = suggest_networks(space, priors, 10, np.random.default_rng(4), pool=500)
    assert [a.to_str() for a, _ in one] == [a.to_str() for a, _ in two]
    assert [a.to_str() for a, _ in one] != [a.to_str() for a, _ in other]
    assert len({a.arch_id() for a, _ in one}) == 10
    # spread: the picks span most of the pool's predicted range, more than random picks do
    pool = distinct_archs(space, 500, np.random.default_rng(3))
    pool_ms = np.mean([predict_latency(t, space, pool) for t in priors], axis=0)
    picked = np.array([ms for _, ms in one])
    span = np.ptp(picked) / np.ptp(pool_ms)
    rng = np.random.default_rng(0)
    random_spans = [np.ptp(rng.choice(pool_ms, 10, replace=False)) / np.ptp(pool_ms)
                    for _ in range(200)]
    assert span > 0.8 and span > np.quantile(random_spans, 0.9)
    kinds = {layer.to_str()[:2] for a, _ in one for s in a.stages for layer in s.layers}
    assert kinds == {"ir", "at", "mx"}  # every block kind


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_cli_suggest_writes_a_list_and_onnx_files(world, tmp_path: Path, capsys) -> None:
    _, _, paths, _, _ = world
    out = tmp_path / "to_measure.csv"
    onnx = tmp_path / "onnx"
    rc = main(["latency", "suggest", "--space", SPACE, "--prior", str(paths[0]), "--n", "2",
               "--seed", "5", "--out", str(out), "--onnx", str(onnx)])
    assert rc == 0, capsys.readouterr().err
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["latency_ms"] == "" for r in rows)
    files = sorted(onnx.glob("*/*.onnx"))
    assert [f.stem for f in files] == sorted(r["arch_id"] for r in rows)
    manifest = json.loads((files[0].parent / "manifest.json").read_text())
    assert manifest["onnx"]["exporter"] == "dynamo"  # nas.onnx_graph's exporter, not legacy
    import onnxruntime as ort

    session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert shape[1] == 3


BAD_FILES = {
    "unknown architecture": [["arch", "latency_ms"], ["r99 | w8: ir_k3_e1 | w16: at_h1_m2", "1.0"]],
    "outside the space": [["arch", "latency_ms"], ["r16 | w8: ir_k7_e1 | w16: at_h1_m2", "1.0"]],
    "not an architecture": [["arch", "latency_ms"], ["hello", "1.0"]],
    "duplicate row": None,  # built from the space below
    "zero time": None,
    "negative time": None,
    "nan time": None,
    "missing column": [["arch", "time"], ["r16 | w8: ir_k3_e1 | w16: at_h1_m2", "1.0"]],
    "empty file": [],
    "unfilled template": [["arch", "arch_id", "prior_mean_ms", "latency_ms"],
                          ["r16 | w8: ir_k3_e1 | w16: at_h1_m2", "x", "1.0", ""]],
}


def _bad_rows(name: str, archs) -> list[list[str]]:
    rows = [["arch", "latency_ms"]] + [[a.to_str(), "1.5"] for a in archs[:5]]
    if name == "duplicate row":
        rows.append([archs[0].to_str(), "1.6"])
    elif name == "zero time":
        rows[2][1] = "0"
    elif name == "negative time":
        rows[2][1] = "-1.0"
    elif name == "nan time":
        rows[2][1] = "nan"
    return rows


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_measurements_file_is_one_line_exit_2(world, tmp_path: Path, capsys, name) -> None:
    _space, _, paths, archs, _ = world
    rows = BAD_FILES[name] if BAD_FILES[name] is not None else _bad_rows(name, archs)
    measured = _write(tmp_path / "times.csv", rows)
    out = tmp_path / "new.csv"
    rc = main(["latency", "fewshot", "--space", SPACE, "--measured", str(measured),
               "--prior", str(paths[0]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_prior_of_another_space_is_one_line_exit_2(world, tmp_path: Path, capsys) -> None:
    _space, _, paths, archs, truth = world
    other = load_space("hybrid-cifar")
    meta = LatencyTable.load(paths[0]).meta
    from dataclasses import replace

    foreign = LatencyTable(replace(meta, space_name=other.name, space_hash=other.hash()),
                           {"stem:x": TableEntry(1.0, 0.0, 1.0, 1)})
    foreign_path = foreign.save(tmp_path / "foreign.csv")
    measured = _write(tmp_path / "times.csv", [["arch", "latency_ms"]]
                      + [[a.to_str(), repr(float(t))] for a, t in zip(archs[:5], truth[:5])])
    rc = main(["latency", "fewshot", "--space", SPACE, "--measured", str(measured),
               "--prior", str(paths[0]), "--prior", str(foreign_path),
               "--out", str(tmp_path / "new.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "hybrid-cifar" in err, err


def test_read_measurements_accepts_the_suggest_template_filled(world, tmp_path: Path) -> None:
    space, _, _, archs, _ = world
    path = _write(tmp_path / "t.csv", [["arch", "arch_id", "prior_mean_ms", "latency_ms"]]
                  + [[a.to_str(), a.arch_id(), "1", f"{1 + i / 10}"] for i, a in enumerate(archs[:4])])
    m = read_measurements(path, space)
    assert [a.to_str() for a in m.archs] == [a.to_str() for a in archs[:4]]
    assert m.latency_ms.tolist() == [1.0, 1.1, 1.2, 1.3]


def test_kinds_cover_the_space() -> None:
    space = load_space(SPACE)
    assert {unit_kind(k) for k in space_keys(space)} <= set(UNIT_KINDS)


def test_family_benchmark_runs_end_to_end_on_synthetic_devices(tmp_path: Path) -> None:
    """The benchmark's evaluation path (devices read from a work folder, every method, the
    report with its targets) on three synthetic hybrid-tiny devices."""
    from nas.benchmarks import latency_fewshot
    from nas.benchmarks.fewshot_devices import _write_networks, benchmark_archs
    from nas.latency.calibration import Calibration

    space = load_space(SPACE)
    archs = benchmark_archs(space, 70)
    rng = np.random.default_rng(11)
    for name, scales in (("torch-t1-b1", {}), ("ort-t1-b1", {"attn": 2.0}),
                         ("cuda-b64", {"conv": 3.0, "mixer": 0.5})):  # a GPU's folder too
        table = _table(space, np.random.default_rng(5), name, scales)
        table.set_calibration(Calibration(("lut_sum",), (1.0,), 0.2, 20))
        folder = tmp_path / "work" / SPACE / name
        folder.mkdir(parents=True)
        table.save(folder / "table.csv")
        ms = predict_latency(table, space, archs) * rng.lognormal(0, 0.02, len(archs))
        _write_networks(folder / "networks.csv", {a.to_str(): float(m) for a, m in zip(archs, ms)})
    out = tmp_path / "report" / "fewshot"
    rc = latency_fewshot.main(["--space", SPACE, "--work", str(tmp_path / "work"),
                               "--n-networks", "70", "--seeds", "1", "--no-measure",
                               "--no-nb201", "--out", str(out)])
    assert rc == 0
    text = out.with_suffix(".md").read_text()
    assert "devices (3)" in text and "### Targets" in text
    rows = __import__("pandas").read_csv(out.with_suffix(".csv"))
    assert set(rows["method"]) == set(latency_fewshot.METHODS)
    auto = rows[(rows["method"] == latency_fewshot.FEWSHOT) & (rows["n"] == 20)]
    assert auto["spearman"].min() > 0.9  # the devices are per-kind rescalings of each other
    macs = rows[rows["method"] == latency_fewshot.MACS]  # ranked by MACs as they are, any n
    assert macs["spearman"].notna().all()
    assert (macs.groupby("device")["spearman"].nunique() == 1).all()


def test_gpu_devices_are_measured_only_where_torch_sees_cuda(monkeypatch, capsys) -> None:
    import torch

    from nas.benchmarks import fewshot_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert {n for n, d in fewshot_devices.DEVICES.items() if not d.available()} == {
        "cuda-b1", "cuda-b64"}
    with pytest.raises(SystemExit) as exc:
        fewshot_devices.main(["--devices", "torch-t1-b1", "cuda-b1", "--work", "unused"])
    assert exc.value.code == 2
    assert "not on this machine: cuda-b1" in capsys.readouterr().err


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(4, 15))
def test_written_table_predicts_what_the_fitted_model_predicts(world, seed: int, n: int) -> None:
    """Invariant: the table's sum of unit entries plus its intercept is the fitted two-stage
    model (up to the 1e-6 ms floor of units fitted to 0), for any shots."""
    from nas.latency.fewshot import (
        FLOOR_MS,
        arch_unit_counts,
        fit_pipeline,
        prior_unit_costs,
        transfer_features,
        unit_kind_index,
    )

    space, _, paths, archs, truth = world
    priors = load_priors(paths, space)
    pick = np.random.default_rng(seed).choice(len(archs), size=n, replace=False)
    noisy = truth[pick] * np.random.default_rng(seed + 1).lognormal(0, 0.1, n)
    shots = [archs[i] for i in pick]
    result = fit_fewshot_table(space, Measurements(shots, noisy), priors)
    costs, kinds = prior_unit_costs(priors, space), unit_kind_index(space)
    counts = arch_unit_counts(space, shots)
    _, refined = fit_pipeline(transfer_features(costs, kinds, counts), counts, noisy, costs, kinds)
    all_counts = arch_unit_counts(space, archs)
    np.testing.assert_allclose(predict_latency(result.table, space, archs),
                               all_counts @ refined.unit_ms + refined.intercept_ms,
                               rtol=0, atol=20 * FLOOR_MS)
    assert all(e.median_ms > 0 for e in result.table.entries.values())

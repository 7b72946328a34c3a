"""``nas export``: architecture by JSON file, short string and ID; exact costs and accuracies in the
card; ONNX vs torch within 1e-4; latency table wiring; clear one-line errors; nothing half-written.

One tiny run (hybrid-tiny, digits, 1 epoch) is trained once for the module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.arch import Architecture
from nas.cli import main
from nas.costs import costs
from nas.errors import IncompatibleFileError, SpaceError, UserError
from nas.export.formats import sha256_file
from nas.export.model_card import TEST_POLICY
from nas.export.resolve import find_by_id, resolve_architecture
from nas.latency import LatencyTable, TableEntry, TableMeta, TimingProtocol
from nas.spaces import load_space
from nas.train import evaluate_subnet, load_supernet
from nas.units import arch_keys
from tests.conftest import train_tiny_run

torch.set_num_threads(1)
SPACE = load_space("hybrid-tiny")
ARCH = Architecture.from_str("r12 | w12: ir_k5_e2 ir_k3_e1 | w16: mx_t1_c2 ir_k3_e3_se")
OTHER = Architecture.from_str("r16 | w8: ir_k3_e1 | w24: at_h2_m2")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished 1-epoch run with a search front (JSON) and a samples CSV beside it."""
    out = tmp_path_factory.mktemp("run") / "run"
    train_tiny_run(out)
    (out / "search" / "nsga2").mkdir(parents=True)
    front = [{"arch_id": a.arch_id(), "arch": a.to_str(), "val_acc": 0.5} for a in (OTHER, ARCH)]
    (out / "search" / "nsga2" / "front.json").write_text(json.dumps({"front": front}))
    return out


def write_table(path: Path, runtime: str = "torch", batch: int = 1) -> Path:
    """A latency table of hybrid-tiny holding the keys of ARCH (fixed medians: the prediction is
    their exact sum) with a short timing protocol (2 rounds) that the measurement must adopt."""
    protocol = TimingProtocol(runtime=runtime, threads=1, warmup=2, repeats=5, rounds=2,
                              min_time_per_round=0.01)
    meta = TableMeta.for_protocol(protocol, batch=batch, dtype="float32", space_name=SPACE.name,
                                  space_hash=SPACE.hash())
    table = LatencyTable(meta)
    for i, key in enumerate(dict.fromkeys(arch_keys(SPACE, ARCH))):
        table.record(key, TableEntry(0.1 + i / 100, 0.01, 0.1 + i / 100, 10))
    return table.save(path)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("lut") / "cpu.csv")


@pytest.fixture(scope="module")
def full_export(run_dir, table_path, tmp_path_factory) -> Path:
    """ARCH from a JSON file, every format, the latency table, measured here."""
    arch_file = tmp_path_factory.mktemp("arch") / "arch.json"
    arch_file.write_text(ARCH.to_json())
    out = tmp_path_factory.mktemp("exports") / "full"
    rc = main(["export", "--run", str(run_dir), "--arch", str(arch_file), "--out", str(out),
               "--formats", "pt,torchscript,onnx", "--table", str(table_path), "--no-progress"])
    assert rc == 0
    return out


def card_of(out: Path) -> dict:
    return json.loads((out / "model_card.json").read_text())


def export_fast(run_dir: Path, arch: str, out: Path, *extra: str) -> int:
    return main(["export", "--run", str(run_dir), "--arch", arch, "--out", str(out),
                 "--formats", "pt", "--no-measure", "--no-standalone-check", "--no-progress", *extra])


# ----- the full export -----
def test_full_export_writes_every_file_and_verified_onnx(full_export):
    names = {p.name for p in full_export.iterdir()}
    assert names == {"model.state_dict.pt", "model.pt2", "model.torchscript.pt", "model.onnx",
                     "model.example.npz", "manifest.json", "MODEL_CARD.md", "model_card.json"}
    manifest = json.loads((full_export / "manifest.json").read_text())
    assert manifest["checks"]["onnx"]["max_abs_diff"] <= 1e-4
    assert manifest["checks"]["onnx"]["max_abs_diff_batch_plus_1"] <= 1e-4
    assert manifest["tolerance_max_abs"] == 1e-4
    assert all(v <= 1e-4 for v in manifest["standalone"]["max_abs_diff"].values())
    # and once more here, on the example the export stored
    import onnxruntime as ort

    data = np.load(full_export / "model.example.npz", allow_pickle=False)
    session = ort.InferenceSession(str(full_export / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: data["input"]})[0]
    assert np.abs(got - data["output"]).max() <= 1e-4
    assert data["input"].shape == (1, 3, ARCH.resolution, ARCH.resolution)


def test_card_has_exact_costs_and_the_architecture(full_export):
    card = card_of(full_export)
    exact = costs(SPACE, ARCH)
    assert card["costs"] == {"flops": exact.flops, "macs": exact.macs, "params": exact.params,
                             "peak_memory_bytes": exact.peak_memory_bytes}
    assert card["details"]["costs"]["param_memory_bytes"] == 4 * exact.params
    assert Architecture.from_dict(card["architecture"]["json"]) == ARCH
    assert card["architecture"]["string"] == ARCH.to_str()
    assert card["details"]["arch_id"] == ARCH.arch_id()
    assert card["details"]["space"] == {"name": SPACE.name, "hash": SPACE.hash()}
    # the params the card states are the exported module's
    state = torch.load(full_export / "model.state_dict.pt", weights_only=True)
    program = torch.export.load(full_export / "model.pt2").module()
    assert sum(p.numel() for p in program.parameters()) == exact.params
    assert state  # loads as plain data


def test_card_accuracies_equal_an_independent_evaluation(full_export, run_dir):
    card = card_of(full_export)
    run = load_supernet(run_dir)
    val = evaluate_subnet(run.supernet, ARCH, run.splits, split="val", seed=0)
    test = evaluate_subnet(run.supernet, ARCH, run.splits, split="test", seed=0)
    assert card["accuracy"]["validation"] == val["acc"]
    assert card["accuracy"]["test"] == test["acc"]
    assert card["accuracy"]["dataset"] == "digits"
    assert card["accuracy"]["test_policy"] == TEST_POLICY
    md = (full_export / "MODEL_CARD.md").read_text()
    assert f"Test accuracy ({TEST_POLICY})" in md
    # the exported weights give the same accuracy as the in-memory evaluation
    program = torch.export.load(full_export / "model.pt2").module()
    from nas.train.inputs import model_input

    with torch.no_grad():
        x = model_input(run.splits.val.x, ARCH.resolution, 3, channels_last=False)
        correct = int((program(x).argmax(-1) == run.splits.val.y).sum())
    assert correct / len(run.splits.val) == val["acc"]


def test_card_latency_predicted_from_the_table_and_measured_with_its_protocol(
    full_export, table_path
):
    card = card_of(full_export)
    table = LatencyTable.load(table_path)
    expected = sum(table.entries[k].median_ms for k in arch_keys(SPACE, ARCH))
    assert card["latency"]["predicted_ms"] == pytest.approx(expected, rel=1e-12)
    assert str(table_path) in card["latency"]["predicted_source"]
    details = card["details"]["latency"]
    assert set(details["measured"]) == {"torch", "onnxruntime"}
    for m in details["measured"].values():
        assert len(m["round_medians_ms"]) == 2  # the table's 2 rounds, not the default 5
        assert m["estimate_ms"] == min(m["round_medians_ms"]) > 0
    assert details["protocol"]["threads"] == 1 and details["protocol"]["batch"] == 1
    assert card["latency"]["measured_ms"] == details["measured"]["torch"]["estimate_ms"]
    assert card["not_measured"] == {}
    ratio = card["latency"]["measured_ms"] / card["latency"]["predicted_ms"]
    assert f"| measured / predicted | {ratio:.3f} " in (full_export / "MODEL_CARD.md").read_text()


def test_card_lists_the_hashes_of_the_files_on_disk(full_export, run_dir):
    card = card_of(full_export)
    for entry in card["files"].values():
        assert sha256_file(full_export / entry["path"]) == entry["sha256"]
    assert card["details"]["run"]["checkpoint_sha256"] == sha256_file(run_dir / "checkpoint.pt")
    assert {"torch", "onnxruntime", "python", "numpy"} <= set(card["details"]["versions"])


# ----- other ways to name the architecture -----
def test_export_by_short_string_gives_the_same_weights(full_export, run_dir, tmp_path, capsys):
    out = tmp_path / "by-string"
    assert export_fast(run_dir, ARCH.to_str(), out) == 0
    assert ARCH.arch_id() in capsys.readouterr().out
    assert sha256_file(out / "model.state_dict.pt") == sha256_file(
        full_export / "model.state_dict.pt")  # seeded recalibration: byte-identical weights
    card = card_of(out)
    assert card["details"]["arch_source"] == "short string"
    assert card["latency"]["measured_ms"] is None
    assert "--no-measure" in card["not_measured"]["latency.measured_ms"]
    assert "--table" in card["not_measured"]["latency.predicted_ms"]
    assert "not measured (" in (out / "MODEL_CARD.md").read_text()


def test_export_by_id_with_an_onnxruntime_table(full_export, run_dir, tmp_path):
    """By ID from the run's search front; the table's runtime (onnxruntime) and batch (2) are
    the measurement's, although no .onnx file was requested."""
    out = tmp_path / "by-id"
    lut = write_table(tmp_path / "ort.csv", runtime="onnxruntime", batch=2)
    rc = main(["export", "--run", str(run_dir), "--arch", ARCH.arch_id(), "--out", str(out),
               "--formats", "pt", "--no-standalone-check", "--no-progress", "--table", str(lut)])
    assert rc == 0
    card = card_of(out)
    assert card["architecture"]["string"] == ARCH.to_str()
    assert "front.json" in card["details"]["arch_source"]
    assert sha256_file(out / "model.state_dict.pt") == sha256_file(
        full_export / "model.state_dict.pt")
    measured = card["details"]["latency"]["measured"]
    assert card["latency"]["measured_ms"] == measured["onnxruntime"]["estimate_ms"] > 0
    assert "own ONNX export" in card["latency"]["device"]
    assert card["input_shape"] == [2, 3, ARCH.resolution, ARCH.resolution]


def test_id_lookup_in_samples_csv_and_front_files(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "samples.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_id", "arch_json", "val_acc"])
        writer.writerow([OTHER.arch_id(), OTHER.to_json(), 0.4])
        writer.writerow([ARCH.arch_id(), ARCH.to_json(), 0.5])
    arch, where = find_by_id(ARCH.arch_id().upper(), run)
    assert arch == ARCH and where.endswith("samples.csv:3")
    arch, where = find_by_id(OTHER.arch_id(), run_dir)
    assert arch == OTHER and "front.json" in where


def test_resolution_errors_name_the_problem(run_dir, tmp_path):
    with pytest.raises(SpaceError, match=r"heads=4 not allowed; allowed \[1, 2\]"):
        resolve_architecture("r16 | w8: ir_k3_e1 | w24: at_h4_m2", SPACE, run_dir)
    front = tmp_path / "front.json"
    front.write_text(json.dumps([{"arch": ARCH.to_str()}, {"arch": OTHER.to_str()}]))
    with pytest.raises(UserError, match=f"2 different architectures.*{ARCH.arch_id()}"):
        resolve_architecture(str(front), SPACE, run_dir)
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"arch_id": OTHER.arch_id(), "arch_json": ARCH.to_dict()}))
    with pytest.raises(IncompatibleFileError, match="does not match its architecture"):
        resolve_architecture(str(stale), SPACE, run_dir)
    with pytest.raises(UserError, match="expected an architecture ID"):
        resolve_architecture("resnet50", SPACE, run_dir)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_every_form_of_an_architecture_resolves_to_it(seed, tmp_path_factory):
    arch = SPACE.sample(np.random.default_rng(seed))
    run = tmp_path_factory.mktemp("r")
    (run / "search").mkdir()
    (run / "search" / "top.csv").write_text(f"arch_id,arch\n{arch.arch_id()},\"{arch.to_str()}\"\n")
    (run / "arch.json").write_text(json.dumps({"arch_json": arch.to_json(), "val_acc": 0.1}))
    for text in (arch.to_str(), arch.to_json(), str(run / "arch.json"), arch.arch_id()):
        assert resolve_architecture(text, SPACE, run).arch == arch


# ----- errors: exit code 2, one line, nothing written -----
def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("nas export: error: "), err
    return err


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("r16 | w8: ir_k3_e1 | w24: at_h4_m2", "heads=4 not allowed"),
        ("r20 | w8: ir_k3_e1 | w24: at_h2_m2", "resolution 20 not in hybrid-tiny"),
        ("0123456789ab", "architecture ID 0123456789ab not found; looked in"),
        ("missing/arch.json", "does not exist"),
    ],
)
def test_bad_architecture_exits_2_with_one_message(run_dir, tmp_path, capsys, arch, message):
    out = tmp_path / "out"
    assert export_fast(run_dir, arch, out) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_run_folder_exits_2(tmp_path, capsys):
    assert export_fast(tmp_path / "nope", ARCH.to_str(), tmp_path / "out") == 2
    assert "run folder" in _one_line_error(capsys) and not (tmp_path / "out").exists()


def test_table_of_another_space_exits_2(run_dir, tmp_path, capsys):
    other = load_space("hybrid-cifar")
    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=other.name, space_hash=other.hash())
    path = LatencyTable(meta, {"k": TableEntry(1.0, 0.0, 1.0, 1)}).save(tmp_path / "t.csv")
    assert export_fast(run_dir, ARCH.to_str(), tmp_path / "out", "--table", str(path)) == 2
    assert "hybrid-cifar" in _one_line_error(capsys) and not (tmp_path / "out").exists()


def test_an_earlier_export_is_refused_then_replaced_with_force(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert export_fast(run_dir, ARCH.to_str(), out) == 0
    assert export_fast(run_dir, OTHER.to_str(), out) == 2
    assert "--force" in _one_line_error(capsys) and card_of(out)["details"]
    assert export_fast(run_dir, OTHER.to_str(), out, "--force") == 0
    assert OTHER.arch_id() in json.dumps(card_of(out))
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or old folder left


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def test_force_never_deletes_a_folder_that_is_not_an_earlier_export(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for extra in ((), ("--force",)):
        assert export_fast(run_dir, ARCH.to_str(), out, *extra) == 2
        assert "not an earlier 'nas export' output" in _one_line_error(capsys)
        assert (out / "keep.txt").read_text() == "mine"
    # an earlier export with a file of the user's added is not the export's own output either
    assert export_fast(run_dir, ARCH.to_str(), tmp_path / "done") == 0
    (tmp_path / "done" / "notes.md").write_text("mine")
    assert export_fast(run_dir, ARCH.to_str(), tmp_path / "done", "--force") == 2
    assert "'notes.md'" in _one_line_error(capsys)
    assert (tmp_path / "done" / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "out"]


def test_force_never_deletes_the_run_folder_or_what_holds_it(run_dir, tmp_path, capsys,
                                                             monkeypatch):
    """The issue's data loss: --force --out <the run>, <its parent>, .. from inside the run."""
    before = _tree(run_dir.parent)
    cases = [(run_dir, "is the training run folder"),
             (run_dir.parent, "not an earlier 'nas export' output"),
             (run_dir / "search", "is inside the training run folder"),
             (run_dir / "exports" / "new", "is inside the training run folder")]
    for out, message in cases:
        assert export_fast(run_dir, ARCH.to_str(), out, "--force") == 2
        assert message in _one_line_error(capsys)
    monkeypatch.chdir(run_dir / "search" / "nsga2")
    assert export_fast(run_dir, ARCH.to_str(), Path(".."), "--force") == 2
    assert "is inside the training run folder" in _one_line_error(capsys)
    assert _tree(run_dir.parent) == before  # nothing deleted, no .old-* or staging folder
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert export_fast(run_dir, ARCH.to_str(), Path(".."), "--force") == 2
    assert "is the current folder or holds it" in _one_line_error(capsys)
    assert sorted(_tree(tmp_path)) == ["a", "a/b", "a/keep.txt"]


def test_nas_run_layout_reexports_with_overwrite(run_dir):
    """``nas run`` exports beside its run folder (<root>/supernet) into <root>/export/roundN/<id>
    with overwrite=True; a rerun replaces its own earlier export there."""
    from nas.export.pipeline import export_architecture

    out = run_dir.parent / "export" / "round0" / ARCH.arch_id()
    for _ in range(2):
        result = export_architecture(run_dir, ARCH, out, formats="pt", measure_latency=False,
                                     standalone_check=False, overwrite=True)
        assert result.files["model_card_json"].is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == [ARCH.arch_id()]


def test_failure_late_in_the_export_leaves_nothing(run_dir, tmp_path, monkeypatch, capsys):
    import nas.export.pipeline as pipeline

    def broken(*args, **kwargs):
        raise UserError("simulated failure while writing the card")

    monkeypatch.setattr(pipeline, "write_export_card", broken)
    assert export_fast(run_dir, ARCH.to_str(), tmp_path / "out") == 2
    assert "simulated failure" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []

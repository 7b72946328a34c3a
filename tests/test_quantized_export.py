"""INT8 / mixed-precision export and measurement on a trained hybrid-tiny run: ``nas export``
writes the QDQ file, which runs without this package and whose accuracy equals the one
``nas sample`` measures for the same policy; ``nas sample --precisions`` samples policies; bad
precisions answer in one line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from nas.arch import Architecture
from nas.cli import main
from tests.conftest import train_tiny_run

POLICY = "r16 stem@int8 | w8: ir_k3_e1@int8 | w16: at_h1_m2@int8 mx_t1_c2"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quant") / "run"
    train_tiny_run(out)
    return out


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quant-export") / "export"
    rc = main(["export", "--run", str(run_dir), "--arch", POLICY, "--out", str(out),
               "--formats", "onnx", "--precisions", "fp32,int8", "--recal-batches", "2",
               "--no-measure", "--no-progress"])
    assert rc == 0
    return out


def test_export_writes_a_checked_qdq_file_and_its_card(exported):
    import onnx

    card = json.loads((exported / "model_card.json").read_text())
    q = card["quantization"]
    assert q["file"] == "model.mixed.onnx" and q["policy"] == POLICY
    assert q["standalone_max_abs_diff"] == 0.0  # same ONNX Runtime, same input, same output
    graph = onnx.load(str(exported / q["file"])).graph
    quantized = {n.name for n in graph.node if n.op_type == "QuantizeLinear"}
    assert quantized, "no QuantizeLinear in the QDQ file"
    ops = [n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    # stem and the first stage's layer are int8: their weights come through DequantizeLinear;
    # the head (fp32) keeps a float weight initializer
    inits = {t.name for t in graph.initializer}
    head = [n for n in ops if n.name.startswith("/head/classifier")]
    assert head and head[0].input[1] in inits
    stem = [n for n in ops if n.name.startswith("/stem/")]
    assert stem and stem[0].input[1] not in inits
    md = (exported / "MODEL_CARD.md").read_text()
    assert "## INT8 / mixed precision (ONNX Runtime QDQ)" in md


def test_exported_accuracy_equals_the_measured_path(exported, run_dir):
    """The card's accuracy of the QDQ file is what evaluate_subnet (nas sample's path) gives."""
    from nas.train.evaluate import evaluate_subnet
    from nas.train.rundir import load_supernet

    run = load_supernet(run_dir, load_data=True)
    space = run.space.with_precisions("fp32,int8")
    run.supernet.space = space
    arch = Architecture.from_str(POLICY)
    got = evaluate_subnet(run.supernet, arch, run.splits, recal_batches=2, recal_batch_size=64,
                          seed=0)
    card = json.loads((exported / "model_card.json").read_text())
    assert got["acc"] == pytest.approx(card["quantization"]["validation"], abs=1e-12)


def test_sample_draws_and_measures_precision_policies(run_dir, tmp_path):
    out = tmp_path / "samples.csv"
    rc = main(["sample", "--run", str(run_dir), "--n", "3", "--out", str(out), "--seed", "1",
               "--precisions", "fp32,int8", "--recal-batches", "2", "--no-progress"])
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    archs = [Architecture.from_str(r["arch"]) for r in rows]
    assert len(archs) == 3 and any("int8" in a.precisions() for a in archs)
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["--precisions", "fp32"], "precision 'int8' not allowed"),
    (["--precisions", "fp32,fp16"], "precisions"),
])
def test_bad_precision_exits_2_with_one_line(run_dir, tmp_path, capsys, argv, message):
    rc = main(["export", "--run", str(run_dir), "--arch", POLICY, "--out", str(tmp_path / "x"),
               "--formats", "onnx", "--no-measure", "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1


def test_int8_table_missing_a_unit_exits_2(run_dir, tmp_path, capsys):
    """A latency table holding the policy's fp32 keys only names its missing @int8 entries."""
    from nas.latency import TimingProtocol
    from nas.latency.table import LatencyTable, TableEntry, TableMeta
    from nas.spaces import load_space
    from nas.units import arch_keys

    space = load_space("hybrid-tiny")
    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=space.name, space_hash=space.hash())
    fp32 = arch_keys(space, Architecture.from_str(POLICY).at_precision("fp32"))
    path = LatencyTable(meta, {k: TableEntry(0.1, 0.0, 0.1, 3) for k in fp32}).save(
        tmp_path / "lut.csv")
    rc = main(["export", "--run", str(run_dir), "--arch", POLICY, "--out", str(tmp_path / "x"),
               "--formats", "onnx", "--no-measure", "--no-progress", "--precisions", "fp32,int8",
               "--table", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "stem:i3:o8:h16:k3:s1:relu@int8" in err and not (tmp_path / "x").exists()

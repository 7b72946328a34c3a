"""The one ATen-to-ONNX registry per opset (nas/onnx_graph.py) and its benchmark at toy size."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nas import onnx_graph
from nas.benchmarks import onnx_export_speed
from nas.latency.space_units import build_unit, space_units
from nas.spaces import load_space


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("opset", [18, 20])
def test_shared_registry_writes_the_file_torch_writes_and_is_put_back(tmp_path, opset):
    from torch.onnx._internal.exporter import _registration

    before = _registration.ONNXRegistry.__dict__["from_torchlib"]
    units = list(space_units(load_space("hybrid-tiny")).values())
    for i, unit in enumerate([units[0], units[-1]]):  # a conv unit and the head
        for name in onnx_export_speed.WAYS:
            module, x = build_unit(unit, 1, np.random.default_rng(i))
            with onnx_export_speed.way(name):
                onnx_graph.export_onnx(module, x, tmp_path / f"{i}-{name}.onnx", opset=opset)
        files = [tmp_path / f"{i}-{name}.onnx" for name in onnx_export_speed.WAYS]
        assert _digest(files[0]) == _digest(files[1])
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is before


def test_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "speed.md"
    assert onnx_export_speed.main(["--n", "2", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python -m nas.benchmarks.onnx_export_speed --n 2 --rounds 1" in text
    assert "byte-identical both ways: **yes**" in text
    assert text.count("| one registry per opset |") == 1

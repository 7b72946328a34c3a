"""A TorchScript latency table predicts TorchScript files (issue 13), on hybrid-tiny.

- ``nas profile --latency-device torchscript`` times each unit through the file ``nas export``
  writes (``nas.torchscript.trace_to_file``), restricted here to the units one architecture needs;
- a random-weight export list (``nas.export.onnx_list``, here its TorchScript files) carries a card, so ``nas latency validate --exported`` times it against that table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch import Architecture
from nas.cli import main
from nas.errors import UserError
from nas.export.onnx_list import export_archs_onnx
from nas.latency import LatencyTable, TimingProtocol
from nas.latency.space_profile import profile_space, protocol_for
from nas.latency.space_units import build_network
from nas.latency.validate_exported import default_runtimes
from nas.spaces import load_space
from nas.torchscript import trace_to_file
from nas.units import arch_keys

torch.set_num_threads(1)
SPACE = load_space("hybrid-tiny")
ARCH = Architecture.from_str("r16 | w8: ir_k3_e1 | w24: at_h2_m2")
FAST = {"warmup": 2, "repeats": 5, "rounds": 2, "min_time_per_round": 0.01}


def test_torchscript_device_is_its_own_runtime_on_the_cpu() -> None:
    protocol = protocol_for("torchscript", 1)
    assert (protocol.runtime, protocol.device, protocol.clock) == ("torchscript", "cpu", "thread")
    assert "torchscript" in protocol.describe()


def test_traced_file_runs_like_the_module_at_another_batch(tmp_path: Path) -> None:
    net, x = build_network(SPACE, ARCH, 1, np.random.default_rng(0))
    loaded = trace_to_file(net, x, tmp_path / "net.pt")
    with torch.no_grad():
        for batch in (x, torch.cat([x, x, x])):
            torch.testing.assert_close(loaded(batch), net(batch), atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def ts_table(tmp_path_factory) -> Path:
    """A torchscript table of ARCH's units only (the nas profile path, short protocol)."""
    out = tmp_path_factory.mktemp("ts") / "tiny_ts.csv"
    result = profile_space(SPACE, out, TimingProtocol(runtime="torchscript", clock="thread",
                                                      **FAST),
                           calibrate=0, needed_for=[ARCH], progress=False, say=lambda _t: None)
    assert result.n_keys == len(set(arch_keys(SPACE, ARCH))) == result.measured
    return result.path


def test_profile_needed_for_measures_only_the_units_of_the_architecture(ts_table: Path) -> None:
    table = LatencyTable.load(ts_table)
    assert set(table.keys()) == set(arch_keys(SPACE, ARCH))
    assert table.meta.runtime == "torchscript"
    assert all(v > 0 for v in table.lookup(arch_keys(SPACE, ARCH)))
    assert default_runtimes(table) == ("torchscript",)


def test_export_list_is_validated_against_a_torchscript_table(ts_table: Path, tmp_path: Path,
                                                              capsys) -> None:
    exports = tmp_path / "exports"
    export_archs_onnx(SPACE, [ARCH], exports, formats="torchscript")
    folder = exports / ARCH.arch_id()
    card = json.loads((folder / "model_card.json").read_text())
    assert card["architecture"]["string"] == ARCH.to_str()
    out = tmp_path / "v.md"
    rc = main(["latency", "validate", "--space", "hybrid-tiny", "--table", str(ts_table),
               "--exported", str(exports), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "torchscript: table vs exported files" in capsys.readouterr().out
    assert "| torchscript | 1 |" in out.read_text()
    # resuming keeps the finished folder; a non-resumed call refuses the non-empty folder
    before = (folder / "model_card.json").stat().st_mtime_ns
    export_archs_onnx(SPACE, [ARCH], exports, formats="torchscript", resume=True)
    assert (folder / "model_card.json").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="must be a new or empty folder"):
        export_archs_onnx(SPACE, [ARCH], exports)

"""The ``nas profile`` command a validation report prints for its table (``profile_command``) is
one the CLI accepts and makes the same kind of table: runtime, device, batch, threads, precisions,
clock and the protocol's non-default settings."""

from __future__ import annotations

import shlex

import pytest

from nas.cli import build_parser
from nas.latency.protocol import TimingProtocol
from nas.latency.space_profile import PRECISIONS_NOTE, protocol_for
from nas.latency.table import TableMeta
from nas.latency.validate import profile_command


def _meta(protocol: TimingProtocol, batch: int, precisions: list[str] | None) -> dict:
    notes = {"calibration_set": {"archs": ["a"] * 7, "seed": 3}}
    if precisions:
        notes[PRECISIONS_NOTE] = precisions
    meta = TableMeta(device=protocol.device, processor="cpu", runtime=protocol.runtime,
                     versions={}, threads=protocol.threads, batch=batch, dtype="float32",
                     space_name="hybrid-tiny", space_hash="h", protocol=protocol.describe(),
                     created="now", notes=notes)
    return meta.to_dict()


@pytest.mark.parametrize(("device", "threads", "batch", "precisions", "settings"), [
    ("onnxruntime", 1, 1, ["fp32", "int8"], {}),
    ("torchscript", 1, 32, None, {"rounds": 7}),
    ("cpu", 2, 1, None, {}),
    ("onnxruntime", 1, 1, None, {"clock": "wall"}),
    ("cpu", 1, 4, ["fp32"], {"min_time_per_round": 0.08}),
])
def test_the_printed_command_parses_to_the_table_s_settings(device, threads, batch, precisions,
                                                            settings):
    protocol = protocol_for(device, threads, **settings)
    command = profile_command(_meta(protocol, batch, precisions), "t.csv")
    argv = shlex.split(command)
    assert argv[:2] == ["nas", "profile"]
    args = build_parser().parse_args(argv[1:])
    assert (args.device, args.threads, args.batch, args.calibrate, args.seed) == (
        device, threads, batch, 7, 3)
    assert (args.precisions or "fp32") == ",".join(precisions or ["fp32"])
    again = protocol_for(args.device, args.threads, clock=args.clock,
                         rounds=args.rounds, min_time_per_round=args.min_round_ms / 1e3)
    assert again == protocol

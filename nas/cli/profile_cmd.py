"""``nas profile``: measure a latency table for a search space on this device (resumable)."""

from __future__ import annotations

import argparse
import sys

from nas.cli import types as argtypes
from nas.cli.options import deprecated_alias
from nas.latency.protocol import DEFAULT_CALIBRATION_K, INT8_CALIBRATION_K, TimingProtocol

_DEFAULTS = TimingProtocol()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile",
        help="measure a per-device latency table of every unit of a search space (resumable)",
        description=(
            "Time every distinct unit of the space (stem, each layer configuration at each input "
            "shape it can see, transitions, head) on the device, one key per unit, then time "
            "--calibrate random subnets end to end and fit the calibration that turns sums of "
            "unit latencies into whole-network latencies. Writes a CSV (key, mean_ms, std_ms, "
            "median_ms, count) and a JSON sidecar (device, processor, runtime versions, threads, "
            "batch, dtype, space hash, protocol, calibration). Rerunning the same command on an "
            "existing --out measures only what is missing; 'nas latency merge' joins partial "
            "tables. Timing: warm-up, batched timer reads, per-round medians over interleaved "
            "rounds, lowest round kept; 1 thread by default (on a 2-core machine a busy second "
            "core makes 2-thread timings 2-3x slower and far less repeatable)."
        ),
    )
    p.add_argument("--space", required=True, help="shipped space name or a YAML file")
    deprecated_alias(p, "profile", "--device", "--latency-device", dest="device")
    p.add_argument("--latency-device", dest="device", default="cpu",
                   help="cpu (torch eager), cuda or cuda:N (torch eager, CUDA events), or "
                        "onnxruntime (each unit exported to ONNX, run by the CPU ONNX Runtime), or "
                        "torchscript (each unit traced to the TorchScript file 'nas export' "
                        "writes, run on the CPU)")
    p.add_argument("--out", required=True, help="table CSV path (its sidecar: same name, .json)")
    p.add_argument("--threads", type=argtypes.parallel, default=1, help="intra-op threads (1)")
    p.add_argument("--batch", type=argtypes.positive_int, default=1, help="batch size of the example inputs (1)")
    p.add_argument("--calibrate", type=argtypes.non_negative_int, default=None,
                   help=f"random subnets timed end to end to fit the calibration "
                        f"({DEFAULT_CALIBRATION_K}; {INT8_CALIBRATION_K} with int8 precisions; "
                        f"0: none)")
    p.add_argument("--seed", type=argtypes.seed, default=0,
                   help="seed of the unit weights and the calibration subnets (0)")
    p.add_argument("--workers", type=argtypes.parallel, default=None,
                   help="processes that export units and networks to ONNX before they are timed "
                        "(onnxruntime); timing itself runs in one process, one item at a time, "
                        "while they wait (default: one per core, at most 4; 1: no processes)")
    p.add_argument("--precisions", default=None,
                   help="precisions to profile every unit at, e.g. fp32,int8 (default: the "
                        "space's, fp32 only). int8 (onnxruntime only): each unit as the QDQ graph "
                        "'nas export' writes, plus the quantize/dequantize at every change of "
                        "precision, and calibration subnets with random precision policies")
    g = p.add_argument_group("timing protocol")
    g.add_argument("--warmup", type=argtypes.non_negative_int, default=_DEFAULTS.warmup,
                   help=f"warm-up calls per item ({_DEFAULTS.warmup})")
    g.add_argument("--repeats", type=argtypes.positive_int, default=_DEFAULTS.repeats,
                   help=f"minimum timer reads per round ({_DEFAULTS.repeats})")
    g.add_argument("--rounds", type=argtypes.positive_int, default=_DEFAULTS.rounds,
                   help=f"interleaved rounds; the lowest round median is kept ({_DEFAULTS.rounds})")
    g.add_argument("--min-round-ms", type=argtypes.non_negative_float, default=_DEFAULTS.min_time_per_round * 1e3,
                   help="minimum duration of a round in ms "
                        f"({_DEFAULTS.min_time_per_round * 1e3:g})")
    g.add_argument("--min-read-ms", type=argtypes.non_negative_float, default=_DEFAULTS.min_time_per_read * 1e3,
                   help="minimum duration of one timer read in ms (short layers run several "
                        f"calls per read) ({_DEFAULTS.min_time_per_read * 1e3:g})")
    g.add_argument("--clock", choices=("auto", "wall", "thread"), default="auto",
                   help="timer: wall time, or the CPU time of the calling thread (cpu and "
                        "onnxruntime with 1 thread: all the work runs on that thread, so it "
                        "equals an idle machine's wall time while other processes' load does "
                        "not inflate it); auto = thread for 1 CPU thread, else wall (auto)")
    g.add_argument("--cuda-graphs", action="store_true",
                   help="cuda: time CUDA graph replays (one launch per call, as a deployment that "
                        "replays graphs) instead of eager launches")
    r = p.add_argument_group("remote device (Ray)")
    r.add_argument("--ray-address", default=None,
                   help="Ray cluster address ('auto' or HOST:PORT); needs --resource")
    r.add_argument("--resource", default=None,
                   help="custom Ray resource advertised by the node that owns the device; the "
                        "profile runs there and the table is saved here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true",
                   help="start even when the memory estimate exceeds the memory available here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.io import check_writable
    from nas.locks import output_lock

    check_writable(Path(args.out).parent)  # before minutes of measuring, not after
    with output_lock(args.out, folder=False, command="nas profile"):
        return _run_locked(args)


def _run_locked(args: argparse.Namespace) -> int:
    from nas import budget
    from nas.latency.space_profile import profile_space, protocol_for
    from nas.spaces import load_space

    space = load_space(args.space)
    budget.check_memory(budget.profiling_estimate(space, args.batch), force=args.force)
    protocol = protocol_for(
        args.device,
        args.threads,
        check_here=args.ray_address is None,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        min_time_per_round=args.min_round_ms / 1e3,
        min_time_per_read=args.min_read_ms / 1e3,
        clock=args.clock,
        cuda_graph=args.cuda_graphs,
    )
    result = profile_space(
        space,
        args.out,
        protocol,
        batch=args.batch,
        calibrate=args.calibrate,
        seed=args.seed,
        ray_address=args.ray_address,
        resource=args.resource,
        progress=not args.no_progress,
        precisions=args.precisions,
        workers=args.workers,
        say=lambda text: print(f"nas profile: {text}", file=sys.stderr, flush=True),
    )
    print(
        f"{result.path}: {len(result.table)} entries ({result.measured} measured now, "
        f"{result.already} already there), calibration "
        f"{'fitted' if result.calibrated else ('kept' if result.table.calibration else 'none')}, "
        f"{result.seconds:.1f} s"
    )
    return 0

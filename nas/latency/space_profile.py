"""Profile a search space on a device: every unit key, then K calibration networks end to end.

:func:`profile_space` is what ``nas profile`` runs (and ``nas run`` calls):

1. The table at ``out`` is loaded if it exists (resume; its metadata must match this device and
   protocol) or started empty. The keys of :func:`nas.latency.space_units.space_keys` it lacks are
   measured with :func:`nas.latency.profiling.fill_missing` (chunks of interleaved rounds, saved
   as it goes), so an interrupted run continues where it stopped.
2. K (default 20) subnets from the calibration seed stream (half spread over the space's FLOPs
   range, half uniform: :func:`calibration_archs`) are built whole
   (:func:`~nas.latency.space_units.build_network`) and timed end to end with the same protocol,
   interleaved. :func:`fit_space_calibration` picks, by leave-one-out error on these K networks,
   the calibration that the data support (a scale; plus a per-layer or per-kind overhead; plus
   a cost per weight byte: see :func:`candidate_features`) and stores it, with the K
   measurements, in the JSON sidecar.
   Validation networks come from another seed stream and are checked never to be these.

With ``ray_address`` and ``resource``, steps 1-2 run as one Ray task on the node that advertises
``resource`` (:func:`nas.distributed.run_on_resource`), starting from the local table if any, and
the table comes back and is saved locally.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.arch import Architecture
from nas.devices import parse_device
from nas.errors import UserError
from nas.latency.calibration import Calibration
from nas.latency.export_pool import ExportPool, default_export_workers
from nas.latency.profiling import fill_missing
from nas.latency.protocol import default_calibration_k
from nas.latency.quantized_units import fill_int8, require_onnxruntime
from nas.latency.space_units import (
    all_precision_keys,
    arch_features,
    build_network,
    example_input,
    precision_keys,
    space_keys,
    unit_builders,
)
from nas.latency.table import LatencyTable, TableMeta
from nas.latency.timing import TimingItem, TimingProtocol, measure_many
from nas.precision import FP32, PRECISIONS
from nas.spaces.schema import SearchSpace
from nas.units import arch_keys

CALIBRATION_STREAM = 0xCA1B  # seed streams: default_rng([seed, stream])
VALIDATION_STREAM = 0x7A1D
TIE_TOLERANCE = 0.02  # calibration models within 2% of the best LOO error count as tied
DTYPE = "float32"
Say = Callable[[str], None]


def protocol_for(
    device: str = "cpu", threads: int = 1, *, check_here: bool = True, **settings: Any
) -> TimingProtocol:
    """The timing protocol for a ``--device`` value: ``cpu``, ``cuda[:i]`` (torch eager) or
    ``onnxruntime`` (the CPU ONNX Runtime); ``settings`` override the protocol's defaults.
    ``check_here``: the device must exist on this machine (not when profiling on a Ray node).
    ``clock="auto"`` (the default here) is ``"thread"`` on the CPU with 1 thread, where the
    calling thread does all the work, so its CPU time equals an idle machine's wall time and
    other processes' load does not inflate it; ``"wall"`` otherwise."""
    text = device.strip().lower()
    runtime = text if text in ("onnxruntime", "torchscript") else "torch"
    dev = "cpu" if runtime != "torch" else text
    if runtime == "torch" and check_here:
        try:
            parse_device(dev)
        except UserError as exc:
            raise UserError(f"{exc}, onnxruntime or torchscript") from None
    clock = settings.pop("clock", "auto")
    if clock == "auto":
        clock = "thread" if dev == "cpu" and int(threads) == 1 else "wall"
    return TimingProtocol(
        device=dev, runtime=runtime, threads=int(threads), clock=clock, **settings
    )


def protocol_of(table: LatencyTable) -> TimingProtocol:
    """The timing protocol a table was measured with (from its metadata)."""
    return protocol_from(table.meta.protocol)


def protocol_from(settings: Mapping[str, Any] | None) -> TimingProtocol:
    """A protocol from a table's recorded settings; settings it lacks take their defaults."""
    names = TimingProtocol.__dataclass_fields__
    return TimingProtocol(**{k: v for k, v in (settings or {}).items() if k in names})


# ----- architecture sets ----------------------------------------------------------------------


def distinct_archs(
    space: SearchSpace,
    n: int,
    rng: np.random.Generator,
    exclude: Sequence[Architecture] = (),
) -> list[Architecture]:
    """``n`` distinct random subnets not in ``exclude`` (bounded draws; error if the space is too
    small to give them)."""
    seen = {a.arch_id() for a in exclude}
    if n > space.size() - len(seen):
        raise UserError(
            f"space {space.name!r} has {space.size()} subnets; {n} distinct ones excluding "
            f"{len(seen)} do not exist; ask for fewer distinct subnets"
        )
    out: list[Architecture] = []
    for _ in range(max(100, 50 * n)):
        if len(out) == n:
            break
        arch = space.sample(rng)
        if arch.arch_id() not in seen:
            seen.add(arch.arch_id())
            out.append(arch)
    if len(out) < n:
        raise UserError(
            f"space {space.name!r}: drew only {len(out)} distinct subnets of the {n} asked "
            f"(excluding {len(exclude)}); ask for fewer"
        )
    return out


def calibration_archs(space: SearchSpace, k: int, seed: int = 0) -> list[Architecture]:
    """The K calibration subnets of ``seed`` (their own seed stream).

    An fp32 space's set is half stratified by FLOPs over the space's whole range (the largest
    and the smallest subnets first: :func:`nas.sample.draw.draw_architectures`) and half uniform
    (where random subnets lie). Uniform subnets alone are all mid-sized: a calibration fitted on
    them extrapolated to the small networks a latency-bounded search picks, and under-predicted
    them by up to 28% (``results/benchmarks/calibration_set.md``). A space with int8 genes keeps
    the uniform set its switch scales were validated with
    (``results/benchmarks/int8_calibration.md``)."""
    rng = np.random.default_rng([seed, CALIBRATION_STREAM])
    n_stratified = k // 2 if tuple(space.precisions) == (FP32,) and k >= 4 else 0
    if n_stratified == 0:
        return distinct_archs(space, k, rng)
    from nas.sample.draw import draw_architectures

    stratified = draw_architectures(space, n_stratified, strategy="flops",
                                    seed=int(rng.integers(2**31)))
    return stratified + distinct_archs(space, k - n_stratified, rng, exclude=stratified)


def validation_archs(
    space: SearchSpace, n: int, seed: int = 1, exclude: Sequence[Architecture] = ()
) -> list[Architecture]:
    """``n`` validation subnets of ``seed`` (another seed stream), never one of ``exclude``."""
    return distinct_archs(space, n, np.random.default_rng([seed, VALIDATION_STREAM]), exclude)


def stored_calibration_archs(table: LatencyTable) -> list[Architecture]:
    """The calibration subnets recorded in a table's sidecar (empty if none)."""
    record = table.meta.notes.get("calibration_set") or {}
    return [Architecture.from_str(s) for s in record.get("archs", [])]


# ----- end-to-end measurement -------------------------------------------------------------------


def measure_networks(
    space: SearchSpace,
    archs: Sequence[Architecture],
    protocol: TimingProtocol,
    *,
    batch: int = 1,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    export_pool: ExportPool | None = None,
) -> np.ndarray:
    """End-to-end latency (ms, the protocol's lowest round median) of each subnet, all timed in
    interleaved rounds. Weights of network ``i`` come from ``default_rng([seed, i])``; a subnet
    with an int8 gene is timed as its QDQ file (:func:`nas.latency.quantized_units.network_item`).
    ``export_pool`` exports the fp32 networks in parallel before any is timed."""
    from nas.latency.quantized_units import network_item

    rng = rng if rng is not None else np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="nas-networks-") as tmp:
        items = []
        for i, arch in enumerate(archs):
            net, x = build_network(space, arch, batch, np.random.default_rng([seed, i]))
            items.append(network_item(space, arch, net, x, Path(tmp), f"net{i}",
                                      np.random.default_rng([seed, i, 1])))
        with quiet_onnx_export():
            measured = measure_many(items, protocol, rng=rng, progress=progress,
                                    export_pool=export_pool)
    return np.array([measured[f"net{i}"].latency_ms for i in range(len(archs))])


# ----- per-call overhead -----------------------------------------------------------------------

CALL_OVERHEAD_NOTE = "call_overhead"


def measure_call_overhead(space: SearchSpace, protocol: TimingProtocol, *, batch: int = 1,
                          seed: int = 0) -> float:
    """The runtime's cost of one call (ms), measured directly: a ReLU on the network's input at
    the largest resolution, timed through the same path as every unit (for ONNX Runtime: the
    same export and session settings), so its work is negligible and what is left is what
    every timed unit pays once per call (session run, input binding, output allocation)."""
    res = max(space.resolutions)
    x = example_input((int(batch), space.in_channels, res, res), np.random.default_rng(seed))
    with quiet_onnx_export():
        measured = measure_many([TimingItem("call", torch.nn.ReLU(), x)], protocol,
                                rng=np.random.default_rng([seed, 3]))
    return float(measured["call"].latency_ms)


def call_overhead_of(table: LatencyTable) -> float | None:
    """The per-call overhead measured for ``table`` (ms), or ``None`` if it has none."""
    record = table.meta.notes.get(CALL_OVERHEAD_NOTE) or {}
    return float(record["ms"]) if "ms" in record else None


def record_call_overhead(table: LatencyTable, space: SearchSpace, protocol: TimingProtocol, *,
                         batch: int, seed: int) -> float:
    """Measure the per-call overhead and store it in the table's sidecar notes."""
    ms = measure_call_overhead(space, protocol, batch=batch, seed=seed)
    notes = dict(table.meta.notes)
    notes[CALL_OVERHEAD_NOTE] = {
        "ms": ms,
        "how": "lowest round median of a ReLU on the largest input, timed like every unit; "
        "each unit timed alone pays it once, the whole network once in all",
    }
    table.meta = replace(table.meta, notes=notes)
    return ms


# ----- calibration -------------------------------------------------------------------------------


def candidate_features(features: dict[str, np.ndarray]) -> dict[str, tuple[str, ...]]:
    """Calibration models to choose from, by name -> features (each also has an intercept):

    - ``scale``: ``lut_sum`` alone;
    - ``per-layer``: + ``n_units``, an overhead per timed unit (signed: a unit timed alone pays
      a runtime call the whole network pays once);
    - ``per-kind``: + ``n_<kind>``, one overhead per unit kind (only kinds whose count varies
      between networks; a constant count is part of the intercept);
    - ``weights``, ``per-layer+weights``, ``per-kind+weights``: + ``params``, the network's
      parameter count. A unit timed alone keeps its weights in cache; in a whole network they
      are evicted by the other layers' and reloaded on each call, a cost proportional to the
      weight bytes (largest for attention and mixer layers on small token grids).
    - with int8 units among the networks, each of these also as ``<name>+int8``: +
      ``int8_excess_<kind>`` (:meth:`~nas.latency.table.LatencyTable.int8_excess_features`), a
      scale per kind on what the table says switching that kind to int8 costs. Timed alone, a
      unit's int8 switch is mispriced by a factor of its own (an int8 mixer 1.8x, a conv 0.6x:
      ``results/benchmarks/int8_switch_cost.md``), which one scale on the sum cannot absorb.

    With ``lut_net`` among the features (the table has a MEASURED per-call overhead, see
    :func:`measure_call_overhead`), each candidate also comes as ``net-<name>`` with ``lut_net``
    in place of ``lut_sum`` (``per-layer`` excepted: its fitted overhead is what the measured
    one replaces); leave-one-out error chooses between them like between the others.
    """
    kinds = tuple(
        name
        for name, col in features.items()
        if name.startswith("n_") and name != "n_units" and np.ptp(col) > 0
    )
    out: dict[str, tuple[str, ...]] = {"scale": ("lut_sum",), "per-layer": ("lut_sum", "n_units")}
    if kinds:
        out["per-kind"] = ("lut_sum", *kinds)
    if "params" in features and np.ptp(features["params"]) > 0:
        out.update({f"{name}+weights" if name != "scale" else "weights": (*cols, "params")
                    for name, cols in list(out.items())})
    int8 = tuple(name for name, col in features.items()
                 if name.startswith("int8_excess_") and np.ptp(col) > 0)
    if int8:
        out.update({f"{name}+int8": (*cols, *int8) for name, cols in list(out.items())})
    if "lut_net" in features:
        out.update({f"net-{name}": ("lut_net", *cols[1:]) for name, cols in list(out.items())
                    if not name.startswith("per-layer")})
    return out


def net_sum_features(features: dict[str, np.ndarray], overhead_ms: float) -> dict[str, np.ndarray]:
    """``features`` plus ``lut_net``: the sum of unit medians, each less the per-call overhead it
    paid when timed alone, plus the one call the whole network pays."""
    out = dict(features)
    out["lut_net"] = features["lut_sum"] - overhead_ms * (features["n_units"] - 1.0)
    return out


def _as_lut_sum(cal: Calibration, overhead_ms: float) -> Calibration:
    """Rewrite ``a * lut_net + ...`` as ``a * lut_sum - a * o * n_units + (b + a * o)``: the same
    predictions in the features every consumer of a table knows (additive over units)."""
    coef = dict(zip(cal.features, cal.coef))
    a = coef.pop("lut_net", None)
    if a is None:
        return cal
    coef = {"lut_sum": a, "n_units": coef.pop("n_units", 0.0) - a * overhead_ms, **coef}
    return replace(cal, features=tuple(coef), coef=tuple(coef.values()),
                   intercept=cal.intercept + a * overhead_ms)


def _loo_rms_relative(features: dict[str, np.ndarray], names: tuple[str, ...], y: np.ndarray) -> float:
    errors = []
    for i in range(y.size):
        keep = np.arange(y.size) != i
        cal = Calibration.fit({n: features[n][keep] for n in names}, y[keep], nonnegative=False)
        pred = cal.predict({n: features[n][i : i + 1] for n in names})[0]
        errors.append((pred - y[i]) / y[i])
    return float(np.sqrt(np.mean(np.square(errors))))


def fit_space_calibration(
    table: LatencyTable,
    keys_per_arch: Sequence[Sequence[str]],
    measured_ms: Sequence[float],
    extra_features: dict[str, np.ndarray] | None = None,
    guard: tuple[Sequence[Sequence[str]], dict[str, np.ndarray]] | None = None,
    call_overhead_ms: float | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Choose and fit the calibration the K measurements support; returns it and a record of the
    choice (leave-one-out RMS relative error of every candidate). Not stored in the table.

    Coefficients are signed (least squares on relative errors); the candidate with the lowest
    leave-one-out error wins; within a relative TIE_TOLERANCE of it, the one with the fewest
    features (a model needs K >= its parameters + 4 to be considered). A candidate whose scale on
    the unit sum is not > 0 is rejected: its predictions would fall as the units get slower (a
    launch-bound GPU's 20 networks can fit that, and a latency-aware search would then prefer
    bigger layers). ``guard``: keys and extra features of architectures (the space's extremes)
    every prediction of which must be > 0 ms; a candidate that extrapolates to zero or below
    there is rejected. ``call_overhead_ms``: the
    runtime's measured per-call overhead (:func:`measure_call_overhead`); ``net-`` candidates on
    ``lut_net`` (:func:`net_sum_features`) then compete, and a chosen one is rewritten in
    ``lut_sum`` and ``n_units``."""
    y = np.asarray(measured_ms, dtype=np.float64)
    features = dict(table.calibration_features(keys_per_arch))
    features.update(extra_features or {})
    guard_features: dict[str, np.ndarray] | None = None
    if guard is not None:
        guard_features = dict(table.calibration_features(guard[0]))
        guard_features.update(guard[1])
    if call_overhead_ms is not None:
        features = net_sum_features(features, call_overhead_ms)
        if guard_features is not None:
            guard_features = net_sum_features(guard_features, call_overhead_ms)
    candidates = candidate_features(features)
    loo: dict[str, float] = {}
    fits: dict[str, Calibration] = {}
    rejected: list[str] = []
    rejected_scale: list[str] = []
    for name, cols in candidates.items():
        if y.size < len(cols) + 4:  # leave-one-out needs a few points beyond the parameters
            continue
        fit = Calibration.fit({n: features[n] for n in cols}, y, nonnegative=False)
        if fit.coef[0] <= 0:  # cols[0] is the unit sum (lut_sum or lut_net)
            rejected_scale.append(name)
            continue
        if guard_features is not None and np.any(fit.predict(guard_features) <= 0):
            rejected.append(name)
            continue
        fits[name] = fit
        loo[name] = _loo_rms_relative(features, cols, y)
    record: dict[str, Any] = {"loo_rms_relative_error": loo, "rejected_nonpositive": rejected,
                              "rejected_nonpositive_scale": rejected_scale,
                              "call_overhead_ms": call_overhead_ms}
    if not loo:  # too few measurements, or every signed model is rejected
        record["chosen"] = "scale (nonnegative)"
        return Calibration.fit({"lut_sum": features["lut_sum"]}, y), record
    best = min(loo.values())  # the fewest features within TIE_TOLERANCE of the best error
    near = [n for n in loo if loo[n] <= best * (1 + TIE_TOLERANCE) + 1e-12]
    record["chosen"] = min(near, key=lambda n: len(candidates[n]))
    return _as_lut_sum(fits[record["chosen"]], call_overhead_ms or 0.0), record


def calibrate_table(
    table: LatencyTable,
    space: SearchSpace,
    archs: Sequence[Architecture],
    measured_ms: Sequence[float],
    *,
    seed: int,
) -> Calibration:
    """Fit the calibration on measured subnets and store it, with the measurements, in ``table``."""
    keys = [arch_keys(space, a) for a in archs]
    extremes = [space.smallest(), space.largest()]
    guard_keys = [arch_keys(space, a) for a in extremes]
    guard = None  # predictions at the space's extremes must stay > 0 (when the table has them)
    if not table.missing(k for keys in guard_keys for k in keys):
        guard = (guard_keys, arch_features(space, extremes))
    calibration, choice = fit_space_calibration(
        table, keys, measured_ms, extra_features=arch_features(space, archs), guard=guard,
        call_overhead_ms=call_overhead_of(table),
    )
    table.set_calibration(calibration)
    notes = dict(table.meta.notes)
    notes["calibration_set"] = {
        "seed": int(seed),
        "stream": CALIBRATION_STREAM,
        "archs": [a.to_str() for a in archs],
        "arch_ids": [a.arch_id() for a in archs],
        "measured_ms": [float(v) for v in measured_ms],
        "precisions": list(space.precisions),
        **choice,
    }
    table.meta = replace(table.meta, notes=notes)
    return calibration


def recalibrate_from_notes(table: LatencyTable, space: SearchSpace) -> Calibration | None:
    """Re-fit the calibration from the end-to-end measurements stored in the sidecar (after a
    merge changed the entries); ``None`` if there are none or keys are still missing."""
    record = table.meta.notes.get("calibration_set") or {}
    archs = stored_calibration_archs(table)
    if not archs or table.missing(k for a in archs for k in arch_keys(space, a)):
        return None
    return calibrate_table(table, space, archs, record["measured_ms"], seed=record.get("seed", 0))


# ----- the profile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileResult:
    """What :func:`profile_space` did."""

    path: Path
    table: LatencyTable
    n_keys: int
    already: int
    measured: int
    calibrated: bool
    seconds: float


def profile_space(
    space: SearchSpace,
    out: str | Path,
    protocol: TimingProtocol | None = None,
    *,
    batch: int = 1,
    calibrate: int | None = None,
    seed: int = 0,
    ray_address: str | None = None,
    resource: str | None = None,
    chunk_size: int = 16,
    save_every_s: float = 0.0,
    progress: bool = True,
    say: Say = print,
    precisions: Sequence[str] | str | None = None,
    needed_for: Sequence[Architecture] | None = None,
    workers: int | None = None,
) -> ProfileResult:
    """Measure every unit of ``space`` missing from the table at ``out`` and calibrate it on
    ``calibrate`` end-to-end subnets (0: no calibration; default
    :func:`~nas.latency.protocol.default_calibration_k` of the precisions); see the module
    docstring.
    ``precisions`` (``"fp32,int8"``; default the space's): every unit at each, plus the
    quantize/dequantize boundaries (:mod:`nas.latency.quantized_units`), and calibration subnets
    with random precision policies. ``needed_for``: measure only the units these architectures
    and the calibration subnets contain (a partial table that predicts them; here only, not on a
    Ray node). ``workers``: processes that export units and networks to ONNX before they are
    timed (:mod:`nas.latency.export_pool`; default
    :func:`~nas.latency.export_pool.default_export_workers`); timing runs in this process."""
    protocol = protocol if protocol is not None else TimingProtocol()
    if precisions is not None:
        space = space.with_precisions(precisions)
    require_onnxruntime(space.precisions, protocol.runtime)
    if calibrate is None:
        calibrate = default_calibration_k(space.precisions)
    if batch < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if calibrate < 0:
        raise UserError(f"--calibrate must be >= 0, got {calibrate}")
    out = Path(out)
    start = time.monotonic()
    if (ray_address is None) != (resource is None):
        raise UserError("--ray-address and --resource go together (run on the node that "
                        "advertises the resource)")
    if ray_address is not None and needed_for is not None:
        raise UserError("profiling the units of given architectures runs here, not on Ray")
    if ray_address is not None:
        from nas.distributed import run_on_resource

        csv_path, _ = LatencyTable.paths(out)
        existing = LatencyTable.load(csv_path) if csv_path.exists() else None
        say(f"profiling on the Ray node with resource {resource!r} ({ray_address})")
        table, n_keys, already, measured, calibrated = run_on_resource(
            _profile_remote, space, protocol, batch, calibrate, seed, existing, workers,
            resource=resource, address=ray_address,
        )
        table.save(out)
    else:
        with ExportPool(workers or default_export_workers()) as pool:
            table, n_keys, already, measured, calibrated = _profile_here(
                space, out, protocol, batch, calibrate, seed, chunk_size, save_every_s, progress,
                say, pool, needed_for,
            )
    return ProfileResult(
        LatencyTable.paths(out)[0], table, n_keys, already, measured, calibrated,
        time.monotonic() - start,
    )


def _profile_remote(
    space: SearchSpace,
    protocol: TimingProtocol,
    batch: int,
    calibrate: int,
    seed: int,
    existing: LatencyTable | None,
    workers: int | None,
) -> tuple[LatencyTable, int, int, int, bool]:
    """Runs on the device's node: profile into a temporary file, return the table."""
    with (tempfile.TemporaryDirectory(prefix="nas-profile-") as tmp,
          ExportPool(workers or default_export_workers()) as pool):
        path = Path(tmp) / "table.csv"
        if existing is not None:
            existing.save(path)
        return _profile_here(space, path, protocol, batch, calibrate, seed, 16, 30.0, False, print,
                             pool)


def _profile_here(
    space: SearchSpace,
    out: Path,
    protocol: TimingProtocol,
    batch: int,
    calibrate: int,
    seed: int,
    chunk_size: int,
    save_every_s: float,
    progress: bool,
    say: Say,
    export_pool: ExportPool,
    needed_for: Sequence[Architecture] | None = None,
) -> tuple[LatencyTable, int, int, int, bool]:
    meta = TableMeta.for_protocol(
        protocol, batch=batch, dtype=DTYPE, space_name=space.name, space_hash=space.hash()
    )
    table = LatencyTable.load_or_create(out, meta)
    keys = precision_keys(space, space.precisions)
    stale = sorted(set(table.keys()) - all_precision_keys(space))
    if needed_for is not None:
        wanted = {k for a in [*needed_for, *calibration_archs(space, calibrate, seed)]
                  for k in arch_keys(space, a)}
        keys = [k for k in keys if k in wanted]
    todo = table.missing(keys)
    already = len(keys) - len(todo)
    if stale:
        raise UserError(
            f"{out} holds {len(stale)} key(s) that are not units of space {space.name!r} "
            f"(e.g. {stale[0]!r}); it was profiled for another space"
        )
    _record_precisions(table, space.precisions)
    need_cal = calibrate > 0 and not _calibrated_as(table, calibrate, seed, space.precisions)
    estimate = protocol.estimate_seconds(len(todo), typical_call_s=2e-4)
    estimate += protocol.estimate_seconds(calibrate, typical_call_s=2e-3) if need_cal else 0.0
    say(
        f"{space.name}: {len(keys)} unit entries, {already} already measured, {len(todo)} to "
        f"measure on {protocol.device}/{protocol.runtime} ({protocol.threads} thread(s), batch "
        f"{batch})" + (f", then {calibrate} calibration subnets end to end" if need_cal else "")
        + f"; estimated {_duration(estimate)} on an idle machine"
    )
    wanted_keys = set(keys)
    fp32_todo = table.missing([k for k in space_keys(space) if k in wanted_keys])
    if fp32_todo:
        todo_set = set(fp32_todo)
        with _bar(len(fp32_todo), "units", progress) as bar, quiet_onnx_export():
            fill_missing(
                table,
                {k: b for k, b in unit_builders(space, batch, seed).items() if k in todo_set},
                out,
                protocol,
                rng=np.random.default_rng([seed, 1]),
                chunk_size=chunk_size,
                save_every_s=save_every_s,
                progress=lambda done, total: bar.update(done - bar.n),
                export_pool=export_pool,
            )
    # ONNX Runtime and TorchScript: each unit timed alone pays a session / interpreter call the
    # whole network pays once. In torch eager every unit inside the network is still a module
    # call: nothing to take out.
    int8_todo = len(todo) - len(fp32_todo)
    new_overhead = ((calibrate > 0 or int8_todo > 0)
                    and protocol.runtime in ("onnxruntime", "torchscript")
                    and call_overhead_of(table) is None)
    if new_overhead:
        ms = record_call_overhead(table, space, protocol, batch=batch, seed=seed)
        say(f"per-call overhead of {protocol.runtime}: {1e3 * ms:.1f} us (measured directly)")
        table.save(out)
    if new_overhead and not need_cal and table.calibration is not None:
        recalibrate_from_notes(table, space)  # the stored K measurements, now with the overhead
        table.save(out)
        say(f"recalibrated with the measured overhead: {table.calibration.to_dict()['formula']}")
    if int8_todo:
        with _bar(int8_todo, "int8 units and boundaries", progress) as bar:
            fill_int8(table, space, out, protocol, batch=batch, seed=seed,
                      call_overhead_ms=call_overhead_of(table) or 0.0,
                      rng=np.random.default_rng([seed, 4]), keys=wanted_keys,
                      progress=lambda done, total: bar.update(done - bar.n))
    if need_cal:
        archs = calibration_archs(space, calibrate, seed)
        with _bar(protocol.rounds * len(archs), "calibration rounds", progress) as bar:
            measured = measure_networks(
                space, archs, protocol, batch=batch, seed=seed,
                rng=np.random.default_rng([seed, 2]),
                progress=lambda done, total: bar.update(done - bar.n),
                export_pool=export_pool,
            )
        cal = calibrate_table(table, space, archs, measured, seed=seed)
        table.save(out)
        record = table.meta.notes["calibration_set"]
        say(
            f"calibration ({record['chosen']}): {cal.to_dict()['formula']}; median |error| on "
            f"the {calibrate} calibration subnets {100 * (cal.fit_median_ape or 0):.1f}%"
        )
    elif not todo:
        table.save(out)  # nothing new; rewrite so the files are consistent
    return table, len(keys), already, len(todo), need_cal


@contextlib.contextmanager
def quiet_onnx_export() -> Iterator[None]:
    """Silence the TorchScript ONNX exporter's per-module tracer and constant-folding warnings
    (the windowed mixer's padding test is shape-static; hundreds of identical lines otherwise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        yield


PRECISIONS_NOTE = "precisions"


def table_precisions(table: LatencyTable) -> tuple[str, ...]:
    """The precisions a table was profiled at (``("fp32",)`` for tables without the note)."""
    return tuple(table.meta.notes.get(PRECISIONS_NOTE) or (FP32,))


def space_for_table(space: SearchSpace, table: LatencyTable,
                    precisions: Sequence[str] | str | None = None) -> SearchSpace:
    """``space`` allowing ``precisions`` (``"fp32,int8"``), by default those ``table`` was
    profiled at: the architectures a table predicts and a validation samples."""
    return space.with_precisions(precisions if precisions is not None
                                 else table_precisions(table))


def _record_precisions(table: LatencyTable, precisions: Sequence[str]) -> None:
    """Note the precisions profiled so far (the union with those already in the table)."""
    have = set(table_precisions(table)) | set(precisions)
    notes = dict(table.meta.notes)
    notes[PRECISIONS_NOTE] = [p for p in PRECISIONS if p in have]
    table.meta = replace(table.meta, notes=notes)


def _calibrated_as(table: LatencyTable, k: int, seed: int,
                   precisions: Sequence[str] = (FP32,)) -> bool:
    record = table.meta.notes.get("calibration_set") or {}
    return (
        table.calibration is not None
        and len(record.get("archs", [])) == k
        and record.get("seed") == seed
        and tuple(record.get("precisions", (FP32,))) == tuple(precisions)
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="", dynamic_ncols=True)

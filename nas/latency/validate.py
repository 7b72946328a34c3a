"""Validate a latency table against end-to-end measurements, beside the device's own repeatability.

:func:`validate_table` (what ``nas latency validate`` runs):

1. Draws N fresh random subnets from the validation seed stream, never one of the table's
   calibration subnets (checked by architecture id), and predicts each with the table
   (:func:`nas.latency.space_units.predict_latency`).
2. Pass 1: builds every subnet whole and times them end to end with the table's own timing
   protocol, batch and threads, in interleaved rounds.
3. Pass 2 (repeatability): the first ``repeat_subset`` subnets are built and timed again in a
   separate pass (fresh modules, fresh ONNX sessions, later in time). How often the two passes
   agree within +/-10% and their Kendall tau are the device's floor: a table cannot predict a
   measurement better than the device repeats it.
4. Metrics of the table against pass 1 (median absolute percentage error, share within +/-10%,
   Kendall tau, Spearman rho), the same for the uncalibrated sum of unit medians, and the floor.

:func:`write_report` writes the Markdown report (the reproducing command first) and a scatter PNG.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nas.arch import Architecture
from nas.devices import parse_device
from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write, atomic_write_text
from nas.latency.space_profile import (
    PRECISIONS_NOTE,
    measure_networks,
    protocol_for,
    protocol_from,
    protocol_of,
    space_for_table,
    stored_calibration_archs,
    validation_archs,
)
from nas.latency.space_units import check_table, predict_latency
from nas.latency.table import LatencyTable
from nas.latency.timing import protocol_description
from nas.spaces.schema import SearchSpace
from nas.units import arch_keys

Say = Callable[[str], None]


def agreement(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Median absolute percentage error, share within +/-10% and +/-5%, Kendall tau, Spearman rho
    and the mean signed error (%) of ``predicted`` against ``measured``."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    rel = (p - m) / m
    out = {
        "n": float(m.size),
        "median_ape_pct": float(np.median(np.abs(rel)) * 100),
        "within10_pct": float(np.mean(np.abs(rel) <= 0.10) * 100),
        "within5_pct": float(np.mean(np.abs(rel) <= 0.05) * 100),
        "mean_error_pct": float(np.mean(rel) * 100),
        "kendall_tau": float("nan"),
        "spearman_rho": float("nan"),
    }
    if m.size >= 2 and np.ptp(m) > 0 and np.ptp(p) > 0:
        out["kendall_tau"] = float(stats.kendalltau(p, m).statistic)
        out["spearman_rho"] = float(stats.spearmanr(p, m).statistic)
    return out


def repeat_agreement(first: Sequence[float], second: Sequence[float]) -> dict[str, float]:
    """Agreement of two passes over the same networks: the relative difference is taken against
    their mean (symmetric), so neither pass is privileged."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    rel = (a - b) / ((a + b) / 2)
    out = agreement(a, b)
    out["median_ape_pct"] = float(np.median(np.abs(rel)) * 100)
    out["within10_pct"] = float(np.mean(np.abs(rel) <= 0.10) * 100)
    out["within5_pct"] = float(np.mean(np.abs(rel) <= 0.05) * 100)
    out["mean_error_pct"] = float(np.mean(rel) * 100)
    return out


def drift_between(first: Sequence[float], second: Sequence[float]) -> float:
    """The common drift of a second pass over the same networks: the median ratio second/first
    (a machine that ran faster or slower as a whole between the passes)."""
    return float(np.median(np.asarray(second, dtype=np.float64)
                           / np.asarray(first, dtype=np.float64)))


def load_checked_table(
    space: SearchSpace, table: LatencyTable | str | os.PathLike
) -> tuple[LatencyTable, str]:
    """The table (loaded from a path, or as given) and its path for reports; it must be of
    ``space``."""
    table_path = "<in memory>"
    if not isinstance(table, LatencyTable):
        table_path = str(LatencyTable.paths(table)[0])
        table = LatencyTable.load(table, expected_space_hash=space.hash())
    check_table(table, space)
    return table, table_path


@dataclass
class ValidationResult:
    """Everything a validation measured and computed (latencies in ms)."""

    space: str
    table_path: str
    table_meta: dict[str, Any]
    n_entries: int
    archs: list[Architecture]
    lut_sum: np.ndarray
    predicted: np.ndarray
    measured: np.ndarray
    repeat_index: np.ndarray  # indices of the networks measured twice
    measured_again: np.ndarray
    metrics: dict[str, float]
    metrics_uncalibrated: dict[str, float]
    repeatability: dict[str, float]
    metrics_on_subset: dict[str, float]
    seed: int
    n_calibration: int
    seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)
    repeatability_drift_removed: dict[str, float] = field(default_factory=dict)
    drift: float = 1.0  # median pass-2 / pass-1 ratio

    @property
    def label(self) -> str:
        """``cpu_onnxruntime``, ``cuda0_torch``: the device and runtime, file-name safe."""
        return f"{self.table_meta['device'].replace(':', '')}_{self.table_meta['runtime']}"


def validate_table(
    space: SearchSpace,
    table: LatencyTable | str | os.PathLike,
    *,
    n: int = 100,
    repeat_subset: int = 30,
    seed: int = 1,
    progress: bool = True,
    say: Say = print,
    precisions: Sequence[str] | str | None = None,
) -> ValidationResult:
    """Measure ``n`` fresh subnets end to end and compare with the table (module docstring).
    ``precisions``: those the subnets' policies are drawn from (default: the table's; with int8,
    mixed-precision subnets measured as their QDQ files)."""
    table, table_path = load_checked_table(space, table)
    space = space_for_table(space, table, precisions)
    if n < 2:
        raise IncompatibleFileError(f"--n must be >= 2 to compare rankings, got {n}")
    repeat_subset = max(0, min(int(repeat_subset), n))
    parse_device(table.meta.device)  # the table's device must exist here
    protocol = protocol_of(table)
    batch = int(table.meta.batch)
    calibration = stored_calibration_archs(table)
    archs = validation_archs(space, n, seed, exclude=calibration)
    overlap = {a.arch_id() for a in archs} & {a.arch_id() for a in calibration}
    if overlap:  # distinct seed streams and the exclusion make this impossible; never trust it
        raise RuntimeError(f"validation subnets {sorted(overlap)} are calibration subnets")
    keys = [arch_keys(space, a) for a in archs]
    lut_sum = table.lut_sums(keys)
    predicted = predict_latency(table, space, archs)  # names missing keys before measuring
    load_before = os.getloadavg()
    say(
        f"validating {table_path} ({table.meta.device}/{table.meta.runtime}, "
        f"{table.meta.threads} thread(s), batch {batch}) on {n} subnets (seed {seed}), "
        f"{repeat_subset} of them measured twice; load average {load_before[0]:.2f}"
    )
    start = time.monotonic()
    measured = _timed_pass(space, archs, protocol, batch, seed, 10, "pass 1", progress)
    index = np.arange(repeat_subset)
    again = _timed_pass(
        space, [archs[i] for i in index], protocol, batch, seed, 20, "pass 2", progress
    )
    seconds = time.monotonic() - start
    result = ValidationResult(
        space=space.name,
        table_path=table_path,
        table_meta=table.meta.to_dict(),
        n_entries=len(table),
        archs=archs,
        lut_sum=lut_sum,
        predicted=predicted,
        measured=measured,
        repeat_index=index,
        measured_again=again,
        metrics=agreement(predicted, measured),
        metrics_uncalibrated=agreement(lut_sum, measured),
        repeatability=repeat_agreement(measured[index], again) if index.size >= 2 else {},
        metrics_on_subset=agreement(predicted[index], measured[index]) if index.size >= 2 else {},
        seed=seed,
        n_calibration=len(calibration),
        seconds=seconds,
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    if index.size >= 2:
        result.drift = drift_between(measured[index], again)
        result.repeatability_drift_removed = repeat_agreement(
            measured[index], again / result.drift
        )
    if table.calibration is None:
        result.notes.append("the table has no calibration: predictions are raw sums of unit medians")
    return result


def _timed_pass(
    space: SearchSpace,
    archs: Sequence[Architecture],
    protocol: Any,
    batch: int,
    seed: int,
    stream: int,
    desc: str,
    progress: bool,
) -> np.ndarray:
    if not archs:
        return np.zeros(0)
    from tqdm.auto import tqdm

    with tqdm(total=protocol.rounds * len(archs), desc=desc, disable=not progress,
              dynamic_ncols=True) as bar:
        return measure_networks(
            space, archs, protocol, batch=batch, seed=seed,
            rng=np.random.default_rng([seed, stream]),
            progress=lambda done, total: bar.update(done - bar.n),
        )


def summary_lines(result: ValidationResult) -> list[str]:
    """The headline numbers, the table's error always beside the device's repeatability."""
    m, u, r = result.metrics, result.metrics_uncalibrated, result.repeatability
    lines = [
        f"table (calibrated): {m['within10_pct']:.0f}% within +/-10%, median |error| "
        f"{m['median_ape_pct']:.1f}%, Kendall tau {m['kendall_tau']:.3f}, Spearman "
        f"{m['spearman_rho']:.3f} (n={int(m['n'])})",
        f"sum of unit medians: {u['within10_pct']:.0f}% within +/-10%, mean error "
        f"{u['mean_error_pct']:+.1f}%, Kendall tau {u['kendall_tau']:.3f}",
    ]
    if r:
        lines.append(
            f"device repeatability (two passes, n={int(r['n'])}): {r['within10_pct']:.0f}% "
            f"within +/-10%, median |difference| {r['median_ape_pct']:.1f}%, Kendall tau "
            f"{r['kendall_tau']:.3f}; pass 2 / pass 1 {result.drift:.3f} on the median, "
            f"{result.repeatability_drift_removed['within10_pct']:.0f}% within +/-10% with "
            "that drift divided out"
        )
    return lines


# ----- report ------------------------------------------------------------------------------------


def report_paths(md_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The files :func:`write_report` writes: the Markdown, the scatter PNG and the networks CSV."""
    md_path = Path(md_path)
    return md_path, md_path.with_suffix(".png"), md_path.with_suffix(".csv")


def check_report_keeps(md_path: str | os.PathLike, keep: Sequence[str | os.PathLike]) -> None:
    """Refuse (one line) a report path whose files would overwrite one of ``keep`` (the table
    being validated and its sidecar: ``--out table.md`` would write the networks as table.csv)."""
    kept = {Path(k).resolve() for k in keep}
    for path in report_paths(md_path):
        if path.resolve() in kept:
            raise UserError(f"--out {md_path} would overwrite {path} (the report writes "
                            f"{', '.join(p.name for p in report_paths(md_path))}); "
                            "choose another --out")


def write_report(
    result: ValidationResult, md_path: str | os.PathLike, command: str
) -> tuple[Path, Path, Path]:
    """Write the Markdown report, a CSV of every network and the scatter PNG beside it."""
    md_path, png_path, csv_path = report_paths(md_path)
    _write_plot(result, png_path)
    atomic_write_text(csv_path, _csv(result))
    atomic_write_text(md_path, _markdown(result, command, png_path.name, csv_path.name))
    return md_path, png_path, csv_path


def _csv(result: ValidationResult) -> str:
    again = dict(zip(result.repeat_index.tolist(), result.measured_again.tolist()))
    rows = ["arch_id,arch,lut_sum_ms,predicted_ms,measured_ms,measured_again_ms"]
    for i, arch in enumerate(result.archs):
        second = f"{again[i]:.6g}" if i in again else ""
        rows.append(
            f'{arch.arch_id()},"{arch.to_str()}",{result.lut_sum[i]:.6g},'
            f"{result.predicted[i]:.6g},{result.measured[i]:.6g},{second}"
        )
    return "\n".join(rows) + "\n"


def _fmt_metrics(m: dict[str, float]) -> list[str]:
    if not m:
        return ["", "", "", "", ""]
    return [
        f"{m['within10_pct']:.0f}%",
        f"{m['median_ape_pct']:.1f}%",
        f"{m['mean_error_pct']:+.1f}%",
        f"{m['kendall_tau']:.3f}",
        f"{m['spearman_rho']:.3f}",
    ]


def _markdown(result: ValidationResult, command: str, png: str, csv_name: str) -> str:
    meta = result.table_meta
    cal = meta.get("calibration") or {}
    cal_set = (meta.get("notes") or {}).get("calibration_set") or {}
    proto = protocol_description(protocol_from(meta.get("protocol")))  # complete, as measured
    r = result.repeatability
    lines = [
        f"# Latency table validation: {result.space} on {meta['device']}/{meta['runtime']}",
        "",
        f"Reproduce: `{command}`",
        "",
        f"The table was made by: `{profile_command(meta, result.table_path)}`",
        "",
        f"Measured {datetime.now(timezone.utc).isoformat(timespec='seconds')} on "
        f"{meta['processor']} ({platform.machine()}, {os.cpu_count()} logical cores), "
        f"{', '.join(f'{k} {v}' for k, v in meta['versions'].items())}; {meta['threads']} "
        f"thread(s), batch {meta['batch']}, {meta['dtype']}. Table `{result.table_path}`: "
        f"{result.n_entries} unit entries. Load average (1 min) "
        f"{result.load_before[0]:.2f} before and {result.load_after[0]:.2f} after the "
        f"measurements, which took {result.seconds:.0f} s.",
        "",
        "## Result",
        "",
        "| | within +/-10% | median abs. error | mean signed error | Kendall tau | Spearman |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| table, calibrated (n={int(result.metrics['n'])}) | "
        + " | ".join(_fmt_metrics(result.metrics)) + " |",
        f"| sum of unit medians, uncalibrated (n={int(result.metrics_uncalibrated['n'])}) | "
        + " | ".join(_fmt_metrics(result.metrics_uncalibrated)) + " |",
    ]
    if r:
        lines += [
            f"| table, calibrated, on the repeated subset (n={int(r['n'])}) | "
            + " | ".join(_fmt_metrics(result.metrics_on_subset)) + " |",
            f"| **device repeatability**: pass 1 vs pass 2 (n={int(r['n'])}) | "
            + " | ".join(_fmt_metrics(r)) + " |",
            f"| device repeatability, the common drift between passes divided out "
            f"(n={int(r['n'])}) | "
            + " | ".join(_fmt_metrics(result.repeatability_drift_removed)) + " |",
        ]
    lines += [
        "",
        "The device repeatability row is the floor: the same networks, built and timed again in a "
        "separate pass, agree with themselves this often (relative difference against the mean of "
        "the two passes). A table cannot predict a measurement better than the device repeats it. "
        f"On the median, pass 2 ran {100 * (result.drift - 1):+.1f}% against pass 1: a drift of "
        "the machine over time (other jobs' load: shared caches and memory bandwidth, and time "
        "slices where the clock is wall time), which the last row divides out to leave the "
        "network-to-network noise.",
        "",
        f"![predicted vs measured]({png})",
        "",
        f"Every network (architecture, sum of unit medians, prediction, both measurements): "
        f"[{csv_name}]({csv_name}).",
        "",
        "## How it was measured",
        "",
        f"- Networks: {int(result.metrics['n'])} random subnets of `{result.space}` drawn with "
        f"seed {result.seed} from the validation seed stream; none is one of the table's "
        f"{result.n_calibration} calibration subnets (checked by architecture id). Each is built "
        "whole (the static modules `Supernet.extract` produces) with seeded random weights.",
        f"- Timing protocol (the table's own): warm-up {proto['warmup']} calls; one timer read "
        f"spans enough calls to last {1e3 * proto['min_time_per_read']:.1f} ms; a round takes "
        f"max({proto['repeats']} reads, {1e3 * proto['min_time_per_round']:.0f} ms) and keeps the "
        f"median per-call time; {proto['rounds']} rounds interleaved over all networks in a "
        f"shuffled order; the estimate is the lowest round median. Timer: {proto['timer']}"
        + (" (on a machine shared with other jobs, the time the scheduler gives to other "
           "processes is left out; with one thread it equals an idle machine's wall time). "
           if proto.get("clock") == "thread" else ". ")
        + ("ONNX Runtime: each network exported to ONNX and run in its own session "
           "(intra-op threads = threads, inter-op 1, sequential)."
           if meta["runtime"] == "onnxruntime"
           else "Torch eager under `torch.inference_mode()`, `torch.set_num_threads(threads)`."),
        f"- Pass 2 rebuilt and re-timed the first {int(r.get('n', 0))} networks after pass 1, "
        "in the same interleaved way.",
    ]
    if cal:
        loo = cal_set.get("loo_rms_relative_error", {})
        loo_text = ", ".join(f"{k} {100 * v:.1f}%" for k, v in loo.items())
        lines.append(
            f"- Calibration (stored in the table's sidecar): `{cal['formula']}` ms, fitted on "
            f"{cal['n_fit']} other subnets measured end to end by `nas profile`; model "
            f"'{cal_set.get('chosen', '?')}' chosen by leave-one-out RMS relative error "
            f"({loo_text})."
        )
    for note in result.notes:
        lines.append(f"- Note: {note}")
    return "\n".join(lines) + "\n"


def profile_command(meta: dict[str, Any], out: str) -> str:
    """The ``nas profile`` command that makes a table with this metadata (non-default protocol
    settings spelled out)."""
    from nas.latency.timing import TimingProtocol

    proto = protocol_description(protocol_from(meta.get("protocol")))  # complete
    default = TimingProtocol()
    runtime = meta["runtime"]
    device = runtime if runtime in ("onnxruntime", "torchscript") else meta["device"]
    notes = meta.get("notes") or {}
    cal_set = notes.get("calibration_set") or {}
    parts = [
        "nas profile --space", meta["space_name"], "--latency-device", device,
        "--threads", str(meta["threads"]), "--batch", str(meta["batch"]),
        "--calibrate", str(len(cal_set.get("archs", []))),
        "--seed", str(cal_set.get("seed", 0)),
    ]
    precisions = notes.get(PRECISIONS_NOTE) or ["fp32"]
    if list(precisions) != ["fp32"]:
        parts += ["--precisions", ",".join(precisions)]
    auto_clock = protocol_for(device, meta["threads"], check_here=False).clock
    if proto.get("clock", "wall") != auto_clock:
        parts += ["--clock", proto.get("clock", "wall")]
    if proto.get("cuda_graph"):
        parts.append("--cuda-graphs")
    flags = (("warmup", "--warmup", 1), ("repeats", "--repeats", 1), ("rounds", "--rounds", 1),
             ("min_time_per_round", "--min-round-ms", 1e3),
             ("min_time_per_read", "--min-read-ms", 1e3))
    for name, flag, scale in flags:
        if proto.get(name) != getattr(default, name):
            parts += [flag, f"{proto[name] * scale:g}"]
    return " ".join([*parts, "--out", out])


def _write_plot(result: ValidationResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_repeat = result.repeat_index.size >= 2
    fig, axes = plt.subplots(1, 2 if has_repeat else 1, figsize=(11 if has_repeat else 5.5, 5))
    axes = np.atleast_1d(axes)
    m = result.metrics
    _scatter(axes[0], result.measured, result.predicted, "measured (ms)", "predicted (ms)",
             f"table vs device: {m['within10_pct']:.0f}% within 10%, tau {m['kendall_tau']:.2f}",
             also=result.lut_sum)
    axes[0].scatter(result.measured, result.lut_sum, s=8, c="0.6", marker="x",
                    label="sum of unit medians (uncalibrated)")
    axes[0].legend(loc="upper left", fontsize=8)
    if has_repeat:
        r = result.repeatability
        _scatter(axes[1], result.measured[result.repeat_index], result.measured_again,
                 "pass 1 (ms)", "pass 2 (ms)",
                 f"device vs itself: {r['within10_pct']:.0f}% within 10%, tau "
                 f"{r['kendall_tau']:.2f}")
    fig.suptitle(f"{result.space} on {result.table_meta['device']}/"
                 f"{result.table_meta['runtime']} ({result.table_meta['processor']})", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def _scatter(
    ax: Any, x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, title: str,
    also: np.ndarray | None = None,
) -> None:
    values = np.concatenate([x, y] + ([also] if also is not None else []))
    lo, hi = float(values.min()) * 0.9, float(values.max()) * 1.1
    line = np.array([lo, hi])
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="+/-10%")
    ax.plot(line, line, color="tab:green", lw=1)
    ax.scatter(x, y, s=12, c="tab:blue")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(lo, hi), ylim=(lo, hi))
    ax.title.set_fontsize(9)


REPORT_DIR = Path("results") / "benchmarks"


def default_report_path(result: ValidationResult) -> Path:
    """``results/benchmarks/latency_<device>_<runtime>.md``."""
    return REPORT_DIR / f"latency_{result.label}.md"

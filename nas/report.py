"""``report.md`` of ``nas run``: what each stage did, and what was predicted beside what was measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nas.io import atomic_write_text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def si(value: float) -> str:
    """A count with an SI suffix: 12.34K, 5.60M."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{prefix}"
    return f"{value:.0f}"


def exported_table(rows: list[dict[str, Any]], bound_ms: float) -> list[str]:
    tuned = any(e.get("finetune_epochs") for e in rows)
    inherited = " | inherited val / test" if tuned else ""
    lines = [
        "| arch id | FLOPs | params | peak memory | predicted acc | val acc | test acc (reported only) "
        f"{inherited}| predicted ms | measured ms | measured / predicted | within bound |",
        "|---|---|---|---|---|---|---|" + ("---|" if tuned else "") + "---|---|---|---|",
    ]
    for e in rows:
        ok = (
            "-"
            if e["measured_ms"] is None
            else ("yes" if e["measured_ms"] <= bound_ms else "**no**")
        )
        lines.append(
            f"| `{e['arch_id']}` | {si(e['flops'])} | {si(e['params'])} | {e['memory'] / 1024:.1f} KiB "
            f"| {_pct(e['predicted_acc'])} | {_pct(e['val_acc'])} | {_pct(e['test_acc'])} "
            + (
                f"| {_pct(e.get('val_acc_inherited'))} / {_pct(e.get('test_acc_inherited'))} "
                if tuned
                else ""
            )
            + f"| {_ms(e['predicted_ms'])} | {_ms(e['measured_ms'])} | {_ratio(e)} | {ok} |"
        )
    why = [f"- `{e['arch_id']}`: {e['why']}" for e in rows if e.get("why")]
    return [*lines, *(["", "Why each was picked:", "", *why] if why else [])]


def _ratio(e: dict[str, Any]) -> str:
    if e.get("measured_ms") is None or not e.get("predicted_ms"):
        return "-"
    return f"{e['measured_ms'] / e['predicted_ms']:.3f}"


def random_search_section(baseline: dict[str, Any] | None, bound_ms: float) -> list[str]:
    """The random-search baseline at the same number of measured subnets."""
    lines = ["", "### Random search at the same budget", ""]
    if baseline is None:
        return [*lines, "None of the measured subnets meets the bounds: no random-search baseline."]
    lines.append(
        f"Of the {baseline['measured']} subnets measured for the predictor (drawn at random, "
        f"stratified by FLOPs), {baseline['feasible']} meet the bounds (the predicted latency "
        "against the first round's bound, like the first search); the best of them by measured "
        "validation accuracy, exported the same way:"
    )
    return [*lines, "", *exported_table([baseline["exported"]], bound_ms)]


def summary_rows(stages: dict[str, Any]) -> list[dict[str, Any]]:
    """The final round's exported models (for the terminal summary)."""
    rounds = stages.get("export", {}).get("rounds", [])
    return rounds[-1]["exported"] if rounds else []


def write_report(root: Path, plan: Any, stages: dict[str, Any]) -> Path:
    """Write ``report.md`` (and copy the last round's Pareto plot to ``pareto.png``)."""
    from dataclasses import asdict

    lines = ["# nas run report", ""]
    preset = {"hybrid-tiny": "--preset quick ", "hybrid-fmnist": "--preset fashion-mnist "}
    lines += [
        f"Reproduce: `nas run {preset.get(plan.space, '')}--out {root}` (settings at the end).",
        "",
    ]
    lines += ["## Stages", "", "| stage | seconds |", "|---|---|"]
    lines += [
        f"| {name} | {info.get('seconds', 0):.0f} |"
        for name, info in stages.items()
        if name != "report"
    ]

    train = stages.get("train", {}).get("summary", {})
    if isinstance(train, dict) and train:
        final = train.get("final", {})
        accs = {
            k[len("val_acc_") :]: v
            for k, v in final.items()
            if k.startswith("val_acc_") and v != ""
        }
        lines += [
            "",
            "## Supernet",
            "",
            f"{train.get('epochs')} epochs in {train.get('train_s', 0):.0f} s.",
        ]
        lines += [
            f"- validation accuracy of the {k} subnet (shared BN): {_pct(float(v))}"
            for k, v in accs.items()
        ]

    profile = stages.get("profile", {})
    if profile:
        lines += [
            "",
            "## Latency table",
            "",
            f"{profile.get('keys')} unit entries (`latency/table.csv`).",
        ]
        cal = profile.get("calibration")
        if cal:
            lines.append(
                f"Calibration on end-to-end measurements: `{json.dumps(cal, sort_keys=True)}`"
            )

    fit = stages.get("fit", {})
    if fit:
        scores = ", ".join(f"{m}: {t:.3f}" for m, t in fit.get("cv_kendall_tau", {}).items())
        lines += [
            "",
            "## Predictor",
            "",
            f"Chosen by 5-fold cross-validated Kendall tau on the "
            f"{stages.get('sample', {}).get('rows')} measured subnets ({scores}): **{fit.get('chosen')}**.",
        ]

    export = stages.get("export", {})
    if export:
        bound = float(export["bound_ms"])
        search = stages.get("search", {})
        lines += ["", "## Search and export", ""]
        lines.append(
            f"Bounds: latency <= {bound:.3f} ms, peak memory <= {search['bounds']['memory'] / 1024:.1f} KiB"
            + (
                f", params <= {si(search['bounds']['params'])}"
                if "params" in search["bounds"]
                else ""
            )
            + f" ({'given' if plan.latency_bound_ms is not None else 'latency and memory derived: median predicted latency / 75th percentile memory of 2,000 random subnets'})."
        )
        for r in export["rounds"]:
            lines += ["", f"### Round {r['round']}: search bound {r['search_bound_ms']:.3f} ms", ""]
            lines += exported_table(r["exported"], bound)
            if r["worst_ratio"] > 1.0:
                lines.append(
                    f"\nA measured latency broke the bound (worst measured/bound {r['worst_ratio']:.3f})"
                    + (
                        "; the search bound was tightened by that ratio (the least that brings "
                        "the worst violator's measured latency to the bound) and the search run "
                        "again; the exports that met the bound stay candidates."
                        if r is not export["rounds"][-1]
                        else "; no rounds left."
                    )
                )
                for arch_id, text in (r.get("mispredicted") or {}).items():
                    lines.append(f"- `{arch_id}` (ONNX Runtime profiler inside the file): {text}")
        if any(e.get("finetune_epochs") for e in export["rounds"][-1]["exported"]):
            lines.append(
                f"\nThe last round's models were fine-tuned {plan.finetune_epochs} epoch(s) from "
                "their inherited weights after their latency was measured; val / test accuracy "
                "are after fine-tuning, the inherited column before."
            )
        lines += random_search_section(export.get("random_search"), bound)
        lines.append("")
        lines.append(
            "All exported models within the latency bound."
            if export.get("within_bound")
            else "**Some exported models exceed the latency bound after the last round.**"
        )
        last = export["rounds"][-1]["round"]
        png = root / "search" / f"round{last}" / "pareto.png"
        if png.exists():
            shutil.copyfile(png, root / "pareto.png")
            lines += ["", "![Pareto front](pareto.png)"]

    from nas.runs import read_run, weak_run_warnings

    warnings = weak_run_warnings(read_run(root))
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in warnings] or ["None: no weak-run check fired (nas.runs)."]
    lines += ["", "## Settings", "", "```json", json.dumps(asdict(plan), indent=2), "```", ""]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path

"""``nas export``: one architecture of a trained run -> verified model files and a model card."""

from __future__ import annotations

import argparse
import sys

from nas.cli.options import deprecated_alias
from nas.export.options import SUPPORTED_FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export an architecture with inherited weights (pt, TorchScript, ONNX) and a model card",
        description=(
            "Extract ARCH from the supernet of the run folder --run, recalibrate its BatchNorm on "
            "the train split (seeded), measure validation and test accuracy (test: reported only), "
            "and write it to --out in the requested formats, each reloaded and checked against "
            "the eager model (ONNX Runtime within 1e-4; TorchScript, .pt2 and ONNX also in a "
            "fresh interpreter that cannot import nas), plus MODEL_CARD.md and model_card.json "
            "with exact FLOPs/params/memory, predicted (--table) and measured latency on this "
            "device, accuracies, provenance and file hashes. Nothing is left behind on error."
        ),
    )
    p.add_argument("--run", required=True, help="run folder written by 'nas train', e.g. "
                   "results/my-run")
    p.add_argument("--arch", required=True,
                   help="architecture ID (12 hex digits, looked up in <run>/search/**/*.json|csv "
                   "and <run>/samples*.csv), a JSON file (an architecture, or a search-front entry "
                   "with an 'arch'/'arch_json' field), JSON text, or a short string such as "
                   "'r16 | w8: ir_k3_e1 | w16: at_h2_m2'")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--formats", default=",".join(SUPPORTED_FORMATS),
                   help=f"comma-separated subset of {','.join(SUPPORTED_FORMATS)} (default: all)")
    p.add_argument("--table", dest="lut", help="latency table (CSV or its JSON sidecar) for the predicted "
                   "latency; its timing protocol, batch and threads are also used to measure")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for the latency measurement (default: the table's, else 1)")
    p.add_argument("--latency-device", dest="device", default=None,
                   help="device for the latency measurement: cpu, cuda, cuda:N (default: the "
                   "table's when available here, else cpu)")
    p.add_argument("--no-measure", action="store_true", help="do not measure latency here")
    p.add_argument("--recal-batches", type=int, default=None,
                   help="BatchNorm recalibration batches of the train split (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the BN recalibration batches (0)")
    p.add_argument("--no-standalone-check", action="store_true",
                   help="skip loading the files in a fresh interpreter without nas (faster)")
    p.add_argument("--finetune", type=int, default=None, metavar="EPOCHS",
                   help="fine-tune the extracted subnet EPOCHS epochs from its inherited weights "
                   "before exporting (OFA style; the card reports accuracy before and after)")
    p.add_argument("--finetune-lr", type=float, default=None,
                   help="peak AdamW learning rate of --finetune (default 1e-3, cosine to 0)")
    p.add_argument("--force", action="store_true",
                   help="replace --out when it holds an earlier 'nas export' output (a folder "
                   "with anything else, or a training run, is refused, never deleted)")
    p.add_argument("--no-progress", dest="quiet", action="store_true",
                   help="no progress lines on stderr")
    deprecated_alias(p, "export", "--lut", "--table", dest="lut")
    deprecated_alias(p, "export", "--device", "--latency-device", dest="device")
    deprecated_alias(p, "export", "--quiet", "--no-progress", dest="quiet", flag=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.errors import UserError
    from nas.export.pipeline import export_architecture
    from nas.train import DEFAULT_RECAL_BATCHES
    from nas.train.finetune import FinetuneConfig

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"nas export: {message}", file=sys.stderr, flush=True)

    finetune = None
    if args.finetune is not None:
        lr = {} if args.finetune_lr is None else {"lr": args.finetune_lr}
        finetune = FinetuneConfig(epochs=args.finetune, seed=args.seed, **lr)
    elif args.finetune_lr is not None:
        raise UserError("--finetune-lr needs --finetune EPOCHS")
    result = export_architecture(
        args.run,
        args.arch,
        args.out,
        formats=args.formats,
        lut=args.lut,
        measure_latency=not args.no_measure,
        threads=args.threads,
        device=args.device,
        recal_batches=args.recal_batches if args.recal_batches is not None
        else DEFAULT_RECAL_BATCHES,
        seed=args.seed,
        overwrite=args.force,
        standalone_check=not args.no_standalone_check,
        finetune=finetune,
        progress=progress,
    )
    print(summary(result))
    return 0


def summary(result) -> str:
    """A few lines for the terminal: what was written and the headline numbers."""
    card = result.card
    lat = card["latency"]
    c = result.costs
    lines = [
        f"exported {result.arch_id}: {result.arch.to_str()}",
        f"  to       {result.out_dir}",
        f"  files    {', '.join(p.name for p in result.files.values())}",
        f"  costs    {c.flops:,} FLOPs, {c.params:,} params, peak memory "
        f"{c.peak_memory_bytes:,} B, parameter memory {c.param_memory_bytes:,} B",
        f"  accuracy val {_pct(result.val_acc)}, test {_pct(result.test_acc)} (test: reported "
        "only)" + _finetune_text(result.finetune),
        f"  latency  predicted {_ms(lat['predicted_ms'])}; measured "
        + (", ".join(f"{rt} {m.latency_ms:.3f} ms" for rt, m in result.measured.items())
           or "not measured"),
    ]
    return "\n".join(lines)


def _finetune_text(ft: dict | None) -> str:
    if ft is None:
        return ""
    b = ft["before"]
    return (f"; before the {ft['config']['epochs']}-epoch fine-tune: val "
            f"{_pct(b['val'] and b['val']['acc'])}, test {_pct(b['test'] and b['test']['acc'])}")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _ms(v: float | None) -> str:
    return "n/a (no --table)" if v is None else f"{v:.3f} ms"

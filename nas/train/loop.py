"""Once-for-all supernet training: the sandwich rule, in-place distillation, checkpoints, resume.

Each step takes one training batch, asks the schedule (:mod:`nas.train.schedules`) which subnets to
train, resizes the batch to each subnet's resolution, and accumulates their gradients: the first
subnet (the largest) learns from the labels (label-smoothed), the others from a mix of its detached
soft labels and the labels (``distill_weight``: 0.25 by default, the best of a sweep on digits; 1.0
is BigNAS's pure distillation, which lagged far behind there). Then the gradients are clipped and
the optimizer takes one step. With ``zero_init_residual`` every residual branch starts at zero
(:mod:`nas.train.init`). At the end of each epoch the largest and smallest subnets are evaluated on
the validation split (BN recalibrated on copies, the supernet is untouched), and a checkpoint is
written atomically.

Determinism: weights are initialised from ``torch.manual_seed(seed)``; dropout draws from the same
torch generator; subnets are sampled from a numpy Generator seeded from ``seed``; batches come from
:class:`nas.data.BatchLoader` (a pure function of ``seed`` and the epoch). All of these states are
in the checkpoint, so a resumed run ends with exactly the weights of an uninterrupted one (on CPU,
with the same thread count). Training runs inside ``torch.random.fork_rng``: the caller's global
torch and ``random`` states are left as they were.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from nas.arch import Architecture
from nas.data import BatchLoader, DatasetSplits, check_channels
from nas.devices import parse_device
from nas.errors import IncompatibleFileError, SpaceError, UserError
from nas.io import atomic_write_json
from nas.spaces import SearchSpace, load_space
from nas.supernet import Supernet
from nas.train.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from nas.train.config import EXECUTION_FIELDS, TrainConfig
from nas.train.distill import student_loss, supervised_loss
from nas.train.evaluate import evaluate_subnet
from nas.train.init import zero_init_residual_branches
from nas.train.inputs import model_input, train_loader
from nas.train.optim import build_optimizer, build_scheduler
from nas.train.rundir import (
    RunPaths,
    load_splits,
    read_space,
    run_record,
    write_config,
    write_metrics,
    write_space,
)
from nas.train.schedules import largest, phase_of, smallest, step_archs


class StepHooks(Protocol):
    """What a data-parallel worker adds to a step (:class:`nas.train.distributed.DistributedContext`
    implements it; that module imports this one, so the loop names only the protocol)."""

    @property
    def is_main(self) -> bool: ...

    def on_step(
        self, archs: list[Architecture], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def after_backward(self, model: torch.nn.Module, losses: list[float]) -> list[float]: ...

    def end_epoch(self, epoch: int, log: Callable[[str], None]) -> list[str]: ...


SAMPLER_STREAM = 1  # spawn key of the subnet sampler's SeedSequence (the loader uses [seed, epoch])


class TrainingDiverged(UserError):
    """A non-finite loss or gradient: the run stops, the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, the trained supernet and the metrics."""

    run_dir: Path
    supernet: Supernet
    space: SearchSpace
    splits: DatasetSplits
    history: list[dict]
    resumed_from: int  # completed epochs found in the checkpoint (0 for a fresh run)


class RunLog:
    """Timestamped lines appended to ``train.log`` (and echoed above the progress bar)."""

    def __init__(self, path: Path, *, echo: bool) -> None:
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")
        if self.echo:
            tqdm.write(message)


@contextmanager
def _isolated_rng(device: torch.device) -> Iterator[None]:
    py_state = random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)


def _resolve_space(config: TrainConfig, paths: RunPaths, resume: bool) -> SearchSpace:
    """``config.space`` (a name or path); when resuming and it cannot be found (a relative path
    from another folder, a moved file), the run's own ``space.yaml``."""
    try:
        return load_space(config.space)
    except SpaceError:
        if resume and paths.space.is_file():
            return read_space(paths.space)
        raise


def _check_data(space: SearchSpace, splits: DatasetSplits, data: str) -> None:
    if splits.num_classes != space.num_classes:
        raise UserError(
            f"data {data!r} has {splits.num_classes} classes but space {space.name!r} has "
            f"num_classes={space.num_classes}; use a space made for this data"
        )
    check_channels(splits.in_channels, space.in_channels)


def _fixed_arch(config: TrainConfig, space: SearchSpace) -> Architecture | None:
    if config.arch is None:
        return None
    arch = Architecture.from_str(config.arch)
    space.validate(arch)
    return arch


def _check_resume(state: dict, config: TrainConfig, fingerprint: str, path: Path) -> None:
    """The checkpoint continues with ``config``: same settings, except where it runs (device,
    threads) and ``epochs``, which may be raised (the run then trains on to the new total)."""
    if state.get("registered"):
        raise UserError(f"{path}: a supernet trained in your own loop (nas.register_run) has no "
                        "optimizer state to resume; train on in your loop and register again")
    saved = TrainConfig.from_dict(state.get("config", {}), where=f"{path} (config)")
    if config.epochs < saved.epochs:
        raise IncompatibleFileError(
            f"{path}: --epochs {config.epochs} is below the run's {saved.epochs}; a resumed run "
            "may raise its epochs, not lower them"
        )
    diff = saved.differences(config, ignore=EXECUTION_FIELDS | {"epochs"})
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise IncompatibleFileError(
            f"{path}: cannot resume with different settings ({lines}); "
            "resume with the run's settings or train into another --out folder"
        )
    if state.get("data_fingerprint") != fingerprint:
        raise IncompatibleFileError(
            f"{path}: the checkpoint was trained on data with fingerprint "
            f"{state.get('data_fingerprint')}, but {config.data!r} now gives {fingerprint}"
        )


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: bool | None = None,
    distributed: StepHooks | None = None,
) -> TrainResult:
    """Train a supernet as ``config`` says, writing the run folder ``out_dir`` (see
    :mod:`nas.train.rundir`). With ``resume``, continue from ``out_dir/checkpoint.pt`` (checked:
    same space, settings and data); without it, refuse a folder that already holds a run.
    ``progress`` shows a bar per epoch; ``echo`` (default: same as ``progress``) also prints the
    log lines to stderr. ``distributed``: this process is one worker of a data-parallel run
    (see :mod:`nas.train.distributed`; None, the default, is the single-process run).

    Raises :class:`TrainingDiverged` on a non-finite loss (the last checkpoint is kept) and
    :class:`nas.errors.IncompatibleFileError` on a bad checkpoint (nothing is written then).
    """
    paths = RunPaths(Path(out_dir))
    space = _resolve_space(config, paths, resume)
    splits = load_splits(config)
    _check_data(space, splits, config.data)
    fixed = _fixed_arch(config, space)
    device = parse_device(config.device)
    state = None
    if paths.checkpoint.exists():
        if not resume:
            raise UserError(
                f"{paths.root} already holds a run (checkpoint.pt); pass --resume to continue it "
                "or choose another --out folder"
            )
        state = load_checkpoint(paths.checkpoint, space_hash=space.hash())
        _check_resume(state, config, splits.fingerprint(), paths.checkpoint)
    elif paths.config.exists() and not resume:
        raise UserError(
            f"{paths.root} already holds a run (config.json); pass --resume to continue it "
            "or choose another --out folder"
        )
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with _isolated_rng(device):
            log = RunLog(paths.log, echo=progress if echo is None else echo)
            return _run(
                config, paths, space, splits, fixed, device, state, progress, log, distributed
            )
    finally:
        torch.set_num_threads(threads_before)


@dataclass
class _Run:
    """The objects one training run works on (kept together so the step code stays short)."""

    config: TrainConfig
    paths: RunPaths
    space: SearchSpace
    splits: DatasetSplits
    fixed: Architecture | None
    model: Supernet
    loader: BatchLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: np.random.Generator
    log: RunLog
    progress: bool
    dist: StepHooks | None = None  # data-parallel hooks (None: one process)


def _run(
    config: TrainConfig,
    paths: RunPaths,
    space: SearchSpace,
    splits: DatasetSplits,
    fixed: Architecture | None,
    device: torch.device,
    state: dict | None,
    progress: bool,
    log: RunLog,
    dist: StepHooks | None = None,
) -> TrainResult:
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = Supernet(space)
    if config.zero_init_residual:
        zero_init_residual_branches(model)
    model = model.to(device)
    loader = train_loader(
        splits.train,
        batch_size=config.batch_size,
        seed=config.seed,
        augment=config.augment,
        device=device,
    )
    optimizer = build_optimizer(model, config)
    seq = np.random.SeedSequence(config.seed, spawn_key=(SAMPLER_STREAM,))
    run = _Run(
        config=config,
        paths=paths,
        space=space,
        splits=splits,
        fixed=fixed,
        model=model,
        loader=loader,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config, len(loader)),
        sampler=np.random.default_rng(seq),
        log=log,
        progress=progress,
        dist=dist,
    )
    history: list[dict] = []
    start = 0
    extended = False
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], run.sampler)
        start = int(state["epoch"])
        history = [dict(r) for r in state.get("history", [])]
        run.log(f"resumed from {paths.checkpoint} after epoch {start} of {config.epochs}")
        saved_epochs = int(state.get("config", {}).get("epochs", config.epochs))
        extended = config.epochs != saved_epochs
        if extended:  # the cosine is stretched over the new total, from the step reached
            for schedule in run.scheduler.lr_lambdas:
                schedule.total = config.epochs * len(run.loader)
            run.log(f"epochs raised from {saved_epochs} to {config.epochs}: the cosine learning "
                    "rate now ends at the new total (it rises from where the shorter schedule "
                    "had decayed to)")
    if state is None or not paths.config.exists() or extended:
        write_config(paths, run_record(config, space, splits, threads=torch.get_num_threads()))
        write_space(paths.space, space)
        run.log(
            f"training {space.name} (hash {space.hash()}) on {config.data} "
            f"({len(splits.train)} train / {len(splits.val)} val images), schedule "
            f"{config.schedule}, {config.epochs} epochs x {len(loader)} steps, device {device}, "
            f"{torch.get_num_threads()} thread(s)"
        )
    for epoch in range(start, config.epochs):
        row = _train_epoch(run, epoch)
        history.append(row)
        save_checkpoint(
            paths.checkpoint,
            {
                "space_hash": space.hash(),
                "space_name": space.name,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "rng": capture_rng(run.sampler),
                "config": config.to_dict(),
                "history": history,
                "data_fingerprint": splits.fingerprint(),
            },
        )
        write_metrics(paths.metrics, history)
        run.log(_describe(row, config.epochs))
    if start < config.epochs or not paths.summary.exists():
        _write_summary(paths, history, config)
    model.eval()
    return TrainResult(paths.root, model, space, splits, history, start)


def _describe(row: dict, epochs: int) -> str:
    text = (
        f"epoch {row['epoch']}/{epochs} [{row['phase']}] loss {row['train_loss']:.4f} "
        f"lr {row['lr']:.2e} {row['epoch_s']:.1f}s"
    )
    accs = {k[len("val_acc_") :]: v for k, v in row.items() if k.startswith("val_acc_") and v != ""}
    if accs:
        text += " | val acc " + " ".join(f"{k} {100 * v:.2f}%" for k, v in accs.items())
    return text


def _stop_unless_finite(
    run: _Run, value: float, what: str, epoch: int, step: int, arch: Architecture | None
) -> None:
    if math.isfinite(value):
        return
    where = f"epoch {epoch + 1}/{run.config.epochs}, step {step + 1}/{len(run.loader)}"
    kept = (
        f"the last good checkpoint ({run.paths.checkpoint}, after epoch {epoch}) is kept"
        if epoch > 0
        else "no epoch had finished, so there is no checkpoint"
    )
    subnet = f" of subnet {arch}" if arch is not None else ""
    message = (
        f"{what}{subnet} is {value} at {where}; training stopped and {kept}. "
        "Lower --lr (or --grad-clip) and train again"
    )
    run.log(f"ERROR {message}")
    raise TrainingDiverged(message)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast of the forward passes and losses (``--precision bf16``), else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int) -> list[float]:
    """One optimizer step over the schedule's subnets; returns their losses (teacher first).

    The losses are read back once per step (one device sync on CUDA, not one per subnet): a
    non-finite loss is found after the backward passes, before the optimizer step, so the weights
    stay those of the last good step either way.
    """
    cfg, space = run.config, run.space
    archs = step_archs(
        cfg.schedule,
        space,
        epoch,
        cfg.epochs,
        run.sampler,
        sandwich_n=cfg.sandwich_n,
        delay_fraction=cfg.delay_fraction,
        phase_fractions=cfg.phase_fractions,
        arch=run.fixed,
    )
    if run.dist is not None:  # data-parallel: this rank's shard of the global batch
        x, y = run.dist.on_step(archs, x, y)
    run.optimizer.zero_grad(set_to_none=True)
    inputs: dict[int, torch.Tensor] = {}
    teacher = None
    loss_tensors = []
    for i, arch in enumerate(archs):
        if arch.resolution not in inputs:
            inputs[arch.resolution] = model_input(
                x, arch.resolution, space.in_channels, channels_last=cfg.channels_last
            )
        with _autocast(x.device, cfg.precision):
            logits = run.model(inputs[arch.resolution], arch)
            if i == 0:
                loss = supervised_loss(logits, y, label_smoothing=cfg.label_smoothing)
                if len(archs) > 1 and cfg.distill != "none":
                    teacher = logits.detach()
            else:
                loss = student_loss(
                    logits,
                    y,
                    teacher,
                    kind=cfg.distill,
                    temperature=cfg.temperature,
                    weight=cfg.distill_weight,
                    label_smoothing=cfg.label_smoothing,
                )
        loss.backward()  # gradients of all subnets accumulate; one optimizer step below
        loss_tensors.append(loss.detach().float())
    losses = [float(v) for v in torch.stack(loss_tensors).tolist()]  # the step's one sync
    for arch, value in zip(archs, losses):
        _stop_unless_finite(run, value, "the loss", epoch, step, arch)
    if run.dist is not None:  # data-parallel: average gradients and losses over the ranks
        losses = run.dist.after_backward(run.model, losses)
    if cfg.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        _stop_unless_finite(run, float(norm), "the gradient norm", epoch, step, None)
    run.optimizer.step()
    run.scheduler.step()
    return losses


def _train_epoch(run: _Run, epoch: int) -> dict:
    cfg = run.config
    phase = phase_of(
        cfg.schedule,
        epoch,
        cfg.epochs,
        delay_fraction=cfg.delay_fraction,
        phase_fractions=cfg.phase_fractions,
    )
    run.model.train()
    run.loader.set_epoch(epoch)
    steps = len(run.loader)
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs} [{phase}]",
        disable=not run.progress,
        leave=True,
        dynamic_ncols=True,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    teacher_sum, all_sum, n_losses, n_subnets = 0.0, 0.0, 0, 0
    for step, (x, y) in enumerate(run.loader):
        losses = _step(run, x, y, epoch, step)
        teacher_sum += losses[0]
        all_sum += sum(losses)
        n_losses += len(losses)
        n_subnets += len(losses)
        bar.update(1)
        bar.set_postfix(loss=f"{teacher_sum / (step + 1):.3f}")
    if run.dist is not None:  # data-parallel: check that every rank trained the same subnets
        run.dist.end_epoch(epoch, run.log)
    row: dict = {
        "epoch": epoch + 1,
        "phase": phase,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": teacher_sum / steps,
        "train_loss_subnets": all_sum / max(1, n_losses),
        "subnets_per_step": n_subnets / steps,
        "epoch_s": time.perf_counter() - t0,
        "epoch_cpu_s": time.process_time() - c0,
    }
    evaluates = run.dist is None or run.dist.is_main  # data-parallel: rank 0 validates
    if evaluates and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
        row.update(_evaluate(run))
        accs = {k[len("val_acc_") :]: v for k, v in row.items() if k.startswith("val_acc_")}
        bar.set_postfix(
            loss=f"{row['train_loss']:.3f}",
            **{f"val_{k}": f"{100 * v:.1f}%" for k, v in accs.items()},
        )
    else:
        row.update(dict.fromkeys(eval_columns(run.fixed is not None), ""))
    bar.close()
    return row


def eval_targets(run: _Run) -> list[tuple[str, Architecture]]:
    """What each epoch validates: the trained architecture (fixed), else largest and smallest."""
    if run.fixed is not None:
        return [("arch", run.fixed)]
    return [("largest", largest(run.space)), ("smallest", smallest(run.space))]


def eval_columns(fixed: bool) -> list[str]:
    names = ["arch"] if fixed else ["largest", "smallest"]
    return [f"val_{m}_{n}" for n in names for m in ("acc", "loss")] + ["eval_s", "eval_cpu_s"]


def _evaluate(run: _Run) -> dict:
    """Validation accuracy/loss of :func:`eval_targets` (BN recalibrated copies)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict = {}
    for name, arch in eval_targets(run):
        res = evaluate_subnet(
            run.model,
            arch,
            run.splits,
            split="val",
            recal_batches=run.config.recal_batches,
            batch_size=run.config.eval_batch_size,
            seed=run.config.seed,
        )
        out[f"val_acc_{name}"] = res["acc"]
        out[f"val_loss_{name}"] = res["loss"]
    out["eval_s"] = time.perf_counter() - t0
    out["eval_cpu_s"] = time.process_time() - c0
    return out


def _total(history: list[dict], key: str) -> float:
    return sum(float(r[key]) for r in history if r.get(key, "") != "")


def _write_summary(paths: RunPaths, history: list[dict], config: TrainConfig) -> None:
    """``summary.json``: final metrics and timings. ``*_cpu_s`` is the process's CPU time, which
    other processes sharing the cores do not inflate (wall ``*_s`` is)."""
    if not history:
        return
    atomic_write_json(
        paths.summary,
        {
            "epochs": len(history),
            "complete": len(history) >= config.epochs,
            "train_s": _total(history, "epoch_s"),
            "train_cpu_s": _total(history, "epoch_cpu_s"),
            "eval_s": _total(history, "eval_s"),
            "eval_cpu_s": _total(history, "eval_cpu_s"),
            "train_s_per_epoch": _total(history, "epoch_s") / len(history),
            "final": history[-1],
        },
    )

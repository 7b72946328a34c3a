"""Data-parallel supernet training over Ray Train workers (``nas train --workers N``).

The training loop is :func:`nas.train.loop.train`, unchanged; each worker runs it with a
:class:`DistributedContext`, which the loop calls at three points of a step:

- ``on_step(archs, x, y)``: records the step's subnets (a running SHA-256 per epoch) and returns
  this rank's contiguous shard of the global batch. Every worker builds the same supernet, the same
  batches and the same subnet sampler from ``config.seed`` (never from the rank), so all workers
  train the same subnets on disjoint parts of the same global batch. ``--batch-size`` is the
  global batch: the steps per epoch and the learning-rate schedule do not depend on the workers.
- ``after_backward(model, losses)``: one ``all_reduce`` of a flat buffer holding every parameter's
  accumulated sandwich gradient (zeros where it has none), a has-gradient flag per parameter and
  the step's losses, each weighted by this shard's share of the global batch. The result is the
  gradient of the global batch's mean loss; a parameter that no rank touched keeps ``grad=None``,
  as in a single process. Clipping and the optimizer step then run on identical gradients, so the
  replicas stay identical without broadcasting weights.
- ``end_epoch(epoch, log)``: gathers every rank's digest of the epoch's subnets and stops the run
  if they differ; rank 0 records them in ``distributed.json``.

Rank 0 trains into the run folder (config, checkpoints, metrics, log, summary) and alone validates;
the other ranks train into a temporary folder that is deleted. On resume they start from a copy of
the run folder's checkpoint. On a multi-node cluster the run folder must therefore be on a file
system that every node sees at the same path (as Ray Train's own ``storage_path``).

What differs from one process with the same global batch: BatchNorm statistics are computed per
shard (no SyncBatchNorm), and dropout masks repeat across shards. So an N-worker run does not give
the single-process weights bit for bit; a one-worker run does (tested).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from nas.arch import Architecture
from nas.errors import UserError
from nas.io import atomic_write_json
from nas.train.config import TrainConfig
from nas.train.rundir import RunPaths

RECORD_NAME = "distributed.json"
_RESUME_FILES = ("checkpoint.pt", "config.json", "space.yaml")


class ReplicasDisagree(RuntimeError):
    """Workers trained different subnets in one epoch: their replicas would drift apart."""


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous share of ``n`` items (sizes differ by <= 1,
    the first ``n % world_size`` ranks get one more; the shares tile ``range(n)``)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def reduce_gradients(
    params: Iterable[torch.nn.Parameter],
    weight: float,
    *,
    extra: torch.Tensor | None = None,
    all_reduce: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor | None:
    """Sum ``weight * grad`` over ranks in place, with one collective over a flat buffer.

    A parameter without a gradient contributes zeros; it gets the reduced gradient if any rank had
    one, and stays ``None`` otherwise. ``extra`` (e.g. the step's losses) is weighted and summed
    in the same buffer and returned. ``all_reduce`` (default: ``torch.distributed.all_reduce``,
    SUM over the default group) may be replaced, e.g. by the identity for one process.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to reduce")
    if all_reduce is None:
        import torch.distributed as dist

        all_reduce = dist.all_reduce
    ref = params[0]
    parts, sizes = [], []
    for p in params:
        g = p.grad
        parts.append((g * weight).reshape(-1) if g is not None else ref.new_zeros(p.numel()))
        sizes.append(p.numel())
    flags = ref.new_tensor([float(p.grad is not None) for p in params])
    tail = [flags] + ([extra.to(ref) * weight] if extra is not None else [])
    flat = torch.cat([*(t.to(ref.dtype) for t in parts), *tail])
    all_reduce(flat)
    grads = flat[: sum(sizes)].split(sizes)
    got = flat[sum(sizes) : sum(sizes) + len(params)]
    for p, g, had in zip(params, grads, got.tolist(), strict=True):
        if had > 0:
            p.grad = g.view_as(p).to(p.dtype)
        else:
            p.grad = None
    return flat[sum(sizes) + len(params) :] if extra is not None else None


def arch_digest_update(h: Any, archs: list[Architecture]) -> None:
    """Feed one step's subnets (in order) into a hashlib object."""
    h.update(("|".join(a.to_str() for a in archs) + "\n").encode())


@dataclass
class DistributedContext:
    """What one worker of a data-parallel run needs; the loop calls its three hooks."""

    rank: int
    world_size: int
    record_path: Path | None = None  # rank 0: the run's distributed.json
    gather: Callable[[Any], list[Any]] | None = None  # all_gather_object; default torch's
    all_reduce: Callable[[torch.Tensor], None] | None = None
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)
    _steps: int = 0
    _share: float = 1.0
    _comm_s: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def on_step(
        self, archs: list[Architecture], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        arch_digest_update(self._hash, archs)
        self._steps += 1
        n = len(y)
        if n < self.world_size:
            raise UserError(
                f"a batch of {n} images cannot be split over {self.world_size} workers; "
                "use a larger --batch-size (it is the global batch) or fewer --workers"
            )
        a, b = shard_bounds(n, self.rank, self.world_size)
        self._share = (b - a) / n
        return x[a:b], y[a:b]

    def after_backward(self, model: torch.nn.Module, losses: list[float]) -> list[float]:
        t0 = time.perf_counter()
        mean = reduce_gradients(
            model.parameters(),
            self._share,
            extra=torch.tensor(losses, dtype=torch.float64),
            all_reduce=self.all_reduce,
        )
        self._comm_s += time.perf_counter() - t0
        assert mean is not None
        return [float(v) for v in mean.tolist()]

    def end_epoch(self, epoch: int, log: Callable[[str], None]) -> list[str]:
        """Compare the epoch's subnet digests across ranks; rank 0 records them."""
        mine = {"rank": self.rank, "digest": self._hash.hexdigest(), "steps": self._steps,
                "allreduce_s": round(self._comm_s, 3)}
        everyone = self._gather(mine)
        self._hash, self._steps, self._comm_s = hashlib.sha256(), 0, 0.0
        digests = [r["digest"] for r in everyone]
        if len(set(digests)) != 1 or len({r["steps"] for r in everyone}) != 1:
            message = f"epoch {epoch + 1}: workers trained different subnets: {everyone}"
            log(f"ERROR {message}")
            raise ReplicasDisagree(message)
        if self.is_main and self.record_path is not None:
            self._record(epoch, everyone)
            log(
                f"epoch {epoch + 1}: {self.world_size} workers trained the same subnets in "
                f"{mine['steps']} steps (digest {digests[0][:12]}); gradient all-reduce "
                f"{mine['allreduce_s']:.1f}s on rank 0"
            )
        return digests

    def _gather(self, obj: Any) -> list[Any]:
        if self.gather is not None:
            return self.gather(obj)
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def _record(self, epoch: int, rows: list[dict]) -> None:
        assert self.record_path is not None
        data = read_record(self.record_path.parent) or {"epochs": []}
        data["workers"] = self.world_size
        data["epochs"] = [e for e in data["epochs"] if e["epoch"] != epoch + 1]
        data["epochs"].append({"epoch": epoch + 1, "ranks": rows})
        atomic_write_json(self.record_path, data)


def read_record(run_dir: str | os.PathLike) -> dict | None:
    """The run's ``distributed.json`` (None for a run trained in one process)."""
    from nas.json_files import read_json_object

    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    return read_json_object(path, "a distributed-training record written by 'nas train'")


# ----- Ray Train ------------------------------------------------------------------------------


def _worker_loop(cfg: dict) -> None:
    """``train_loop_per_worker`` of the TorchTrainer: the ordinary training loop, one shard."""
    import ray.train

    from nas.train.loop import train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    config: TrainConfig = worker_config(cfg["config"])
    out = Path(cfg["out_dir"])
    if rank == 0:
        dctx = DistributedContext(rank, world, record_path=out / RECORD_NAME)
        train(config, out, resume=cfg["resume"], progress=False, echo=False, distributed=dctx)
        return
    dctx = DistributedContext(rank, world)
    with tempfile.TemporaryDirectory(prefix=f"nas-train-rank{rank}-") as scratch:
        if cfg["resume"]:
            for name in _RESUME_FILES:
                if (out / name).is_file():
                    shutil.copy2(out / name, Path(scratch) / name)
        train(config, scratch, resume=cfg["resume"], progress=False, echo=False, distributed=dctx)


def worker_config(config: TrainConfig) -> TrainConfig:
    """``config`` with the device Ray Train gave this worker: a GPU worker sees only its own GPU
    (``CUDA_VISIBLE_DEVICES``), so the ``cuda:N`` of the driver's command would not exist there.
    The device is an execution setting, so the run's results and its resumability are unchanged."""
    if not config.device.startswith("cuda"):
        return config
    import ray.train.torch

    device = ray.train.torch.get_device()
    torch.cuda.set_device(device)  # NCCL collectives and all_gather_object use the current device
    return replace(config, device=str(device))


@dataclass
class DistributedTrainResult:
    """What :func:`train_distributed` returns (the supernet itself is in ``run_dir``)."""

    run_dir: Path
    workers: int
    history: list[dict]
    record: dict
    wall_s: float


def _precheck(config: TrainConfig, paths: RunPaths, resume: bool, workers: int) -> None:
    """The checks rank 0 would make, done on the driver so that no worker waits for a dead one."""
    if workers < 1:
        raise UserError(f"--workers {workers}: expected a positive number of workers")
    if config.batch_size < workers:
        raise UserError(
            f"--batch-size {config.batch_size} is the global batch and must be at least "
            f"--workers {workers}"
        )
    held = paths.checkpoint if paths.checkpoint.exists() else paths.config
    if held.exists() and not resume:
        raise UserError(
            f"{paths.root} already holds a run ({held.name}); pass --resume to continue it "
            "or choose another --out folder"
        )


def train_distributed(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    workers: int,
    address: str | None = None,
    resume: bool = False,
    cpus_per_worker: float = 1.0,
    backend: str | None = None,
) -> DistributedTrainResult:
    """Train as :func:`nas.train.train` does, data-parallel over ``workers`` Ray Train workers.

    ``address``: ``None`` or ``"local"`` starts a local Ray instance of ``workers *
    cpus_per_worker`` CPUs (shut down at the end); ``"auto"`` / ``"host:port"`` joins a cluster
    (see docs/ray.md). CPU runs use the gloo backend, ``--device cuda`` one GPU per worker (NCCL).
    ``backend`` (``"gloo"`` or ``"nccl"``) overrides that choice, e.g. gloo on GPUs to compare.
    Worker errors are re-raised here: a :class:`UserError` as such, anything else as
    ``RuntimeError`` naming the rank.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from nas.distributed import ray_session
    from nas.train.checkpoint import load_checkpoint

    out = Path(out_dir).resolve()
    paths = RunPaths(out)
    _precheck(config, paths, resume, workers)
    out.mkdir(parents=True, exist_ok=True)
    use_gpu = config.device.startswith("cuda")
    if backend not in (None, "gloo", "nccl"):
        raise UserError(f"backend {backend!r}: expected gloo or nccl")
    if backend == "nccl" and not use_gpu:
        raise UserError("the nccl backend needs GPU workers (--device cuda)")
    local = address in (None, "local")
    t0 = time.perf_counter()
    with ray_session(
        None if local else address, num_cpus=max(1, round(workers * cpus_per_worker))
    ) as session, tempfile.TemporaryDirectory(prefix="nas-ray-train-") as storage:
        gpus = session.resources.get("GPU", 0.0)
        if use_gpu and gpus < workers:  # Ray Train would wait for them forever
            raise UserError(
                f"--device {config.device} with --workers {workers} needs {workers} GPU(s), but "
                f"the Ray {'instance' if local else 'cluster'} has {gpus:g}; use --device cpu "
                "or fewer workers"
            )
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"config": config, "out_dir": str(out), "resume": resume},
            scaling_config=ScalingConfig(
                num_workers=workers,
                use_gpu=use_gpu,
                resources_per_worker={"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
            ),
            run_config=RunConfig(name="nas-train", storage_path=storage),
            torch_config=TorchConfig(backend=backend) if backend else None,
        )
        try:
            trainer.fit()
        except Exception as exc:  # Ray Train wraps worker errors: unwrap them
            raise _unwrap(exc) from exc
    wall = time.perf_counter() - t0
    if not paths.checkpoint.is_file():
        raise UserError(
            f"training finished but {paths.checkpoint} is missing: rank 0 ran on another node. "
            "On a multi-node cluster --out must be a shared folder with the same path on every node"
        )
    state = load_checkpoint(paths.checkpoint)
    return DistributedTrainResult(
        out, workers, [dict(r) for r in state.get("history", [])], read_record(out) or {}, wall
    )


def _unwrap(exc: Exception) -> Exception:
    failures = getattr(exc, "worker_failures", None)
    if not failures:
        return RuntimeError(f"distributed training failed: {exc}")
    rank, err = min(failures.items())
    if isinstance(err, UserError):
        return err
    return RuntimeError(f"distributed training failed on rank {rank}: {type(err).__name__}: {err}")

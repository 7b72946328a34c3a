"""Once-for-all supernet training, BN recalibration, evaluation, checkpoints and run folders.

Typical use by later stages::

    from nas.train import load_supernet, evaluate_subnet, recalibrated_subnet

    run = load_supernet("results/my-run")            # supernet, space, splits, config, epoch
    arch = run.space.sample(np.random.default_rng(0))
    evaluate_subnet(run.supernet, arch, run.splits)   # {"acc", "loss", "n"} on val
    model = recalibrated_subnet(run.supernet, arch, run.splits.train)   # for export
"""

from __future__ import annotations

from nas.lazy import lazy_exports

# public name -> the module that defines it (imported on first access: see nas.lazy)
_EXPORTS: dict[str, str] = {
    "DEFAULT_RECAL_BATCHES": "nas.train.bn",
    "DEFAULT_RECAL_BATCH_SIZE": "nas.train.bn",
    "PHASES": "nas.train.schedules",
    "SCHEDULES": "nas.train.config",
    "RunPaths": "nas.train.rundir",
    "TrainConfig": "nas.train.config",
    "TrainResult": "nas.train.loop",
    "TrainedRun": "nas.train.rundir",
    "TrainingDiverged": "nas.train.loop",
    "calibration_inputs": "nas.train.bn",
    "evaluate_model": "nas.train.evaluate",
    "evaluate_subnet": "nas.train.evaluate",
    "load_checkpoint": "nas.train.checkpoint",
    "load_splits": "nas.train.rundir",
    "load_supernet": "nas.train.rundir",
    "read_config": "nas.train.rundir",
    "recalibrate_bn": "nas.train.bn",
    "recalibrate_supernet_bn": "nas.train.bn",
    "recalibrated_subnet": "nas.train.evaluate",
    "restricted_space": "nas.train.schedules",
    "save_checkpoint": "nas.train.checkpoint",
    "step_archs": "nas.train.schedules",
    "train": "nas.train.loop",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

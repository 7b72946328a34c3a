"""Once-for-all supernet training, BN recalibration, evaluation, checkpoints and run folders.

Typical use by later stages::

    from nas.train import load_supernet, evaluate_subnet, recalibrated_subnet

    run = load_supernet("results/my-run")            # supernet, space, splits, config, epoch
    arch = run.space.sample(np.random.default_rng(0))
    evaluate_subnet(run.supernet, arch, run.splits)   # {"acc", "loss", "n"} on val
    model = recalibrated_subnet(run.supernet, arch, run.splits.train)   # for export
"""

from nas.train.bn import (
    DEFAULT_RECAL_BATCH_SIZE,
    DEFAULT_RECAL_BATCHES,
    calibration_inputs,
    recalibrate_bn,
    recalibrate_supernet_bn,
)
from nas.train.checkpoint import load_checkpoint, save_checkpoint
from nas.train.config import SCHEDULES, TrainConfig
from nas.train.evaluate import evaluate_model, evaluate_subnet, recalibrated_subnet
from nas.train.loop import TrainingDiverged, TrainResult, train
from nas.train.rundir import RunPaths, TrainedRun, load_splits, load_supernet, read_config
from nas.train.schedules import PHASES, restricted_space, step_archs

__all__ = [
    "DEFAULT_RECAL_BATCHES",
    "DEFAULT_RECAL_BATCH_SIZE",
    "PHASES",
    "SCHEDULES",
    "RunPaths",
    "TrainConfig",
    "TrainResult",
    "TrainedRun",
    "TrainingDiverged",
    "calibration_inputs",
    "evaluate_model",
    "evaluate_subnet",
    "load_checkpoint",
    "load_splits",
    "load_supernet",
    "read_config",
    "recalibrate_bn",
    "recalibrate_supernet_bn",
    "recalibrated_subnet",
    "restricted_space",
    "save_checkpoint",
    "step_archs",
    "train",
]

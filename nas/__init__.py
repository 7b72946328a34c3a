"""Hardware-aware neural architecture search: spaces, once-for-all supernets, latency tables,
predictors, constrained search and export. The command line is ``nas`` (:mod:`nas.cli`).

The Python front door (every name is imported on first use, so ``import nas`` stays light)::

    import nas

    space = nas.load_space("hybrid-tiny")                 # a shipped name or your YAML file
    arch = space.sample(np.random.default_rng(0))         # an Architecture (hashable, .to_str())
    nas.compute_costs(space, arch)                        # exact FLOPs, MACs, params, memory
    nas.train_supernet("hybrid-tiny", "runs/a", epochs=2) # once-for-all training -> run folder
    nas.register_run(my_supernet, "runs/c", data="digits")  # or your own loop's, as a run
    model = nas.load_model("runs/a", arch)                # extracted, BN recalibrated, eval mode
    nas.profile_latency(space, "runs/a/latency.csv")      # latency table of this machine
    nas.sample_subnets("runs/a", "runs/a/samples.csv", n=40)
    predictor = nas.fit_predictor("runs/a/samples.csv")   # callable on architectures
    study = nas.create_study(space, directions={"acc": "max", "latency_ms": "min"})
    trial = study.ask(); study.tell(trial, {"acc": 0.9, "latency_ms": 1.2})   # Optuna's shape
    nas.run_search(space, objectives=["max:val_acc", "min:params"], predictor=predictor)
    nas.export_architecture("runs/a", arch, "runs/a/export")   # PyTorch, TorchScript, ONNX
    nas.run_pipeline(nas.RunPlan.quick(), "runs/b")        # every stage, as 'nas run'

``docs/quickstart.py`` runs these end to end.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("nas")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# public name -> "module:attribute" (imported on first access)
_EXPORTS: dict[str, str] = {
    # spaces and architectures
    "load_space": "nas.spaces.loader:load_space",
    "shipped_spaces": "nas.spaces.loader:shipped_spaces",
    "SearchSpace": "nas.spaces.schema:SearchSpace",
    "Architecture": "nas.arch:Architecture",
    "compute_costs": "nas.costs:costs",
    # supernet and models
    "Supernet": "nas.supernet.model:Supernet",
    "load_supernet": "nas.api:load_supernet",
    "load_model": "nas.api:load_model",
    "model_input": "nas.api:model_input",
    # training
    "TrainConfig": "nas.train.config:TrainConfig",
    "train_supernet": "nas.api:train_supernet",
    "register_run": "nas.train.register:register_run",
    # latency
    "LatencyTable": "nas.latency.table:LatencyTable",
    "load_table": "nas.api:load_table",
    "profile_latency": "nas.api:profile_latency",
    # measured subnets and predictors
    "sample_subnets": "nas.api:sample_subnets",
    "fit_predictor": "nas.api:fit_predictor",
    "load_predictor": "nas.api:load_predictor",
    "ArchPredictor": "nas.sample.predictor:ArchPredictor",
    # search
    "Study": "nas.study:Study",
    "Trial": "nas.study:Trial",
    "create_study": "nas.study:create_study",
    "run_search": "nas.search.space_search:run_search",
    "make_searcher": "nas.search.registry:make_searcher",
    "searcher_names": "nas.search.registry:searcher_names",
    # export
    "export_architecture": "nas.export.pipeline:export_architecture",
    # the whole job
    "RunPlan": "nas.pipeline:RunPlan",
    "run_pipeline": "nas.pipeline:run_pipeline",
    # errors
    "UserError": "nas.errors:UserError",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

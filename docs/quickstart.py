"""Quick start of the Python API: every stage of a search on the embedded digits data, in about a
minute on 2 CPU cores. Run it with ``python docs/quickstart.py [FOLDER]`` (default: a temporary
folder); ``tests/test_quickstart.py`` runs it in the default test suite.

The same stages from the command line are ``nas train``, ``nas profile``, ``nas sample``,
``nas fit``, ``nas search`` and ``nas export`` (or all of them at once: ``nas run --quick``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import nas


def main(folder: Path) -> dict:
    # 1. A search space: a shipped name or the path of your own YAML file.
    space = nas.load_space("hybrid-tiny")
    print(space)
    arch = space.sample(np.random.default_rng(0))       # randomness only through a Generator
    print(arch, nas.compute_costs(space, arch))          # exact FLOPs/MACs, params, memory

    # 2. Train the once-for-all supernet (sandwich rule, in-place distillation) into a run folder.
    run = folder / "supernet"                  # the layout of 'nas run': load_model(folder, ...) works too
    #    (One quick epoch here; 'nas run --quick' trains 10, the default preset 15.)
    nas.train_supernet("hybrid-tiny", run, data="digits", epochs=1, batch_size=128, lr=0.01,
                       sandwich_n=1, recal_batches=2, threads=1)

    # 3. Any subnet as a standalone model, like timm.create_model: inherited weights, BatchNorm
    #    recalibrated, eval mode. Inputs are normalised as the run's data.
    model = nas.load_model(run, space.largest())
    trained = nas.load_supernet(run)
    x = trained.splits.val.x[:8]                         # (8, 1, 8, 8) normalised digits
    print(model(nas.model_input(space, space.largest(), x)).argmax(1), trained.splits.val.y[:8])

    # 4. This machine's latency table, measured subnets, a predictor fitted on them.
    table = folder / "latency" / "table.csv"
    nas.profile_latency(space, table, device="cpu", calibrate=0, rounds=1, repeats=3)
    nas.sample_subnets(run, folder / "samples.csv", n=16, table=table)
    predictor = nas.fit_predictor(folder / "samples.csv", folder / "predictor", model="ridge")
    print(predictor)

    # 5. An ask/tell study with your own metrics (Optuna's shape): here the predictor's accuracy
    #    and the exact parameter count every trial carries, under a parameter bound.
    study = nas.create_study(space, {"acc": "max", "params": "min"}, constraints=["params<=40K"])
    for _ in range(30):
        trial = study.ask()
        study.tell(trial, {"acc": float(predictor(trial.arch)[0]), "params": trial.costs["params"]})
    print(study, study.best_trials[0])

    # 6. The searcher behind 'nas search', on the predictor and the latency table.
    outcome = nas.run_search(space, objectives=["max:val_acc", "min:latency_ms"],
                             constraints=["params<=40K"], predictor=predictor,
                             table=nas.load_table(table), budget=200, progress=False,
                             out=folder / "search")
    best = max(outcome.front, key=lambda m: m.metrics["val_acc"])
    print(f"front of {len(outcome.front)}; best {best.arch_id}: {best.arch}")

    # 7. Export it: ONNX (with its preprocessing in the metadata) and a model card.
    result = nas.export_architecture(run, best.arch, folder / "export", formats="onnx",
                                     lut=table, measure_latency=False, standalone_check=False)
    print(f"exported {sorted(p.name for p in (folder / 'export').iterdir())}")
    return {"front": len(outcome.front), "best": best.arch_id, "export": result,
            "study_trials": len(study)}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))

"""Write the hostile-file corpus in ``tests/hostile/corpus/`` (committed; rerun to regenerate):
files crafted to run code when loaded. Each payload, if it ever ran, would create ``HOSTILE_RAN``
in the current folder; tests/test_hostile_corpus.py loads every file through the CLI from an
empty folder and checks that the marker never appears.

    PYTHONPATH=. python tests/hostile/make_corpus.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent / "corpus"
MARKER = "HOSTILE_RAN"
COMMAND = f"touch {MARKER}"


class RunsCode:
    """Unpickling this calls ``os.system("touch HOSTILE_RAN")``."""

    def __reduce__(self):
        return (os.system, (COMMAND,))


def resign(folder: Path, name: str, data: bytes) -> None:
    """Replace a predictor payload and fix its SHA-256 in card.json, as an attacker could."""
    (folder / name).write_bytes(data)
    card = json.loads((folder / "card.json").read_text())
    card["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / "card.json").write_text(json.dumps(card, indent=1))


def write_yaml() -> None:
    (CORPUS / "space_python_tag.yaml").write_text(
        "name: hostile\n"
        f"input: !!python/object/apply:os.system [\"{COMMAND}\"]\n"
        "stages: []\n")
    (CORPUS / "space_python_name.yaml").write_text(
        "name: !!python/name:os.system\nstages: []\n")


def write_checkpoint() -> None:
    import torch

    torch.save({"format": "nas-supernet-checkpoint", "format_version": 1, "epoch": 1,
                "model": {"w": RunsCode()}, "optimizer": {}, "scheduler": {}, "rng": {},
                "space_hash": "x"}, CORPUS / "checkpoint_reduce.pt")


def write_predictors() -> None:
    import skops.io as sio

    from nas.sample.fit import fit_predictor
    from tests.test_fit_cli import write_synthetic_samples

    tmp = CORPUS / ".tmp-samples.csv"
    write_synthetic_samples(tmp, n=40)
    for model, folder in (("ridge", "predictor_npz_pickle"), ("gbm", "predictor_skops_system")):
        shutil.rmtree(CORPUS / folder, ignore_errors=True)
        fit_predictor(tmp, out=CORPUS / folder, model=model)
        card = json.loads((CORPUS / folder / "card.json").read_text())
        card.pop("samples", None)  # no path of the machine that made it
        (CORPUS / folder / "card.json").write_text(json.dumps(card, indent=1))
        name = next(n for n in card["files"] if n.endswith(".npz" if model == "ridge" else ".skops"))
        if model == "ridge":
            buf = io.BytesIO()
            np.savez(buf, coef_=np.array([RunsCode()], dtype=object))
            resign(CORPUS / folder, name, buf.getvalue())
        else:
            resign(CORPUS / folder, name, sio.dumps({"callback": os.system, "arg": COMMAND}))
    tmp.unlink()
    tmp.with_suffix(".json").unlink(missing_ok=True)


def write_cifar() -> None:
    root = CORPUS / "cifar-10-batches-py"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 "labels": [0, 1, 2, 3], "batch_label": name}
        if name == "data_batch_1":
            batch["filenames"] = RunsCode()
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}, f)


if __name__ == "__main__":
    CORPUS.mkdir(exist_ok=True)
    write_yaml()
    write_checkpoint()
    write_predictors()
    write_cifar()
    print(f"wrote {sorted(p.name for p in CORPUS.iterdir())}")

"""The Fashion-MNIST benchmark's every part and its report, at toy size on an IDX fixture folder
(the real run is ``python -m nas.benchmarks.fashion_mnist``; this proves its code paths)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.benchmarks.fashion_mnist import PARTS, Bench, Settings, build_report, hypervolumes
from nas.pipeline import RunPlan
from tests.test_data_idx import write_mnist_folder


@pytest.mark.long  # about 3.5 min: every part of the benchmark, run by make test's second pass
def test_every_part_and_the_report_at_toy_size(tmp_path):
    data = write_mnist_folder(tmp_path / "fm", n_train=240, n_test=40, size=8)
    plan = RunPlan.quick(data=f"fashion-mnist:{data}", epochs=1, samples=16, budget=200,
                         params_bound=20_000, finetune_epochs=1, profile_rounds=2,
                         profile_repeats=3, calibrate=4, workers=1)
    settings = Settings(plan=plan, heldout_n=10, remeasure_n=6, scratch_n=3,
                        frontier_seeds=(0, 1), frontier_fit=12, frontier_measure=3,
                        frontier_budget=100)
    bench = Bench(tmp_path / "work", settings, workers=1, progress=False, say=lambda _m: None)
    records = {part: bench.ensure(part) for part in PARTS}
    assert all(bench.record(p).is_file() for p in PARTS)
    # a finished part is reused, not redone
    again = Bench(tmp_path / "work", settings, workers=1, progress=False, say=lambda _m: None)
    assert again.ensure("scratch") == records["scratch"]

    scratch = records["scratch"]["rows"]
    assert scratch[0]["name"] == "smallest" and len(scratch) == 3
    assert set(records["scratch"]["spread"]) == {"largest", "smallest"}
    flops = [r["flops"] for r in scratch]
    assert flops == sorted(flops)
    remeasured = pd.read_csv(bench.bench / "remeasured.csv")
    assert len(remeasured) == 6 and remeasured["val_acc_again"].between(0, 1).all()

    text, frame, numbers = build_report(bench, records, "cmd")
    for heading in ("## 1. The run", "## 2. Spread", "## 3. Measurement", "## 4. Search",
                    "## 5. Exported"):
        assert heading in text
    assert "published: 2 Conv <100K parameters" in text
    assert len(frame) == plan.top + (records["run"]["stages"]["export"]["random_search"]
                                     is not None)
    json.dumps(numbers)  # the .json report is serialisable
    hv, _ = hypervolumes(records["frontier"]["seeds"])
    assert all(0.0 <= r[m] <= 1.0 for r in hv for m in ("random", "search"))


def test_hypervolume_prefers_the_dominating_front():
    seeds = [{"seed": 0, "random": [[0.8, 2.0], [0.75, 1.0]],
              "search": [[0.85, 1.5], [0.8, 1.0], [0.7, 0.5]]}]
    hv, ref = hypervolumes(seeds)
    assert hv[0]["search"] > hv[0]["random"] > 0
    assert ref == [-0.7, 2.0]

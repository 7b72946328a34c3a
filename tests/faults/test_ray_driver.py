"""Ray's driver killed from below: the raylet dies while tasks run, which can end the driver
process in Ray's C++ core. ``map_tasks`` runs the driver in a child process and gives the
unfinished items to a new one; when restarts run out, Ray's failure is one line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nas.distributed import map_tasks
from nas.distributed.ray_utils import RayFailure

pytestmark = pytest.mark.faults


def kills_its_raylet(marker_dir: Path, victim: int, times: int):
    """``fn(x)`` that SIGKILLs its worker's raylet (its parent process) on item ``victim``, the
    first ``times`` attempts; logs every attempt of every item."""

    def fn(x: int) -> int:
        with open(marker_dir / f"attempts-{x}", "a") as f:
            f.write(f"{os.getpid()}\n")
        kills = marker_dir / "kills"
        done = len(kills.read_text().split()) if kills.exists() else 0
        if x == victim and done < times:
            with open(kills, "a") as f:
                f.write("k\n")
            os.kill(os.getppid(), 9)
            time.sleep(30)  # the raylet is gone: this worker goes with it
        return x * 10

    return fn


def test_a_dead_raylet_gets_a_new_driver_and_every_item_appears_once(tmp_path):
    seen: list[int] = []
    got = map_tasks(kills_its_raylet(tmp_path, victim=2, times=1), range(5), num_cpus=2,
                    progress=False, on_result=lambda i, _: seen.append(i))
    assert got == [x * 10 for x in range(5)]
    assert sorted(seen) == list(range(5))


def test_when_driver_restarts_run_out_ray_s_failure_is_one_line(tmp_path):
    seen: list[int] = []
    with pytest.raises(RayFailure) as info:
        map_tasks(kills_its_raylet(tmp_path, victim=0, times=5), range(3), num_cpus=1,
                  driver_restarts=1, progress=False, on_result=lambda i, _: seen.append(i))
    text = str(info.value)
    assert "\n" not in text and "run the same command again" in text, text
    assert f"after {len(seen)} of 3 tasks" in text
    assert (tmp_path / "kills").read_text().split() == ["k", "k"]  # first driver and one restart

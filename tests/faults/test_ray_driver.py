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


def process_groups() -> set[int]:
    """The process group of every live process (zombies not counted)."""
    groups = set()
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            groups.add(int(fields[2]))
    return groups


def test_a_dead_raylet_gets_a_new_driver_and_every_item_appears_once(tmp_path, monkeypatch):
    from nas.distributed import ray_utils

    drivers: list[int] = []
    end_group = ray_utils._kill_driver_group

    def recorded(pgid: int | None) -> None:
        drivers.append(pgid)
        end_group(pgid)

    monkeypatch.setattr(ray_utils, "_kill_driver_group", recorded)
    seen: list[int] = []
    got = map_tasks(kills_its_raylet(tmp_path, victim=2, times=1), range(5), num_cpus=2,
                    progress=False, on_result=lambda i, _: seen.append(i))
    assert got == [x * 10 for x in range(5)]
    assert sorted(seen) == list(range(5))
    assert len(drivers) == 2  # the first driver and its restart
    end = time.monotonic() + 5  # SIGKILL is sent; give the kernel a moment to end them
    while set(drivers) & process_groups() and time.monotonic() < end:
        time.sleep(0.1)
    assert not set(drivers) & process_groups()  # nothing of either Ray instance is left


def test_when_driver_restarts_run_out_ray_s_failure_is_one_line(tmp_path):
    seen: list[int] = []
    with pytest.raises(RayFailure) as info:
        map_tasks(kills_its_raylet(tmp_path, victim=0, times=5), range(3), num_cpus=1,
                  driver_restarts=1, progress=False, on_result=lambda i, _: seen.append(i))
    text = str(info.value)
    assert "\n" not in text and "run the same command again" in text, text
    assert f"after {len(seen)} of 3 tasks" in text
    assert (tmp_path / "kills").read_text().split() == ["k", "k"]  # first driver and one restart

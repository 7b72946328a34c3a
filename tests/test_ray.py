"""Ray sessions, task fan-out with retries, the process-pool fallback, and a real local cluster.

The functions sent to workers are built inside the tests (closures), so cloudpickle ships them by
value: Ray workers cannot import this test module by name.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.distributed import TaskFailedError, map_local, map_tasks, ray_session, run_on_resource
from nas.distributed.ray_utils import check_address, token_available
from nas.errors import UserError

ray = pytest.importorskip("ray")


def make_weighted():
    def weighted(x: int, *, weights: np.ndarray, offset: float) -> float:
        return float(weights[x % len(weights)] * x + offset)

    return weighted


def crash_once(marker_dir: Path, crash_item: int):
    """``fn(x, *, scale)`` that kills its own worker process the first time it sees
    ``crash_item`` (a marker file remembers the first attempt) and logs every attempt."""

    def fn(x: int, *, scale: int) -> int:
        with open(marker_dir / f"attempts-{x}", "a") as f:
            f.write(f"{os.getpid()}\n")
        marker = marker_dir / f"crashed-{x}"
        if x == crash_item and not marker.exists():
            marker.touch()
            os._exit(17)  # the worker process dies: no exception, no cleanup
        return x * scale

    return fn


def attempts(marker_dir: Path, x: int) -> int:
    path = marker_dir / f"attempts-{x}"
    return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray instance for the fast tests, with a token of its own (not ~/.ray)."""
    token = tmp_path_factory.mktemp("ray-auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(token))
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        with ray_session(None, num_cpus=2, resources={"nas_test_device": 1}) as session:
            yield session
        assert not ray.is_initialized(), "the session it started must be shut down"
        assert "RAY_AUTH_MODE" not in os.environ, "ray.init's RAY_AUTH_MODE=token must be undone"


# ---------------------------------------------------------------------------------------------
# Fast tests (local Ray instance)


def test_local_session_is_owned_and_sized(local_ray):
    assert local_ray.started and local_ray.address == "local"
    assert local_ray.resources["CPU"] == 2
    assert local_ray.resources["nas_test_device"] == 1
    with ray_session(None) as inner:  # nested: reuses, does not shut down
        assert not inner.started
    assert ray.is_initialized()


def test_map_tasks_equals_map_local_in_input_order(local_ray):
    weights = np.arange(1.0, 6.0)
    shared = {"weights": weights, "offset": 0.5}
    seen: list[tuple[int, float]] = []
    weighted = make_weighted()
    got = map_tasks(weighted, range(11), shared=shared, progress=False,
                    on_result=lambda i, r: seen.append((i, r)))
    want = map_local(weighted, range(11), shared=shared, progress=False)
    assert got == want == [weighted(x, weights=weights, offset=0.5) for x in range(11)]
    assert sorted(i for i, _ in seen) == list(range(11))
    assert all(got[i] == r for i, r in seen)


def test_lambda_and_empty_input(local_ray):
    assert map_tasks(lambda x, k: x + k, [1, 2], shared={"k": 10}, progress=False) == [11, 12]
    assert map_tasks(lambda x: x, [], progress=False) == []


def test_killed_worker_is_retried_and_every_item_appears_once(local_ray, tmp_path):
    seen: list[int] = []
    got = map_tasks(crash_once(tmp_path, crash_item=3), range(6), shared={"scale": 7},
                    max_retries=2, on_result=lambda i, _: seen.append(i), progress=False)
    assert got == [x * 7 for x in range(6)]
    assert sorted(seen) == list(range(6))
    assert (tmp_path / "crashed-3").exists()
    assert attempts(tmp_path, 3) == 2
    assert all(attempts(tmp_path, x) == 1 for x in range(6) if x != 3)


def test_killed_worker_without_retries_fails_naming_the_item(local_ray, tmp_path):
    """Ray's own failure (not the task's code) is a one-line user error naming the item."""
    from nas.distributed.ray_utils import RayFailure

    with pytest.raises(RayFailure, match=r"WorkerCrashedError.*item 1") as info:
        map_tasks(crash_once(tmp_path, crash_item=1), [0, 1], shared={"scale": 1},
                  max_retries=0, progress=False)
    assert "\n" not in str(info.value) and "run the same command again" in str(info.value)
    assert isinstance(info.value.__cause__, ray.exceptions.WorkerCrashedError)


def test_function_errors_are_not_retried(local_ray, tmp_path):
    def fn(x: int) -> int:
        with open(tmp_path / f"attempts-{x}", "a") as f:
            f.write("1\n")
        if x == 2:
            raise ValueError("bad item")
        return x

    with pytest.raises(ValueError, match="bad item") as info:
        map_tasks(fn, range(4), max_retries=3, progress=False)
    assert attempts(tmp_path, 2) == 1
    assert any("item 2" in note for note in info.value.__notes__)


def test_run_on_resource(local_ray):
    assert run_on_resource(lambda a, b=0: a * b, 6, b=7, resource="nas_test_device") == 42
    with pytest.raises(UserError, match=r"'nas_test_phone'.*nas_test_device"):
        run_on_resource(lambda: 1, resource="nas_test_phone")


def test_map_local_pool_rebuilds_after_a_worker_dies(tmp_path):
    seen: list[int] = []
    got = map_local(crash_once(tmp_path, crash_item=2), range(5), processes=2,
                    shared={"scale": 3}, on_result=lambda i, _: seen.append(i), progress=False)
    assert got == [x * 3 for x in range(5)]
    assert sorted(seen) == list(range(5))
    assert attempts(tmp_path, 2) == 2


def test_map_local_gives_up_after_max_retries(tmp_path):
    def always_dies(x: int) -> int:
        os._exit(3)

    with pytest.raises(TaskFailedError, match="died 1 times"):
        map_local(always_dies, [0, 1], processes=2, max_retries=0, progress=False)


def test_map_local_in_process_names_the_failing_item():
    def fn(x: int) -> int:
        if x == 1:
            raise KeyError("nope")
        return x

    with pytest.raises(KeyError) as info:
        map_local(fn, [0, 1, 2], progress=False)
    assert any("item 1" in note for note in info.value.__notes__)


def test_addresses_are_validated_before_connecting():
    for good in ("auto", "10.0.0.1:6379", "head-node.local:6379", "ray://10.0.0.1:10001"):
        assert check_address(good) == good
    for bad in ("", "localhost", "10.0.0.1", "http://x:1", "a b:1"):
        with pytest.raises(UserError, match="expected 'auto'"):
            check_address(bad)
    with pytest.raises(UserError):
        with ray_session("not-an-address"):
            pass


def test_token_available(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert not token_available()
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert not token_available()
    (tmp_path / "tok").write_text("abc")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert token_available()
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert token_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a Ray instance without GPUs")
def test_cuda_training_on_a_ray_instance_without_gpus_stops_instead_of_waiting(local_ray, tmp_path):
    from nas.train import TrainConfig
    from nas.train.distributed import train_distributed

    config = TrainConfig(space="hybrid-tiny", device="cuda")
    with pytest.raises(UserError, match=r"needs 1 GPU\(s\), but the Ray instance has 0"):
        train_distributed(config, tmp_path / "run", workers=1)


# ---------------------------------------------------------------------------------------------
# The driver in a child process (map_tasks' default when Ray is not initialised here)


def test_isolated_driver_hands_back_results_and_the_task_s_own_error(tmp_path):
    seen: list[int] = []

    def fn(x: int, *, bad: int) -> int:
        if x == bad:
            raise ValueError(f"bad item {x}")
        return x * 2

    with pytest.raises(ValueError, match="bad item 3") as info:
        map_tasks(fn, range(4), shared={"bad": 3}, num_cpus=1, progress=False, isolate=True,
                  on_result=lambda i, _: seen.append(i))
    assert any("item 3" in note for note in info.value.__notes__)
    assert set(seen) <= {0, 1, 2}

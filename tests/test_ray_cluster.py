"""Two real Ray clusters started with ``ray start --head`` (one with token authentication and a
custom resource, one without), reached through their addresses. A module of its own: no Ray
instance of this process may be live (tests/test_ray.py keeps one for its module), or
``ray_session`` would reuse it instead of connecting."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nas.distributed import map_local, map_tasks, ray_session, run_on_resource
from nas.distributed.cluster import LocalRayCluster, session_members
from nas.errors import UserError
from tests.test_ray import attempts, crash_once, make_weighted

pytestmark = pytest.mark.long


def test_real_local_cluster_with_token_auth_and_custom_resource(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    with LocalRayCluster(num_cpus=1, auth="disabled") as bystander, \
            LocalRayCluster(num_cpus=2, resources={"nas_test_phone": 1}) as cluster:
        bystander_pids = bystander.pids()
        assert bystander_pids and cluster.started_pids
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(cluster.token_path))

        weights = np.arange(1.0, 4.0)
        shared = {"weights": weights, "offset": 1.0}
        weighted = make_weighted()
        with ray_session(cluster.address) as session:
            assert session.started and session.auth_mode == "token"
            assert session.resources["nas_test_phone"] == 1
            got = map_tasks(weighted, range(7), shared=shared, progress=False)
            retried = map_tasks(crash_once(tmp_path, crash_item=4), range(6),
                                shared={"scale": 2}, progress=False)
            worker_pid, worker_sid = run_on_resource(lambda: (os.getpid(), os.getsid(0)),
                                                     resource="nas_test_phone")
            # Workers stay in the cluster's session: stop() finds them too.
            assert worker_sid == cluster.sid and worker_pid in cluster.pids()
            with pytest.raises(UserError, match="nas_test_gpu"):
                run_on_resource(lambda: 1, resource="nas_test_gpu")
        assert "RAY_AUTH_MODE" not in os.environ
        assert got == map_local(weighted, range(7), shared=shared, progress=False)
        assert retried == [2 * x for x in range(6)] and attempts(tmp_path, 4) == 2

        # A token sent to a cluster without authentication is ignored: connecting still works.
        assert map_tasks(lambda x: -x, [1, 2], address=bystander.address, progress=False) == [-1, -2]

        # Without the token (auth explicitly disabled on the client) the connection is refused.
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        with pytest.raises(UserError, match="token"):
            with ray_session(cluster.address):
                pass
        monkeypatch.delenv("RAY_AUTH_MODE")

        stopped = cluster.stop()
        assert set(cluster.started_pids) <= set(stopped)
        assert not session_members(worker_sid) and not cluster.pids()
        # Stopping one cluster left the other one's processes alone.
        assert bystander_pids <= bystander.pids()
        assert not set(stopped) & bystander_pids

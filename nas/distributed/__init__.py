"""Distributed execution: Ray sessions and task fan-out, with a process-pool fallback."""

from nas.distributed.ray_utils import (
    RaySession,
    TaskFailedError,
    map_local,
    map_tasks,
    ray_session,
    run_on_resource,
)

__all__ = [
    "RaySession",
    "TaskFailedError",
    "map_local",
    "map_tasks",
    "ray_session",
    "run_on_resource",
]

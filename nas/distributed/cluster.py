"""A real local Ray cluster, started the way a user starts one, for tests and documentation.

``LocalRayCluster`` runs ``ray start --head`` on a free port with its own short temp dir, in a new
process session (``setsid``), so every process it spawns shares one session id: the ``ray start``
process's pid. GCS, raylet and agents also share its process group; workers get a process group of
their own but stay in the session. ``stop()`` signals exactly the processes of that session
(SIGTERM, then SIGKILL after a grace period); it never runs ``ray stop``, which ends every Ray
process of the user, including clusters that others started.

By default the cluster uses token authentication with a fresh token in its temp dir (never
``~/.ray/auth_token``); ``client_env`` holds the variables a driver needs to connect.

    with LocalRayCluster(num_cpus=2, resources={"phone": 1}) as cluster:
        os.environ.update(cluster.client_env)
        with ray_session(cluster.address):
            ...
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

_IP_RE = re.compile(r"Local node IP: ([0-9A-Za-z.:\-]+)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def session_members(sid: int) -> set[int]:
    """Pids of the live (non-zombie) processes whose session id is ``sid`` (Linux /proc)."""
    members: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        # Fields after the command name (which may contain spaces) start after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state not in ("Z", "X"):
            members.add(int(entry.name))
    return members


class LocalRayCluster:
    """``ray start --head`` as a subprocess; knows and kills only the processes it started."""

    def __init__(
        self,
        *,
        num_cpus: int = 1,
        resources: Mapping[str, float] | None = None,
        auth: Literal["token", "disabled"] = "token",
        temp_root: str = "/tmp",
        startup_timeout_s: float = 120.0,
        stop_grace_s: float = 3.0,
    ) -> None:
        if auth not in ("token", "disabled"):
            raise ValueError(f"auth={auth!r}: expected 'token' or 'disabled'")
        if not Path("/proc").is_dir():
            raise RuntimeError("LocalRayCluster finds its processes through /proc (Linux only)")
        self.num_cpus = num_cpus
        self.resources = dict(resources or {})
        self.auth = auth
        self.temp_root = temp_root
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.temp_dir: Path | None = None
        self.port: int | None = None
        self.node_ip: str = "127.0.0.1"
        self.sid: int | None = None
        self.started_pids: set[int] = set()
        self.output = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalRayCluster:
        if self.sid is not None:
            raise RuntimeError("this LocalRayCluster is already started")
        # Unix socket paths are limited to ~107 bytes and Ray nests session folders below the
        # temp dir: keep the root short (/tmp/nrXXXXXXXX).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="nr", dir=self.temp_root))
        self.port = free_port()
        env = self._server_env()
        cmd = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
            f"--port={self.port}", f"--temp-dir={self.temp_dir}", f"--num-cpus={self.num_cpus}",
            "--disable-usage-stats", "--include-dashboard=false",
        ]
        if self.resources:
            cmd.append(f"--resources={json.dumps(self.resources)}")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        self.sid = proc.pid  # start_new_session: the child leads a new session (sid == its pid)
        try:
            self.output, _ = proc.communicate(timeout=self.startup_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.output = proc.communicate()[0] or ""
            self.stop()
            raise RuntimeError(f"`ray start` did not finish within {self.startup_timeout_s:g} s:\n"
                               f"{self.output[-3000:]}") from None
        self.started_pids = session_members(self.sid)
        if proc.returncode != 0 or not self.started_pids:
            self.stop()
            raise RuntimeError(f"`ray start` failed (exit code {proc.returncode}):\n"
                               f"{self.output[-3000:]}")
        match = _IP_RE.search(self.output)
        if match:
            self.node_ip = match.group(1)
        return self

    def stop(self) -> list[int]:
        """Terminate the processes of this cluster (and only those); return their pids."""
        if self.sid is None:
            return []
        targets = self.pids()
        for pid in targets:
            self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.1)
        for pid in self.pids():
            self._signal(pid, signal.SIGKILL)
            targets.add(pid)
        deadline = time.monotonic() + self.stop_grace_s
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.1)
        left = self.pids()
        self.sid = None
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes {sorted(left)} survived SIGKILL")
        return sorted(targets)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a client needs ---------------------------------------------------------------

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("the cluster is not started")
        return f"{self.node_ip}:{self.port}"

    @property
    def token_path(self) -> Path | None:
        return None if self.temp_dir is None or self.auth != "token" else self.temp_dir / "auth_token"

    @property
    def client_env(self) -> dict[str, str]:
        """Environment for a driver of this cluster: where to find its token (if any)."""
        path = self.token_path
        return {"RAY_AUTH_TOKEN_PATH": str(path)} if path is not None else {}

    def pids(self) -> set[int]:
        """Live processes of this cluster now (workers come and go)."""
        return session_members(self.sid) if self.sid is not None else set()

    # -- internals -----------------------------------------------------------------------

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env["RAY_AUTH_MODE"] = self.auth
        if self.auth == "token":
            assert self.token_path is not None
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        return env

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        # Re-check membership right before signalling: never hit a recycled pid. (A pid cannot be
        # reused as a new session's id while processes of that session are alive.)
        if self.sid is None or pid not in session_members(self.sid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

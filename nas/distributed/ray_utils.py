"""Ray, kept in one module: sessions, fan-out of independent tasks, and pinning work to a resource.

- :func:`ray_session`: a local Ray instance (``address=None``) or a connection to a running cluster
  (``"auto"``, ``"host:port"``, ``"ray://host:port"``), shut down on exit only if this call
  started it.
- :func:`map_tasks`: ``fn(item, **shared)`` for every item as Ray tasks; ``shared`` values go
  through the object store once; tasks whose worker dies are retried; results come back in input
  order and ``on_result(index, result)`` sees each as it completes.
- :func:`map_local`: the same contract with a process pool (or in-process), for machines without Ray.
- :func:`run_on_resource`: run one function on the node that advertises a custom resource.

Token authentication (Ray 2.60): a local ``ray.init()`` enables it by itself and creates
``~/.ray/auth_token`` if no token exists. ``ray start --head`` enables it only when a token exists
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) or ``RAY_AUTH_MODE=token``.
``ray.init(address="host:port")`` never enables it by itself, so a client of a token cluster fails
after ~20 s with a bare ``ConnectionError``. :func:`ray_session` therefore applies the rule that Ray
applies to ``auto`` to every explicit address: when ``RAY_AUTH_MODE`` is unset and a token is
available, it sets ``RAY_AUTH_MODE=token`` for the session (a token sent to a cluster without
authentication is ignored, so this is safe). ``RAY_AUTH_MODE=disabled`` or ``token`` set by the user
is respected. See docs/ray.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from nas.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

AUTH_MODE_VAR = "RAY_AUTH_MODE"
_ADDRESS_RE = re.compile(r"^(auto|(ray://)?\[?[A-Za-z0-9_.:-]+\]?:\d{1,5})$")


class TaskFailedError(UserError, RuntimeError):
    """A task failed for good (its own exception, or its worker died more than max_retries times)."""


@dataclass(frozen=True)
class RaySession:
    """What :func:`ray_session` connected to."""

    address: str  # "local" or the address given
    started: bool  # True if this session called ray.init (and will call ray.shutdown)
    auth_mode: str  # "token", "disabled" or "unset"
    resources: dict[str, float]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency
        raise UserError("Ray is not installed: `pip install 'ray[tune]'`, or run without "
                        "--ray-address to use local processes") from exc
    return ray


def token_available() -> bool:
    """Whether a Ray auth token is available to this process (env var, token path, default file)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).expanduser().is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def check_address(address: str) -> str:
    """Validate a Ray address (``auto``, ``host:port`` or ``ray://host:port``); return it stripped."""
    address = address.strip()
    if not _ADDRESS_RE.match(address):
        raise UserError(f"Ray address {address!r}: expected 'auto', 'host:port' (the head node's "
                        "GCS port, 6379 by default) or 'ray://host:port'")
    return address


def _refresh_ray_config() -> None:
    """Make the already-imported Ray core re-read RAY_AUTH_MODE and the token (cached in C++)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # pragma: no cover - older Ray without token authentication
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> Iterator[RaySession]:
    """Start or join Ray for the duration of a ``with`` block.

    ``address=None``: a new local instance with ``num_cpus`` CPUs (default: all cores), no
    dashboard, worker logs not forwarded, and the custom ``resources`` given (for tests).
    ``"auto"`` / ``"host:port"``: connect to a running cluster (``num_cpus`` is ignored: the
    cluster's size is set by its nodes). If Ray is already initialised in this process, that
    session is reused and left running. On exit, only what this call started is shut down, and
    ``RAY_AUTH_MODE`` is restored.
    """
    if address is not None:
        address = check_address(address)
    ray = _ray()
    if ray.is_initialized():
        current = getattr(ray.get_runtime_context(), "gcs_address", None) or "existing session"
        yield RaySession(current, False, os.environ.get(AUTH_MODE_VAR, "unset"),
                         dict(ray.cluster_resources()))
        return
    saved_mode = os.environ.get(AUTH_MODE_VAR)
    saved_address = os.environ.pop("RAY_ADDRESS", None) if address is None else None
    try:
        if address is None:
            if num_cpus is not None and num_cpus < 1:
                raise UserError(f"num_cpus={num_cpus}: expected at least 1")
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                     resources=dict(resources) if resources else None,
                     include_dashboard=False, log_to_driver=False)
            label = "local"
        else:
            label = address
            if num_cpus is not None:
                log.info("num_cpus=%s ignored: connecting to the Ray cluster at %s", num_cpus, label)
            if resources:
                raise UserError("custom resources are set when a node starts (`ray start "
                                "--resources`), not when connecting to a cluster")
            if saved_mode is None and token_available():
                os.environ[AUTH_MODE_VAR] = "token"
                _refresh_ray_config()
            _connect(ray, label)
        info = RaySession(label, True, os.environ.get(AUTH_MODE_VAR, "unset"),
                          dict(ray.cluster_resources()))
    except BaseException:
        _restore_env(saved_mode, saved_address)
        raise
    try:
        yield info
    finally:
        ray.shutdown()
        _restore_env(saved_mode, saved_address)


def _connect(ray: Any, address: str) -> None:
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        mode = os.environ.get(AUTH_MODE_VAR, "unset")
        raise UserError(
            f"could not connect to the Ray cluster at {address!r} ({exc}). Check that the head "
            f"node runs (`ray status --address {address}`) and that the address is its GCS port. "
            f"RAY_AUTH_MODE is {mode!r}: if the cluster uses token authentication, put its token "
            "in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN (see docs/ray.md)"
        ) from exc


def _restore_env(saved_mode: str | None, saved_address: str | None) -> None:
    if saved_address is not None:
        os.environ["RAY_ADDRESS"] = saved_address
    if os.environ.get(AUTH_MODE_VAR) == saved_mode:
        return
    if saved_mode is None:
        os.environ.pop(AUTH_MODE_VAR, None)  # ray.init() of a local instance sets it to "token"
    else:
        os.environ[AUTH_MODE_VAR] = saved_mode
    _refresh_ray_config()


def _call(fn: Callable[..., R], item: Any, **shared: Any) -> R:
    """The Ray task body: shared ObjectRefs arrive resolved as keyword arguments."""
    return fn(item, **shared)


def map_tasks(
    fn: Callable[..., R],
    items: Iterable[T],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    shared: Mapping[str, Any] | None = None,
    max_retries: int = 3,
    retry_exceptions: bool | tuple[type[BaseException], ...] = False,
    on_result: Callable[[int, R], None] | None = None,
    progress: bool = True,
    desc: str = "tasks",
    task_num_cpus: float = 1.0,
    resources: Mapping[str, float] | None = None,
    isolate: bool | None = None,
    driver_restarts: int = 2,
) -> list[R]:
    """``[fn(item, **shared) for item in items]`` as Ray tasks; results in input order.

    ``shared`` values are put in the object store once and passed to every task by reference
    (a supernet's state dict, a data set). A task whose worker process dies is retried up to
    ``max_retries`` times; exceptions raised by ``fn`` are retried only if listed in
    ``retry_exceptions`` (``True``: all). ``on_result(index, result)`` runs in this process as each
    task completes, in completion order, exactly once per item. If a task fails for good the
    others are cancelled and the error is raised with a note naming the item. ``fn`` must be
    importable or picklable by cloudpickle (lambdas and closures are fine).

    ``isolate`` (default: when Ray is not already initialised in this process) runs Ray's driver
    in a child process. When a Ray system process dies (the raylet, a worker it was registering),
    Ray's C++ core can end its driver process outright, below Python; isolated, that ends only the
    child: the unfinished items go to a fresh driver, at most ``driver_restarts`` times, and then
    the failure is one :class:`RayFailure` (results already handed to ``on_result`` are kept).
    """
    items = list(items)
    if max_retries < 0:
        raise UserError(f"max_retries={max_retries}: expected >= 0")
    if driver_restarts < 0:
        raise UserError(f"driver_restarts={driver_restarts}: expected >= 0")
    if address is not None:
        address = check_address(address)
    options = {"address": address, "num_cpus": num_cpus, "max_retries": max_retries,
               "retry_exceptions": retry_exceptions, "task_num_cpus": task_num_cpus,
               "resources": dict(resources) if resources else None}
    if isolate is None:
        isolate = bool(items) and not _ray().is_initialized()
    with _progress(len(items), desc, progress) as bar:
        if isolate:
            return _map_in_child_driver(fn, items, dict(shared or {}), options, on_result, bar,
                                        driver_restarts)
        results: list[Any] = [None] * len(items)

        def collect(i: int, result: Any) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)
            bar.update(1)

        _map_here(fn, list(enumerate(items)), dict(shared or {}), options, collect)
        return results


def _map_here(fn: Callable[..., Any], indexed: list[tuple[int, Any]], shared: dict[str, Any],
              options: dict[str, Any], on_result: Callable[[int, Any], None]) -> None:
    """The Ray driver: ``indexed`` are (index in the caller's list, item) pairs;
    ``on_result(index, result)`` once per item as it completes."""
    retry_exceptions = options["retry_exceptions"]
    done = 0
    with contextlib.ExitStack() as stack, _ray_failures_as_one_line(lambda: done, len(indexed)):
        try:
            stack.enter_context(ray_session(options["address"], num_cpus=options["num_cpus"]))
        except UserError:
            raise
        except Exception as exc:  # e.g. "the current node timed out during startup"
            raise _RayStartFailure(f"{type(exc).__name__} while starting Ray: {exc}") from exc
        ray = _ray()
        fn_ref = ray.put(fn)
        shared_refs = {name: ray.put(value) for name, value in shared.items()}
        remote = ray.remote(_call).options(
            max_retries=options["max_retries"],
            retry_exceptions=list(retry_exceptions) if isinstance(retry_exceptions, tuple)
            else retry_exceptions,
            num_cpus=options["task_num_cpus"],
            resources=options["resources"],
        )
        refs = {remote.remote(fn_ref, item, **shared_refs): (i, item) for i, item in indexed}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            if pending:  # also collect whatever else is already finished
                more, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
                ready += more
            for ref in ready:
                i, item = refs[ref]
                try:
                    result = ray.get(ref)
                except Exception as exc:
                    for other in pending:
                        ray.cancel(other)
                    _annotate(exc, i, item, options["max_retries"])
                    raise
                on_result(i, result)
                done += 1


def _map_in_child_driver(fn: Callable[..., Any], items: list[Any], shared: dict[str, Any],
                         options: dict[str, Any], on_result: Callable[[int, Any], None] | None,
                         bar: Any, driver_restarts: int) -> list[Any]:
    """:func:`_map_here` in a spawned child process, restarted on the unfinished items when it
    dies or Ray fails; results come back over a pipe, ``on_result`` runs here."""
    import multiprocessing

    import cloudpickle

    ctx = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(items)
    todo = dict(enumerate(items))
    starts = 0
    while todo:
        starts += 1
        receive, send = ctx.Pipe(duplex=False)
        payload = cloudpickle.dumps((fn, sorted(todo.items()), shared, options))
        child = ctx.Process(target=_child_driver, args=(send, payload, os.getpid()),
                            name="nas-ray-driver")
        child.start()
        send.close()
        failure = None
        finished = False  # the child ended or is ending by itself
        try:
            while True:
                try:
                    message = receive.recv()
                except EOFError:  # the child ended without a word: Ray's C++ core ended it
                    finished = True
                    break
                kind, body = message
                if kind == "result":
                    i, result = body[0], cloudpickle.loads(body[1])
                    results[i] = result
                    todo.pop(i, None)
                    if on_result is not None:
                        on_result(i, result)
                    bar.update(1)
                elif kind == "ray_failure":
                    failure, finished = body, True
                elif kind == "raise":
                    finished = True
                    error = cloudpickle.loads(body[0])
                    for note in body[1]:  # Ray's task errors do not pickle their notes
                        if note not in getattr(error, "__notes__", []):
                            error.add_note(note)
                    raise error
                elif kind == "done":
                    finished = True
                    break
        finally:  # an error here (on_result's, an interrupt) stops the child's work at once
            child.join(timeout=30 if finished else 0)
            if child.is_alive():
                child.kill()
                child.join()
            receive.close()
            _kill_driver_group(child.pid)
        if not todo:
            break
        failure = failure or f"Ray's driver process ended with exit code {child.exitcode}"
        if starts > driver_restarts:
            raise RayFailure(_ray_failure_text(failure, len(items) - len(todo), len(items)))
        log.warning("%s; a new Ray driver takes the %d unfinished tasks (restart %d of %d)",
                    failure, len(todo), starts, driver_restarts)
    return results


def _child_driver(send: Any, payload: bytes, parent_pid: int) -> None:
    """The child process of :func:`_map_in_child_driver`: runs the tasks, sends each result,
    then ``done``; Ray's failure as its description, any other exception pickled."""
    import cloudpickle

    die_with_parent(parent_pid)
    with contextlib.suppress(OSError):  # a group of its own: Ray's processes, see _kill_driver_group
        os.setpgid(0, 0)
    fn, indexed, shared, options = cloudpickle.loads(payload)
    try:
        _map_here(fn, indexed, shared, options,
                  lambda i, result: send.send(("result", (i, cloudpickle.dumps(result)))))
    except RayFailure as exc:
        send.send(("ray_failure", exc.cause))
    except BaseException as exc:
        try:
            body = cloudpickle.dumps(exc)
        except Exception:  # an exception that cannot travel: its text does
            body = cloudpickle.dumps(TaskFailedError(f"{type(exc).__name__}: {exc}"))
        send.send(("raise", (body, list(getattr(exc, "__notes__", [])))))
    else:
        send.send(("done", None))
    finally:
        send.close()


def _kill_driver_group(pgid: int | None) -> None:
    """SIGKILL what is left of the process group of an ended child driver: the Ray instance it
    started. Ray ends its processes with the driver, except when its raylet died first: then its
    agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) can be left orphaned and running,
    measured in 1 of 4 raylet kills during ``nas sample --ray-address local``. Only the driver's
    own group is signalled, never another Ray on the machine."""
    if pgid is None or not hasattr(os, "killpg"):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class RayFailure(UserError):
    """Ray itself failed (a worker or system process died past its retries, a node was lost, the
    connection dropped): not an error of the task's code. Results handed to ``on_result`` before
    it are kept, so the same command continues where it stopped. ``cause``: what failed."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.cause))


class _RayStartFailure(RuntimeError):
    """``ray.init`` failed for a reason of Ray's own (not a bad address or option)."""


def _ray_failure_text(cause: str, finished: int, total: int) -> str:
    return (f"Ray failed ({cause}) after {finished} of {total} tasks; their results are kept: "
            "run the same command again to continue")


@contextlib.contextmanager
def _ray_failures_as_one_line(finished: Callable[[], int], total: int) -> Iterator[None]:
    ray = _ray()
    try:
        yield
    except ray.exceptions.RayTaskError:
        raise  # the task's own exception: the caller's to report
    except (ray.exceptions.RayError, ConnectionError, _RayStartFailure) as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        kind = "" if isinstance(exc, _RayStartFailure) else f"{type(exc).__name__}: "
        cause = f"{kind}{first}{'; ' + notes if notes else ''}"
        raise RayFailure(_ray_failure_text(cause, finished(), total), cause) from exc


def map_local(
    fn: Callable[..., R],
    items: Iterable[T],
    *,
    processes: int = 1,
    shared: Mapping[str, Any] | None = None,
    max_retries: int = 3,
    on_result: Callable[[int, R], None] | None = None,
    progress: bool = True,
    desc: str = "tasks",
    mp_context: str = "spawn",
) -> list[R]:
    """:func:`map_tasks` without Ray: in this process (``processes=1``) or a process pool.

    In a pool, ``fn`` and ``shared`` are sent once to each worker process (cloudpickle, so lambdas
    work), not once per item. If a worker process dies, the pool is rebuilt and the unfinished
    items are resubmitted, at most ``max_retries`` times in all. ``spawn`` is the default start
    method because forking a process that has used torch's OpenMP threads can hang.
    """
    items = list(items)
    shared = dict(shared or {})
    if processes < 1:
        raise UserError(f"processes={processes}: expected at least 1")
    if max_retries < 0:
        raise UserError(f"max_retries={max_retries}: expected >= 0")
    results: list[Any] = [None] * len(items)
    with _progress(len(items), desc, progress) as bar:
        if processes == 1 or len(items) <= 1:
            for i, item in enumerate(items):
                try:
                    results[i] = fn(item, **shared)
                except Exception as exc:
                    _annotate(exc, i, item, max_retries=0)
                    raise
                if on_result is not None:
                    on_result(i, results[i])
                bar.update(1)
            return results
        _pool_map(fn, items, shared, processes, max_retries, on_result, bar, mp_context, results)
    return results


def _pool_map(fn: Callable[..., Any], items: list[Any], shared: dict[str, Any], processes: int,
              max_retries: int, on_result: Callable[[int, Any], None] | None, bar: Any,
              mp_context: str, results: list[Any]) -> None:
    import multiprocessing

    import cloudpickle

    payload = cloudpickle.dumps((fn, shared))
    todo = set(range(len(items)))
    crashes = 0
    while todo:
        with ProcessPoolExecutor(
            max_workers=min(processes, len(todo)),
            mp_context=multiprocessing.get_context(mp_context),
            initializer=_worker_init, initargs=(payload, os.getpid()),
        ) as pool:
            futures: dict[Future, int] = {pool.submit(_worker_call, items[i]): i for i in sorted(todo)}
            broken: BaseException | None = None
            waiting = set(futures)
            while waiting and broken is None:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    i = futures[fut]
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        broken = exc
                        continue
                    if exc is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        _annotate(exc, i, items[i], max_retries)
                        raise exc
                    results[i] = fut.result()
                    todo.discard(i)
                    if on_result is not None:
                        on_result(i, results[i])
                    bar.update(1)
        if broken is not None and todo:
            crashes += 1
            if crashes > max_retries:
                raise TaskFailedError(
                    f"a worker process died {crashes} times (max_retries={max_retries}); "
                    f"{len(todo)} of {len(items)} items unfinished, e.g. item {min(todo)}"
                ) from broken
            log.warning("a worker process died; resubmitting %d unfinished items (retry %d/%d)",
                        len(todo), crashes, max_retries)


# Set once per pool worker process by the initializer: the function and shared objects, so they
# are unpickled once per process rather than once per item. Only ever written in pool workers.
_WORKER_PAYLOAD: dict[str, Any] = {}


def _worker_init(payload: bytes, parent_pid: int) -> None:
    import cloudpickle

    die_with_parent(parent_pid)
    _WORKER_PAYLOAD["fn"], _WORKER_PAYLOAD["shared"] = cloudpickle.loads(payload)


def die_with_parent(parent_pid: int) -> None:
    """End this worker process when its parent dies, even by SIGKILL (a pool worker waits on a
    queue it holds both ends of, so it would otherwise wait forever, an orphan holding memory).

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); elsewhere
    a daemon thread checks the parent once a second.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _worker_call(item: Any) -> Any:
    return _WORKER_PAYLOAD["fn"](item, **_WORKER_PAYLOAD["shared"])


def run_on_resource(
    fn: Callable[..., R],
    *args: Any,
    resource: str,
    address: str | None = None,
    amount: float = 1.0,
    num_cpus: float = 1.0,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> R:
    """Run ``fn(*args, **kwargs)`` as one Ray task on a node that advertises ``resource``.

    Checks ``ray.cluster_resources()`` first and raises :class:`UserError` naming the custom
    resources that do exist, instead of waiting forever for a node that is not there.
    """
    with ray_session(address) as session:
        ray = _ray()
        available = session.resources if session.started else dict(ray.cluster_resources())
        if available.get(resource, 0.0) < amount:
            custom = sorted(k for k in available if not _is_builtin_resource(k))
            raise UserError(
                f"no node of the Ray cluster ({session.address}) advertises {amount:g} of resource "
                f"{resource!r}; custom resources present: {custom or 'none'}. Start the node that "
                f"owns the device with `ray start --address=<head> --resources='{{\"{resource}\": 1}}'`"
            )
        remote = ray.remote(_call_args).options(num_cpus=num_cpus, resources={resource: amount})
        ref = remote.remote(ray.put(fn), args, kwargs)
        try:
            return ray.get(ref, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            ray.cancel(ref, force=True)
            raise TaskFailedError(
                f"task on resource {resource!r} did not finish within {timeout_s:g} s") from exc


def _call_args(fn: Callable[..., R], args: tuple, kwargs: dict) -> R:
    return fn(*args, **kwargs)


def _is_builtin_resource(name: str) -> bool:
    return name in {"CPU", "GPU", "memory", "object_store_memory"} or name.startswith(
        ("node:", "accelerator_type:"))


def _annotate(exc: BaseException, index: int, item: Any, max_retries: int) -> None:
    text = repr(item)
    text = text if len(text) <= 200 else text[:197] + "..."
    note = (f"while processing item {index} ({text}); worker deaths are retried up to "
            f"{max_retries} times, exceptions raised by the function are not")
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(note)
    else:  # pragma: no cover
        log.error("%s", note)


@contextlib.contextmanager
def _progress(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, disable=not enabled, unit="task", dynamic_ncols=True) as bar:
        yield bar

"""Measurement on a Ray cluster: build tasks over the cluster's CPUs, one timing actor per device.

``RayExecutor`` implements the same ``Executor`` interface as the local process pool
(``autoscheduler.measure.executor.LocalExecutor``) and returns the same ``MeasureResult``s with the
same error codes, so ``measure_batch(..., executor=RayExecutor())`` and the tuner need no change:

* **Build tasks** (Ray tasks, one CPU each, spread over the nodes) rebuild each candidate's pipeline
  from the plain-data ``Candidate`` and compile it, in a child process of the Ray worker (the local
  executor's own worker, ``measure.worker.WorkerHandle``), so a candidate that crashes, hangs or runs
  out of memory while compiling comes back as BUILD_ERROR / BUILD_TIMEOUT / RUN_ERROR / OUT_OF_MEMORY
  and the Ray worker survives. The child is kept between tasks (Halide imported once per Ray worker).
* **Timing actors**: one per GPU (``num_gpus=1``) for CUDA targets, and one CPU timing actor (on the
  driver's node when it can) for CPU targets. Each holds a ``LocalExecutor`` whose worker process keeps
  the device context, inputs and reference outputs warm across candidates and batches, and measures one
  candidate at a time: rebuild, check against the compute_root reference, time. A crash or hang kills
  only that worker process, never the actor.
* **Results** return to the driver, which alone writes records (this module never touches them).

Halide's Python bindings JIT-compile and cannot ship compiled code between processes, so the timing
actor compiles each candidate again in the process that times it. The build tasks screen the batch in
parallel: a candidate that does not compile, or crashes or hangs the compiler, never reaches a device.
Build and timing phases alternate (as in the local executor), so nothing is compiled on the cluster
while a candidate is timed.

Ray is an optional dependency (the ``distributed`` extra): it is imported only when a ``RayExecutor``
is created, and nothing else in the toolkit imports this module's Ray code.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .errors import ToolkitError
from .measure.candidate import Candidate
from .measure.device import device_fingerprint
from .measure.executor import Executor, LocalExecutor, ResultCallback
from .measure.options import MeasureOptions
from .measure.result import DeviceUnavailableError, ErrorCode, MeasureResult
from .measure.worker import WorkerConfig, WorkerHandle, WorkerLost

INSTALL_HINT = "install the distributed extra: pip install -e .[distributed]"
MIN_RAY = (2, 9)


class RayNotInstalledError(ToolkitError):
    """Ray (the ``distributed`` extra) is missing or too old."""


class RayClusterError(ToolkitError):
    """The Ray cluster cannot be reached or lacks the resources asked for."""


def import_ray() -> Any:
    """The ``ray`` module, or RayNotInstalledError (one line naming the fix)."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(f"Ray is not installed; {INSTALL_HINT}") from None
    version = getattr(ray, "__version__", "0")
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        parts = MIN_RAY
    if parts < MIN_RAY:
        raise RayNotInstalledError(f"Ray {version} is too old (need >= {MIN_RAY[0]}.{MIN_RAY[1]}); "
                                   f"{INSTALL_HINT}")
    return ray


# ----------------------------------------------------------------------------- inside a Ray worker

_builder: WorkerHandle | None = None  # this Ray worker process's build child, kept between tasks
_build_logdir: str | None = None
_LOGDIR_PREFIX = "halide-ray-build-"
_build_logs = itertools.count()
_build_keys = itertools.count()


def _logdir() -> str:
    """This Ray worker's folder of build logs, named by its pid; folders of dead processes (Ray
    kills its workers without running exit handlers) are removed when the next one is made."""
    global _build_logdir
    if _build_logdir is None:
        _sweep_logdirs()
        _build_logdir = os.path.join(tempfile.gettempdir(), f"{_LOGDIR_PREFIX}{os.getpid()}")
        os.makedirs(_build_logdir, exist_ok=True)
        atexit.register(shutil.rmtree, _build_logdir, True)
    return _build_logdir


def _sweep_logdirs() -> None:
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        pid = name.removeprefix(_LOGDIR_PREFIX)
        if name.startswith(_LOGDIR_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _memory_limit(c: Candidate, options: MeasureOptions) -> int | None:
    """As LocalExecutor: RLIMIT_AS in bytes, none for CUDA (the driver reserves large ranges)."""
    limit = options.memory_limit_mb
    return None if (limit is None or c.is_cuda) else int(limit) << 20


def _build_config(c: Candidate, options: MeasureOptions) -> WorkerConfig:
    """As LocalExecutor._config: HL_NUM_THREADS, the memory limit, a log whose tail explains a crash."""
    return WorkerConfig(num_threads=options.threads, memory_limit_bytes=_memory_limit(c, options),
                        log_path=os.path.join(_logdir(), f"build-{next(_build_logs)}.log"))


def _drop_builder() -> None:
    """Forget (and kill) this process's build child and delete its log."""
    global _builder
    h, _builder = _builder, None
    if h is not None:
        h.kill()
        try:
            os.remove(h.config.log_path)
        except OSError:
            pass


def build_task(c: Candidate, options: MeasureOptions) -> tuple[Any, ...]:
    """Compile ``c`` in this Ray worker's build child: ``("ok", build_s)`` or ``("error", code, msg)``.

    The child is the local executor's worker (the same build code, limits and failure reports); it is
    replaced after it crashes or times out, and after any interruption (a cancelled task).
    """
    global _builder
    h = _builder
    if h is not None and (not h.alive() or h.busy or h.config.num_threads != options.threads
                          or h.config.memory_limit_bytes != _memory_limit(c, options)):
        _drop_builder()
        h = None
    if h is None:
        h = _builder = WorkerHandle(multiprocessing.get_context("spawn"), _build_config(c, options),
                                    options.worker_start_timeout_s)
    key = next(_build_keys)
    try:
        try:
            h.wait_ready()
        except WorkerLost as e:
            _drop_builder()
            return ("error", e.code.value, f"worker could not start: {e.message}")
        # check=False: the reference output is computed by the timing actor, which checks against it.
        h.begin(("build", key, c, options.seed, False),
                {"build": options.build_timeout_s, "reference": options.reference_timeout_s}, "build")
        try:
            reply = h.wait()
        except WorkerLost as e:
            _drop_builder()
            return ("error", e.code.value, e.message)
    except BaseException:  # cancelled or interrupted: never leave a busy child behind
        _drop_builder()
        raise
    if reply[0] == "ok":
        h.send(("drop", key))
        return ("ok", float(reply[1]["build_s"]))
    return ("error", str(reply[1]), str(reply[2]))


class TimingActor:
    """The body of a timing actor (one per device): a LocalExecutor kept warm between calls.

    Ray runs one call at a time on an actor, so a device measures one candidate at a time.
    """

    def __init__(self) -> None:
        self._ex = LocalExecutor()

    def info(self, target: str) -> tuple[str, int]:
        """(device fingerprint for ``target``, core count) of the node this actor runs on."""
        return device_fingerprint(target), os.cpu_count() or 1

    def measure(self, c: Candidate, options: MeasureOptions) -> MeasureResult:
        return self._ex.submit([c], options.with_(build_workers=1, builds_per_phase=1))[0]

    def interleaved(self, cs: list[Candidate], rounds: int, options: MeasureOptions) -> list[MeasureResult]:
        return self._ex.submit_interleaved(cs, rounds, options)

    def pids(self) -> tuple[int, list[int]]:
        """(this actor's process id, its live worker processes' ids)."""
        return os.getpid(), self._ex.worker_pids()

    def close(self) -> None:
        self._ex.close()


_REMOTES: dict[str, Any] = {}


def _remotes(ray: Any) -> tuple[Any, Any]:
    """The Ray-decorated build task and timing actor class (made on first use, not at import)."""
    if not _REMOTES:
        _REMOTES["build"] = ray.remote(num_cpus=1, max_retries=2)(build_task)
        _REMOTES["actor"] = ray.remote(TimingActor)
    return _REMOTES["build"], _REMOTES["actor"]


# ----------------------------------------------------------------------------- the driver side

@dataclass
class _Device:
    kind: str  # "cpu" or "gpu"
    actor: Any
    info: dict[str, tuple[str, int]] = field(default_factory=dict)
    busy: Any = None  # the ObjectRef of the call in flight


def _kind(c: Candidate) -> str:
    return "gpu" if c.is_cuda else "cpu"


def _probe(address: str) -> None:
    """Fail fast on an address nothing listens at (``ray.init`` would retry for minutes)."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local", or no port: Ray resolves it
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as e:
        raise RayClusterError(f"cannot reach a Ray cluster at '{address}' ({e.strerror or e}); start one "
                              "with `ray start --head` and pass the address it prints, or pass "
                              "address=None for a local one") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


class RayExecutor(Executor):
    """Builds candidates as Ray tasks over the cluster and times them on per-device Ray actors.

    ``address``: the cluster to join (``"auto"``, ``"ray://head:10001"``, ...). With None, an already
    initialised Ray connection in this process is used, else a local Ray instance is started (and shut
    down by ``close``). ``num_cpus``: CPUs of that local instance, and in any case the most build tasks
    run at once (default: the cluster's CPUs). ``gpus``: how many GPU timing actors to use for CUDA
    targets (default: one per GPU in the cluster; for a local instance, also the GPUs it gets).
    ``MeasureOptions.build_workers`` does not apply: build parallelism is the cluster's; candidates are
    built in phases of ``build slots * builds_per_phase``, each followed by a timing phase.
    """

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 gpus: int | None = None) -> None:
        if num_cpus is not None and num_cpus < 1:
            raise ValueError("num_cpus must be >= 1")
        if gpus is not None and gpus < 0:
            raise ValueError("gpus must be >= 0")
        ray = import_ray()
        self._ray = ray
        self._own = False
        self._cpu: _Device | None = None
        self._gpus: list[_Device] = []
        self._builds_inflight: dict[Any, tuple[int, Candidate]] = {}
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address is None:
                kw.update(num_cpus=num_cpus, num_gpus=gpus)
            else:
                _probe(address)
                kw["address"] = address
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"at '{address}'" if address else "locally"
                raise RayClusterError(f"cannot start or join a Ray cluster {where} ({_first_line(e)}); "
                                      "start one with `ray start --head` and pass its address, or "
                                      "pass address=None for a local one") from None
            self._own = True
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0))
        if cpus < 1:
            self.close()
            raise RayClusterError("the Ray cluster has no CPUs for build tasks; add a node with CPUs")
        self._build_slots = min(num_cpus, cpus) if num_cpus else cpus
        cluster_gpus = int(resources.get("GPU", 0))
        if gpus is not None and gpus > cluster_gpus:
            self.close()
            raise RayClusterError(f"gpus={gpus} but the Ray cluster has {cluster_gpus} GPU(s); "
                                  "pass fewer, or add GPU nodes")
        self._n_gpus = cluster_gpus if gpus is None else gpus
        self._build_fn, self._actor_cls = _remotes(ray)

    # ------------------------------------------------------------------ devices
    def _spawn(self, kind: str) -> Any:
        opts: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0, "max_task_retries": 0}
        if kind == "gpu":
            opts["num_gpus"] = 1
        else:
            # Only during timing phases does it work, when no build task runs: reserving a CPU would
            # only take a build slot away. Near the driver so runs stay on one machine.
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
            node = self._ray.get_runtime_context().get_node_id()
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
        return self._actor_cls.options(**opts).remote()

    def _prepare(self, candidates: Sequence[Candidate]) -> None:
        """Check that every target has a device; start the timing actors the batch needs."""
        kinds = {_kind(c) for c in candidates}
        if "gpu" in kinds and self._n_gpus == 0:
            target = sorted({c.target for c in candidates if c.is_cuda})[0]
            raise DeviceUnavailableError(
                f"target '{target}' needs a CUDA GPU but the Ray cluster has none to time on (no GPU "
                "resources, or gpus=0); add a GPU node, or use a CPU target such as 'host'")
        if "gpu" in kinds:
            while len(self._gpus) < self._n_gpus:
                self._gpus.append(_Device("gpu", self._spawn("gpu")))
        if "cpu" in kinds and self._cpu is None:
            self._cpu = _Device("cpu", self._spawn("cpu"))

    def _devices(self, kind: str) -> list[_Device]:
        if kind == "gpu":
            return list(self._gpus)
        return [self._cpu] if self._cpu is not None else []

    def _replace(self, dev: _Device) -> None:
        """The actor died (node lost, killed): start a fresh one in its place."""
        try:
            self._ray.kill(dev.actor, no_restart=True)
        except Exception:
            pass
        dev.actor = self._spawn(dev.kind)
        dev.info.clear()
        dev.busy = None

    def _get(self, ref: Any, **kw: Any) -> Any:
        """``ray.get``, re-raising an exception raised inside a task as itself (a ToolkitError stays
        one line) with Ray's remote traceback chained."""
        try:
            return self._ray.get(ref, **kw)
        except self._ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from e
            raise

    def _info(self, c: Candidate) -> tuple[str, int]:
        """(fingerprint, cores) of the device that times ``c``: what its results are recorded under."""
        dev = self._devices(_kind(c))[0]
        if c.target not in dev.info:
            try:
                dev.info[c.target] = self._get(dev.actor.info.remote(c.target))
            except self._ray.exceptions.RayActorError:
                self._replace(dev)
                dev.info[c.target] = self._get(dev.actor.info.remote(c.target))
        return dev.info[c.target]

    def _failure(self, c: Candidate, code: ErrorCode, message: str, options: MeasureOptions) -> MeasureResult:
        fingerprint, cores = self._info(c)
        return MeasureResult(c, code, message, num_threads=options.num_threads or cores,
                             device=fingerprint)

    def actor_pids(self) -> list[int]:
        """Process ids of the live timing actors (for diagnostics and tests)."""
        devs = self._gpus + ([self._cpu] if self._cpu is not None else [])
        return [int(p[0]) for p in self._get([d.actor.pids.remote() for d in devs])]

    # ------------------------------------------------------------------ phases
    def _build(self, items: Sequence[tuple[int, Candidate]], options: MeasureOptions,
               finish: Callable[[int, MeasureResult], None]) -> list[int]:
        """Compile every item in build tasks, at most ``build slots`` at once; failures are
        finished here. Returns the indices that compiled."""
        ray = self._ray
        queue = deque(items)
        inflight = self._builds_inflight
        built: list[int] = []
        task = self._build_fn.options(scheduling_strategy="SPREAD")
        while queue or inflight:
            while queue and len(inflight) < self._build_slots:
                i, c = queue.popleft()
                inflight[task.remote(c, options)] = (i, c)
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                i, c = inflight.pop(ref)
                try:
                    reply = self._get(ref)
                except ray.exceptions.RayError as e:  # the Ray worker or its node was lost, retries spent
                    reply = ("error", ErrorCode.RUN_ERROR.value,
                             f"the build task was lost: {_first_line(e)}")
                if reply[0] == "ok":
                    built.append(i)
                else:
                    finish(i, self._failure(c, ErrorCode(reply[1]), str(reply[2]), options))
        return built

    def _time(self, items: Sequence[tuple[int, Candidate]], options: MeasureOptions,
              finish: Callable[[int, MeasureResult], None]) -> None:
        """Measure each item on a free device of its kind, one candidate per device at a time."""
        ray = self._ray
        queues: dict[str, deque[tuple[int, Candidate]]] = {"cpu": deque(), "gpu": deque()}
        for i, c in items:
            queues[_kind(c)].append((i, c))
        inflight: dict[Any, tuple[_Device, int, Candidate]] = {}
        deaths: dict[int, int] = {}
        while any(queues.values()) or inflight:
            for kind, queue in queues.items():
                for dev in self._devices(kind):
                    if queue and dev.busy is None:
                        i, c = queue.popleft()
                        dev.busy = dev.actor.measure.remote(c, options)
                        inflight[dev.busy] = (dev, i, c)
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                dev, i, c = inflight.pop(ref)
                dev.busy = None
                try:
                    r = self._get(ref)
                except ray.exceptions.RayActorError as e:
                    # Candidates run in the actor's child process, so this is the node or Ray, not
                    # (usually) the candidate: measure it again on a fresh actor, once.
                    self._replace(dev)
                    deaths[i] = deaths.get(i, 0) + 1
                    if deaths[i] < 2:
                        queues[dev.kind].appendleft((i, c))
                        continue
                    r = self._failure(c, ErrorCode.RUN_ERROR,
                                      f"the timing actor died twice while measuring it: {_first_line(e)}",
                                      options)
                finish(i, dataclasses.replace(r, candidate=c))

    def _abandon(self) -> None:
        """After an exception mid-batch: cancel pending builds. A timing call in flight finishes on
        its actor (Ray queues the next batch's calls behind it); its result is dropped."""
        for ref in list(self._builds_inflight):
            try:
                self._ray.cancel(ref)
            except Exception:
                pass
        self._builds_inflight.clear()
        for dev in self._gpus + ([self._cpu] if self._cpu is not None else []):
            dev.busy = None

    # ------------------------------------------------------------------ batches
    def submit(self, candidates: Sequence[Candidate], options: MeasureOptions,
               on_result: ResultCallback | None = None) -> list[MeasureResult]:
        self._prepare(candidates)
        results: list[MeasureResult | None] = [None] * len(candidates)

        def finish(i: int, r: MeasureResult) -> None:
            results[i] = r
            if on_result is not None:
                on_result(i, r)

        items = list(enumerate(candidates))
        per_phase = self._build_slots * options.builds_per_phase
        try:
            for start in range(0, len(items), per_phase):
                built = self._build(items[start:start + per_phase], options, finish)
                self._time([(i, candidates[i]) for i in sorted(built)], options, finish)
        except BaseException:
            self._abandon()
            raise
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def submit_interleaved(self, candidates: Sequence[Candidate], rounds: int,
                           options: MeasureOptions) -> list[MeasureResult]:
        """Build-screen all, then time the survivors interleaved on ONE device per kind (finalists
        are compared on the same device; several GPUs do not split them)."""
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        self._prepare(candidates)
        final: dict[int, MeasureResult] = {}
        try:
            built = self._build(list(enumerate(candidates)), options, final.__setitem__)
            calls = []
            for kind in ("cpu", "gpu"):
                idx = [i for i in sorted(built) if _kind(candidates[i]) == kind]
                if idx:
                    dev = self._devices(kind)[0]
                    dev.busy = dev.actor.interleaved.remote([candidates[i] for i in idx], rounds, options)
                    calls.append((dev, idx, dev.busy))
            for dev, idx, ref in calls:
                try:
                    res = self._get(ref)
                except self._ray.exceptions.RayActorError as e:
                    self._replace(dev)
                    res = [self._failure(candidates[i], ErrorCode.RUN_ERROR,
                                         f"the timing actor died: {_first_line(e)}", options) for i in idx]
                dev.busy = None
                for i, r in zip(idx, res):
                    final[i] = dataclasses.replace(r, candidate=candidates[i])
        except BaseException:
            self._abandon()
            raise
        return [final[i] for i in range(len(candidates))]

    def close(self) -> None:
        """Stop the timing actors (and their worker processes); shut Ray down if this started it."""
        ray = self._ray
        devs = self._gpus + ([self._cpu] if self._cpu is not None else [])
        self._gpus, self._cpu = [], None
        if ray.is_initialized():
            for dev in devs:
                try:
                    ray.get(dev.actor.close.remote(), timeout=30)
                except Exception:
                    pass
                try:
                    ray.kill(dev.actor, no_restart=True)
                except Exception:
                    pass
        if self._own and ray.is_initialized():
            ray.shutdown()
            _sweep_logdirs()  # the local instance's workers are gone: their build logs too
        self._own = False

"""Executors run batches of candidates and return their results; the local process pool is the default.

The interface is small on purpose (``submit`` a batch, ``submit_interleaved`` finalists, ``close``)
so that another executor (Ray actors, one per device) can be added without touching callers. An
exception raised by ``on_result`` (the batch API's abort rule, a database error) propagates out of
``submit`` after the executor has cleaned up; the executor stays usable.

The local executor alternates two phases so that nothing is built on the cores a candidate is timed on:
a build phase, where ``build_workers`` processes build (and check the reference of) up to
``builds_per_phase`` candidates each in parallel, and a timing phase, where the parent asks one worker
at a time to check and time one of the candidates it holds while every other worker waits idle.
"""

from __future__ import annotations

import abc
import itertools
import multiprocessing
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
import time
from typing import Any, Callable, Sequence, TypeVar

from .candidate import Candidate
from .device import cuda_available, device_fingerprint
from .options import MeasureOptions
from .result import DeviceUnavailableError, ErrorCode, MeasureResult
from .worker import WorkerConfig, WorkerHandle, WorkerLost

ResultCallback = Callable[[int, MeasureResult], None]
_E = TypeVar("_E", bound="Executor")


EXECUTORS = ("local", "ray")
"""The executors by name (``--executor``): the local process pool, or a Ray cluster
(``autoscheduler.measure_ray``). Here, where no Halide import happens, so that the CLI can list them."""


class Executor(abc.ABC):
    """Builds, checks and times candidates somewhere; results come back in candidate order."""

    @abc.abstractmethod
    def submit(self, candidates: Sequence[Candidate], options: MeasureOptions,
               on_result: ResultCallback | None = None) -> list[MeasureResult]:
        """Measure every candidate; ``on_result(index, result)`` is called as each one finishes."""

    @abc.abstractmethod
    def submit_interleaved(self, candidates: Sequence[Candidate], rounds: int,
                           options: MeasureOptions) -> list[MeasureResult]:
        """Build all, then time them interleaved (A B C A B C ...), one sample per round each."""

    def close(self) -> None:
        """Release workers and devices."""

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_devices(candidates: Sequence[Candidate]) -> None:
    cuda = sorted({c.target for c in candidates if c.is_cuda})
    if cuda and not cuda_available():
        raise DeviceUnavailableError(
            f"target '{cuda[0]}' needs a CUDA GPU but this machine has none (nvidia-smi lists no GPU); "
            "measure on a machine with one, or use a CPU target such as 'host'")


@dataclass
class _Job:
    index: int
    candidate: Candidate
    key: int
    slot: int
    handle: WorkerHandle
    build_s: float | None = None
    first_run_done: bool = False


Finish = Callable[[int, MeasureResult], None]


class LocalExecutor(Executor):
    """Spawned worker processes on this machine, reused across batches until one fails."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._logdir = tempfile.TemporaryDirectory(prefix="halide-measure-")
        self._slots: list[WorkerHandle | None] = []
        self._keys = itertools.count()
        self._opts = MeasureOptions()
        self._cuda = False
        self._serial = itertools.count()

    # ------------------------------------------------------------------ workers
    def _config(self) -> WorkerConfig:
        limit = self._opts.memory_limit_mb
        return WorkerConfig(
            num_threads=self._opts.threads,
            memory_limit_bytes=None if (limit is None or self._cuda) else int(limit) << 20,
            log_path=os.path.join(self._logdir.name, f"worker-{next(self._serial)}.log"))

    def _prepare(self, candidates: Sequence[Candidate], options: MeasureOptions) -> None:
        require_devices(candidates)
        self._opts = options
        self._cuda = any(c.is_cuda for c in candidates)
        want = self._config()
        for h in self._slots[options.build_workers:]:
            if h is not None:
                h.close()
        self._slots = (self._slots + [None] * options.build_workers)[:options.build_workers]
        for slot, h in enumerate(self._slots):
            if h is not None and (h.config.num_threads != want.num_threads
                                  or h.config.memory_limit_bytes != want.memory_limit_bytes):
                h.close()
                self._slots[slot] = None

    def _worker(self, slot: int) -> WorkerHandle:
        """The slot's worker, started (and waited for) if it has none or it died."""
        self._start(slot)
        h = self._slots[slot]
        assert h is not None
        try:
            h.wait_ready()
        except WorkerLost:
            self._slots[slot] = None
            raise
        return h

    def _start(self, slot: int) -> None:
        h = self._slots[slot]
        if h is None or not h.alive():
            if h is not None:
                h.kill()
            self._slots[slot] = WorkerHandle(self._ctx, self._config(), self._opts.worker_start_timeout_s)

    def _drop_slot(self, slot: int, handle: WorkerHandle) -> None:
        handle.kill()
        if self._slots[slot] is handle:
            self._slots[slot] = None

    def _abandon(self) -> None:
        """After an exception mid-batch: kill busy workers, free what idle ones hold."""
        for slot, h in enumerate(self._slots):
            if h is None:
                continue
            if h.busy:
                self._drop_slot(slot, h)
            else:
                for key in list(h.held):
                    h.send(("drop", key))
                h.held.clear()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        return [h.proc.pid for h in self._slots if h is not None and h.alive() and h.proc.pid]

    def close(self) -> None:
        for h in self._slots:
            if h is not None:
                h.close()
        self._slots = []
        self._logdir.cleanup()

    # ------------------------------------------------------------------ results
    def _result(self, job: _Job, code: ErrorCode, message: str = "", **kw: Any) -> MeasureResult:
        return MeasureResult(candidate=job.candidate, code=code, message=message, build_s=job.build_s,
                             num_threads=self._opts.threads,
                             device=device_fingerprint(job.candidate.target), **kw)

    # ------------------------------------------------------------------ phases
    def _build(self, items: Sequence[tuple[int, Candidate]], finish: Finish) -> tuple[list[_Job], list[int]]:
        """Build in parallel, one request per worker at a time. Returns the jobs built (each held by
        its worker) and the indices lost because another candidate killed the worker holding them."""
        opts = self._opts
        n = len(self._slots)
        queues: list[deque[tuple[int, Candidate]]] = [deque() for _ in range(n)]
        for j, item in enumerate(items):
            queues[j % n].append(item)
        for slot in range(min(n, len(items))):
            self._start(slot)  # all at once: each spends about a second importing Halide
        timeouts = {"build": opts.build_timeout_s, "reference": opts.reference_timeout_s}
        inflight: dict[int, _Job] = {}
        built: list[_Job] = []
        lost: list[int] = []
        while inflight or any(queues):
            for slot in range(n):
                if slot in inflight or not queues[slot]:
                    continue
                i, c = queues[slot].popleft()
                try:
                    h = self._worker(slot)
                except WorkerLost as e:
                    finish(i, MeasureResult(c, e.code, f"worker could not start: {e.message}",
                                            num_threads=opts.threads, device=device_fingerprint(c.target)))
                    continue
                job = _Job(i, c, next(self._keys), slot, h)
                h.begin(("build", job.key, c, opts.seed, opts.check_outputs), timeouts, "build")
                inflight[slot] = job
            if not inflight:
                continue
            deadline = min(j.handle.deadline for j in inflight.values())
            mp_wait([x for j in inflight.values() for x in j.handle.waitables()],
                    timeout=max(0.0, deadline - time.monotonic()) + 0.01)
            for slot, job in list(inflight.items()):
                try:
                    reply = job.handle.step()
                except WorkerLost as e:
                    del inflight[slot]
                    lost += self._lose(slot, job.handle, built)
                    finish(job.index, self._result(job, e.code, e.message))
                    continue
                if reply is None:
                    continue
                del inflight[slot]
                if reply[0] == "ok":
                    job.build_s = float(reply[1]["build_s"])
                    job.handle.held.add(job.key)
                    built.append(job)
                else:
                    finish(job.index, self._result(job, ErrorCode(reply[1]), str(reply[2])))
        return built, lost

    def _lose(self, slot: int, handle: WorkerHandle, built: list[_Job]) -> list[int]:
        """The worker is gone: forget it and return the indices of the candidates it held."""
        self._drop_slot(slot, handle)
        gone = [j for j in built if j.handle is handle]
        for j in gone:
            built.remove(j)
        return [j.index for j in gone]

    def _time(self, job: _Job, *, warmup: int, n_samples: int) -> tuple[Any, ...]:
        """One timing request to the worker holding ``job``; its first one also checks the output."""
        opts = self._opts
        check = not job.first_run_done
        stage = "check" if check else "time"
        job.handle.begin(("time", job.key, check, warmup, n_samples,
                          opts.min_sample_s), {stage: opts.run_timeout_s}, stage)
        reply = job.handle.wait()
        job.first_run_done = True
        return reply

    def _release(self, job: _Job) -> None:
        job.handle.held.discard(job.key)
        job.handle.send(("drop", job.key))

    # ------------------------------------------------------------------ batches
    def submit(self, candidates: Sequence[Candidate], options: MeasureOptions,
               on_result: ResultCallback | None = None) -> list[MeasureResult]:
        self._prepare(candidates, options)
        results: list[MeasureResult | None] = [None] * len(candidates)

        def finish(i: int, r: MeasureResult) -> None:
            results[i] = r
            if on_result is not None:
                on_result(i, r)

        pending: deque[tuple[int, Candidate]] = deque(enumerate(candidates))
        per_phase = len(self._slots) * options.builds_per_phase
        try:
            while pending:
                chunk = [pending.popleft() for _ in range(min(per_phase, len(pending)))]
                built, lost = self._build(chunk, finish)
                built.sort(key=lambda j: j.index)
                while built:
                    job = built.pop(0)
                    try:
                        reply = self._time(job, warmup=options.warmup, n_samples=options.n_samples)
                    except WorkerLost as e:
                        lost += self._lose(job.slot, job.handle, built)
                        finish(job.index, self._result(job, e.code, e.message))
                        continue
                    self._release(job)
                    if reply[0] == "ok":
                        info = reply[1]
                        finish(job.index, self._result(job, ErrorCode.OK, samples=list(info["samples"]),
                                                       repeats=int(info["repeats"]), run_s=float(info["run_s"])))
                    else:
                        finish(job.index, self._result(job, ErrorCode(reply[1]), str(reply[2])))
                for i in sorted(lost, reverse=True):  # innocent bystanders go first next phase
                    pending.appendleft((i, candidates[i]))
        except BaseException:
            self._abandon()
            raise
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def submit_interleaved(self, candidates: Sequence[Candidate], rounds: int,
                           options: MeasureOptions) -> list[MeasureResult]:
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        self._prepare(candidates, options)
        final: dict[int, MeasureResult] = {}
        samples: dict[int, list[float]] = {i: [] for i in range(len(candidates))}
        run_s: dict[int, float] = {i: 0.0 for i in range(len(candidates))}
        repeats: dict[int, int] = {}
        jobs: dict[int, _Job] = {}
        last: dict[int, _Job] = {}

        def finish(i: int, r: MeasureResult) -> None:
            final[i] = r

        try:
            for _ in range(rounds):
                need = [(i, c) for i, c in enumerate(candidates) if i not in final and i not in jobs]
                if need:
                    built, _lost = self._build(need, finish)  # the lost are rebuilt next round
                    jobs.update({j.index: j for j in built})
                for i in sorted(jobs):
                    job = jobs[i]
                    if self._slots[job.slot] is not job.handle:
                        del jobs[i]  # its worker died for another candidate: rebuilt next round
                        continue
                    last[i] = job
                    try:
                        reply = self._time(job, warmup=options.warmup if not job.first_run_done else 0,
                                           n_samples=1)
                    except WorkerLost as e:
                        self._drop_slot(job.slot, job.handle)
                        del jobs[i]
                        finish(i, self._result(job, e.code, e.message))
                        continue
                    if reply[0] == "ok":
                        samples[i] += list(reply[1]["samples"])
                        run_s[i] += float(reply[1]["run_s"])
                        repeats[i] = int(reply[1]["repeats"])
                    else:
                        self._release(job)
                        del jobs[i]
                        finish(i, self._result(job, ErrorCode(reply[1]), str(reply[2])))
        except BaseException:
            self._abandon()
            raise
        for job in jobs.values():
            self._release(job)
        out = []
        for i, c in enumerate(candidates):
            if i in final:
                out.append(final[i])
            elif samples[i]:
                out.append(self._result(last[i], ErrorCode.OK, samples=samples[i], repeats=repeats[i],
                                        run_s=run_s[i]))
            else:
                out.append(MeasureResult(c, ErrorCode.RUN_ERROR, "lost every round to other candidates' crashes",
                                         num_threads=options.threads, device=device_fingerprint(c.target)))
        return out

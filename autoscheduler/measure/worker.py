"""Worker processes: the child's request loop, and the parent's handle that can kill and replace it.

A worker is started with multiprocessing's "spawn" context (never fork once Halide is initialised),
in its own session so its whole process group can be killed, with HL_NUM_THREADS set, an address-space
limit (RLIMIT_AS) and its stdout/stderr sent to a log file whose tail explains a crash. It holds
compiled candidates between a "build" and a "time" request, so one worker builds and times the same
candidate; the parent decides when builds may run and when one candidate is timed alone.

Messages (plain tuples): parent -> child ``("build", key, candidate, seed, check)``,
``("time", key, check, warmup, n_samples, min_sample_s)``, ``("drop", key)``, ``("exit",)``;
child -> parent ``("ready", pid)``, ``("note", stage)`` when a stage starts,
``("ok", {...})`` or ``("error", code, message)`` as the one reply to build/time.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .candidate import Candidate
from .result import ErrorCode

_MEMORY_MARKERS = ("memoryerror", "out of memory", "bad_alloc", "cannot allocate memory",
                   "failed to allocate", "std::bad_alloc")
_MAX_MESSAGE = 2000


@dataclass(frozen=True)
class WorkerConfig:
    num_threads: int
    memory_limit_bytes: int | None
    log_path: str


def _first_lines(text: str, n: int = 4) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:n])[:_MAX_MESSAGE]


def _mentions_memory(text: str) -> bool:
    low = text.lower()
    return any(m in low for m in _MEMORY_MARKERS)


def classify(exc: BaseException, failing: ErrorCode) -> tuple[str, str]:
    """(code, one-line message) for an exception raised while building or running a candidate."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " <- ".join(f"{type(x).__name__}: {x}" for x in chain)
    if any(isinstance(x, MemoryError) for x in chain) or _mentions_memory(text):
        return ErrorCode.OUT_OF_MEMORY.value, _first_lines(str(exc) or type(exc).__name__)
    return failing.value, _first_lines(str(exc) or type(exc).__name__)


# ----------------------------------------------------------------------------- child side

def _set_parent_death_signal() -> None:
    """Die with the driver: without it, a killed driver leaves a worker timing on its own."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _isolate(config: WorkerConfig) -> None:
    try:
        os.setsid()
    except OSError:
        pass
    _set_parent_death_signal()
    os.environ["HL_NUM_THREADS"] = str(config.num_threads)
    if config.memory_limit_bytes:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (config.memory_limit_bytes, config.memory_limit_bytes))
    fd = os.open(config.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class _State:
    """What a worker keeps between requests: inputs, reference outputs, compiled candidates."""

    def __init__(self, conn: Connection) -> None:
        from .builder import LRU
        self.conn = conn
        self.inputs = LRU()
        self.references = LRU()
        self.compiled: dict[int, Any] = {}
        self.candidates: dict[int, tuple[Candidate, Any]] = {}  # key -> (candidate, reference or None)

    def note(self, stage: str) -> None:
        self.conn.send(("note", stage))

    def reference(self, c: Candidate, seed: int) -> Any:
        from . import builder, timing
        def compute() -> Any:
            self.note("reference")
            w = builder.load(c, seed, self.inputs)
            ref = builder.compile_candidate(c, w, builder.root_schedule(w), builder.reference_target())
            ref.run()
            return timing.output_arrays(ref)

        return self.references.get(c.workload_key() + (seed,), compute)

    def build(self, key: int, c: Candidate, seed: int, check: bool) -> tuple[Any, ...]:
        from . import builder
        self.note("build")
        t0 = time.perf_counter()
        try:
            w = builder.load(c, seed, self.inputs)
            compiled = builder.compile_candidate(c, w, c.schedule_source, c.target)
        except Exception as e:
            return ("error", *classify(e, ErrorCode.BUILD_ERROR))
        build_s = time.perf_counter() - t0
        ref = None
        if check:
            try:
                ref = self.reference(c, seed)
            except Exception as e:
                code, msg = classify(e, ErrorCode.RUN_ERROR)
                return ("error", code, f"the compute_root reference failed: {msg}")
        self.compiled[key] = compiled
        self.candidates[key] = (c, ref)  # holding ref keeps it alive if the cache drops it
        return ("ok", {"build_s": build_s})

    def time(self, key: int, check: bool, warmup: int, n_samples: int,
             min_sample_s: float) -> tuple[Any, ...]:
        from . import timing
        compiled, (c, ref) = self.compiled[key], self.candidates[key]
        t0 = time.perf_counter()
        try:
            if check:
                self.note("check")
                if compiled.cuda:
                    import halide as hl
                    timing.copy_inputs_to_device(compiled, hl.Target(c.target))
                compiled.run()
                outputs = timing.output_arrays(compiled)
                if ref is not None:
                    w = compiled.workload
                    mismatch = timing.compare(outputs, ref, w.rtol, w.atol, w.mismatch_fraction)
                    if mismatch is not None:
                        return ("error", ErrorCode.WRONG_ANSWER.value, mismatch)
            self.note("time")
            samples = timing.time_candidate(compiled, warmup=warmup, n_samples=n_samples,
                                            min_sample_s=min_sample_s)
        except Exception as e:
            return ("error", *classify(e, ErrorCode.RUN_ERROR))
        return ("ok", {"samples": samples, "repeats": compiled.repeats,
                       "run_s": time.perf_counter() - t0})


def worker_main(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of a spawned worker: serve requests until told to exit or the parent goes away."""
    _isolate(config)
    import halide  # noqa: F401  (after HL_NUM_THREADS is set, before the first request is timed)
    import halide_pipelines  # noqa: F401
    state = _State(conn)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        if op == "exit":
            return
        if op == "drop":
            state.compiled.pop(msg[1], None)
            state.candidates.pop(msg[1], None)
            continue
        try:
            if op == "build":
                reply = state.build(*msg[1:])
            elif op == "time":
                reply = state.time(*msg[1:])
            else:
                reply = ("error", ErrorCode.RUN_ERROR.value, f"unknown request {op!r}")
        except MemoryError:
            reply = ("error", ErrorCode.OUT_OF_MEMORY.value, "MemoryError in the worker")
        except Exception:  # a bug of ours, not of the candidate: report it in full
            reply = ("error", ErrorCode.RUN_ERROR.value,
                     f"internal error in the worker: {_first_lines(traceback.format_exc(), 12)}")
        conn.send(reply)


# ----------------------------------------------------------------------------- parent side

class WorkerLost(Exception):
    """The worker died or was killed on a timeout: ``code`` and ``message`` describe why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_STAGE_WORDS = {"build": "building", "reference": "computing the compute_root reference output",
                "check": "running it to check its output", "time": "timing", "start": "starting"}
_TIMEOUT_CODES = {"build": ErrorCode.BUILD_TIMEOUT, "reference": ErrorCode.BUILD_TIMEOUT,
                  "check": ErrorCode.RUN_TIMEOUT, "time": ErrorCode.RUN_TIMEOUT}


class WorkerHandle:
    """The parent's end of one worker process. ``held`` are the keys of candidates it has compiled.

    Construction starts the process without waiting; ``wait_ready`` waits for it, so several workers
    can start at once.
    """

    def __init__(self, ctx: Any, config: WorkerConfig, start_timeout_s: float) -> None:
        self.config = config
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        self.conn: Connection = parent_conn
        self.proc = ctx.Process(target=worker_main, args=(child_conn, config), daemon=True,
                                name="halide-measure-worker")
        self.proc.start()
        child_conn.close()
        self.held: set[int] = set()
        self.busy = False
        self.stage = "start"
        self.deadline = time.monotonic() + start_timeout_s
        self._timeouts: dict[str, float] = {"start": start_timeout_s}
        self._limit = start_timeout_s
        self._log_offset = self._log_size()
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the worker has started (imports done); WorkerLost if it cannot."""
        if self.ready:
            return
        reply = self.wait()
        if reply[0] != "ready":
            self.kill()
            raise WorkerLost(ErrorCode.RUN_ERROR, f"worker sent {reply!r} instead of ready")
        self.ready = True

    # -- requests
    def begin(self, msg: tuple[Any, ...], timeouts: dict[str, float], stage: str) -> None:
        """Send a request whose reply is awaited with ``step``/``wait``; ``timeouts`` per stage."""
        self._log_offset = self._log_size()
        self._timeouts = timeouts
        self.stage = stage
        self.deadline = time.monotonic() + timeouts[stage]
        self._limit = timeouts[stage]
        self.busy = True
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            pass  # it died since its last request: step() reports how

    def send(self, msg: tuple[Any, ...]) -> None:
        """A message that gets no reply (drop, exit)."""
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            pass

    def waitables(self) -> list[Any]:
        return [self.conn, self.proc.sentinel]

    def step(self) -> tuple[Any, ...] | None:
        """The reply if it has come, None while the worker is still within its deadline.

        Raises WorkerLost (after killing the worker) when it died or ran past its deadline.
        """
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg[0] == "note":
                    self.stage = msg[1]
                    if msg[1] in self._timeouts:
                        self._limit = self._timeouts[msg[1]]
                        self.deadline = time.monotonic() + self._limit
                    continue
                self.busy = False
                return tuple(msg)
        except (EOFError, OSError):
            pass
        if not self.proc.is_alive() or self.conn.closed:
            self.proc.join(timeout=5)
            lost = self._died()
            self.kill()
            raise lost
        if time.monotonic() >= self.deadline:
            limit = self._limit
            self.kill()
            code = _TIMEOUT_CODES.get(self.stage, ErrorCode.RUN_TIMEOUT)
            raise WorkerLost(code, f"timed out after {limit:g} s while "
                                   f"{_STAGE_WORDS.get(self.stage, self.stage)}; the worker was killed")
        return None

    def wait(self) -> tuple[Any, ...]:
        """Block until the reply (or WorkerLost)."""
        from multiprocessing.connection import wait
        while True:
            reply = self.step()
            if reply is not None:
                return reply
            wait(self.waitables(), timeout=max(0.0, self.deadline - time.monotonic()) + 0.01)

    # -- lifecycle
    def _died(self) -> WorkerLost:
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                how = f"crashed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"crashed (signal {-code})"
        else:
            how = f"exited with status {code}"
        log = self._log_tail()
        detail = f": {_first_lines(log, 6)}" if log.strip() else ""
        stage = _STAGE_WORDS.get(self.stage, self.stage)
        kind = ErrorCode.OUT_OF_MEMORY if _mentions_memory(log) else ErrorCode.RUN_ERROR
        return WorkerLost(kind, f"worker {how} while {stage}{detail}")

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self.config.log_path)
        except OSError:
            return 0

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.config.log_path, "rb") as f:
                f.seek(max(self._log_offset, self._log_size() - limit))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive() and self.proc.pid is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
        self.proc.join(timeout=10)
        self.conn.close()
        self.busy = False

    def close(self) -> None:
        if self.proc.is_alive() and not self.busy:
            self.send(("exit",))
            self.proc.join(timeout=5)
        self.kill()

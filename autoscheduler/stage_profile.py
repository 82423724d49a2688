"""Where a measured schedule spends its time, stage by stage: Halide's sampling profiler on replayed
training samples.

Why: a training sample's runtime is one number for a whole pipeline, and the cost model has to learn
its per-stage costs from sums of 5-20 of them. Held out, it misprices stages it cannot tell apart
from their sums: on random_17, a tanh stage recomputed inside a stencil's tiles took 22-36 of
62-76 ms and the networks priced a point of it like an add. Halide's profiler (target feature
``profile``) samples which Func every thread is computing, every millisecond, and prints a report
per run; its per-Func times are a per-stage target for the same schedules, at no cost to what the
search does.

A profile is charged to *groups* of featurized stages: a Func's stages (pure and updates) form one
group with every Func inlined into it, since the profiler charges an inlined Func's work to the Func
it is inlined into (a Func inlined into several consumers joins them into one group). The record
holds, per featurized stage (``FunctionDAG.featurization_order``), the index of its group, and per
group the milliseconds per run; the training loss compares the network's stage costs summed per
group with these shares (``cost_model.train``).

What the profiles showed (data/README.md): Halide's features count a tanh (a libm call per element)
and a sqrt (one instruction) as the same ``ExternCall``, and the networks mispriced such stages 2-30x;
``dag.features.math_calls`` now tells them apart. Training on the shares themselves
(``--stage-weight``) was neutral with half the training pipelines profiled.

Each pipeline is profiled in a child process (it JIT-compiles; a crash or a hang costs that
pipeline only), with ``HL_NUM_THREADS`` as measured; Halide's bindings print the profiler's reports
through Python's ``sys.stdout``, which the child captures per schedule and parses. Records are
appended to a gzipped JSON-lines file, one pipeline at a time, so an interrupted run resumes where
it stopped.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

PROFILE_FORMAT = "halide-toolkit-stage-profiles"
PROFILE_VERSION = 1
OVERHEAD_ENTRIES = ("waiting for parallel tasks to finish", "halide_malloc", "halide_free")
"""Profiler report lines that are not a Func's work (dropped: the shares are over Funcs)."""

_FUNC_LINE = re.compile(r"^\s{4}(\S.*?):\s+([0-9.]+)ms\s+\(\s*[0-9.]+%\)")
_TOTAL_LINE = re.compile(r"total time:\s*([0-9.]+)\s*ms\s+samples:\s*(\d+)\s+runs:\s*(\d+)")


class ProfileError(RuntimeError):
    """A schedule that could not be profiled (its pipeline's other schedules go on)."""


@dataclass
class StageProfile:
    """Per-group time of one measured schedule. ``groups[g]`` lists the Funcs of group ``g``;
    ``group_ms[g]`` its milliseconds per run; ``stage_group[s]`` the group of featurized stage ``s``
    (-1: a stage the profiler cannot see, e.g. of an input)."""

    pipeline: str
    pipeline_hash: str
    trace_hash: str
    target: str
    num_threads: int
    runs: int
    samples: int
    total_ms: float
    groups: list[list[str]]
    group_ms: list[float]
    stage_group: list[int]
    version: int = PROFILE_VERSION
    unattributed_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def shares(self) -> list[float]:
        """Each group's fraction of the time the profiler charged to Funcs."""
        total = sum(self.group_ms)
        return [t / total if total > 0 else 0.0 for t in self.group_ms]


# ---------------------------------------------------------------------------------------- parsing

def parse_reports(text: str) -> tuple[int, int, float, dict[str, float], float]:
    """Sum the profiler's per-run reports in ``text``: (runs, samples, total ms, ms per Func,
    overhead ms), all summed over runs. A Func listed twice in one report (never seen) adds up."""
    runs = samples = 0
    total = overhead = 0.0
    per_func: dict[str, float] = {}
    for line in text.splitlines():
        m = _TOTAL_LINE.search(line)
        if m:
            total += float(m.group(1))
            samples += int(m.group(2))
            runs += int(m.group(3))
            continue
        m = _FUNC_LINE.match(line)
        if m:
            name, ms = m.group(1).strip(), float(m.group(2))
            if name in OVERHEAD_ENTRIES:
                overhead += ms
            else:
                per_func[name] = per_func.get(name, 0.0) + ms
    return runs, samples, total, per_func, overhead


def charge_groups(state: Any) -> tuple[list[list[str]], list[int]]:
    """Groups of Funcs the profiler charges together in ``state``, and each featurized stage's group.

    A non-inlined Func is its own group; an inlined Func's work is done inside its non-inlined
    consumers, so it joins (and joins together) every Func it is inlined into."""
    dag = state.space.dag
    nodes = [n for n in dag.nodes if not n.is_input]
    parent = {n.index: n.index for n in nodes}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for n in nodes:
        if state.is_inlined(n.index):
            for f, _ in state.consumer_stages(n.index):
                a, b = find(n.index), find(f)
                if a != b:
                    parent[a] = b
    roots: dict[int, int] = {}
    groups: list[list[str]] = []
    for n in nodes:
        r = find(n.index)
        if r not in roots:
            roots[r] = len(groups)
            groups.append([])
        groups[roots[r]].append(n.name)
    stage_group = [roots[find(st.node.index)] if not st.node.is_input else -1
                   for st in dag.featurization_order()]
    return groups, stage_group


def group_times(groups: Sequence[Sequence[str]], per_func: dict[str, float], runs: int
                ) -> tuple[list[float], float]:
    """Milliseconds per run of each group, and the per-run time of report lines matching no Func."""
    index = {name: g for g, names in enumerate(groups) for name in names}
    out = [0.0] * len(groups)
    unknown = 0.0
    for name, ms in per_func.items():
        g = index.get(name)
        if g is None:
            unknown += ms
        else:
            out[g] += ms
    n = max(runs, 1)
    return [t / n for t in out], unknown / n


# ---------------------------------------------------------------------------------------- the child

def runs_for(runtime_ms: float, sampled_ms: float, max_runs: int) -> int:
    """Runs that give the 1 ms sampler about ``sampled_ms`` of work (at least 3, at most ``max_runs``)."""
    if not runtime_ms or runtime_ms <= 0 or not math.isfinite(runtime_ms):
        return 3
    return int(min(max_runs, max(3, math.ceil(sampled_ms / runtime_ms))))


RUN_NICE, COMPILE_NICE = -10, 10
"""Scheduling priorities of a child's threads while its profiled runs execute, and otherwise (the
child starts at COMPILE_NICE; after the runs each thread gets back the priority it had)."""


def _set_nice(value: int) -> bool:
    """Give every thread of this process the nice ``value`` (Linux priorities are per thread: the
    thread pool's workers too). False where not allowed (a raised priority needs root)."""
    try:
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), value)
        return True
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def _run_lock(path: str | None) -> Any:
    """While the profiled runs execute: hold an exclusive lock on ``path`` (shards profiling side by
    side compile concurrently but never run at once) and raise this process's priority above the
    compiles (nice 10) and whatever else the machine does; a run that shares its cores slows its
    parallel stages more than its serial ones, which would skew the shares."""
    import fcntl
    fh = open(path, "a") if path else None
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        if fh is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        _set_nice(RUN_NICE)
        yield
    finally:
        _set_nice(before)
        if fh is not None:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def _profile_one(name: str, sizes: dict[str, int], target: str, trace: list[Any], runtime_ms: float,
                 sampled_ms: float, max_runs: int, lock: str | None = None) -> dict[str, Any]:
    """Rebuild, replay, apply, compile with the profiler and run; the parts of a StageProfile."""
    import halide as hl

    from halide_pipelines.spec import output_buffers
    from cost_model.dataset import scheduled

    spec, built, pipe, state = scheduled(name, sizes, target, trace, int(os.environ.get("HL_NUM_THREADS", "1")))
    groups, stage_group = charge_groups(state)
    pipe.compile_jit(hl.Target(target).with_feature(hl.TargetFeature.Profile))
    keep = built.bind_inputs(spec.make_inputs(**sizes))
    outs = output_buffers(built)
    arg = outs if len(outs) > 1 else outs[0]
    pipe.realize(arg)                          # warm-up run, its report discarded below
    n = runs_for(runtime_ms, sampled_ms, max_runs)
    report = io.StringIO()
    with _run_lock(lock), contextlib.redirect_stdout(report):   # the bindings print reports to sys.stdout
        for _ in range(n):
            pipe.realize(arg)
    text = report.getvalue()
    del keep
    runs, samples, total, per_func, overhead = parse_reports(text)
    if runs == 0:
        raise ProfileError("the profiler printed no report")
    gms, unknown = group_times(groups, per_func, runs)
    return {"runs": runs, "samples": samples, "total_ms": total / runs, "groups": groups, "group_ms": gms,
            "stage_group": stage_group, "unattributed_ms": unknown + overhead / runs}


def child_main() -> int:
    """Profile one pipeline's schedules: a JSON job on stdin, one JSON line per schedule on stdout."""
    job = json.loads(sys.stdin.read())
    _set_nice(COMPILE_NICE)
    out = sys.stdout
    for item in job["schedules"]:
        try:
            parts = _profile_one(job["pipeline"], job["sizes"], job["target"], item["trace"],
                                 item["runtime_ms"], job["sampled_ms"], job["max_runs"], job.get("lock"))
            rec = StageProfile(job["pipeline"], job["pipeline_hash"], item["trace_hash"], job["target"],
                               job["num_threads"], **parts)
            out.write(json.dumps({"ok": True, **asdict(rec)}) + "\n")
        except Exception as e:   # one schedule's failure is recorded; the others go on
            out.write(json.dumps({"ok": False, "trace_hash": item["trace_hash"],
                                  "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
                      + "\n")
        out.flush()
    return 0


# ---------------------------------------------------------------------------------------- the parent

def read_profiles(path: str | os.PathLike[str]) -> dict[tuple[str, str], StageProfile]:
    """Profiles in ``path`` keyed by (pipeline hash, trace hash); the last record of a key wins.
    A truncated last line (an interrupted append) is skipped."""
    p = Path(path)
    out: dict[tuple[str, str], StageProfile] = {}
    if not p.exists():
        return out
    with gzip.open(p, "rt") as fh:
        try:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if d.get("format") == PROFILE_FORMAT or not d.get("ok", True):
                    continue
                d.pop("ok", None)
                if d.get("version") != PROFILE_VERSION:
                    continue
                rec = StageProfile(**d)
                out[(rec.pipeline_hash, rec.trace_hash)] = rec
        except (EOFError, gzip.BadGzipFile):
            pass   # an interrupted write: what was read stays
    return out


def profile_samples(samples: Iterable[Any], out: str | os.PathLike[str], *, sampled_ms: float = 300.0,
                    max_runs: int = 200, timeout_s: float = 600.0, names: Sequence[str] | None = None,
                    shard: tuple[int, int] = (0, 1), lock: str | None = None, log: Any = None) -> dict[str, int]:
    """Profile every successful sample (``cost_model.dataset.Sample``) not yet in ``out``, one child
    process per pipeline; append the records to ``out``. ``shard=(k, n)``: only the k-th of every n
    pipelines (to run n of these side by side, each with its own ``out``, sharing one ``lock`` file
    so that their profiled runs never overlap). Returns counts (profiled, failed, skipped)."""
    from cost_model.dataset import group_samples
    done = {k[1] for k in read_profiles(out)}
    counts = {"profiled": 0, "failed": 0, "skipped": 0, "pipelines": 0}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with gzip.open(path, "wt") as fh:
            fh.write(json.dumps({"format": PROFILE_FORMAT, "version": PROFILE_VERSION}) + "\n")
    from cost_model.dataset import split_role
    rank = {"train": 0, "val": 1, "test": 2}

    def order(kv: Any) -> tuple[int, str]:
        # training pipelines first (only they are trained on), then validation, then test; within a
        # split by hash, so an interrupted run has profiled a random sample of the split
        s = kv[1][0]
        return rank[split_role(s.pipeline_hash, 0.1, 0.1)], s.pipeline_hash

    for i, (key, group) in enumerate(sorted(group_samples(samples).items(), key=order)):
        first = group[0]
        if names is not None and first.pipeline not in names or i % shard[1] != shard[0]:
            continue
        best: dict[str, Any] = {}
        for s in group:
            if s.ok and s.trace is not None:
                h = s.trace_hash()
                if h not in best or s.runtime_s < best[h].runtime_s:
                    best[h] = s
        todo = [s for h, s in sorted(best.items()) if h not in done]
        counts["skipped"] += len(best) - len(todo)
        if not todo:
            continue
        job = {"pipeline": first.pipeline, "sizes": first.sizes, "pipeline_hash": first.pipeline_hash,
               "target": first.target, "num_threads": first.num_threads, "sampled_ms": sampled_ms,
               "max_runs": max_runs, "lock": lock,
               "schedules": [{"trace_hash": s.trace_hash(), "trace": s.trace, "runtime_ms": s.runtime_s * 1e3}
                             for s in todo]}
        env = dict(os.environ, HL_NUM_THREADS=str(first.num_threads))
        t0 = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "autoscheduler.stage_profile"], input=json.dumps(job),
                                  capture_output=True, text=True, timeout=timeout_s, env=env)
            lines = proc.stdout.splitlines()
        except subprocess.TimeoutExpired as e:
            lines = (e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")).splitlines()
        good = []
        for line in lines:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if d.get("ok"):
                good.append(line)
            else:
                counts["failed"] += 1
        counts["failed"] += max(0, len(todo) - len(lines))
        counts["profiled"] += len(good)
        counts["pipelines"] += 1
        if good:
            with gzip.open(path, "at") as fh:
                fh.write("\n".join(good) + "\n")
        if log:
            log(f"{first.pipeline}: {len(good)}/{len(todo)} profiled in {time.monotonic() - t0:.1f} s")
    return counts


if __name__ == "__main__":
    sys.exit(child_main())

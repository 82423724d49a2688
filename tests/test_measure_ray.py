"""The Ray executor against the local one: same codes, same checks, comparable times, same records.

One local Ray instance (2 CPUs, no GPU) is shared by the module and shut down at its end. One mixed
batch (OK candidates of index_sum and a small conv_layer, and one candidate per failure mode: a
compile error, a segfault and a hang while compiling, a segfault while checking, an out-of-memory, a
hang while timing) is measured by both executors; the Ray results must match the local results in
everything but timings, and so must the records the driver writes from them.
Tests that do not need Ray (the lazy import, the error without Ray) run without it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import halide as hl

import halide_pipelines
from autoscheduler import schedules
from autoscheduler.errors import ToolkitError
from autoscheduler.measure import (Candidate, DeviceUnavailableError, ErrorCode, Executor,
                                   LocalExecutor, MeasureAbortedError, MeasureOptions, MeasureResult,
                                   device_fingerprint, measure_batch, noise_floor, retime_interleaved)
from autoscheduler.records import Record, Records

ROOT = Path(__file__).resolve().parent.parent
IDX = {"width": 64, "height": 48}
CONV = {"ci": 8, "co": 8, "width": 16, "height": 8, "batch": 1}
SMALL = {"width": 40, "height": 32}

FAST = MeasureOptions(min_sample_s=0.005, n_samples=3, warmup=1, build_timeout_s=3.0,
                      run_timeout_s=1.5, reference_timeout_s=20.0, memory_limit_mb=1024,
                      num_threads=2, progress=False, max_consecutive_errors=0)

# Record fields that depend on timing (or on when the measurement ran); all others must be equal.
TIMING_FIELDS = {"samples", "statistic", "repeats", "build_s", "run_s", "timestamp"}


def named(schedule: str, pipeline: str, sizes: dict[str, int]) -> str:
    return schedules.named_source(schedule, halide_pipelines.get(pipeline).build(**sizes).pipeline())


def reduction_pipeline_bytes(n: int = 4000, r: int = 1000, s: int = 1000) -> bytes:
    """g(y) = sum_s f(s, y); h(x) = x + sum_r g(r): cheap with g at root, n*r*s work with g computed
    per iteration of h's reduction. Serialized, as a user's own (not bundled) pipeline arrives."""
    x, y = hl.Var("x"), hl.Var("y")
    rs, rr = hl.RDom([(0, s)], "s"), hl.RDom([(0, r)], "r")
    g = hl.Func("g")
    g[y] = 0.0
    g[y] += hl.cast(hl.Float(32), (rs.x * y) % 7)
    h = hl.Func("h")
    h[x] = hl.cast(hl.Float(32), x)
    h[x] += g[rr.x]
    h.set_estimates([(0, n)])
    return bytes(hl.serialize_pipeline(hl.Pipeline([h])))


def batch() -> dict[str, Candidate]:
    chain_root = named("root", "stencil_chain", SMALL)
    data = reduction_pipeline_bytes()
    return {
        "ok_index_root": Candidate("index_sum", IDX, named("root", "index_sum", IDX)),
        "ok_index_default": Candidate("index_sum", IDX, named("default", "index_sum", IDX),
                                      trace=[["inline", 0]], predicted_cost=2.5, features=b"\x01\x02"),
        "ok_index_vec": Candidate("index_sum", IDX, "f = pipeline.get_func(0)\nx, y = f.args()\n"
                                  "f.parallel(y).vectorize(x, 8)\n"),
        "build_error": Candidate("index_sum", IDX,
                                 "pipeline.get_func(0).vectorize(hl.Var('no_such_var'), 8)\n"),
        "ok_conv_root": Candidate("conv_layer", CONV, named("root", "conv_layer", CONV)),
        "ok_conv_default": Candidate("conv_layer", CONV, named("default", "conv_layer", CONV)),
        "ok_conv_tiled": Candidate("conv_layer", CONV,
                                   "relu, conv = pipeline.get_func(4), pipeline.get_func(3)\n"
                                   "c, x, y, n = relu.args()\nrelu.vectorize(c, 8).parallel(y)\n"
                                   "conv.compute_at(relu, y).vectorize(hl.Var('c'), 8)\n"
                                   "conv.update().vectorize(hl.Var('c'), 8)\n"),
        # kills the process compiling it: on Ray, the build task's child, never the Ray worker
        "build_crash": Candidate("index_sum", IDX,
                                 "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"),
        "build_hang": Candidate("index_sum", IDX, "import time\ntime.sleep(600)\n"),
        # compiles, then reads unmapped memory when run: on Ray, inside the timing actor's child
        "run_crash": Candidate("stencil_chain", SMALL, chain_root +
                               "pipeline.get_func(3).bound(hl.Var('x'), 1 << 26, 8)"
                               ".bound(hl.Var('y'), 1 << 26, 8)\n", target="host-no_asserts"),
        # a 1 GiB allocation over the workers' 1 GiB address-space limit
        "out_of_memory": Candidate("stencil_chain", SMALL, chain_root +
                                   "pipeline.get_func(3).bound(hl.Var('x'), 0, 1 << 15)"
                                   ".bound(hl.Var('y'), 0, 1 << 14)\n"),
        # recomputing g inside h's reduction loop: seconds of work, past the 1.5 s run timeout
        "run_hang": Candidate("reduction", {}, "pipeline.get_func(0).compute_at(pipeline.get_func(1), "
                              "hl.RVar('r$x'))\n", serialized=data, output_shapes=[[4000]]),
        "ok_serialized_root": Candidate("reduction", {}, "pipeline.get_func(0).compute_root()\n",
                                        serialized=data, output_shapes=[[4000]]),
    }


EXPECTED = {"build_error": ErrorCode.BUILD_ERROR, "build_crash": ErrorCode.RUN_ERROR,
            "build_hang": ErrorCode.BUILD_TIMEOUT, "run_crash": ErrorCode.RUN_ERROR,
            "out_of_memory": ErrorCode.OUT_OF_MEMORY, "run_hang": ErrorCode.RUN_TIMEOUT}


def comparable(rec: Record) -> dict[str, Any]:
    """A record's fields without the timing ones. Halide renames a Func built a second time in one
    process (``index_sum`` -> ``index_sum$1``), so a message naming Funcs depends on what that worker
    process built before (on either executor): the ``$n`` suffixes are stripped."""
    d = rec.to_json()
    for name in TIMING_FIELDS:
        d.pop(name)
    d["error_message"] = re.sub(r"\$\d+", "", d["error_message"])
    return d


# -- before the module's Ray instance starts (one Ray connection per process)

def test_unreachable_cluster_is_a_one_line_toolkit_error() -> None:
    ray = pytest.importorskip("ray", reason="needs the distributed extra: pip install -e .[distributed]")
    from autoscheduler.measure_ray import RayClusterError, RayExecutor
    if ray.is_initialized():
        pytest.skip("this process is already connected to Ray")
    with pytest.raises(RayClusterError, match="cannot reach a Ray cluster at '127.0.0.1:1'") as info:
        RayExecutor("127.0.0.1:1")  # nothing listens on port 1: fails at once, not after retries
    assert isinstance(info.value, ToolkitError) and "\n" not in str(info.value)


@dataclasses.dataclass
class Measured:
    candidates: dict[str, Candidate]
    ray: dict[str, MeasureResult]
    local: dict[str, MeasureResult]
    seen: list[int]
    ray_records: list[Record]
    local_records: list[Record]
    actors_before: list[int]
    actors_after: list[int]


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Any]:
    pytest.importorskip("ray", reason="needs the distributed extra: pip install -e .[distributed]")
    from autoscheduler.measure_ray import RayExecutor
    with RayExecutor(num_cpus=2, gpus=0) as ex:  # a local Ray instance, shut down on exit
        yield ex


@pytest.fixture(scope="module")
def measured(ray_executor: Any, tmp_path_factory: pytest.TempPathFactory) -> Measured:
    cands = batch()
    names = list(cands)
    # starts the CPU timing actor (and shows the executor is reused across batches)
    assert ray_executor.submit([cands["ok_index_vec"]], FAST)[0].ok
    before = ray_executor.actor_pids()
    folder = tmp_path_factory.mktemp("records")
    seen: list[int] = []
    with Records(folder / "ray.db") as db:
        def on_result(i: int, r: MeasureResult) -> None:
            seen.append(i)
            db.add(r)  # the driver writes, as each result arrives
        ray_res = measure_batch([cands[n] for n in names], FAST, executor=ray_executor, on_result=on_result)
        ray_records = db.all()
    after = ray_executor.actor_pids()
    with LocalExecutor() as local, Records(folder / "local.db") as local_db:
        def record(i: int, r: MeasureResult) -> None:
            local_db.add(r)
        local_res = measure_batch([cands[n] for n in names], FAST, executor=local, on_result=record)
        local_records = local_db.all()
    return Measured(cands, dict(zip(names, ray_res)), dict(zip(names, local_res)), seen,
                    ray_records, local_records, before, after)


def test_same_codes_as_local(measured: Measured) -> None:
    assert list(measured.ray) == list(measured.candidates)
    for name, c in measured.candidates.items():
        r, loc = measured.ray[name], measured.local[name]
        assert r.candidate is c  # in candidate order, the caller's own objects
        want = EXPECTED.get(name, ErrorCode.OK)
        assert loc.code is want, f"local {name}: {loc.code} {loc.message}"
        assert r.code is want, f"ray {name}: {r.code} {r.message}"
    assert sorted(measured.seen) == list(range(len(measured.candidates)))  # each reported once


def test_failures_are_isolated_where_they_happen(measured: Measured) -> None:
    ray = measured.ray
    assert "SIGSEGV" in ray["build_crash"].message and "building" in ray["build_crash"].message
    assert ray["build_crash"].build_s is None
    # compiled fine in a build task, then crashed the timing actor's child while being checked
    assert "SIGSEGV" in ray["run_crash"].message and "check its output" in ray["run_crash"].message
    assert ray["run_crash"].build_s is not None
    assert "building" in ray["build_hang"].message and ray["build_hang"].build_s is None
    assert "could not find split dimension" in ray["build_error"].message
    # the actor is the same process before and after the batch: no candidate killed it
    assert len(measured.actors_before) == 1 and measured.actors_after == measured.actors_before


def test_ok_results_are_checked_and_timed_like_local(measured: Measured) -> None:
    oks = [n for n in measured.candidates if n.startswith("ok_")]
    assert len(oks) == 7
    for name in oks:
        r, loc = measured.ray[name], measured.local[name]
        assert len(r.samples) == FAST.n_samples and r.statistic == min(r.samples)
        assert r.repeats >= 1 and r.repeats * r.statistic >= FAST.min_sample_s
        assert r.build_s is not None and r.build_s > 0
        assert r.run_s is not None and r.run_s >= r.repeats * sum(r.samples)
        assert r.num_threads == loc.num_threads == 2 and r.device == loc.device
        assert loc.statistic is not None
        ratio = r.statistic / loc.statistic
        assert 1 / 10 < ratio < 10, f"{name}: ray {r.statistic:.3g} s vs local {loc.statistic:.3g} s"


def test_records_equal_but_for_timings(measured: Measured) -> None:
    ray = {(r.pipeline_hash, r.schedule_hash): r for r in measured.ray_records}
    local = {(r.pipeline_hash, r.schedule_hash): r for r in measured.local_records}
    assert len(ray) == len(local) == len(measured.candidates)
    assert ray.keys() == local.keys()
    for key in ray:
        assert comparable(ray[key]) == comparable(local[key])
        assert ray[key].device == device_fingerprint("host")  # timed on this machine's actor
        assert bool(ray[key].samples) == ray[key].ok == bool(local[key].samples)
    rec = next(r for r in measured.ray_records if r.trace is not None)
    assert rec.trace == [["inline", 0]] and rec.predicted_cost == 2.5 and rec.features == b"\x01\x02"


def test_interleaved_and_noise_floor(ray_executor: Any) -> None:
    a = Candidate("index_sum", IDX, "# default\n")
    b = Candidate("index_sum", IDX, "f = pipeline.get_func(0)\nx, y = f.args()\nf.vectorize(x, 8)\n")
    # bound() shrinks the computed region; without asserts most outputs are never written
    wrong = Candidate("blur", SMALL, "pipeline.get_func(2).bound(hl.Var('x'), 0, 8)\n",
                      target="host-no_asserts")
    bad = Candidate("index_sum", IDX, "pipeline.get_func(0).vectorize(hl.Var('no_such_var'), 8)\n")
    res = retime_interleaved([a, b, wrong, bad], rounds=3, options=FAST, executor=ray_executor)
    assert [r.code for r in res] == [ErrorCode.OK, ErrorCode.OK, ErrorCode.WRONG_ANSWER,
                                     ErrorCode.BUILD_ERROR]
    assert "compute_root reference" in res[2].message
    for r, c in zip(res, [a, b, wrong, bad]):
        assert r.candidate is c
    for r in res[:2]:
        assert len(r.samples) == 3 and r.statistic == min(r.samples) and r.repeats >= 1
    nf = noise_floor(a, rounds=3, options=FAST, executor=ray_executor)
    assert nf.a.ok and nf.b.ok and len(nf.a.samples) == len(nf.b.samples) == 3
    assert nf.a.statistic is not None and nf.b.statistic is not None
    lo, hi = sorted((nf.a.statistic, nf.b.statistic))
    assert math.isclose(nf.rel_diff, (hi - lo) / lo) and 0 <= nf.rel_diff < 5


def test_abort_leaves_the_executor_usable(ray_executor: Any) -> None:
    assert isinstance(ray_executor, Executor)
    bad = Candidate("index_sum", IDX, "pipeline.get_func(0).vectorize(hl.Var('no_such_var'), 8)\n")
    good = Candidate("index_sum", IDX, "# default\n")
    opts = FAST.with_(max_consecutive_errors=3, builds_per_phase=1)
    with pytest.raises(MeasureAbortedError) as info:
        measure_batch([good, bad, bad, bad, bad, good], opts, executor=ray_executor)
    codes = [r.code for r in info.value.results]
    assert ErrorCode.OK in codes and codes[-3:] == [ErrorCode.BUILD_ERROR] * 3 and len(codes) < 6
    assert measure_batch([good], FAST, executor=ray_executor)[0].ok


def test_cuda_target_without_gpu_is_a_clear_error(ray_executor: Any) -> None:
    c = Candidate("index_sum", IDX, "# default\n", target="host-cuda")
    with pytest.raises(DeviceUnavailableError, match="needs a CUDA GPU"):
        ray_executor.submit([c], FAST)


def test_the_toolkit_never_imports_ray() -> None:
    code = ("import sys\nimport autoscheduler, autoscheduler.cli, autoscheduler.records, "
            "autoscheduler.measure, autoscheduler.measure_ray\n"
            "from autoscheduler.measure import measure_batch\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_missing_ray_is_a_one_line_toolkit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscheduler.measure_ray import RayExecutor, RayNotInstalledError
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayNotInstalledError) as info:
        RayExecutor()
    msg = str(info.value)
    assert isinstance(info.value, ToolkitError) and "\n" not in msg
    assert "install the distributed extra: pip install -e .[distributed]" in msg


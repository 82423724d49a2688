"""Measurement in isolated workers: fault injection, correctness checks, timing, interleaving.

One mixed batch (module fixture) holds a candidate for every failure mode between candidates that
must measure OK: a segfault while building and one while running, a compile error, a build that
hangs, a wrong answer, an out-of-memory, and a run that hangs.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import halide as hl

import halide_pipelines
from autoscheduler import schedules
from autoscheduler.errors import ToolkitError
from autoscheduler.measure import (Candidate, DeviceUnavailableError, ErrorCode, Executor,
                                   LocalExecutor, MeasureAbortedError, MeasureOptions, MeasureResult,
                                   cuda_available, device_fingerprint, measure_batch, noise_floor,
                                   retime_interleaved)
from autoscheduler.measure.timing import compare

SMALL = {"width": 40, "height": 32}
IDX = {"width": 64, "height": 48}

# Short timeouts and samples so the whole file stays well under a minute on two cores.
FAST = MeasureOptions(min_sample_s=0.005, n_samples=3, warmup=1, build_timeout_s=4.0,
                      run_timeout_s=1.5, reference_timeout_s=20.0, memory_limit_mb=1024,
                      num_threads=2, progress=False, max_consecutive_errors=0)


def named(schedule: str, pipeline: str, sizes: dict[str, int]) -> str:
    return schedules.named_source(schedule, halide_pipelines.get(pipeline).build(**sizes).pipeline())


def reduction_pipeline_bytes(n: int = 4000, r: int = 1000, s: int = 1000) -> bytes:
    """g(y) = sum_s f(s, y); h(x) = x + sum_r g(r): cheap with g at root, n*r*s work with g
    computed per iteration of h's reduction. Serialized, as a user's own pipeline would arrive."""
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


def fault_candidates() -> dict[str, Candidate]:
    root_chain = named("root", "stencil_chain", SMALL)
    data = reduction_pipeline_bytes()
    return {
        "ok_blur_root": Candidate("blur", SMALL, named("root", "blur", SMALL)),
        "segfault": Candidate("blur", SMALL, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"),
        "ok_blur_default": Candidate("blur", SMALL, named("default", "blur", SMALL),
                                     trace=[["inline", 1]], predicted_cost=1.5),
        # store level inside the compute level: Halide refuses it when lowering, not when scheduling
        "build_error": Candidate("blur", SMALL,
                                 "p = pipeline.get_func(2)\npipeline.get_func(1).store_at(p, hl.Var('x'))"
                                 ".compute_at(p, hl.Var('y'))\n"),
        # the schedule source itself never returns (Halide's all-inline default on stencil_chain is a
        # real-world case: compiling it is exponential, but it may also exhaust memory first)
        "build_hang": Candidate("blur", SMALL, "import time\ntime.sleep(600)\n"),
        "ok_chain_root": Candidate("stencil_chain", SMALL, root_chain),
        # bound() shrinks the computed region; without asserts nothing stops it: most outputs unwritten
        "wrong_answer": Candidate("blur", SMALL, "pipeline.get_func(2).bound(hl.Var('x'), 0, 8)\n",
                                  target="host-no_asserts"),
        # a legal bound() that makes stage_0 a 1 GiB allocation, over the workers' 1 GiB limit
        "out_of_memory": Candidate("stencil_chain", SMALL, root_chain +
                                   "pipeline.get_func(3).bound(hl.Var('x'), 0, 1 << 15)"
                                   ".bound(hl.Var('y'), 0, 1 << 14)\n"),
        # bound() puts stage_0's storage near (2^26, 2^26); without asserts its consumer reads about
        # a gigabyte below that small allocation, which is unmapped: a crash while running
        "run_crash": Candidate("stencil_chain", SMALL, root_chain +
                               "pipeline.get_func(3).bound(hl.Var('x'), 1 << 26, 8)"
                               ".bound(hl.Var('y'), 1 << 26, 8)\n", target="host-no_asserts"),
        "ok_index_sum": Candidate("index_sum", IDX, "f = pipeline.get_func(0)\nx, y = f.args()\n"
                                  "f.parallel(y).vectorize(x, 8)\n"),
        # recomputing g inside h's reduction loop: seconds of work, over the 1.5 s run timeout
        "run_hang": Candidate("reduction", {}, "pipeline.get_func(0).compute_at(pipeline.get_func(1), "
                              "hl.RVar('r$x'))\n", serialized=data, output_shapes=[[4000]]),
        "ok_serialized_root": Candidate("reduction", {}, "pipeline.get_func(0).compute_root()\n",
                                        serialized=data, output_shapes=[[4000]]),
    }


@pytest.fixture(scope="module")
def executor() -> LocalExecutor:
    ex = LocalExecutor()
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def faults(executor: LocalExecutor) -> dict[str, MeasureResult]:
    cands = fault_candidates()
    names = list(cands)
    seen: list[int] = []
    results = measure_batch([cands[n] for n in names], FAST, executor=executor,
                            on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(len(names)))  # every candidate reported exactly once
    for n, r in zip(names, results):
        assert r.candidate is cands[n]  # results come back in candidate order
    return dict(zip(names, results))


def test_ok_candidates_are_timed(faults: dict[str, MeasureResult]) -> None:
    oks = {n: r for n, r in faults.items() if n.startswith("ok_")}
    assert len(oks) == 5
    for name, r in oks.items():
        assert r.code is ErrorCode.OK, f"{name}: {r.code} {r.message}"
        assert len(r.samples) == FAST.n_samples and all(s > 0 for s in r.samples)
        assert r.statistic == min(r.samples)
        assert r.repeats >= 1 and r.repeats * r.statistic >= FAST.min_sample_s  # samples >= min_sample_s
        assert r.build_s is not None and r.build_s > 0
        assert r.run_s is not None and r.run_s >= r.repeats * sum(r.samples)
        assert r.num_threads == 2
        assert json.loads(r.device)["cores"] == os.cpu_count()
    assert oks["ok_blur_default"].candidate.trace == [["inline", 1]]


def test_segfault_is_a_run_error(faults: dict[str, MeasureResult]) -> None:
    r = faults["segfault"]
    assert r.code is ErrorCode.RUN_ERROR and "SIGSEGV" in r.message and not r.samples


def test_crash_while_running_is_a_run_error(faults: dict[str, MeasureResult]) -> None:
    r = faults["run_crash"]
    assert r.code is ErrorCode.RUN_ERROR and "SIGSEGV" in r.message and "check its output" in r.message
    assert r.build_s is not None  # it built fine


def test_illegal_schedule_is_a_build_error(faults: dict[str, MeasureResult]) -> None:
    r = faults["build_error"]
    assert r.code is ErrorCode.BUILD_ERROR and "invalid location" in r.message


def test_hanging_build_times_out(faults: dict[str, MeasureResult]) -> None:
    r = faults["build_hang"]
    assert r.code is ErrorCode.BUILD_TIMEOUT and "building" in r.message


def test_wrong_output_is_wrong_answer(faults: dict[str, MeasureResult]) -> None:
    r = faults["wrong_answer"]
    assert r.code is ErrorCode.WRONG_ANSWER and "compute_root reference" in r.message
    assert r.statistic is None and r.build_s is not None


def test_memory_limit_is_out_of_memory(faults: dict[str, MeasureResult]) -> None:
    r = faults["out_of_memory"]
    assert r.code is ErrorCode.OUT_OF_MEMORY, r.message


def test_hanging_run_times_out(faults: dict[str, MeasureResult]) -> None:
    r = faults["run_hang"]
    assert r.code is ErrorCode.RUN_TIMEOUT and r.build_s is not None


def test_executor_survives_faults(faults: dict[str, MeasureResult], executor: LocalExecutor) -> None:
    assert isinstance(executor, Executor)
    again = measure_batch([Candidate("index_sum", IDX, "# default\n")], FAST, executor=executor)
    assert again[0].ok


def test_only_the_failing_candidate_fails(executor: LocalExecutor) -> None:
    # One worker holds all four compiled candidates when the first one hangs and gets it killed:
    # the other three are rebuilt on a fresh worker and measured.
    cands = fault_candidates()
    batch = [cands["run_hang"], cands["ok_serialized_root"], cands["ok_index_sum"], cands["ok_blur_root"]]
    res = measure_batch(batch, FAST.with_(build_workers=1, builds_per_phase=4), executor=executor)
    assert [r.code for r in res] == [ErrorCode.RUN_TIMEOUT] + [ErrorCode.OK] * 3


def test_compare_reports_first_difference() -> None:
    ref = [np.arange(12, dtype=np.float32).reshape(3, 4)]
    assert compare([ref[0].copy()], ref, 0.0, 0.0) is None
    bad = ref[0].copy()
    bad[1, 2] += 0.5
    msg = compare([bad], ref, 1e-6, 1e-6)
    assert msg is not None and "(1, 2)" in msg and "1 of 12" in msg
    assert compare([bad], ref, 0.0, 0.6) is None
    assert "shape" in (compare([ref[0][:2]], ref, 0, 0) or "")


def test_worker_sets_thread_count(executor: LocalExecutor) -> None:
    probe = "import os\nraise RuntimeError('threads=' + os.environ['HL_NUM_THREADS'])\n"
    r = measure_batch([Candidate("index_sum", IDX, probe)], FAST.with_(num_threads=1), executor=executor)[0]
    assert r.code is ErrorCode.BUILD_ERROR and "threads=1" in r.message and r.num_threads == 1


def test_consecutive_errors_abort_the_batch(executor: LocalExecutor) -> None:
    bad = Candidate("index_sum", IDX, "pipeline.get_func(0).vectorize(hl.Var('no_such_var'), 8)\n")
    good = Candidate("index_sum", IDX, "# default\n")
    opts = FAST.with_(max_consecutive_errors=3, builds_per_phase=1)
    with pytest.raises(MeasureAbortedError) as info:
        measure_batch([good, bad, bad, bad, bad, good], opts, executor=executor)
    assert isinstance(info.value, ToolkitError)
    assert "3 candidates in a row failed" in str(info.value) and "BUILD_ERROR" in str(info.value)
    codes = [r.code for r in info.value.results]
    assert ErrorCode.OK in codes and codes[-3:] == [ErrorCode.BUILD_ERROR] * 3
    assert len(codes) < 6  # the last candidate was never measured
    # the executor is still usable after the abort
    assert measure_batch([good], FAST, executor=executor)[0].ok


def test_retime_interleaved_and_noise_floor(executor: LocalExecutor) -> None:
    a = Candidate("index_sum", IDX, "# default\n")
    b = Candidate("index_sum", IDX, "f = pipeline.get_func(0)\nx, y = f.args()\nf.vectorize(x, 8)\n")
    wrong = Candidate("blur", SMALL, "pipeline.get_func(2).bound(hl.Var('x'), 0, 8)\n",
                      target="host-no_asserts")
    res = retime_interleaved([a, b, wrong], rounds=3, options=FAST, executor=executor)
    assert [r.code for r in res] == [ErrorCode.OK, ErrorCode.OK, ErrorCode.WRONG_ANSWER]
    for r in res[:2]:
        assert len(r.samples) == 3 and r.statistic == min(r.samples) and r.repeats >= 1
    nf = noise_floor(a, rounds=3, options=FAST, executor=executor)
    assert nf.a.ok and nf.b.ok and len(nf.a.samples) == len(nf.b.samples) == 3
    assert nf.a.statistic is not None and nf.b.statistic is not None
    lo, hi = sorted((nf.a.statistic, nf.b.statistic))
    assert math.isclose(nf.rel_diff, (hi - lo) / lo) and 0 <= nf.rel_diff < 5


def test_cuda_target_without_gpu_is_a_clear_error() -> None:
    if cuda_available():
        pytest.skip("this machine has a CUDA GPU; test_cuda_measurement covers it")
    c = Candidate("index_sum", IDX, "# default\n", target="host-cuda")
    with pytest.raises(DeviceUnavailableError, match="needs a CUDA GPU"):
        measure_batch([c], FAST)


@pytest.mark.gpu
def test_cuda_measurement() -> None:
    if not cuda_available():
        pytest.skip("no CUDA GPU on this machine")
    gpu = ("f = pipeline.get_func(0)\nx, y = f.args()\nxo, yo, xi, yi = hl.Var('xo'), hl.Var('yo'), "
           "hl.Var('xi'), hl.Var('yi')\nf.gpu_tile(x, y, xo, yo, xi, yi, 16, 16)\n")
    blur_gpu = ("p = pipeline.get_func(2)\nx, y = p.args()\nxo, yo, xi, yi = hl.Var('xo'), hl.Var('yo'), "
                "hl.Var('xi'), hl.Var('yi')\np.gpu_tile(x, y, xo, yo, xi, yi, 16, 16)\n"
                "pipeline.get_func(1).compute_at(p, xo).gpu_threads(hl.Var('x'), hl.Var('y'))\n")
    cands = [Candidate("index_sum", {"width": 1024, "height": 1024}, gpu, target="host-cuda"),
             Candidate("blur", {"width": 512, "height": 512}, blur_gpu, target="host-cuda"),
             Candidate("blur", {"width": 512, "height": 512}, "pipeline.get_func(2).bound(hl.Var('x'), 0, 8)\n"
                       + blur_gpu, target="host-cuda-no_asserts")]
    res = measure_batch(cands, FAST.with_(memory_limit_mb=None, run_timeout_s=60, build_timeout_s=60))
    assert res[0].ok and res[1].ok, [(r.code, r.message) for r in res]
    assert res[2].code in (ErrorCode.WRONG_ANSWER, ErrorCode.BUILD_ERROR, ErrorCode.RUN_ERROR)
    assert json.loads(res[0].device)["gpu"], res[0].device
    assert device_fingerprint("host-cuda") == res[0].device


def test_compare_allows_the_workloads_mismatch_fraction_and_no_more():
    """local_laplacian's LUT lookups flip on a few pixels whenever float arithmetic is reordered:
    its spec tolerates 0.1% of values outside atol; any more is a wrong answer, as is any for others."""
    ref = np.zeros((100, 100), np.uint16)
    few, many = ref.copy(), ref.copy()
    few.flat[:5] = 600      # 0.05% of values, far off
    many.flat[:20] = 600    # 0.2%
    assert compare([few], [ref], 0, 1) is not None
    assert compare([few], [ref], 0, 1, mismatch_fraction=1e-3) is None
    assert "20 of 10000 values differ" in compare([many], [ref], 0, 1, mismatch_fraction=1e-3)
    spec = halide_pipelines.get("local_laplacian")
    assert compare([few], [ref], spec.rtol, spec.atol, spec.mismatch_fraction) is None
    assert compare([many], [ref], spec.rtol, spec.atol, spec.mismatch_fraction) is not None
    assert halide_pipelines.get("blur").mismatch_fraction == 0


def test_inputs_are_bound_aligned_and_unchanged() -> None:
    """Every timing path binds 128-byte aligned copies of the inputs (``spec.aligned``): where a
    vector-loaded input starts in a cache line moved conv_layer_b8's time by a quarter."""
    from autoscheduler.measure import builder
    from halide_pipelines.spec import ALIGNMENT, aligned, aligned_inputs
    rng = np.random.default_rng(0)
    for a in (rng.random((7, 13)).astype(np.float32), rng.integers(0, 9, (5, 3, 2)).astype(np.uint16),
              np.arange(10)[::3]):
        b = aligned(a)
        assert b.ctypes.data % ALIGNMENT == 0 and b.flags.c_contiguous and b.dtype == a.dtype
        np.testing.assert_array_equal(a, b)
        assert aligned(b) is b          # no second copy of an aligned array
    ins = aligned_inputs({"x": np.ones((3, 3), np.float32), "k": 7})
    assert ins["k"] == 7 and ins["x"].ctypes.data % ALIGNMENT == 0
    spec = halide_pipelines.get("conv_layer")
    sizes = spec.sizes(**spec.test_sizes)
    for name in ("conv_layer", "random_3"):      # make_inputs aligns, for every caller
        s2 = halide_pipelines.get(name)
        made = s2.make_inputs(0, **s2.sizes(**s2.test_sizes))
        assert all(v.ctypes.data % ALIGNMENT == 0 for v in made.values() if isinstance(v, np.ndarray) and v.size)
    w = builder.load(Candidate("conv_layer", sizes, ""), 0, builder.LRU())
    bufs = [v for v in w.values if isinstance(v, hl.Buffer)]
    assert bufs and all(np.asarray(v).ctypes.data % ALIGNMENT == 0 for v in bufs)
    want = spec.make_inputs(0, **sizes)
    assert all(any(np.array_equal(np.asarray(v), np.asarray(x)) or np.array_equal(np.asarray(v).T, np.asarray(x))
                   for x in want.values()) for v in bufs)

"""The CUDA search space: random legal GPU states of every workload compile to PTX on this CPU-only
machine, keep the GPU rules, replay from JSON, run correctly on the CPU with their GPU labels
removed (same loops, splits, rfactor), illegal GPU decisions are rejected by name, the GPU features
and the analytic cost behave, and a search on a CUDA target returns a legal schedule.

Nothing here needs a GPU except the tests marked ``gpu`` (skipped without one).
"""

from __future__ import annotations

import json
import random
import time
import zlib
from typing import Any

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.apply import schedule_source
from autoscheduler.dag import FunctionDAG
from autoscheduler.errors import ToolkitError
from autoscheduler.features import (GPU_FEATURE_NAMES, NUM_GPU_FEATURES, Featurizer, GpuAnalyticCost, GpuFeaturizer,
                                    featurizer_for)
from autoscheduler.schedules import apply_source
from autoscheduler.state import (GPU_UNROLL_LIMIT, IllegalDecisionError, InnerTile, Kernel, LoopRef, OuterTile, Place,
                                 RFactor, State, decision_from_dict, random_state)
from autoscheduler.state import gpu as gpu_rules
from workload_pool import WorkloadPool
from shared_pipelines import root_outputs, sum_reductions

NAMES = halide_pipelines.names()
CUDA = "host-cuda-cuda_capability_80"
CUDA_FAST = CUDA + "-no_runtime"     # the same kernels, without linking Halide's CUDA runtime (faster)
DEFAULT_STATES = 1
SLOW_STATES = 8
SHADOW_MAX_FUNCS = 20   # default run: the CPU run of the GPU loops only for workloads this small (time)
_F = {n: i for i, n in enumerate(GPU_FEATURE_NAMES)}


def _dag(name: str, **sizes: int) -> FunctionDAG:
    spec = halide_pipelines.get(name)
    return FunctionDAG.from_pipeline(spec.build(**(sizes or spec.test_sizes)).pipeline())


def _index(dag: FunctionDAG, name: str) -> int:
    return next(n.index for n in dag.nodes if n.name.split("$")[0] == name)


def _cpu_target() -> str:
    host = hl.get_host_target()
    if host.arch == hl.TargetArch.X86 and host.bits == 64 and host.has_feature(hl.TargetFeature.SSE41):
        return f"x86-64-{str(host.os).split('.')[-1].lower()}-sse41"
    return str(host)


def _compile_cuda(p: hl.Pipeline, target: str = CUDA_FAST) -> bytes:
    """Compile to an object for a CUDA target (Halide emits PTX without a device); the object's bytes."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.o")
        p.compile_to({hl.OutputFileType.object: path}, list(p.infer_arguments()), "p", hl.Target(target))
        with open(path, "rb") as fh:
            return fh.read()


def _close(out: list[np.ndarray], ref: list[np.ndarray], rtol: float, atol: float) -> str:
    if len(out) != len(ref):
        return f"{len(out)} outputs, expected {len(ref)}"
    for i, (o, r) in enumerate(zip(out, ref)):
        if o.shape != r.shape:
            return f"output {i} shape {o.shape}, expected {r.shape}"
        if not np.allclose(o.astype(np.float64), r.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            return f"output {i} differs by up to {np.nanmax(np.abs(o.astype(np.float64) - r.astype(np.float64))):.3g}"
    return ""


def check_cuda_states(name: str, n_states: int, shadow: bool = True) -> dict[str, Any]:
    """Runs in a worker process: ``n_states`` random CUDA states of workload ``name``, each compiled
    to an object for CUDA (PTX kernels checked in it) and, with ``shadow``, with the GPU labels
    removed, run on the CPU and compared with the compute_root-everything output."""
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    cpu = hl.Target(_cpu_target())
    inputs = spec.make_inputs(0, **sizes)
    root_out = root_outputs(spec, sizes, inputs, cpu)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    problems: list[str] = []
    shared = 0
    base = zlib.crc32(name.encode())
    for i in range(n_states):
        seed = base + i
        state = random_state(dag, CUDA, random.Random(seed))
        where = f"{name} CUDA state seed {seed}"
        try:
            p = spec.build(**sizes).pipeline()
            apply_source(schedule_source(state), p)
            obj = _compile_cuda(p)
            if b".entry" not in obj:
                problems.append(f"{where}: no PTX kernel in the object")
            if any(pl.where == "at" and pl.at is not None and pl.at.level == "block"
                   for pl in (state.placement(f) for f in state.space.order) if pl is not None):
                shared += 1
                if b".shared" not in obj:
                    problems.append(f"{where}: a Func at block level but no shared memory in the PTX")
            if not shadow:
                continue
            built = spec.build(**sizes)
            p = built.pipeline()
            apply_source(schedule_source(state, gpu=False), p)
            out = halide_pipelines.realize(built, inputs, cpu, pipeline=p)
        except Exception as e:  # any Halide error is a failure of the search space
            problems.append(f"{where}: {type(e).__name__}: {str(e).strip()[:400]}\n{state.to_json()}")
            continue
        bad = _close(out, root_out, max(spec.rtol, 1e-5), max(spec.atol, 1e-6))
        if bad:
            problems.append(f"{where}: without GPU labels, differs from compute_root: {bad}\n{state.to_json()}")
    return {"problems": problems, "shared": shared}


def _runs(n_states: int, all_shadows: bool) -> WorkloadPool:
    return WorkloadPool(check_cuda_states, NAMES,
                        lambda n: (n_states, all_shadows or len(_dag(n).nodes) <= SHADOW_MAX_FUNCS),
                        lambda n: len(_dag(n).nodes))


@pytest.fixture(scope="module")
def default_runs():
    runs = _runs(DEFAULT_STATES, False)
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def slow_runs():
    runs = _runs(SLOW_STATES, True)
    yield runs
    runs.close()


@pytest.mark.parametrize("name", NAMES)
def test_random_cuda_states_compile_to_ptx_and_keep_their_loops_correct(name, default_runs):
    result = default_runs.result(name)
    assert not result["problems"], "\n\n".join(result["problems"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_many_random_cuda_states_compile_to_ptx(name, slow_runs):
    result = slow_runs.result(name)
    assert not result["problems"], "\n\n".join(result["problems"])


def test_full_cuda_target_with_runtime_compiles():
    """The exact target of the issue (Halide's CUDA runtime linked in), on one searched-free state."""
    dag = _dag("blur")
    state = random_state(dag, CUDA, random.Random(3))
    p = halide_pipelines.get("blur").build(**halide_pipelines.get("blur").test_sizes).pipeline()
    apply_source(schedule_source(state), p)
    obj = _compile_cuda(p, CUDA)
    assert b".entry" in obj and b"halide_cuda" in obj


# ------------------------------------------------------------------------------------------ the rules

@pytest.mark.parametrize("name", ["conv_layer", "ae_train_step", "camera_pipe", "hist_eq", "local_laplacian",
                                  "iir_blur", "bilateral_grid"])
def test_random_cuda_states_keep_the_gpu_rules(name):
    dag = _dag(name)
    for seed in range(6):
        st = random_state(dag, CUDA, random.Random(seed))
        assert st.is_complete and st.space.gpu
        kernels: dict[LoopRef, list] = {}
        for f in st.space.order:
            node = dag.nodes[f]
            place = st.placement(f)
            assert place is not None and place.store_at is None
            if place.where == "inline":
                continue
            level = st.gpu_level(f)
            if place.where == "at":
                assert place.at is not None and place.at.level in ("block", "thread", "inner", "outer")
                if place.at.level == "block":
                    kernels.setdefault(place.at, [])
            for s in range(len(node.stages)):
                plan = st.plan(f, s)
                assert plan is not None and plan.parallel is None and plan.vectorize is None and not plan.fuses
                levels = [l.level for l in plan.loops]
                if "thread" in levels:       # thread loops inside block loops (root) or at block level
                    assert level in ("root", "block")
                    if "block" in levels:
                        assert max(i for i, lv in enumerate(levels) if lv == "thread") < levels.index("block")
                if level == "root":
                    assert plan.gpu in ("kernel", "single")
                    assert plan.gpu == "single" or plan.gpu_blocks     # on the GPU: a kernel of its own
                elif level == "block":
                    assert plan.gpu == "block" and plan.gpu_threads and not plan.gpu_blocks
                else:
                    assert plan.gpu == "serial" and not plan.gpu_threads and not plan.gpu_blocks
                assert len(plan.gpu_blocks) <= 3 and len(plan.gpu_threads) <= 3
                assert gpu_rules.total_threads(plan.threads) <= gpu_rules.MAX_THREADS
                rv = [l for l in plan.loops if l.level == "rvar"]
                if plan.rfactor is None:   # RVars serial, innermost after the register tile
                    assert [l.var for l in rv] == [l.var for l in node.stages[s].rvar_loops]
                unrolled = 1
                for l in plan.loops:
                    if l.level == "unroll":
                        unrolled *= l.extent
                assert unrolled <= GPU_UNROLL_LIMIT
        for ref in kernels:
            merged = gpu_rules.kernel_threads(st.kernel_members(ref))
            assert gpu_rules.total_threads(merged) <= gpu_rules.MAX_THREADS
            assert st.shared_bytes(ref) <= gpu_rules.SHARED_MEMORY_BUDGET


def test_kernel_menu_prefers_warp_multiples_and_enough_blocks():
    dag = _dag("blur", width=1024, height=768)
    by = _index(dag, "blur_y")
    s = State.initial(dag, CUDA).apply(Place(by, "root")).apply(InnerTile(by, 0, None, 1, ()))
    opts = s.options()
    assert opts and all(isinstance(o, OuterTile) and o.parallel for o in opts)
    for o in opts:
        plan = s.apply(o).plan(by, 0)
        assert plan.threads[0] % 32 == 0 and gpu_rules.total_threads(plan.threads) <= 1024
    best = s.apply(opts[0]).plan(by, 0)
    assert np.prod(best.blocks) >= 2 * s.space.parallelism


def test_trace_and_json_round_trip_of_cuda_states():
    for name in ("camera_pipe", "vae_train_step", "bilateral_grid"):
        dag = _dag(name)
        st = random_state(dag, CUDA, random.Random(7))
        text = st.to_json()
        again = State.from_json(_dag(name), text)        # a fresh build of the same pipeline
        assert again.decisions == st.decisions and again.space.gpu
        for f in st.space.order:
            for k in range(len(dag.nodes[f].stages)):
                a, b = st.plan(f, k), again.plan(f, k)
                assert (a is None) == (b is None)
                if a is not None and b is not None:
                    assert [(l.level, l.dim, l.extent) for l in a.loops] == \
                        [(l.level, l.dim, l.extent) for l in b.loops]
                    assert (a.gpu, len(a.gpu_blocks), len(a.gpu_threads)) == \
                        (b.gpu, len(b.gpu_blocks), len(b.gpu_threads))
        assert State.from_trace(dag, [d.to_dict() for d in st.decisions], CUDA).decisions == st.decisions
    rf = RFactor(3, 1, 0, 256, True)
    assert decision_from_dict(json.loads(json.dumps(rf.to_dict()))) == rf
    assert decision_from_dict({"kind": "rfactor", "func": 3, "stage": 1, "rvar": 1, "factor": 64}) == \
        RFactor(3, 1, 1, 64, False)


def _blur_root(width: int = 64, height: int = 48, tiles=((0, 32), (1, 8)), unroll=()) -> tuple[State, int, int]:
    dag = _dag("blur", width=width, height=height)
    bx, by = _index(dag, "blur_x"), _index(dag, "blur_y")
    s = State.initial(dag, CUDA).apply(Place(by, "root")).apply(InnerTile(by, 0, None, 1, unroll))
    return s.apply(OuterTile(by, 0, tiles, True)), bx, by


def test_illegal_gpu_decisions_are_rejected_by_name():
    dag = _dag("blur")
    bx, by = _index(dag, "blur_x"), _index(dag, "blur_y")
    s = State.initial(dag, CUDA).apply(Place(by, "root"))
    with pytest.raises(IllegalDecisionError, match="nothing is vectorised"):
        s.apply(InnerTile(by, 0, 0, 8, ()))
    s1 = s.apply(InnerTile(by, 0, None, 1, ()))
    with pytest.raises(IllegalDecisionError, match="would run on the host"):
        s1.apply(OuterTile(by, 0, ((0, 32),), False))
    with pytest.raises(IllegalDecisionError, match="threads per block > 1024"):
        s1.apply(OuterTile(by, 0, ((0, 64), (1, 32)), True))
    st, bx, by = _blur_root()
    block, thread = st.site_loops(by, 0)[:2]
    assert (block.level, thread.level) == ("block", "thread")
    with pytest.raises(IllegalDecisionError, match="no sliding windows on GPU"):
        st.apply(Place(bx, "at", thread, block))
    outer_block = LoopRef(by, 0, "block", 1)      # y_o: outside the innermost block loop x_o
    with pytest.raises(IllegalDecisionError, match="not a loop enclosing all its uses"):
        st.apply(Place(bx, "at", outer_block))
    at_thread = st.apply(Place(bx, "at", thread)).apply(InnerTile(bx, 0, None, 1, ()))
    with pytest.raises(IllegalDecisionError, match="inside a GPU thread"):
        at_thread.apply(OuterTile(bx, 0, ((0, 2),), True))
    at_block = st.apply(Place(bx, "at", block)).apply(InnerTile(bx, 0, None, 1, ()))
    with pytest.raises(IllegalDecisionError, match="by the block's threads"):
        at_block.apply(OuterTile(bx, 0, (), False))
    with pytest.raises(IllegalDecisionError, match="kernel would launch"):   # 32 x 8 kernel, 64 x 32 here
        at_block.apply(OuterTile(bx, 0, ((0, 64), (1, 32)), True))
    assert at_block.apply(OuterTile(bx, 0, ((0, 32), (1, 8)), True)).is_complete
    # 4 block dimensions
    dag4 = _dag("conv_layer")
    relu = _index(dag4, "relu")
    c4 = State.initial(dag4, CUDA).apply(Place(relu, "root")).apply(InnerTile(relu, 0, None, 1, ()))
    with pytest.raises(IllegalDecisionError, match="at most 3 block dimensions"):
        c4.apply(OuterTile(relu, 0, ((0, 8), (1, 2), (2, 1), (3, 1)), True))
    # shared memory: a 64 x 64 x 4 tile of relu (16 x 16 x 4 threads, 4 x 4 each) needs as much of
    # conv in floats: 64 KB > 48 KB
    big = _dag("conv_layer", ci=8, co=64, width=64, height=64, batch=1)
    relu, conv = _index(big, "relu"), _index(big, "conv")
    b = State.initial(big, CUDA).apply(Place(relu, "root")).apply(InnerTile(relu, 0, None, 1, ((0, 4), (1, 4))))
    b = b.apply(OuterTile(relu, 0, ((0, 64), (1, 64), (2, 4)), True))
    assert b.plan(relu, 0).threads == (16, 16, 4)
    with pytest.raises(IllegalDecisionError, match="shared memory would hold 65536 bytes"):
        b.apply(Place(conv, "at", b.site_loops(relu, 0)[0]))


def _rfactor_state(atomic: bool) -> State:
    _, outs = sum_reductions()
    s = State.initial(FunctionDAG.from_pipeline(hl.Pipeline(outs)), CUDA)
    while not s.is_complete:
        opts = s.options()
        rf = [d for d in opts if isinstance(d, RFactor) and d.atomic == atomic]
        s = s.apply(rf[0] if rf else opts[0])
    return s


@pytest.mark.parametrize("atomic", [False, True])
def test_rfactor_compiles_for_cuda_and_sums_right(atomic):
    st = _rfactor_state(atomic)
    assert sum(isinstance(d, RFactor) for d in st.decisions) == 2     # both reductions were offered one
    assert all(d.atomic == atomic for d in st.decisions if isinstance(d, RFactor))
    _, outs = sum_reductions()
    p = hl.Pipeline(outs)
    src = schedule_source(st)
    assert ".rfactor(" in src and (".atomic()" in src) == atomic and "gpu_blocks" in src
    apply_source(src, p)
    assert _compile_cuda(p).count(b".entry") >= 6          # per output: init, intermediate x 2, combine
    img, outs = sum_reductions()
    p = hl.Pipeline(outs)
    apply_source(schedule_source(st, gpu=False), p)
    a = np.random.default_rng(1).random((6, 300), dtype=np.float32)
    img.set(hl.Buffer(a))
    total, rows = hl.Buffer(hl.Float(32), []), hl.Buffer(hl.Float(32), [6])
    p.realize([total, rows], hl.Target(_cpu_target()))
    np.testing.assert_allclose(float(np.asarray(total)), a.sum(dtype=np.float64), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(rows), 2 * a.sum(axis=1, dtype=np.float64), rtol=1e-4)


def test_rfactor_legality():
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    rows = _index(dag, "rows")
    s = State.initial(dag, CUDA).apply(Place(rows, "root")).apply(InnerTile(rows, 0, None, 1, ()))
    s = s.apply(s.options()[0])
    assert s.slot == ("inner", rows, 1)
    with pytest.raises(IllegalDecisionError, match="factor 400 must be between 2"):
        s.apply(RFactor(rows, 1, 0, 400))
    with pytest.raises(IllegalDecisionError, match="no RVar number 3"):
        s.apply(RFactor(rows, 1, 3, 8))
    assert s.apply(RFactor(rows, 1, 0, 300)).plan(rows, 1).rfactor.factor == 300
    cpu = State.initial(dag, "host").apply(Place(rows, "root"))
    cpu = cpu.apply(cpu.options()[0])
    cpu = cpu.apply(cpu.options()[0])
    with pytest.raises(IllegalDecisionError, match="GPU targets only"):   # CPU RFactor: never atomic
        cpu.apply(RFactor(rows, 1, 0, 8, True))
    assert cpu.apply(RFactor(rows, 1, 0, 8)).plan(rows, 1).gpu == ""
    # a scan is not a reduction; max is associative but not an atomic add
    iir = _dag("iir_blur")
    f = _index(iir, "blur_y_cols")

    def to_slot(st: State, slot: tuple) -> State:
        while st.slot != slot:
            opts = st.options()
            st = st.apply(next((o for o in opts if isinstance(o, Place) and o.where == "root"), opts[0]))
        return st

    s = to_slot(State.initial(iir, CUDA), ("inner", f, 2))
    with pytest.raises(IllegalDecisionError, match="cannot be rfactored: its left-hand side"):
        s.apply(RFactor(f, 2, 0, 4))
    mf = _dag("max_filter")
    m = _index(mf, "maximum")
    s = to_slot(State.initial(mf, CUDA), ("inner", m, 1))
    assert s.apply(RFactor(m, 1, 0, 4)).plan(m, 1).rfactor is not None
    with pytest.raises(IllegalDecisionError, match="only additions are combined with atomics"):
        s.apply(RFactor(m, 1, 0, 4, True))


def test_rfactor_on_a_training_loss():
    """ae_train_step's loss sum (an associative Let-wrapped sum) rfactored by a trace."""
    dag = _dag("ae_train_step")
    bce = _index(dag, "bce_sum")
    s = State.initial(dag, CUDA)
    while s.slot != ("inner", bce, 1):
        opts = s.options()
        s = s.apply(next((o for o in opts if isinstance(o, Place) and o.where == "root"), opts[0]))
    s = s.apply(RFactor(bce, 1, 0, 4, True))
    while not s.is_complete:
        s = s.apply(s.options()[0])
    spec = halide_pipelines.get("ae_train_step")
    sizes = spec.sizes(**spec.test_sizes)
    inputs = spec.make_inputs(0, **sizes)
    p = spec.build(**sizes).pipeline()
    apply_source(schedule_source(s), p)
    assert b".entry" in _compile_cuda(p)
    built = spec.build(**sizes)
    p = built.pipeline()
    apply_source(schedule_source(s, gpu=False), p)
    out = halide_pipelines.realize(built, inputs, hl.Target(_cpu_target()), pipeline=p)
    ref = root_outputs(spec, sizes, inputs, hl.Target(_cpu_target()))
    assert not _close(out, ref, max(spec.rtol, 1e-5), max(spec.atol, 1e-6))


# ------------------------------------------------------------------------------------------ features

def test_featurizer_for_dispatches_on_the_target():
    dag = _dag("blur")
    assert isinstance(featurizer_for(State.initial(dag, CUDA)), GpuFeaturizer)
    assert isinstance(featurizer_for(State.initial(dag, "host")), Featurizer)
    assert len(GPU_FEATURE_NAMES) == NUM_GPU_FEATURES == len(set(GPU_FEATURE_NAMES))


def test_gpu_features_of_a_hand_built_blur_schedule():
    st, bx, by = _blur_root(64, 48, ((0, 32), (1, 8)))
    block = st.site_loops(by, 0)[0]
    st = st.apply(Place(bx, "at", block)).apply(InnerTile(bx, 0, None, 1, ()))
    st = st.apply(OuterTile(bx, 0, ((0, 32), (1, 8)), True))
    fz = featurizer_for(st)
    rows = {s.name.split("$")[0]: r for s, r in zip(fz.stages, fz.features(st))}
    y, x = rows["blur_y"], rows["blur_x"]
    # blur_y: a 2 x 6 grid of 32 x 8-thread blocks over 64 x 48 points, global, coalesced stores
    assert y[_F["num_blocks"]] == 12 and y[_F["threads_per_block"]] == 256 and y[_F["num_kernels"]] == 1
    assert y[_F["mem_global"]] == 1 and y[_F["points_computed"]] == 64 * 48
    assert y[_F["global_store_efficiency"]] == 1.0
    # blur_y reads blur_x from shared memory: 3 loads per point
    assert y[_F["shared_loads"]] == 3 * 64 * 48 and y[_F["global_loads"]] == 0
    # blur_x at block level: a 32 x 10 region of uint16 per block in shared memory; 32 x 8 threads
    # cover it in two serial steps of y (rounded up to 16 rows)
    assert x[_F["mem_shared"]] == 1 and x[_F["bytes_allocated"]] == 32 * 10 * 2
    assert x[_F["shared_bytes_per_block"]] == 32 * 10 * 2 and x[_F["num_kernels"]] == 0
    assert x[_F["stage_threads"]] == 256 and x[_F["points_computed"]] == 12 * 32 * 16
    assert x[_F["recompute_factor"]] == 12 * 32 * 16 / (64 * 50)
    # its loads from the input: neighbouring threads read neighbouring uint16 (2 sectors per warp)
    assert x[_F["global_loads"]] == 3 * 12 * 32 * 16
    assert x[_F["global_load_efficiency"]] == 1.0 and x[_F["innermost_thread_stride"]] == 1.0
    assert np.isclose(x[_F["global_load_transactions"]], x[_F["global_loads"]] / 32 * 2)
    # threads 4 elements apart (a 4-wide register tile per thread): 8 sectors a warp, 1/4 efficiency
    st4, bx, by = _blur_root(64, 48, ((0, 128), (1, 8)), ((0, 4),))
    row4 = dict(zip((s.name.split("$")[0] for s in fz.stages), featurizer_for(st4).features(st4)))["blur_y"]
    assert row4[_F["innermost_thread_stride"]] == 4.0 and row4[_F["global_store_efficiency"]] == 0.25


def test_gpu_features_are_incremental_and_cost_is_finite():
    for name in ("camera_pipe", "ae_train_step", "local_laplacian"):
        dag = _dag(name)
        st = random_state(dag, CUDA, random.Random(11))
        fz = GpuFeaturizer(st.space)
        s = State.initial(dag, CUDA)
        for d in st.decisions:
            s = s.apply(d)
            inc = fz.features(s)
            full = GpuFeaturizer(st.space).features(s)
            np.testing.assert_allclose(inc, full, rtol=1e-12, atol=1e-12, err_msg=f"{name} after {d}")
        assert fz.hits + fz.misses >= len(st.decisions)
        cost = GpuAnalyticCost(st.space.parallelism)
        c = cost.predict([st])
        assert np.isfinite(c).all() and c[0] > 0
        assert abs(sum(cost.stage_costs(dag, st).values()) - c[0]) < 1e-9 * c[0]


def test_analytic_cost_prefers_coalesced_and_parallel_schedules():
    cost = GpuAnalyticCost()
    good, _, _ = _blur_root(2048, 2048, ((0, 64), (1, 4)))
    strided, _, _ = _blur_root(2048, 2048, ((0, 256), (1, 4)), ((0, 4),))   # threads 4 elements apart
    c = cost.predict([good, strided])
    assert c[0] < c[1]
    dag = _dag("blur", width=2048, height=2048)
    by = _index(dag, "blur_y")
    single = State.initial(dag, CUDA).apply(Place(by, "root")).apply(InnerTile(by, 0, None, 1, ()))
    single = single.apply(OuterTile(by, 0, (), False))                     # one GPU thread
    assert single.plan(by, 0).gpu == "single"
    assert cost.predict([single])[0] > 50 * cost.predict([good])[0]


# ------------------------------------------------------------------------------------------ search, API, CLI

def test_search_on_a_cuda_target_returns_a_legal_schedule():
    from autoscheduler.api import autoschedule
    spec = halide_pipelines.get("unsharp")
    sizes = spec.sizes(**spec.test_sizes)
    built = spec.build(**sizes)
    start = time.perf_counter()
    sched = autoschedule(built.outputs, CUDA, beam_size=4, passes=1, time_budget_s=20)
    assert time.perf_counter() - start < 30
    st = sched.state
    assert st.is_complete and st.space.gpu and np.isfinite(sched.predicted_cost) and sched.predicted_cost > 0
    again = State.from_trace(_dag("unsharp"), [d.to_dict() for d in st.decisions], CUDA)   # legal on replay
    assert again.decisions == st.decisions
    assert sched.stage_costs and all(v >= 0 for v in sched.stage_costs.values())
    sched.apply()
    assert "gpu_block" in sched.loop_nest()
    assert b".entry" in _compile_cuda(sched.pipeline)
    # the same loops without GPU labels compute the right answer
    inputs = spec.make_inputs(0, **sizes)
    b2 = spec.build(**sizes)
    p2 = b2.pipeline()
    apply_source(schedule_source(st, gpu=False), p2)
    out = halide_pipelines.realize(b2, inputs, hl.Target(_cpu_target()), pipeline=p2)
    assert not _close(out, spec.reference(inputs, **sizes), spec.rtol, spec.atol)
    with pytest.raises(ToolkitError, match="CUDA targets take GPU weights"):
        autoschedule(spec.build(**sizes).outputs, "host-cuda", weights="some.weights")


def test_cli_run_on_cuda_searches_and_says_nothing_was_measured(capsys, tmp_path):
    from autoscheduler.cli import main
    out = tmp_path / "sched.py"
    assert main(["run", "blur", "--small", "--target", "host-cuda", "--beam-size", "2", "--passes", "1",
                 "--emit", str(out), "--print-loop-nest"]) == 0
    text = capsys.readouterr().out
    assert "nothing was measured" in text and "gpu_block" in text
    assert "gpu_threads" in out.read_text()


# ------------------------------------------------------------------------------------------ on a GPU

def _has_gpu() -> bool:
    from autoscheduler.measure import cuda_available
    return cuda_available()


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["blur", "conv_layer", "ae_train_step", "hist_eq"])
def test_searched_cuda_schedules_run_correctly_on_the_gpu(name):
    if not _has_gpu():
        pytest.skip("no CUDA GPU on this machine")
    from autoscheduler.api import autoschedule
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    built = spec.build(**sizes)
    from autoscheduler.measure import preload_libcuda
    preload_libcuda()
    sched = autoschedule(built.outputs, "host-cuda", beam_size=4, passes=1)
    sched.apply()
    inputs = spec.make_inputs(0, **sizes)
    keep = built.bind_inputs(inputs)
    bufs = halide_pipelines.output_buffers(built)
    sched.pipeline.realize(bufs, hl.get_jit_target_from_environment().with_feature(hl.TargetFeature.CUDA))
    out = []
    for b in bufs:
        b.copy_to_host()
        out.append(np.array(b, copy=True))
    del keep
    assert not _close(out, spec.reference(inputs, **sizes), spec.rtol, spec.atol)

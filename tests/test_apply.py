"""Search states as Halide schedules: Python source that replays, compiles, runs and is correct."""

from __future__ import annotations

import dataclasses
import random
import re
import time
import zlib
from typing import Any, Optional

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.apply import apply, apply_state, check_pipeline, schedule_source, state_loop_nest
from autoscheduler.dag import FunctionDAG
from autoscheduler.errors import ScheduleError
from autoscheduler.ir import canonical_text, decode_pipeline
from autoscheduler.loop_nest import loop_nest
from autoscheduler.schedules import apply_source
from autoscheduler.state import State, random_state
from workload_pool import WorkloadPool
from shared_pipelines import root_outputs

NAMES = halide_pipelines.names()
DEFAULT_STATES = 3
SLOW_STATES = 50
AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"


def _dag(name: str, **sizes: int) -> FunctionDAG:
    spec = halide_pipelines.get(name)
    return FunctionDAG.from_pipeline(spec.build(**(sizes or spec.test_sizes)).pipeline())


def _alt_sizes(spec: Any) -> Optional[dict[str, int]]:
    """Other sizes than the estimates, smaller than the test sizes (so smaller than many tiles),
    where the workload builds the same Funcs at them; None where it does not."""
    sizes = spec.sizes(**spec.test_sizes)
    alt = dict(sizes)
    for k, v in sizes.items():
        if k in ("width", "height"):
            alt[k] = max(2, (v * 2 // 3) // 2 * 2)
        elif k in ("m", "n", "k", "batch") and v > 1:
            alt[k] = v - 1
    if alt == sizes:
        return None
    try:
        a, b = spec.build(**sizes).pipeline(), spec.build(**alt).pipeline()
        if len(_funcs(a)) != len(_funcs(b)):
            return None
    except Exception:
        return None
    return alt


def _algorithm(p: hl.Pipeline) -> str:
    """The pipeline's canonical IR without estimates: equal means the same compiled code runs both."""
    text = canonical_text(decode_pipeline(p))
    text = re.sub(r" estimates=\[[^\]]*\]", "", text)
    return "\n".join(line for line in text.splitlines() if not re.match(r"^P\d+=", line))


def _funcs(p: hl.Pipeline) -> list[Any]:
    from autoscheduler.schedules import pipeline_funcs
    return pipeline_funcs(p)


def _close(out: list[np.ndarray], ref: list[np.ndarray], rtol: float, atol: float) -> str:
    if len(out) != len(ref):
        return f"{len(out)} outputs, expected {len(ref)}"
    for i, (o, r) in enumerate(zip(out, ref)):
        if o.shape != r.shape:
            return f"output {i} shape {o.shape}, expected {r.shape}"
        if not np.allclose(o.astype(np.float64), r.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            err = np.abs(o.astype(np.float64) - r.astype(np.float64))
            return f"output {i} differs by up to {np.nanmax(err):.3g}"
    return ""


def fast_target() -> str:
    """SSE4.1 on x86-64 (every x86-64 CPU of the last 15 years): 4-16 lane vectors compile in about
    half the time of AVX-512's 16-64, which keeps the default run short; the slow run uses the host."""
    host = hl.get_host_target()
    if host.arch == hl.TargetArch.X86 and host.bits == 64 and host.has_feature(hl.TargetFeature.SSE41):
        return f"x86-64-{str(host.os).split('.')[-1].lower()}-sse41"
    return str(host)


def check_random_states(name: str, n_states: int, target_name: str) -> dict[str, Any]:
    """Runs in a worker process: ``n_states`` random states of workload ``name`` for the target,
    each compiled, run at the test sizes and compared with the compute_root-everything output; the
    first one also built at other (smaller) sizes and compared with the numpy reference there."""
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    target = hl.Target(target_name)
    inputs = spec.make_inputs(0, **sizes)
    root_out = root_outputs(spec, sizes, inputs, target)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    # of an unscheduled build: a scheduled one holds the wrapper Funcs of Wrap decisions (``in_``)
    algorithm = _algorithm(spec.build(**sizes).pipeline())
    alt = _alt_sizes(spec)
    alt_inputs = spec.make_inputs(1, **alt) if alt else None
    problems: list[str] = []
    base = zlib.crc32(name.encode())
    timings: list[float] = []
    checked_alt = False
    for i in range(n_states):
        seed = base + i
        state = random_state(dag, str(target), random.Random(seed))
        where = f"{name} state seed {seed}"
        try:
            src = schedule_source(state)
            built = spec.build(**sizes)
            p = built.pipeline()
            apply_state(state, p, src)
            start = time.perf_counter()
            out = halide_pipelines.realize(built, inputs, target, pipeline=p)
            timings.append(time.perf_counter() - start)
        except Exception as e:  # any Halide error is a failure of the search space
            problems.append(f"{where}: {type(e).__name__}: {str(e).strip()[:400]}\n{state.to_json()}")
            continue
        bad = _close(out, root_out, spec.rtol, spec.atol)
        if bad:
            problems.append(f"{where}: differs from compute_root: {bad}\n{state.to_json()}")
        if alt and not checked_alt:
            checked_alt = True
            try:
                alt_built = spec.build(**alt)
                if _algorithm(alt_built.pipeline()) == algorithm:
                    # only the estimates differ: run the pipeline compiled for the estimates
                    alt_built = dataclasses.replace(built, output_shapes=alt_built.output_shapes)
                else:
                    p = alt_built.pipeline()
                    apply_state(state, p, src)
                out = halide_pipelines.realize(alt_built, alt_inputs, target, pipeline=p)
                bad = _close(out, spec.reference(alt_inputs, **alt), spec.rtol, spec.atol)
                if bad:
                    problems.append(f"{where} at sizes {alt}: differs from the reference: {bad}\n{state.to_json()}")
            except Exception as e:
                problems.append(f"{where} at sizes {alt}: {type(e).__name__}: {str(e).strip()[:400]}\n"
                                f"{state.to_json()}")
    return {"problems": problems, "timings": timings, "alt": alt}


def _runs(n_states: int, target: str) -> WorkloadPool:
    return WorkloadPool(check_random_states, NAMES, lambda n: (n_states, target), lambda n: len(_dag(n).nodes))


@pytest.fixture(scope="module")
def default_runs():
    runs = _runs(DEFAULT_STATES, fast_target())
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def slow_runs():
    runs = _runs(SLOW_STATES, str(hl.get_host_target()))
    yield runs
    runs.close()


@pytest.mark.parametrize("name", NAMES)
def test_random_states_compile_run_and_match_compute_root(name, default_runs):
    result = default_runs.result(name)
    assert not result["problems"], "\n\n".join(result["problems"])
    assert len(result["timings"]) == DEFAULT_STATES


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_many_random_states_compile_run_and_match_compute_root(name, slow_runs):
    result = slow_runs.result(name)
    assert not result["problems"], "\n\n".join(result["problems"])


def _normalized(nest: str) -> str:
    """Halide's generated names (Vars v123, RVars r45, Funcs lambda_6, adjoints a3_1_0_d_def__)
    differ from build to build: numbers inside names are masked (loop extents are kept)."""
    return re.sub(r"(?<=[A-Za-z_])\d+", "#", nest)


# Not the train steps: their adjoint Funcs are named with per-process counters, and Halide breaks ties
# in the realization order by name, so get_func(i) can be another Func in another build.
@pytest.mark.parametrize("name", ["conv_layer", "hist_eq", "iir_blur", "multi_output", "bilateral_grid",
                                  "local_laplacian"])
def test_source_replays_on_a_fresh_build_with_the_same_loop_nest(name):
    spec = halide_pipelines.get(name)
    built = spec.build(**spec.test_sizes)
    p = built.pipeline()
    dag = FunctionDAG.from_pipeline(p)
    for seed in range(3):
        state = random_state(dag, AVX2, random.Random(seed), parallelism=2)
        src = schedule_source(state)
        assert "pipeline.get_func(" in src
        original = state_loop_nest(state, spec.build(**spec.test_sizes).pipeline())
        # the same source on a fresh build (other Halide names) gives the same loop nest
        fresh = spec.build(**spec.test_sizes).pipeline()
        apply_source(src, fresh)
        assert _normalized(loop_nest(fresh)) == _normalized(original)
        # a trace stored as JSON and loaded into a fresh DAG gives the same state and source
        again = State.from_json(_dag(name), state.to_json())
        assert again == state
        again_src = schedule_source(again)
        assert again_src == src
        other = spec.build(**spec.test_sizes).pipeline()
        apply_source(again_src, other)
        assert _normalized(loop_nest(other)) == _normalized(original)


def test_source_reads_like_a_hand_schedule():
    dag = _dag("conv_layer")
    relu = next(n.index for n in dag.nodes if n.is_output)
    conv = next(n.index for n in dag.nodes if n.name.startswith("conv"))
    from autoscheduler.state import InnerTile, Kernel, LoopRef, OuterTile, Place
    trace = [Place(relu, "root"), InnerTile(relu, 0, 0, 8, ((2, 2),)), OuterTile(relu, 0, ((2, 2),), True),
             Place(conv, "at", LoopRef(relu, 0, "parallel", -1)), InnerTile(conv, 0, 0, 8, ()),
             OuterTile(conv, 0, (), False), Kernel(conv, 1, 0, 8, ((1, 3),)), OuterTile(conv, 1, (), False)]
    state = State.from_trace(dag, trace, AVX2, parallelism=2)
    src = schedule_source(state)
    assert "relu = pipeline.get_func(4)" in src and "conv = pipeline.get_func(3)" in src
    assert "y_o = hl.Var('y_o')" in src
    assert "conv.compute_at(relu, y_o)" in src
    assert "r_x, r_y, r_z = conv.rvars(0)" in src
    # the micro-kernel: 8 outputs of c times 3 rows of x, unrolled, the RVars outside
    assert ".reorder(c_v, x_u, r_x, r_y, r_z, c, x, y, n)" in src
    assert ".split(y, y_o, y_u, 2, hl.TailStrategy.GuardWithIf)" in src      # output: no RoundUp
    nest = state_loop_nest(state, halide_pipelines.get("conv_layer").build(
        **halide_pipelines.get("conv_layer").test_sizes).pipeline())
    assert "parallel y.y_o" in nest and "unrolled x.x_u" in nest and "vectorized c.c_v" in nest
    assert nest.index("for r") < nest.index("unrolled x.x_u")


@pytest.mark.parametrize("name", NAMES)
def test_tail_strategies_never_round_up_outputs_or_reads_of_inputs(name):
    """RoundUp makes a Func compute (and read) past its region: never for outputs, nor for a Func
    whose footprint in an input buffer grows with its loops (it would read past the input)."""
    dag = _dag(name)
    for seed in range(3):
        state = random_state(dag, AVX2, random.Random(seed), parallelism=2)
        for f in state.space.order:
            node = dag.nodes[f]
            if state.is_inlined(f):
                continue
            tails = {sp.tail for s in range(len(node.stages)) for sp in state.plan(f, s).splits}
            if "RoundUp" not in tails:
                continue
            assert not node.is_output, node.name
            for st in node.stages:
                for e in st.incoming_edges:
                    if e.producer.is_input:
                        grown = tuple(type(b)(b.min - 5, b.max + 5) if not l.rvar else b
                                      for l, b in zip(st.loops, st.loop_bounds))
                        assert e.footprint(grown) == e.footprint(st.loop_bounds), (node.name, e.producer.name)


def test_apply_to_the_users_funcs_and_small_sizes():
    spec = halide_pipelines.get("blur")
    dag = _dag("blur")
    state = random_state(dag, "host", random.Random(3), parallelism=2)
    small = {"width": 5, "height": 3}              # smaller than most tiles
    built = spec.build(**small)
    src = apply(state, built.outputs)              # scheduled through the Funcs themselves
    assert src == schedule_source(state)
    inputs = spec.make_inputs(0, **small)
    out = halide_pipelines.realize(built, inputs)
    assert not _close(out, spec.reference(inputs, **small), spec.rtol, spec.atol)


def test_incomplete_states_and_other_pipelines_are_refused():
    dag = _dag("blur")
    state = State.initial(dag, AVX2, parallelism=2)
    with pytest.raises(ScheduleError, match="incomplete"):
        schedule_source(state)
    done = random_state(dag, AVX2, 0, parallelism=2)
    other = halide_pipelines.get("conv_layer")
    with pytest.raises(ScheduleError, match="apply it to the same algorithm"):
        check_pipeline(done, other.build(**other.test_sizes).pipeline())


def _sub_tiled_state(name: str, sizes: dict[str, int], target: str) -> State:
    """A state of workload ``name`` whose output has a sub-tiled task grid (``OuterTile.sub``), with
    its first producer computed at a sub-tile loop and stored at the task (a sliding window when
    legal) and every other decision the first option offered."""
    dag = FunctionDAG.from_pipeline(halide_pipelines.get(name).build(**sizes).pipeline())
    state = State.initial(dag, target, parallelism=2)
    out = state.slot[1]
    while state.slot is not None:
        opts = state.options()
        pick = opts[0]
        if state.slot == ("outer", out, 0):
            pick = next(d for d in opts if getattr(d, "sub", ()) and len(d.sub) == 2)
        elif state.slot[0] == "place" and state.slot[1] != out:
            at_sub = [d for d in opts if getattr(d, "at", None) is not None and d.at.func == out
                      and d.at.level == "outer"]
            if at_sub:
                pick = at_sub[-1]
        state = state.apply(pick)
    return state


@pytest.mark.parametrize("name", ["blur", "harris"])
def test_sub_tiled_schedules_compute_the_reference(name):
    """Sub-tiles (a serial tile level inside each parallel task) compile and reproduce the
    compute_root output, at the test sizes and at odd sizes smaller than a task tile."""
    spec = halide_pipelines.get(name)
    target = fast_target()
    sizes = spec.sizes(**spec.test_sizes)
    state = _sub_tiled_state(name, sizes, target)
    out_f = state.space.order[0]
    sub = state.outer(out_f, 0).sub
    assert len(sub) == 2 and state.outer(out_f, 0).parallel
    placed_at_sub = [f for f in state.space.order
                     if (p := state.placement(f)) is not None and p.at is not None and p.at.level == "outer"]
    assert placed_at_sub, "some producer is computed at a sub-tile loop"
    # the sub-tile loops are in the loop nest, inside the parallel loop
    plan = state.plan(out_f, 0)
    levels = [l.level for l in plan.loops]
    assert levels.count("outer") == 2 and levels.index("outer") < levels.index("parallel")
    # a trace with sub-tiles replays through JSON
    again = State.from_json(state.space.dag, state.to_json(), target, 2)
    assert again.decisions == state.decisions
    for sz in (sizes, {k: v * 2 // 3 + 1 for k, v in sizes.items()}):
        inputs = spec.make_inputs(0, **sz)
        ref = root_outputs(spec, sz, inputs, hl.Target(target))
        built = spec.build(**sizes)
        p = built.pipeline()
        apply_state(state, p, schedule_source(state))
        run = dataclasses.replace(built, output_shapes=spec.build(**sz).output_shapes)
        out = halide_pipelines.realize(run, inputs, hl.Target(target), pipeline=p)
        assert not _close(out, ref, spec.rtol, spec.atol), f"{name} at {sz}"


def test_an_outputs_task_split_stays_guarded_inside_its_constant_tile_schedule():
    """The constant-tile specialization of an output keeps GuardWithIf on its parallel task split
    of a non-vector dimension (ShiftInwards would make the last task overlap the one before it, two
    cores writing the same rows: up to 5x slower, see ``apply._guarded_task_splits``); the splits inside
    a task stay ShiftInwards. Correct where the last task is shorter than a register tile, where a
    tile is wider than the output, and where the output is smaller than a task."""
    from autoscheduler.state import InnerTile, OuterTile, Place
    spec = halide_pipelines.get("index_sum")
    target = fast_target()
    state = State.initial(_dag("index_sum"), target, 2).apply(Place(0, "root"))
    width = state.space.vector_width[state.space.node(0).stages[0].id]
    state = state.apply(InnerTile(0, 0, 0, width, ((0, 2), (1, 6)))).apply(OuterTile(0, 0, ((1, 144),), True))
    src = schedule_source(state)
    tiled = src[src.index("_index_sum_tiled = "):].split("\n(index_sum")[0]
    assert ".split(y, y_o, y_i, 144, hl.TailStrategy.GuardWithIf)" in tiled
    assert ".split(y_i, y_i, y_u, 6, hl.TailStrategy.ShiftInwards)" in tiled
    assert re.search(r"\.split\(x, x, x_r, \d+, hl\.TailStrategy\.ShiftInwards\)", tiled)
    for sz in ({"width": 350, "height": 250}, {"width": 350, "height": 146}, {"width": 37, "height": 150},
               {"width": 20, "height": 7}):
        built = spec.build(**sz)
        p = built.pipeline()
        apply_state(state, p, src)
        out = halide_pipelines.realize(built, {}, hl.Target(target), pipeline=p)
        assert not _close(out, spec.reference({}, **sz), 0, 0), sz


def test_small_producers_inside_tiles_are_stored_on_the_stack(monkeypatch):
    """A Func computed inside another Func's loops is stored in ``hl.MemoryType.Stack`` when one
    allocation of it is under ``STACK_BYTES`` (Halide heap-allocates a variable-size buffer once
    per tile otherwise); Funcs at the root, larger ones and GPU states keep Halide's default; the
    schedule still computes the reference, at odd sizes too."""
    import autoscheduler.apply as apply_mod
    spec = halide_pipelines.get("blur")
    target = fast_target()
    sizes = spec.sizes(**spec.test_sizes)
    state = _sub_tiled_state("blur", sizes, target)
    names = {f: state.space.node(f).name for f in state.space.order}
    inner = [f for f in state.space.order if state.placement(f).where == "at"]
    roots = [f for f in state.space.order if state.placement(f).where == "root" and not state.space.node(f).is_output]
    assert inner, "the sub-tiled state computes a producer inside the output's tiles"
    src = schedule_source(state)
    stack_lines = re.findall(r"^(\w+)\.store_in\(hl\.MemoryType\.Stack\)$", src, re.M)
    assert len(stack_lines) == len(inner)
    for f in roots:
        assert f"{names[f]}.store_in" not in src
    for sz in (sizes, {k: v * 2 // 3 + 1 for k, v in sizes.items()}):
        inputs = spec.make_inputs(0, **sz)
        ref = root_outputs(spec, sz, inputs, hl.Target(target))
        built = spec.build(**sizes)
        p = built.pipeline()
        apply_state(state, p, src)
        run = dataclasses.replace(built, output_shapes=spec.build(**sz).output_shapes)
        out = halide_pipelines.realize(run, inputs, hl.Target(target), pipeline=p)
        assert not _close(out, ref, spec.rtol, spec.atol), sz
    # the threshold is on one allocation's bytes: at exactly that size the Func stays on the heap
    smallest = min(apply_mod.allocation_bytes(state, f) for f in inner)
    assert 0 < smallest < apply_mod.STACK_BYTES
    monkeypatch.setattr(apply_mod, "STACK_BYTES", smallest)
    assert len(re.findall(r"MemoryType\.Stack", schedule_source(state))) < len(inner)
    # GPU states: Funcs inside blocks go to shared memory, inside threads keep Halide's default
    for seed, level in ((3, "block"), (4, "thread")):
        cuda = random_state(_dag("blur"), "host-cuda-cuda_capability_80", random.Random(seed))
        assert cuda.placement(inner[0]).at.level == level
        assert "MemoryType.Stack" not in schedule_source(cuda)

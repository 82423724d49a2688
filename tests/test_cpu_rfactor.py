"""RFactor on CPU targets (``state/cpu_rfactor.py``): legality, the menu, the emitted schedule (it
compiles, runs and matches compute_root), replay, and the features of an rfactored stage."""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.apply import schedule_source, state_loop_nest
from autoscheduler.dag import FunctionDAG
from autoscheduler.features import Featurizer, featurizer_for
from autoscheduler.features.kernel_terms import stage_factors
from autoscheduler.loop_nest import loop_nest
from autoscheduler.schedules import apply_source
from autoscheduler.state.cpu_rfactor import cpu_rfactor_options
from autoscheduler.state import IllegalDecisionError, InnerTile, Place, RFactor, State, random_state
from cost_model.features_layout import SCHEDULE_FEATURE_INDEX as FI
from shared_pipelines import root_outputs, sum_reductions

AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"   # 8 x f32 lanes (menu and plan checks, no compiles)


def _run_target() -> str:
    """SSE4.1 (4 x f32 lanes) on x86-64 hosts: compiles fast and runs on any of them."""
    host = hl.get_host_target()
    if host.arch == hl.TargetArch.X86 and host.bits == 64 and host.has_feature(hl.TargetFeature.SSE41):
        return f"x86-64-{str(host.os).split('.')[-1].lower()}-sse41"
    return str(host)


def _index(dag: FunctionDAG, name: str) -> int:
    return next(n.index for n in dag.nodes if n.name.split("$")[0] == name)


def _to_slot(st: State, slot: tuple) -> State:
    """Decide (root where offered, else the first option) until ``slot`` is next."""
    while st.slot != slot:
        opts = st.options()
        st = st.apply(next((o for o in opts if isinstance(o, Place) and o.where == "root"), opts[0]))
    return st


def _finish(st: State) -> State:
    while not st.is_complete:
        opts = st.options()
        st = st.apply(next((o for o in opts if not isinstance(o, RFactor)), opts[0]))
    return st


def _run_reductions(state: State, target: str) -> tuple[str, str]:
    """Apply ``state`` to a fresh build of the two reductions, run, check the sums; (source, loop nest)."""
    img, outs = sum_reductions()
    p = hl.Pipeline(outs)
    src = schedule_source(state)
    apply_source(src, p)
    a = np.random.default_rng(1).random((6, 300), dtype=np.float32)
    img.set(hl.Buffer(a))
    total, rows = hl.Buffer(hl.Float(32), []), hl.Buffer(hl.Float(32), [6])
    p.realize([total, rows], hl.Target(target))
    np.testing.assert_allclose(float(np.asarray(total)), a.sum(dtype=np.float64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(rows), 2 * a.sum(axis=1, dtype=np.float64), rtol=1e-5)
    return src, loop_nest(p)


def _normalized(nest: str) -> str:
    return re.sub(r"(?<=[A-Za-z_])\d+", "#", nest)


# ------------------------------------------------------------------------------------------ plans, source

def test_cpu_rfactor_plan_vectorises_and_parallelises_the_partial_results():
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    total, rows = _index(dag, "total"), _index(dag, "rows")
    s = _to_slot(State.initial(dag, AVX2, parallelism=4), ("inner", rows, 1))
    # 32 partial sums of the rows: 4 tasks of one 8-lane vector each, the RVar's outer part between
    plan = s.apply(RFactor(rows, 1, 0, 32)).plan(rows, 1)
    intm = plan.rfactor.intm[1]
    assert [(l.level, l.extent) for l in intm.loops] == [("vector", 8), ("rvar", 10), ("inner", 6), ("parallel", 4)]
    assert plan.rfactor.storage and plan.rfactor.storage[0] == plan.rfactor.var
    assert [(l.level, l.extent) for l in plan.loops] == [("rvar", 32), ("inner", 6)]
    assert s.apply(RFactor(rows, 1, 0, 32)).site_loops(rows, 1) == []
    # one vector of partial sums: the pure loop is the parallel one
    intm = s.apply(RFactor(rows, 1, 0, 8)).plan(rows, 1).rfactor.intm[1]
    assert [(l.level, l.extent) for l in intm.loops] == [("vector", 8), ("rvar", 38), ("inner", 1), ("parallel", 6)]
    # not a multiple of the vector width: serial partial results, in parallel
    intm = s.apply(RFactor(rows, 1, 0, 12)).plan(rows, 1).rfactor.intm[1]
    assert [(l.level, l.extent) for l in intm.loops] == [("rvar", 25), ("inner", 6), ("parallel", 12)]
    assert intm.vectorize is None
    # total() has no pure loop and two RVars: the other RVar stays serial, in its place
    s = _to_slot(State.initial(dag, AVX2, parallelism=4), ("inner", total, 1))
    plan = s.apply(RFactor(total, 1, 0, 64)).plan(total, 1)
    assert [(l.level, l.extent) for l in plan.rfactor.intm[1].loops] == [
        ("vector", 8), ("rvar", 5), ("rvar", 6), ("parallel", 8)]
    assert plan.rfactor.storage == () and plan.loops[0].extent == 64


@pytest.mark.parametrize("factors", [(64, 16), (4, 8), (6, 300)])
def test_rfactored_reductions_compile_run_and_sum_right(factors):
    """Vectorised and parallel over the partial results (64, 16 with SSE's 4 lanes), one vector
    (4), not a multiple of the vector width (6), the whole RVar (300)."""
    target = _run_target()
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    total, rows = _index(dag, "total"), _index(dag, "rows")
    s = _to_slot(State.initial(dag, target, parallelism=2), ("inner", rows, 1)).apply(RFactor(rows, 1, 0, factors[0]))
    s = _to_slot(s, ("inner", total, 1)).apply(RFactor(total, 1, 0, factors[1]))
    s = _finish(s)
    src, nest = _run_reductions(s, target)
    assert src.count(".rfactor(") == 2 and ".atomic()" not in src and "gpu_" not in src
    if factors[0] % 4 == 0:
        assert ".vectorize(rf1_u_v)" in src and "vectorized rf1_u" in nest
    assert "parallel" in nest


def test_source_and_json_replay_on_a_fresh_build_with_the_same_loop_nest():
    target = _run_target()
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    for seed in range(6):
        st = random_state(dag, target, random.Random(seed), parallelism=2)
        _, outs = sum_reductions()
        original = state_loop_nest(st, hl.Pipeline(outs))
        src, nest = _run_reductions(st, target)
        # the same loops; Halide names rfactor intermediates uniquely per process (rows_intm, then
        # rows_1_intm, ...) and orders independent Funcs' produce blocks by name, so names and block
        # order depend on what was built before in the process
        def shape(text: str) -> list[str]:
            return sorted(re.sub(r"(_#)?_intm", "", _normalized(text)).splitlines())
        assert shape(nest) == shape(original)
        _, outs = sum_reductions()
        again = State.from_json(FunctionDAG.from_pipeline(hl.Pipeline(outs)), st.to_json())
        assert again == st and schedule_source(again) == src
        traced = State.from_trace(again.space.dag, [d.to_dict() for d in st.decisions], target, parallelism=2)
        assert traced == st
        assert traced.plan(_index(dag, "total"), 1) == st.plan(_index(dag, "total"), 1)


# ------------------------------------------------------------------------------------------ workloads

def _spec_outputs(name: str, state: State, sizes: dict[str, int], target: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(outputs of ``state``, outputs of compute_root-everything) of workload ``name``."""
    spec = halide_pipelines.get(name)
    inputs = spec.make_inputs(0, **sizes)
    t = hl.Target(target)
    built = spec.build(**sizes)
    p = built.pipeline()
    apply_source(schedule_source(state), p)
    out = halide_pipelines.realize(built, inputs, t, pipeline=p)
    return out, root_outputs(spec, sizes, inputs, t)


def _assert_close(name: str, out: list[np.ndarray], ref: list[np.ndarray]) -> None:
    spec = halide_pipelines.get(name)
    assert len(out) == len(ref)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o.astype(np.float64), r.astype(np.float64), rtol=spec.rtol, atol=spec.atol)


@pytest.mark.parametrize("name,loss,rvar,factors", [("ae_train_step", "bce_sum", 0, (4, 3)),
                                                     ("vae_train_step", "bce_sum", 0, (4, 3)),
                                                     ("vae_train_step", "kl_sum", 1, (4, 2))])
def test_training_losses_rfactored_match_compute_root(name, loss, rvar, factors):
    """The loss sums of the training steps at their test sizes, rfactored by a trace (the RVars are
    too short there for the menu): vectorised (factor 4 on SSE) and not (3, 2); kl_sum split along
    the batch (its second RVar)."""
    target = _run_target()
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    f = _index(dag, loss)
    at = _to_slot(State.initial(dag, target, parallelism=2), ("inner", f, 1))
    for factor in factors:
        st = _finish(at.apply(RFactor(f, 1, rvar, factor)))
        assert st.rfactor(f, 1) == RFactor(f, 1, rvar, factor)
        out, ref = _spec_outputs(name, st, sizes, target)
        _assert_close(name, out, ref)


def test_menu_offers_rfactor_for_the_loss_and_random_states_stay_correct():
    """ae_train_step with 64 input features: the loss reduces 64 x 8 terms into one point. The menu
    offers RFactor of the longest RVar next to the ordinary choice; random states take it, and run
    right."""
    name = "ae_train_step"
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**{**spec.test_sizes, "d_in": 64, "batch": 8})
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    bce = _index(dag, "bce_sum")
    at = _to_slot(State.initial(dag, AVX2, parallelism=2), ("inner", bce, 1))
    opts = at.options()
    assert [d for d in opts if isinstance(d, RFactor)] == [RFactor(bce, 1, 0, k) for k in (8, 32, 64)]
    assert any(isinstance(d, InnerTile) for d in opts)
    # ... and not for a pure domain of parallelism x vector width x 4 points, nor an RVar under 4 vectors
    node, stage = dag.nodes[bce], dag.nodes[bce].stages[1]
    assert cpu_rfactor_options(bce, 1, node, stage, 63, [512, 8], 8, 2)
    assert not cpu_rfactor_options(bce, 1, node, stage, 64, [512, 8], 8, 2)
    assert not cpu_rfactor_options(bce, 1, node, stage, 1, [31, 8], 8, 2)
    assert [d.factor for d in cpu_rfactor_options(bce, 1, node, stage, 1, [40, 100], 8, 2)] == [8, 32, 96]
    target = _run_target()
    seen = 0
    for seed in range(40):
        st = random_state(dag, target, random.Random(seed), parallelism=2)
        if st.rfactor(bce, 1) is None:
            continue
        seen += 1
        out, ref = _spec_outputs(name, st, sizes, target)
        _assert_close(name, out, ref)
        if seen == 2:
            break
    assert seen == 2


# ------------------------------------------------------------------------------------------ legality

def test_illegal_cpu_rfactors_are_rejected_by_name():
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    rows = _index(dag, "rows")
    s = _to_slot(State.initial(dag, AVX2, parallelism=2), ("inner", rows, 1))
    with pytest.raises(IllegalDecisionError, match=r"atomic\(\) is for GPU targets only"):
        s.apply(RFactor(rows, 1, 0, 8, True))
    with pytest.raises(IllegalDecisionError, match="factor 301 must be between 2 and the RVar's extent 300"):
        s.apply(RFactor(rows, 1, 0, 301))
    with pytest.raises(IllegalDecisionError, match="factor 1 must be between 2"):
        s.apply(RFactor(rows, 1, 0, 1))
    with pytest.raises(IllegalDecisionError, match="no RVar number 1"):
        s.apply(RFactor(rows, 1, 1, 8))
    assert s.apply(RFactor(rows, 1, 0, 300)).rfactor(rows, 1).factor == 300
    # a scan is not a reduction
    iir = FunctionDAG.from_pipeline(halide_pipelines.get("iir_blur").build(
        **halide_pipelines.get("iir_blur").test_sizes).pipeline())
    f = _index(iir, "blur_y_cols")
    s = _to_slot(State.initial(iir, AVX2, parallelism=2), ("inner", f, 2))
    with pytest.raises(IllegalDecisionError, match="cannot be rfactored: its left-hand side"):
        s.apply(RFactor(f, 2, 0, 4))
    assert not any(isinstance(d, RFactor) for d in s.options())
    # a Func computed at a consumer's loop: only root Funcs' updates
    spec = halide_pipelines.get("conv_layer")
    conv_dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    conv = _index(conv_dag, "conv")
    s = _to_slot(State.initial(conv_dag, AVX2, parallelism=2), ("place", conv, -1))
    at = next(p for p in s.options() if p.where == "at")
    s = s.apply(at)
    s = s.apply(s.options()[0])
    s = s.apply(s.options()[0])
    assert s.slot == ("inner", conv, 1)
    with pytest.raises(IllegalDecisionError, match="only root Funcs' updates are rfactored"):
        s.apply(RFactor(conv, 1, 0, 2))
    # a pure stage is not an update
    s = _to_slot(State.initial(dag, AVX2, parallelism=2), ("inner", rows, 0))
    with pytest.raises(IllegalDecisionError, match="not an update with RVars"):
        s.apply(RFactor(rows, 0, 0, 2))


# ------------------------------------------------------------------------------------------ features

def test_features_of_an_rfactored_loss_show_its_vectors_and_tasks():
    spec = halide_pipelines.get("ae_train_step")
    sizes = spec.sizes(**{**spec.test_sizes, "d_in": 64, "batch": 8})
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    bce = _index(dag, "bce_sum")
    at = _to_slot(State.initial(dag, AVX2, parallelism=2), ("inner", bce, 1))
    fz = featurizer_for(at)
    undecided = fz.features(at)
    rf = at.apply(RFactor(bce, 1, 0, 32))                      # 4 tasks of one 8-lane vector each
    plain = at.apply(InnerTile(bce, 1, None, 8, ()))
    plain = plain.apply(plain.options()[0])
    row = fz.row[(bce, 1)]
    a, b = fz.features(plain)[row], fz.features(rf)[row]
    # the incremental cache must tell the rfactored stage from the undecided one (same inner/outer)
    fresh = Featurizer(rf.space).features(rf)[row]
    np.testing.assert_array_equal(b, fresh)
    assert not np.array_equal(undecided[row], b)
    assert np.isfinite(b).all()
    assert b[FI["vector_size"]] == 8 and a[FI["vector_size"]] == 1
    assert b[FI["inner_parallelism"]] == 4 and a[FI["inner_parallelism"]] == 1
    assert b[FI["num_vectors"]] == 64 * 8 / 8 and b[FI["num_scalars"]] == 0
    assert b[FI["vector_loads_per_vector"]] > a[FI["vector_loads_per_vector"]]     # dense loads along r.x
    # the rest of the pipeline is featurized the same way, complete states too
    full = _finish(rf)
    F = fz.features(full)
    assert np.isfinite(F).all() and F[row, FI["vector_size"]] == 8
    factors = stage_factors(full)
    assert np.isfinite(factors).all() and factors[row] == 1.0

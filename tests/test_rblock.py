"""Reduction blocks (``OuterTile.rblock``): the outermost RVar of a root Kernel update cut into blocks
whose loop sits outside a task's register-tile loops: menu, legality, plan, features, source, results."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

import halide as hl
from autoscheduler.apply import schedule_source, state_loop_nest
from autoscheduler.dag import FunctionDAG
from autoscheduler.features.featurizer import Featurizer
from autoscheduler.schedules import apply_source
from autoscheduler.state import IllegalDecisionError, Kernel, OuterTile, Place, State, decision_from_dict
from autoscheduler.state.decisions import LEVEL_INNER, LEVEL_RVAR, LEVEL_UNROLL, LEVEL_VECTOR
from autoscheduler.state.state import rblock_size
from halide_pipelines.spec import set_input_estimates

SSE = "x86-64-linux-sse41"          # 4 x f32 vectors: quick compiles
F, N, R = 40, 24, 300                # R: the reduction, long enough for blocks


def _dense(r: int = R, root: bool = False) -> tuple[hl.Pipeline, hl.ImageParam, hl.ImageParam]:
    """out(f, n) = relu(a(f, n)), a(f, n) = sum_r W(f, r) x(r, n): a dense layer (``root``: with
    ``a`` computed at root and nothing else scheduled, the reference)."""
    W = hl.ImageParam(hl.Float(32), 2, "W")
    X = hl.ImageParam(hl.Float(32), 2, "X")
    f, n = hl.Var("f"), hl.Var("n")
    k = hl.RDom([(0, r)], "k")
    a, out = hl.Func("a"), hl.Func("out")
    a[f, n] = 0.0
    a[f, n] += W[f, k.x] * X[k.x, n]
    out[f, n] = hl.max(a[f, n], 0.0)
    set_input_estimates(W, [F, r])
    set_input_estimates(X, [r, N])
    out.set_estimate(f, 0, F).set_estimate(n, 0, N)
    if root:
        a.compute_root()
    return hl.Pipeline([out]), W, X


def _func(dag: FunctionDAG, name: str) -> int:
    return next(n.index for n in dag.nodes if n.name.split("$")[0] == name)


def _walk(dag: FunctionDAG, rblock: Optional[int], r: int = R) -> State:
    """The first offer at every slot, ``a`` at root with a Kernel; its update's task grid with
    reduction blocks of ``rblock`` (None: the first offered with blocks; 0: without)."""
    a = _func(dag, "a")
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        pick = opts[0]
        if any(isinstance(d, Place) and d.func == a for d in opts):
            pick = next(d for d in opts if isinstance(d, Place) and d.where == "root")
        elif any(isinstance(d, Kernel) for d in opts):
            pick = next(d for d in opts if isinstance(d, Kernel))
        elif any(isinstance(d, OuterTile) and d.func == a and d.stage == 1 for d in opts):
            grids = [d for d in opts if isinstance(d, OuterTile) and d.parallel and not d.sub]
            blocked = [d for d in grids if d.rblock]
            if rblock is None:
                if not blocked:
                    raise LookupError(f"no blocked grid offered among {grids}")
                pick = blocked[0]
            else:
                base = next(d for d in grids if not d.rblock)
                pick = OuterTile(base.func, base.stage, base.tiles, True, (), rblock)
        st = st.apply(pick)
    return st


def _run(p: hl.Pipeline, W: hl.ImageParam, X: hl.ImageParam, w: np.ndarray, x: np.ndarray,
         shape: list[int]) -> np.ndarray:
    W.set(hl.Buffer(w))
    X.set(hl.Buffer(x))
    return np.asarray(p.realize(shape, hl.Target(SSE))).copy()


def test_block_size_prefers_a_divisor_of_the_reduction_near_128():
    assert rblock_size(100) == 0 and rblock_size(255) == 0
    assert rblock_size(512) == 128 and rblock_size(784) == 112 and rblock_size(300) == 150
    assert rblock_size(257) == 128          # prime: blocks of 128 with a guarded tail


def test_menu_offers_blocks_for_a_long_root_kernel_update_only():
    p, _, _ = _dense()
    dag = FunctionDAG.from_pipeline(p)
    st = _walk(dag, None)
    a = _func(dag, "a")
    out = st.outer(a, 1)
    assert out is not None and out.rblock == 150 and out.parallel
    # only the Kernel update of the root Func gets blocked grids, each also offered unblocked
    blocked = [d for d in st.decisions if isinstance(d, OuterTile) and d.rblock]
    assert blocked == [out]
    # a short reduction: no blocked grid in the menu
    p2, _, _ = _dense(r=96)
    dag2 = FunctionDAG.from_pipeline(p2)
    with pytest.raises(LookupError, match="no blocked grid"):
        _walk(dag2, None, r=96)


def test_blocked_plan_puts_the_block_loop_outside_the_register_tile_loops():
    p, _, _ = _dense()
    dag = FunctionDAG.from_pipeline(p)
    st = _walk(dag, 128)
    a = _func(dag, "a")
    plan = st.plan(a, 1)
    assert plan is not None
    levels = [l.level for l in plan.loops]
    first_inner = levels.index(LEVEL_INNER)
    rvars = [i for i, lv in enumerate(levels) if lv == LEVEL_RVAR]
    assert len(rvars) == 2
    # in-block RVar right outside the unrolled tile, block loop outside every register-tile loop
    assert rvars[0] < first_inner < rvars[1]
    assert all(lv in (LEVEL_VECTOR, LEVEL_UNROLL) for lv in levels[:rvars[0]])
    assert plan.loops[rvars[0]].extent == 128 and plan.loops[rvars[1]].extent == 3    # ceil(300 / 128)
    # the register-tile loops are no compute sites: they see one block of the reduction
    assert all(ref.level != LEVEL_INNER for ref in st.site_loops(a, 1))
    # the features see the block: the stage's row differs from the unblocked state's
    plain = _walk(FunctionDAG.from_pipeline(_dense()[0]), 0)
    rows_b = Featurizer(st.space).features(st)
    rows_p = Featurizer(plain.space).features(plain)
    k = [s.name for s in dag.featurization_order()].index(dag.nodes[a].stages[1].name)
    assert not np.array_equal(rows_b[k], rows_p[k])


@pytest.mark.parametrize("rblock", [128, 150, 7])
def test_blocked_schedule_compiles_and_matches_numpy_and_compute_root(rblock):
    """Blocks with a guarded tail (128, 7) and without (150); at the estimates and at odd sizes."""
    p, W, X = _dense()
    dag = FunctionDAG.from_pipeline(p)
    st = _walk(dag, rblock)
    src = schedule_source(st)
    assert ".split(k" in src and "hl.RVar(" in src
    rng = np.random.default_rng(rblock)
    for f, n in ((F, N), (37, 5)):
        w = rng.standard_normal((R, f)).astype(np.float32)      # W(f, r) is numpy [r, f]
        x = rng.standard_normal((n, R)).astype(np.float32)      # X(r, n) is numpy [n, r]
        p1, W1, X1 = _dense()
        nest = state_loop_nest(st, p1)
        assert "rb1_o" in nest and "rb1_i" in nest
        got = _run(p1, W1, X1, w, x, [f, n])
        want = np.maximum(x @ w, 0.0)                           # [n, f]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        p2, W2, X2 = _dense(root=True)
        np.testing.assert_allclose(got, _run(p2, W2, X2, w, x, [f, n]), rtol=1e-5, atol=1e-4)


def test_blocks_round_trip_and_old_traces_replay_unchanged():
    p, _, _ = _dense()
    dag = FunctionDAG.from_pipeline(p)
    st = _walk(dag, None)
    d = next(d for d in st.decisions if isinstance(d, OuterTile) and d.rblock)
    assert decision_from_dict(d.to_dict()) == d
    plain = OuterTile(3, 1, ((0, 8),), True)
    assert "rblock" not in plain.to_dict() and decision_from_dict(plain.to_dict()).rblock == 0
    again = State.from_json(FunctionDAG.from_pipeline(_dense()[0]), st.to_json())
    assert again == st and schedule_source(again) == schedule_source(st)


def test_illegal_blocks_name_the_problem():
    p, _, _ = _dense()
    dag = FunctionDAG.from_pipeline(p)
    st = _walk(dag, None)
    trace = list(st.decisions)
    k = next(i for i, d in enumerate(trace) if isinstance(d, OuterTile) and d.rblock)
    d = trace[k]
    for bad, msg in ((OuterTile(d.func, d.stage, d.tiles, True, (), R), "below the outermost RVar's extent 300"),
                     (OuterTile(d.func, d.stage, d.tiles, True, (), 1), "at least 2"),
                     (OuterTile(d.func, d.stage, d.tiles, False, (), 128), "parallel tasks")):
        with pytest.raises(IllegalDecisionError, match=msg):
            State.from_trace(dag, trace[:k] + [bad] + trace[k + 1:], SSE, parallelism=2)
    # the output's (pure) stage: no RVars, no Kernel
    out = _func(dag, "out")
    j = next(i for i, d in enumerate(trace) if isinstance(d, OuterTile) and d.func == out)
    o = trace[j]
    with pytest.raises(IllegalDecisionError, match="Kernel update of a root Func"):
        State.from_trace(dag, trace[:j] + [OuterTile(o.func, o.stage, o.tiles, o.parallel, o.sub, 128)]
                         + trace[j + 1:], SSE, parallelism=2)

"""``refine_tiles``: a host Func's register tile re-chosen together with the reduction computed in it."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

import halide as hl
from autoscheduler.apply import schedule_source
from autoscheduler.dag import FunctionDAG
from autoscheduler.refine import refine_tiles
from autoscheduler.schedules import apply_source
from autoscheduler.state import InnerTile, Kernel, OuterTile, Place, State
from halide_pipelines.spec import set_input_estimates

SSE = "x86-64-linux-sse41"
F, N, B = 64, 48, 32


def _update(root: bool = False) -> tuple[hl.Pipeline, dict[str, hl.ImageParam]]:
    """out(f, n) = W(f, n) - 0.1 g(f, n), g(f, n) = sum_b D(f, b) X(n, b): a weight update with its
    gradient GEMM (``root``: g at root, the reference)."""
    W = hl.ImageParam(hl.Float(32), 2, "W")
    D = hl.ImageParam(hl.Float(32), 2, "D")
    X = hl.ImageParam(hl.Float(32), 2, "X")
    f, n = hl.Var("f"), hl.Var("n")
    b = hl.RDom([(0, B)], "b")
    g, out = hl.Func("g"), hl.Func("out")
    g[f, n] = 0.0
    g[f, n] += D[f, b.x] * X[n, b.x]
    out[f, n] = W[f, n] - hl.f32(0.1) * g[f, n]
    for P, shape in ((W, (F, N)), (D, (F, B)), (X, (N, B))):
        set_input_estimates(P, shape)
    out.set_estimate(f, 0, F).set_estimate(n, 0, N)
    if root:
        g.compute_root()
    return hl.Pipeline([out]), {"W": W, "D": D, "X": X}


def _accumulators(st: State, g: int) -> int:
    k = st.inner(g, 1)
    if not isinstance(k, Kernel):
        return 0
    n = 1
    for _, u in k.unroll:
        n *= u
    return n


def _cost(g: int):
    """Cheaper the more accumulators the reduction's Kernel keeps (what the kernel terms reward)."""
    def fn(states: Sequence[State]) -> np.ndarray:
        return np.array([100.0 - _accumulators(s, g) for s in states])
    return fn


def _start(dag: FunctionDAG) -> State:
    """out with a 1 x 2 register tile, g computed in it with the Kernel that fills it."""
    out = next(n.index for n in dag.nodes if n.name.split("$")[0] == "out")
    g = next(n.index for n in dag.nodes if n.name.split("$")[0] == "g")
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        pick = opts[0]
        tiles = [d for d in opts if isinstance(d, InnerTile) and d.func == out and d.unroll == ((1, 2),)]
        places = [d for d in opts if isinstance(d, Place) and d.func == g and d.at is not None
                  and d.at.level == "inner" and d.at.dim == 0 and d.store_at is None]
        kernels = [d for d in opts if isinstance(d, Kernel)]
        if tiles:
            pick = tiles[0]
        elif places:
            pick = places[0]
        elif kernels:
            pick = max(kernels, key=lambda d: np.prod([u for _, u in d.unroll]))
        elif any(isinstance(d, OuterTile) for d in opts):
            pick = next(d for d in opts if isinstance(d, OuterTile))
        st = st.apply(pick)
    return st


def test_refinement_retiles_the_host_and_its_reduction_together():
    p, _ = _update()
    dag = FunctionDAG.from_pipeline(p)
    g = next(n.index for n in dag.nodes if n.name.split("$")[0] == "g")
    out = next(n.index for n in dag.nodes if n.name.split("$")[0] == "out")
    st = _start(dag)
    assert st.placement(g).at.func == out and _accumulators(st, g) == 2
    cost_fn = _cost(g)
    c0 = float(cost_fn([st])[0])
    c, best, scored = refine_tiles(st, c0, cost_fn, time.perf_counter() + 60)
    assert best.is_complete and scored > 0 and c < c0 and c == float(cost_fn([best])[0])
    # the host took a bigger tile and the reduction computed in it a Kernel that fills it
    host = best.inner(out, 0)
    assert host is not None and host != st.inner(out, 0)
    acc = _accumulators(best, g)
    assert acc > 2 and acc == int(np.prod([u for _, u in host.unroll]))
    # the rest of the trace is unchanged where it still applies: g is still computed in out's tile
    assert best.placement(g) == st.placement(g)
    # legal: it compiles and computes what g at root computes
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(shape).astype(np.float32)     # kept alive: the Buffers alias them
              for k, shape in (("W", (N, F)), ("D", (B, F)), ("X", (B, N)))}
    results = []
    for pipeline, params, src in ((*_update(), schedule_source(best)), (*_update(root=True), None)):
        if src is not None:
            apply_source(src, pipeline)
        for k, prm in params.items():
            prm.set(hl.Buffer(arrays[k]))
        results.append(np.asarray(pipeline.realize([F, N], hl.Target(SSE))).copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-4)


def test_refinement_keeps_the_state_when_nothing_is_cheaper_or_time_is_up():
    p, _ = _update()
    dag = FunctionDAG.from_pipeline(p)
    st = _start(dag)
    flat = lambda states: np.full(len(states), 5.0)     # noqa: E731 - every state costs the same
    c, best, _ = refine_tiles(st, 5.0, flat, time.perf_counter() + 60)
    assert best is st and c == 5.0
    g = next(n.index for n in dag.nodes if n.name.split("$")[0] == "g")
    c, best, scored = refine_tiles(st, 98.0, _cost(g), time.perf_counter() - 1)
    assert best is st and scored == 0

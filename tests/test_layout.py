"""Storage-layout decisions on CPU (``state/layout.py``): Layout (reorder_storage) and Wrap (a
transposed copy through ``in_``): legality, replay, emitted source, correctness, features."""

from __future__ import annotations

import random
import re
import zlib
from typing import Any

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.apply import apply_state, schedule_source, state_loop_nest
from autoscheduler.dag import FunctionDAG
from autoscheduler.features.featurizer import Featurizer
from autoscheduler.features.kernel_terms import step_loads
from autoscheduler.loop_nest import loop_nest
from autoscheduler.schedules import apply_source
from autoscheduler.state import (DECISION_KINDS, Decision, IllegalDecisionError, InnerTile, Kernel, Layout, OuterTile, Place,
                                 State, Wrap, decision_from_dict)
from cost_model.features_layout import SCHEDULE_FEATURE_INDEX as FI
from shared_pipelines import root_outputs

SSE = "x86-64-linux-sse41"          # 4 x f32 vectors: quick compiles
N = 48


def _matmul_t(n: int = N) -> tuple[hl.Pipeline, hl.ImageParam, hl.ImageParam]:
    """C(i, j) = sum_k A(k, i) * B(j, k): vectorised along i, A's loads are gathers unless transposed."""
    A = hl.ImageParam(hl.Float(32), 2, "A")
    B = hl.ImageParam(hl.Float(32), 2, "B")
    i, j = hl.Var("i"), hl.Var("j")
    k = hl.RDom([(0, n)], "k")
    C = hl.Func("C")
    C[i, j] = 0.0
    C[i, j] += A[k.x, i] * B[j, k.x]
    for P in (A, B):
        P.dim(0).set_estimate(0, n)
        P.dim(1).set_estimate(0, n)
    C.set_estimate(i, 0, n).set_estimate(j, 0, n)
    return hl.Pipeline([C]), A, B


def _transpose_pipeline(n: int = 64) -> tuple[hl.Pipeline, hl.ImageParam]:
    """f(x, y) = 2 in(x, y); g(x, y) = f(y, x) + 1: g vectorised along x reads f along f's dimension 1."""
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    x, y = hl.Var("x"), hl.Var("y")
    f, g = hl.Func("f"), hl.Func("g")
    f[x, y] = inp[x, y] * 2.0
    g[x, y] = f[y, x] + 1.0
    inp.dim(0).set_estimate(0, n)
    inp.dim(1).set_estimate(0, n)
    g.set_estimate(x, 0, n).set_estimate(y, 0, n)
    return hl.Pipeline([g]), inp


def _run(p: hl.Pipeline, params: list[tuple[hl.ImageParam, np.ndarray]], shape: list[int]) -> np.ndarray:
    for prm, arr in params:
        prm.set(hl.Buffer(arr))
    return np.asarray(p.realize(shape, hl.Target(SSE))).copy()


def _normalized(nest: str) -> str:
    return re.sub(r"(?<=[A-Za-z_])\d+", "#", nest)


def _pick_layouts(state: State, rng: random.Random, p: float = 0.8) -> State:
    """A random complete state that takes an offered Layout / Wrap with probability ``p``."""
    while not state.is_complete:
        opts = state.options()
        extra = [d for d in opts if isinstance(d, (Layout, Wrap))]
        state = state.apply(rng.choice(extra) if extra and rng.random() < p else rng.choice(opts))
    return state


def _matmul_state(dag: FunctionDAG, wrap: bool) -> State:
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        w = [d for d in opts if isinstance(d, Wrap)]
        st = st.apply(w[0] if (w and wrap) else next(d for d in opts if not isinstance(d, (Wrap, Layout))))
    return st


def test_features_after_layouts_and_wraps_start_from_the_parents_memo():
    """Wraps and Layouts place no Func: their children reuse the parent's untouched groups
    (``features.featurizer``), which must equal the features computed in full."""
    from test_features import search_walk_features_agree
    kinds: set[str] = set()
    for seed in range(3):
        for p in (_matmul_t()[0], _two_readers()[0], _transpose_pipeline()[0]):
            _, k = search_walk_features_agree(FunctionDAG.from_pipeline(p), SSE, seed, parallelism=2)
            kinds |= k
    assert {"wrap", "layout"} <= kinds


# ------------------------------------------------------------------------------------------ vocabulary

def test_decisions_round_trip_through_dicts_and_json():
    assert "layout" in DECISION_KINDS and "wrap" in DECISION_KINDS
    for d in (Layout(3, (1, 0, 2)), Wrap(0, 2, (1, 0))):
        assert decision_from_dict(d.to_dict()) == d
    p, _, _ = _matmul_t()
    dag = FunctionDAG.from_pipeline(p)
    st = _matmul_state(dag, wrap=True)
    assert any(isinstance(d, Wrap) for d in st.decisions)
    again = State.from_json(FunctionDAG.from_pipeline(_matmul_t()[0]), st.to_json())
    assert again == st and again.wraps() == st.wraps()
    # the optional decisions do not move the slot: the trace without them replays unchanged
    plain = State.from_trace(dag, [d for d in st.decisions if not isinstance(d, Wrap)], SSE, parallelism=2)
    assert plain.is_complete and not plain.wraps()


def test_illegal_layouts_and_wraps_name_the_problem():
    p, _ = _transpose_pipeline()
    dag = FunctionDAG.from_pipeline(p)
    f = next(n.index for n in dag.nodes if n.name.startswith("f"))
    g = next(n.index for n in dag.nodes if n.name.startswith("g"))
    inp = next(n.index for n in dag.nodes if n.is_input)
    st = State.initial(dag, SSE, parallelism=2)
    st = st.apply(Place(g, "root")).apply(InnerTile(g, 0, 0, 4))
    with pytest.raises(IllegalDecisionError, match="output Func"):
        st.apply(Layout(g, (1, 0)))
    with pytest.raises(IllegalDecisionError, match="pipeline input"):
        st.apply(Layout(inp, (1, 0)))
    with pytest.raises(IllegalDecisionError, match="not read directly"):
        st.apply(Wrap(inp, g, (1, 0)))
    st = st.apply(OuterTile(g, 0, ((1, 16),), True))
    inl = st.apply(Place(f, "inline"))
    with pytest.raises(IllegalDecisionError, match="inlined"):
        inl.apply(Layout(f, (1, 0)))
    root = st.apply(Place(f, "root"))
    with pytest.raises(IllegalDecisionError, match="comes right after"):
        root.apply(Layout(f, (1, 0)))          # before f's inner decision
    root = root.apply(InnerTile(f, 0, 0, 4))
    for bad in ((0, 0), (1,), (0, 1, 2), (2, 0)):
        with pytest.raises(IllegalDecisionError, match="not a permutation"):
            root.apply(Layout(f, bad))
    with pytest.raises(IllegalDecisionError, match="not a permutation"):
        root.apply(Wrap(inp, f, (1, 1)))
    lay = root.apply(Layout(f, (1, 0)))
    with pytest.raises(IllegalDecisionError, match="already has a Layout"):
        lay.apply(Layout(f, (0, 1)))
    # a Func wrapped for its consumer must be computed at root (the copy is)
    pm, _, _ = _matmul_t()
    # matmul has only inputs as producers: wrap g's Func producer f in the transpose pipeline instead
    w = State.initial(dag, SSE, parallelism=2).apply(Place(g, "root")).apply(InnerTile(g, 0, 0, 4))
    w = w.apply(Wrap(f, g, (1, 0))).apply(OuterTile(g, 0, ((1, 16),), True))
    with pytest.raises(IllegalDecisionError, match="must be compute_root"):
        w.apply(Place(f, "inline"))
    assert w.options() == [Place(f, "root")]
    gpu = State.initial(dag, "host-cuda", parallelism=2)
    gpu = gpu.apply(gpu.options()[0])
    gpu = gpu.apply(gpu.options()[0])
    with pytest.raises(IllegalDecisionError, match="CPU-only"):
        gpu.apply(Wrap(f, g, (1, 0)))


# ------------------------------------------------------------------------------------------ menu

def _summed_transposed(n: int = 64) -> tuple[hl.Pipeline, hl.ImageParam]:
    """f(x, y) = 2 in(x, y); g(x, y) = sum_k f(k, x) (y + 1): g vectorised along x reads f along f's
    dimension 1, each element of f n times."""
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    x, y = hl.Var("x"), hl.Var("y")
    k = hl.RDom([(0, n)], "k")
    f, g = hl.Func("f"), hl.Func("g")
    f[x, y] = inp[x, y] * 2.0
    g[x, y] = 0.0
    g[x, y] += f[k.x, x] * hl.f32(y + 1)
    inp.dim(0).set_estimate(0, n)
    inp.dim(1).set_estimate(0, n)
    g.set_estimate(x, 0, n).set_estimate(y, 0, n)
    return hl.Pipeline([g]), inp


def _layouts_offered_to_f(p: hl.Pipeline, vdim: int) -> list[Decision]:
    """The Layout / Wrap options at f's outer slot, g root and vectorised along ``vdim`` (every stage)."""
    dag = FunctionDAG.from_pipeline(p)
    f = next(n.index for n in dag.nodes if n.name.startswith("f"))
    g = next(n.index for n in dag.nodes if n.name.startswith("g"))
    st = State.initial(dag, SSE, parallelism=2)
    while st.slot != ("outer", f, 0):
        opts = st.options()
        mine = [d for d in opts if isinstance(d, Place) and d.where == "root"] + \
            [d for d in opts if isinstance(d, (InnerTile, Kernel)) and d.func == g and d.vector_dim == vdim] + \
            [d for d in opts if isinstance(d, (InnerTile, Kernel)) and d.func == f and d.vector_dim == 0]
        st = st.apply(mine[0] if mine else next(d for d in opts if not isinstance(d, (Layout, Wrap))))
    assert any(isinstance(d, OuterTile) for d in st.options())      # the default stays offered
    return [d for d in st.options() if isinstance(d, (Layout, Wrap))]


def test_menu_offers_a_layout_only_where_a_vectorised_reader_gathers_many_times():
    """A Layout stores f along the dimension a reader loads densely, f's own vectorised stores then
    strided: worth it only when the reader loads each element many times (``MIN_LAYOUT_REUSE``; a
    reader that loads it once trades one strided pass for another)."""
    from autoscheduler.state.layout import MIN_LAYOUT_REUSE
    assert _layouts_offered_to_f(_summed_transposed(64)[0], 0) == [Layout(1, (1, 0)), Wrap(1, 2, (1, 0))]
    assert _layouts_offered_to_f(_summed_transposed(MIN_LAYOUT_REUSE - 1)[0], 0) == []
    for vdim in (0, 1):
        assert _layouts_offered_to_f(_transpose_pipeline()[0], vdim) == []   # read once per element


def test_an_input_wrap_is_offered_only_to_a_reader_that_loads_it_many_times():
    from autoscheduler.state.layout import MIN_WRAP_REUSE
    for n, offered in ((N, True), (MIN_WRAP_REUSE - 1, False)):
        p, _, _ = _matmul_t(n)
        st = _matmul_state(FunctionDAG.from_pipeline(p), wrap=True)
        assert any(isinstance(d, Wrap) for d in st.decisions) == offered, n


def _two_readers(n: int = N) -> tuple[hl.Pipeline, hl.ImageParam, hl.ImageParam]:
    """P = 2 A; out(i, j) = sum_k P(i, k) B(k, j) + sum_k P(k, i) B(k, j): vectorised along i, the
    first reduction reads P densely along P's dimension 0, the second along its dimension 1."""
    A = hl.ImageParam(hl.Float(32), 2, "A")
    B = hl.ImageParam(hl.Float(32), 2, "B")
    i, j = hl.Var("i"), hl.Var("j")
    k = hl.RDom([(0, n)], "k")
    P, C1, C2, out = hl.Func("P"), hl.Func("C1"), hl.Func("C2"), hl.Func("out")
    P[i, j] = A[i, j] * 2.0
    C1[i, j] = 0.0
    C1[i, j] += P[i, k.x] * B[k.x, j]
    C2[i, j] = 0.0
    C2[i, j] += P[k.x, i] * B[k.x, j]
    out[i, j] = C1[i, j] + C2[i, j]
    for prm in (A, B):
        prm.dim(0).set_estimate(0, n)
        prm.dim(1).set_estimate(0, n)
    out.set_estimate(i, 0, n).set_estimate(j, 0, n)
    return hl.Pipeline([out]), A, B


def test_a_root_func_read_in_two_orders_gets_a_layout_and_a_wrap():
    """At a root Func's own slot, once its storage order is known, the menu offers a transposed copy
    for a reduction consumer that would gather from it (ae_train_step's output adjoint, read by the
    dX GEMM along the batch and by the dW GEMM along the features); the schedule computes the same."""
    p, _, _ = _two_readers()
    dag = FunctionDAG.from_pipeline(p)
    P = next(n.index for n in dag.nodes if n.name.startswith("P"))
    readers = {n.index for n in dag.nodes if n.name.startswith("C")}
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        mine = [d for d in opts if isinstance(d, (Layout, Wrap)) and d.func == P] + \
            [d for d in opts if isinstance(d, Place) and d.func == P and d.where == "root"]
        st = st.apply(mine[0] if mine else next(d for d in opts if not isinstance(d, (Layout, Wrap))))
    lay = st.layout(P)
    wraps = {c: w for (q, c), w in st.wraps().items() if q == P}
    assert lay is not None and lay.order == (1, 0)
    assert len(wraps) == 1 and set(wraps) <= readers and next(iter(wraps.values())).order == (0, 1)
    with pytest.raises(IllegalDecisionError, match="already wrapped"):
        trace = list(st.decisions)
        k = next(i for i, d in enumerate(trace) if isinstance(d, Wrap))
        State.from_trace(dag, trace[:k + 1] + [trace[k]] + trace[k + 1:], SSE, parallelism=2)
    # the kernel terms count the reader's loads of the copy as dense vectors, its loads of P's own
    # (transposed) storage as gathers
    c = next(iter(wraps))
    k = next(i for i, d in enumerate(st.decisions) if isinstance(d, Wrap))
    unwrapped = State.from_trace(dag, st.decisions[:k] + st.decisions[k + 1:], SSE, parallelism=2)
    inner = st.inner(c, 1)
    assert step_loads(unwrapped, c, 1, inner) == step_loads(st, c, 1, inner) + inner.vector_width - 1
    rng = np.random.default_rng(2)
    a = rng.standard_normal((N, N)).astype(np.float32)
    b = rng.standard_normal((N, N)).astype(np.float32)
    p1, A1, B1 = _two_readers()
    src = schedule_source(st)
    assert ".in_(C" in src and "P.reorder_storage(" in src
    apply_source(src, p1)
    got = _run(p1, [(A1, a), (B1, b)], [N, N])
    # Halide X(i, j) is numpy x[j, i]: C1[j, i] = sum_k 2 a[k, i] b[j, k]; C2[j, i] = sum_k 2 a[i, k] b[j, k]
    want = (b @ (2 * a)) + (b @ (2 * a).T)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------------------------ apply

def test_wrap_source_compiles_runs_and_replays_with_the_same_loop_nest():
    p, A, B = _matmul_t()
    dag = FunctionDAG.from_pipeline(p)
    st = _matmul_state(dag, wrap=True)
    src = schedule_source(st)
    assert ".in_(C)" in src and ".reorder_storage(" in src
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, N)).astype(np.float32)
    b = rng.standard_normal((N, N)).astype(np.float32)
    pa, A1, B1 = _matmul_t()
    nest = state_loop_nest(st, pa)
    assert "A_im" in nest
    out = _run(pa, [(A1, a), (B1, b)], [N, N])
    # Halide's C(i, j) is numpy [j, i]; A(k, i) is a[i, k]; B(j, k) is b[k, j]
    np.testing.assert_allclose(out, (a @ b).T, rtol=1e-4, atol=1e-4)
    fresh, _, _ = _matmul_t()
    apply_source(src, fresh)
    assert _normalized(loop_nest(fresh)) == _normalized(nest)
    again = schedule_source(State.from_json(FunctionDAG.from_pipeline(_matmul_t()[0]), st.to_json()))
    assert again == src


def test_layout_source_reorders_storage_and_matches_compute_root():
    p, inp = _transpose_pipeline()
    dag = FunctionDAG.from_pipeline(p)
    f = next(n.index for n in dag.nodes if n.name.startswith("f"))
    g = next(n.index for n in dag.nodes if n.name.startswith("g"))
    trace: list[Decision] = [Place(g, "root"), InnerTile(g, 0, 0, 4), OuterTile(g, 0, ((1, 16),), True),
             Place(f, "root"), InnerTile(f, 0, 0, 4), Layout(f, (1, 0)), OuterTile(f, 0, ((1, 16),), True)]
    st = State.from_trace(dag, trace, SSE, parallelism=2)
    src = schedule_source(st)
    assert "f.reorder_storage(y, x)" in src
    x = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    p1, i1 = _transpose_pipeline()
    apply_state(st, p1, src)
    out = _run(p1, [(i1, x)], [64, 64])
    np.testing.assert_allclose(out, x.T * 2 + 1, rtol=1e-6)
    p2, _ = _transpose_pipeline()
    apply_source(src, p2)
    p3, _ = _transpose_pipeline()
    assert _normalized(state_loop_nest(st, p3)) == _normalized(loop_nest(p2))


@pytest.mark.parametrize("name", ["ae_forward", "ae_train_step", "conv_layer"])
def test_random_states_with_layouts_compile_run_and_match_compute_root(name):
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    target = hl.Target(SSE)
    inputs = spec.make_inputs(0, **sizes)
    root_out = root_outputs(spec, sizes, inputs, target)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    rng = random.Random(zlib.crc32(name.encode()))
    seen = 0
    for _ in range(10):                       # up to two random states that hold a Layout / Wrap
        st = _pick_layouts(State.initial(dag, SSE), rng)
        if not any(isinstance(d, (Layout, Wrap)) for d in st.decisions):
            continue
        seen += 1
        if seen > 2:
            break
        built = spec.build(**sizes)
        p = built.pipeline()
        apply_state(st, p)
        out = halide_pipelines.realize(built, inputs, target, pipeline=p)
        for o, r in zip(out, root_out):
            np.testing.assert_allclose(np.asarray(o, np.float64), np.asarray(r, np.float64),
                                       rtol=spec.rtol, atol=spec.atol, err_msg=st.to_json())
    assert seen > 0, f"no Layout / Wrap was offered in {name}"


# ------------------------------------------------------------------------------------------ features

def _row(fz: Featurizer, f: int, s: int) -> int:
    return fz.row[(f, s)]


def test_a_wrapped_transposed_read_counts_dense_vector_loads_not_gathers():
    p, _, _ = _matmul_t()
    dag = FunctionDAG.from_pipeline(p)
    wrapped = _matmul_state(dag, wrap=True)
    plain = _matmul_state(dag, wrap=False)
    fz = Featurizer(wrapped.space)
    c = next(n.index for n in dag.nodes if n.is_output)
    r = _row(fz, c, 1)
    a, b = fz.features(plain)[r], fz.features(wrapped)[r]
    width = a[FI["vector_size"]]
    assert width == 4
    # A(k, i) along i: a gather of 4 scalar loads without the copy, one dense vector load with it
    assert b[FI["vector_loads_per_vector"]] == a[FI["vector_loads_per_vector"]] + 1
    assert b[FI["scalar_loads_per_vector"]] == a[FI["scalar_loads_per_vector"]] - width
    # the cache tells the two apart, in either order
    assert (Featurizer(plain.space).features(wrapped) == fz.features(wrapped)).all()
    assert (fz.features(plain) == a[None]).any()


def test_a_layout_makes_the_readers_loads_dense():
    p, _ = _transpose_pipeline()
    dag = FunctionDAG.from_pipeline(p)
    f = next(n.index for n in dag.nodes if n.name.startswith("f"))
    g = next(n.index for n in dag.nodes if n.name.startswith("g"))
    head: list[Decision] = [Place(g, "root"), InnerTile(g, 0, 0, 4), OuterTile(g, 0, ((1, 16),), True),
            Place(f, "root"), InnerTile(f, 0, 0, 4)]
    tail: list[Decision] = [OuterTile(f, 0, ((1, 16),), True)]
    plain = State.from_trace(dag, head + tail, SSE, parallelism=2)
    laid = State.from_trace(dag, head + [Layout(f, (1, 0))] + tail, SSE, parallelism=2)
    fz = Featurizer(plain.space)
    a, b = fz.features(plain), fz.features(laid)
    rg, rf = _row(fz, g, 0), _row(fz, f, 0)
    assert a[rg, FI["vector_loads_per_vector"]] == 0 and a[rg, FI["scalar_loads_per_vector"]] == 4
    assert b[rg, FI["vector_loads_per_vector"]] == 1 and b[rg, FI["scalar_loads_per_vector"]] == 0
    # f's innermost storage is now its dimension 1 (y): its innermost bytes follow
    assert b[rf, FI["innermost_bytes_at_production"]] != a[rf, FI["innermost_bytes_at_production"]] or \
        b[rf, FI["innermost_bytes_at_realization"]] == a[rf, FI["innermost_bytes_at_realization"]]
    assert (Featurizer(plain.space).features(laid) == b).all()


def test_a_scheduled_pipeline_with_wrappers_is_refused_in_one_line():
    """Autoscheduling a pipeline a Wrap schedule was applied to: the ``in_`` wrapper Funcs are named
    and the fix is said, instead of a decoder error about realization orders."""
    from autoscheduler.api import autoschedule
    from autoscheduler.errors import UnsupportedPipelineError
    p, A, B = _matmul_t()
    st = _matmul_state(FunctionDAG.from_pipeline(_matmul_t()[0]), wrap=True)
    apply_state(st, p)
    with pytest.raises(UnsupportedPipelineError, match=r"in_\(\).*fresh, unscheduled") as e:
        autoschedule(p, SSE)
    assert "\n" not in str(e.value)

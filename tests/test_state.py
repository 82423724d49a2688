"""The CPU search space: decisions, legality, children, replay (no JIT compiles here)."""

from __future__ import annotations

import json
import random

import pytest

import halide_pipelines
from autoscheduler.dag import FunctionDAG
from autoscheduler.errors import ScheduleError
from autoscheduler.state import (DECISION_KINDS, SITE_LEVELS, UNROLL_LIMIT, IllegalDecisionError, InnerTile,
                                 Kernel, Layout, LoopRef, OuterTile, Place, RFactor, State, Wrap,
                                 decision_from_dict, random_state)
from autoscheduler.state.tilings import inner_options, tile_counts

AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"   # fixed natural vector widths: 8 x f32, 32 x u8


def _dag(name: str) -> FunctionDAG:
    spec = halide_pipelines.get(name)
    return FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())


def _index(dag: FunctionDAG, name: str) -> int:
    return next(n.index for n in dag.nodes if n.name.split("$")[0] == name)


def _advance(state: State, until_func: int, pick=lambda opts: opts[0]) -> State:
    """Make decisions (first option unless ``pick`` says otherwise) until ``until_func`` is next."""
    while state.slot is not None and not (state.slot[0] == "place" and state.slot[1] == until_func):
        state = state.apply(pick(state.options()))
    return state


def _consumer_stages(state: State, f: int) -> set[tuple[int, int]]:
    """Non-inlined stages that use ``f``, computed from the DAG's edges directly."""
    out: set[tuple[int, int]] = set()
    todo = [f]
    while todo:
        g = todo.pop()
        for e in state.space.node(g).outgoing_edges:
            c = e.consumer.node.index
            if state.is_inlined(c):
                todo.append(c)
            else:
                out.add((c, e.consumer.index))
    return out


def _shape(plan):
    """A stage plan without Halide's names (auto-generated Var names differ between builds)."""
    return ([(l.level, l.dim, l.rvar, l.extent, l.tile_extent, l.fused) for l in plan.loops],
            [(sp.factor, sp.tail) for sp in plan.splits], plan.vectorize and plan.vectorize[1],
            len(plan.unroll), len(plan.fuses))


def test_decision_kinds_round_trip_through_dicts():
    ref = LoopRef(4, 1, "outer", 2)
    decisions = [Place(3, "root"), Place(3, "at", ref, LoopRef(4, 1, "parallel", -1)),
                 InnerTile(3, 0, 0, 8, ((0, 2), (1, 3))), InnerTile(2, 1, None, 16, ()),
                 Kernel(3, 1, 0, 8, ((2, 4),)), OuterTile(3, 1, ((0, 16), (2, 8)), True),
                 RFactor(3, 1, 0, 64, True), Layout(3, (1, 0, 2)), Wrap(0, 3, (1, 0))]
    assert sorted({d.kind for d in decisions}) == sorted(DECISION_KINDS)
    for d in decisions:
        assert decision_from_dict(json.loads(json.dumps(d.to_dict()))) == d
    with pytest.raises(IllegalDecisionError, match="unknown decision kind"):
        decision_from_dict({"kind": "fuse_everything"})
    with pytest.raises(IllegalDecisionError, match="malformed"):
        decision_from_dict({"kind": "outer", "func": 1})


def test_tile_counts_are_powers_of_two_three_and_near_divisors():
    assert tile_counts(1) == [1]
    assert tile_counts(6) == [1, 2, 3]           # 4 would pad 6 to 8 (> 1/7 waste)
    assert tile_counts(40) == [1, 2, 3, 4, 6, 8, 20]   # 20: the divisor of 40 nearest to 16
    for units in range(2, 300):
        ks = tile_counts(units)
        assert 1 in ks and len(ks) <= 8
        for k in ks:
            assert k < units and (units % k == 0 or -(-units // k) * k * 7 <= units * 8)


def test_reduction_kernels_may_tile_two_row_dimensions():
    # a pooled binary conv reduces into a 2x2 window of outputs per channel vector: the register
    # tile unrolls both window dimensions around the vector (Adams2019's unroll(x).unroll(y))
    opts = inner_options(5, 1, [0, 1, 2, 3], {0: 64, 1: 2, 2: 2, 3: 1}, 16, False, True)
    kernels = [d.unroll for d in opts if isinstance(d, Kernel) and d.vector_dim == 0]
    assert ((1, 2), (2, 2)) in kernels and ((0, 2), (1, 2), (2, 2)) in kernels
    for d in opts:
        prod = 1
        for dim, k in d.unroll:
            assert k <= {0: 4, 1: 2, 2: 2, 3: 1}[dim] or dim == d.vector_dim
            prod *= k
        assert prod <= UNROLL_LIMIT
    # a stage without RVars keeps one row dimension (an InnerTile's unrolled rows need no Kernel)
    pure = inner_options(5, 0, [0, 1, 2, 3], {0: 64, 1: 2, 2: 2, 3: 1}, 16, False, False)
    assert all(sum(dim != d.vector_dim for dim, _ in d.unroll) <= 1 for d in pure)


def test_children_of_initial_state_conv_layer():
    dag = _dag("conv_layer")
    relu, conv = _index(dag, "relu"), _index(dag, "conv")
    s0 = State.initial(dag, AVX2, parallelism=2)
    assert s0.slot == ("place", relu, -1)
    # the output is compute_root, and nothing else
    assert [c.decisions[-1] for c in s0.children()] == [Place(relu, "root")]
    s1 = s0.children()[0]
    inner = s1.options()
    # output: vectorised along its innermost (stride-1) dimension, 8 lanes of f32 on AVX2
    assert inner and all(isinstance(d, InnerTile) and d.vector_dim == 0 and d.vector_width == 8 for d in inner)
    assert all(k >= 2 for d in inner for _, k in d.unroll)
    s2 = s1.apply(inner[0])
    outer = s2.options()
    assert outer and all(d.parallel for d in outer)       # root Funcs get a parallel task grid
    s3 = s2.apply(outer[0])
    assert s3.slot == ("place", conv, -1)
    places = s3.options()
    wheres = {p.where for p in places}
    assert wheres == {"root", "at"}                        # conv has an update: never inlined
    relu_loops = s3.site_loops(relu, 0)
    for p in places:
        if p.where == "at":
            assert p.at in relu_loops and p.at.level in SITE_LEVELS
    # conv.update(0) reduces over RVars: RVars are never vectorised, unrolled or tiled
    s4 = s3.apply(Place(conv, "at", relu_loops[0]))
    s5 = s4.apply(s4.options()[0])
    s6 = s5.apply(s5.options()[0])
    assert s6.slot == ("inner", conv, 1)
    upd = s6.options()
    pure = {l.pure_dim for l in dag.nodes[conv].stages[1].pure_loops}
    assert {type(d) for d in upd} == {InnerTile, Kernel}
    for d in upd:
        assert d.vector_dim in pure and all(dim in pure for dim, _ in d.unroll)
        if isinstance(d, InnerTile):
            assert d.unroll == ()                          # RVars sit right outside the vector
    k = next(d for d in upd if isinstance(d, Kernel))
    s7 = s6.apply(k)
    for o in s7.options():
        assert not o.parallel                              # conv is not at root
        s8 = s7.apply(o)
        plan = s8.plan(conv, 1)
        levels = [l.level for l in plan.loops]
        rv = [l for l in plan.loops if l.level == "rvar"]
        assert [l.var for l in rv] == [l.var for l in dag.nodes[conv].stages[1].rvar_loops]
        # micro-kernel: vector, unrolled register tile, then the RVars outside it
        assert levels[0] == "vector" and levels.index("rvar") > levels.index("unroll")
        assert all(l.dim in pure for l in plan.loops if l.level in ("vector", "unroll", "inner", "outer"))


def test_children_offer_inline_root_and_consumer_loops():
    dag = _dag("blur")
    bx, by = _index(dag, "blur_x"), _index(dag, "blur_y")
    s = _advance(State.initial(dag, AVX2, parallelism=2), bx)
    places = s.options()
    assert Place(bx, "inline") in places and Place(bx, "root") in places
    ats = [p for p in places if p.where == "at"]
    assert ats and all(p.at.func == by for p in ats)
    assert {p.at for p in ats} <= set(s.site_loops(by, 0))
    # store_at only right outside the compute loop, in the same consumer stage
    loops = s.site_loops(by, 0)
    for p in places:
        if p.store_at is not None:
            assert loops.index(p.store_at) == loops.index(p.at) - 1


def test_several_consumers_only_common_ancestor_loops():
    dag = _dag("hist_eq")
    luma = _index(dag, "luma")
    for seed in range(30):
        rng = random.Random(seed)
        s = _advance(State.initial(dag, AVX2, parallelism=2), luma, lambda o: o[rng.randrange(len(o))])
        consumers = _consumer_stages(s, luma)
        assert len(consumers) >= 2
        paths = [set(s.stage_path(c, st)) for c, st in consumers]
        for p in s.options():
            if p.where == "at":
                assert all(p.at in path for path in paths), (seed, p)
        if not set.intersection(*paths):
            assert {p.where for p in s.options()} <= {"inline", "root"}


def test_illegal_decisions_are_rejected():
    dag = _dag("multi_output")
    blurred, grad, by, bx = (_index(dag, n) for n in ("blurred", "grad_mag", "blur_y", "blur_x"))
    s = State.initial(dag, AVX2, parallelism=2)
    out_first = s.slot[1]
    with pytest.raises(IllegalDecisionError, match="compute_root"):
        s.apply(Place(out_first, "inline"))
    with pytest.raises(IllegalDecisionError, match="expected the place decision"):
        s.apply(Place(bx, "root"))
    s = _advance(s, by)
    s = s.apply(Place(by, "root"))
    s = _advance(s, bx)
    # blur_x is read by blur_y only: grad_mag's loops are not a legal site
    grad_loop = s.site_loops(grad, 0)[0]
    with pytest.raises(IllegalDecisionError, match="enclosing all its uses"):
        s.apply(Place(bx, "at", grad_loop))
    by_loops = s.site_loops(by, 0)
    with pytest.raises(IllegalDecisionError, match="takes no loop"):
        s.apply(Place(bx, "root", by_loops[0]))
    s = s.apply(Place(bx, "at", by_loops[-1]))
    with pytest.raises(IllegalDecisionError, match="RVars are never vectorised"):
        s.apply(InnerTile(bx, 0, 7, 8, ()))
    with pytest.raises(IllegalDecisionError, match=f"> {UNROLL_LIMIT}"):
        s.apply(InnerTile(bx, 0, 0, 8, ((0, 4), (1, 4))))
    with pytest.raises(IllegalDecisionError, match="Kernel needs a stage with RVars"):
        s.apply(Kernel(bx, 0, 0, 8, ((1, 2),)))
    s = s.apply(InnerTile(bx, 0, 0, 8, ((1, 2),)))
    with pytest.raises(IllegalDecisionError, match="not a multiple of its register tile"):
        s.apply(OuterTile(bx, 0, ((1, 3),), False))
    with pytest.raises(IllegalDecisionError, match="only root Funcs"):
        s.apply(OuterTile(bx, 0, ((1, 4),), True))
    s.apply(OuterTile(bx, 0, ((1, 4),), False))

    dag = _dag("conv_layer")
    conv = _index(dag, "conv")
    s = _advance(State.initial(dag, AVX2, parallelism=2), conv)
    with pytest.raises(IllegalDecisionError, match="cannot be inlined"):
        s.apply(Place(conv, "inline"))
    s = s.apply(Place(conv, "root"))
    s = s.apply(s.options()[0]).apply(s.apply(s.options()[0]).options()[0])
    assert s.slot == ("inner", conv, 1)
    with pytest.raises(IllegalDecisionError, match="is the Kernel decision"):
        s.apply(InnerTile(conv, 1, 0, 8, ((1, 2),)))

    dag = _dag("hist_eq")
    hr = _index(dag, "hist_rows")
    s = _advance(State.initial(dag, AVX2, parallelism=2), hr)
    s = s.apply(Place(hr, "root"))
    s = s.apply(s.options()[0]).apply(s.apply(s.options()[0]).options()[0])
    assert s.slot == ("inner", hr, 1)
    # hist_rows(luma(rx, y), y) += 1: dimension 0 is written through an index, not a pure loop
    with pytest.raises(IllegalDecisionError, match="not a pure loop"):
        s.apply(InnerTile(hr, 1, 0, 8, ()))


def test_sliding_window_needs_a_window_that_moves():
    dag = _dag("multi_output")     # blur_x reads the input through a boundary condition
    bx, by = _index(dag, "blur_x"), _index(dag, "blur_y")
    s = _advance(State.initial(dag, AVX2, parallelism=2), by).apply(Place(by, "root"))
    s = s.apply(InnerTile(by, 0, 0, 16, ()))
    s = s.apply(OuterTile(by, 0, ((1, 8),), True))       # y in tasks of 8 rows, x inside
    loops = s.site_loops(by, 0)
    assert [(r.level, r.dim) for r in loops] == [("parallel", -1), ("inner", 1), ("inner", 0)]
    # computed per row, stored per task: the 3-row window slides down the rows
    slid = s.apply(Place(bx, "at", loops[1], loops[0]))
    assert slid.placement(bx).store_at == loops[0]
    assert Place(bx, "at", loops[1], loops[0]) in s.options()
    slid = slid.apply(InnerTile(bx, 0, 0, 16, ())).apply(OuterTile(bx, 0, (), False))
    assert {sp.tail for sp in slid.plan(bx, 0).splits} == {"GuardWithIf"}
    # x is the vector dimension: no sliding along it
    with pytest.raises(IllegalDecisionError, match="vector dimension"):
        s.apply(Place(bx, "at", loops[2], loops[1]))
    with pytest.raises(IllegalDecisionError, match="right outside"):
        s.apply(Place(bx, "at", loops[2], loops[0]))
    # blur's blur_x reads its input directly: Halide's warm-up rows would read above the image
    dag = _dag("blur")
    bx, by = _index(dag, "blur_x"), _index(dag, "blur_y")
    s = State.initial(dag, AVX2, parallelism=2).apply(Place(by, "root"))
    s = s.apply(InnerTile(by, 0, 0, 32, ())).apply(OuterTile(by, 0, ((1, 8),), True))
    loops = s.site_loops(by, 0)
    with pytest.raises(IllegalDecisionError, match="reads its input buffers further"):
        s.apply(Place(bx, "at", loops[1], loops[0]))
    assert not any(p.store_at for p in s.options())


def test_trace_and_json_rebuild_the_same_state_on_a_fresh_build():
    for name in ("conv_layer", "hist_eq", "iir_blur", "local_laplacian", "ae_train_step"):
        dag = _dag(name)
        for seed in range(3):
            st = random_state(dag, AVX2, random.Random(seed), parallelism=2)
            assert st.is_complete and st.num_decisions == len(st.decisions)
            fresh = _dag(name)
            again = State.from_trace(fresh, st.decisions, AVX2, parallelism=2)
            assert again == st
            dicts = State.from_trace(fresh, [d.to_dict() for d in st.decisions], AVX2, parallelism=2)
            assert dicts == st
            loaded = State.from_json(fresh, st.to_json())
            assert loaded == st and loaded.to_json() == st.to_json()
            for f in st.space.order:
                assert again.placement(f) == st.placement(f)
                if not st.is_inlined(f):
                    assert again.region(f) == st.region(f)
                    for s in range(len(dag.nodes[f].stages)):
                        assert _shape(again.plan(f, s)) == _shape(st.plan(f, s))
                        if name != "ae_train_step":   # auto-named Vars and RVars differ per build
                            assert again.plan(f, s) == st.plan(f, s)


def test_json_is_checked():
    dag = _dag("blur")
    st = random_state(dag, AVX2, 1, parallelism=2)
    with pytest.raises(ScheduleError, match="another pipeline"):
        State.from_json(_dag("conv_layer"), st.to_json())
    with pytest.raises(ScheduleError, match="does not parse"):
        State.from_json(dag, "{not json")
    data = json.loads(st.to_json())
    data["decisions"][0]["where"] = "inline"
    with pytest.raises(IllegalDecisionError):
        State.from_json(dag, json.dumps(data))
    with pytest.raises(IllegalDecisionError, match="complete"):
        st.apply(st.decisions[0])


@pytest.mark.parametrize("name", halide_pipelines.names())
def test_random_states_keep_the_rules(name):
    """Every random state of every workload: RVars serial and in order, only pure loops vectorised /
    unrolled / tiled / parallel, parallel only at root, every compute site encloses every use."""
    dag = _dag(name)
    for seed in range(4):
        st = random_state(dag, AVX2, random.Random(seed), parallelism=2)
        for f in st.space.order:
            node = dag.nodes[f]
            place = st.placement(f)
            assert place is not None
            if node.is_output:
                assert place.where == "root"
            if place.where == "inline":
                assert len(node.stages) == 1 and not node.is_output
                continue
            if place.where == "at":
                for c, cs in _consumer_stages(st, f):
                    assert place.at in st.stage_path(c, cs), (seed, node.name, place)
            for s, stage in enumerate(node.stages):
                plan = st.plan(f, s)
                pure = {l.pure_dim for l in stage.pure_loops}
                if plan.rfactor is not None:   # RFactor: its intermediate reduces the RVars, in order
                    rf = plan.rfactor
                    assert place.where == "root" and s > 0 and not rf.atomic
                    assert [l.var for l in rf.intm[1].loops if l.level == "rvar"] == [
                        rf.outer if l.var == rf.rvar else l.var for l in stage.rvar_loops]
                    assert [l.var for l in plan.loops if l.level == "rvar"] == [rf.inner]
                    continue
                assert [l.var for l in plan.loops if l.level == "rvar"] == [l.var for l in stage.rvar_loops]
                unrolled = 1
                for l in plan.loops:
                    if l.level in ("vector", "unroll", "inner", "outer"):
                        assert l.dim in pure and l.rvar == -1
                    if l.level == "parallel":
                        assert place.where == "root" and set(l.fused) <= pure
                    if l.level == "unroll":
                        unrolled *= l.extent
                assert unrolled <= UNROLL_LIMIT
                if plan.vectorize is not None:
                    assert plan.loops[0].level == "vector"


def test_sub_tiles_are_checked_and_round_trip():
    dag = _dag("blur")
    s = State.initial(dag, AVX2, parallelism=2)
    out = s.slot[1]
    s = s.apply(s.options()[0])                       # root
    s = s.apply(InnerTile(out, 0, 0, 8, ()))
    ext = s._extents(out, 0)
    # legal: a task grid over rows with sub-tiles of 16 columns x 4 rows
    rows = ext[1] // 2
    legal = OuterTile(out, 0, ((1, rows),), True, ((0, 16),))
    assert [l.level for l in s.apply(legal).plan(out, 0).loops].count("outer") == 1
    d = legal.to_dict()
    assert decision_from_dict(json.loads(json.dumps(d))) == legal
    assert "sub" not in OuterTile(out, 0, ((1, rows),), True).to_dict()   # old traces hash the same
    with pytest.raises(IllegalDecisionError, match="multiple of its register tile"):
        s.apply(OuterTile(out, 0, ((1, rows),), True, ((0, 12),)))
    with pytest.raises(IllegalDecisionError, match="smaller than"):
        s.apply(OuterTile(out, 0, ((1, rows),), True, ((1, rows),)))
    with pytest.raises(IllegalDecisionError, match="parallel tasks of a root"):
        s.apply(OuterTile(out, 0, ((1, rows),), False, ((0, 16),)))


@pytest.mark.parametrize("clamp_where", ["root", "inline"])
def test_a_copy_of_an_input_is_inlined_unless_its_consumers_are(clamp_where: str) -> None:
    """multi_output's input wrapper (what ``repeat_edge`` clamps) may only be inlined once the clamp
    is computed somewhere; with the clamp inlined too, the search may still place the copy."""
    spec = halide_pipelines.get("multi_output")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    clamp_node = next(n for n in dag.nodes if n.name.split("$")[0] == "repeat_edge")
    clamp = clamp_node.index
    copy = next(e.producer.index for e in clamp_node.stages[0].incoming_edges if not e.producer.is_input)
    st = State.initial(dag, "x86-64-linux-sse41", parallelism=2)
    while not (st.slot is not None and st.slot[0] == "place" and st.slot[1] == copy):
        opts = st.options()
        if st.slot is not None and st.slot[0] == "place" and st.slot[1] == clamp:
            st = st.apply(next(d for d in opts if isinstance(d, Place) and d.where == clamp_where))
        else:
            st = st.apply(opts[0])
    wheres = {d.where for d in st.options() if isinstance(d, Place)}
    assert wheres == {"inline"} if clamp_where == "root" else {"inline", "root"} <= wheres

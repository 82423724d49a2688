"""autoscheduler.dag: the FunctionDAG, checked against Halide itself.

Oracles: (a) the Adams2019 plugin's own featurization (stored fixtures made by
tests/fixtures/make_featurization_fixtures.py, or a fresh run in a child process when a workload
changed); (b) the allocations Halide makes for a compute_root schedule with outputs bounded to their
estimates (``compile_to_lowered_stmt`` text). Then one test per construct.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import halide as hl

from autoscheduler import ir
from autoscheduler.dag import FunctionDAG, PipelineFeatures, Span, describe
from autoscheduler.dag.features import OP_NAMES, classify_access
from autoscheduler.errors import EstimateError, UnsupportedPipelineError
from autoscheduler.ir import canonical_hash, decode_pipeline, serialize

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import ir_cases  # noqa: E402
import make_featurization_fixtures as fixtures  # noqa: E402

CASES = ir_cases.case_names()
CALL_ROWS = [OP_NAMES.index(n) for n in ("ImageCall", "FuncCall", "SelfCall")]


def _node(dag: FunctionDAG, base: str):
    found = [n for n in dag.nodes if ir.strip_suffix(n.name) == base]
    assert len(found) == 1, (base, [n.name for n in dag.nodes])
    return found[0]


# ------------------------------------------------------------------ (a) Adams2019 featurization


@functools.lru_cache(maxsize=None)
def _feature_comparison(case: str) -> tuple[int, list[str], list[str], bool]:
    """(stages, hard mismatches, op-histogram differences, from_fixture)."""
    p = ir_cases.build_pipeline(case)
    dec = decode_pipeline(p)
    data, from_fixture = fixtures.featurization(case, canonical_hash(dec))
    records = np.frombuffer(data, dtype=np.float32).reshape(-1, fixtures.RECORD_FLOATS)
    dag = FunctionDAG.from_pipeline(dec)
    order = dag.featurization_order()
    hard: list[str] = []
    soft: list[str] = []
    if len(order) != len(records):
        hard.append(f"{len(order)} stages but Adams2019 wrote {len(records)} records")
        return len(order), hard, soft, from_fixture
    for st, rec in zip(order, records):
        theirs = PipelineFeatures.from_vector(rec[39:])
        mine = st.features
        if not np.array_equal(mine.accesses, theirs.accesses):
            hard.append(f"{st.name}: access patterns {mine.differences(theirs)}")
        if not np.array_equal(mine.op_histogram[CALL_ROWS], theirs.op_histogram[CALL_ROWS]):
            hard.append(f"{st.name}: call counts {mine.differences(theirs)}")
        diff = mine.differences(theirs)
        if diff:
            soft.append(f"{st.name}: {'; '.join(diff)}")
    return len(order), hard, soft, from_fixture


@pytest.mark.parametrize("case", CASES)
def test_pipeline_features_match_adams2019(case):
    n, hard, soft, from_fixture = _feature_comparison(case)
    if not from_fixture:
        warnings.warn(f"{case}: featurization fixture missing or stale, Adams2019 was rerun; regenerate with "
                      "python3 tests/fixtures/make_featurization_fixtures.py")
    assert not hard, hard
    if soft:  # Halide's simplifier rewrote something ours does not: listed, not hidden
        warnings.warn(f"{case}: op histogram differs from Adams2019 in {len(soft)}/{n} stages: " + " | ".join(soft))


def test_op_histograms_mostly_exact():
    total = exact = 0
    for case in CASES:
        n, _, soft, _ = _feature_comparison(case)
        total += n
        exact += n - len(soft)
    assert total > 300
    assert exact / total >= 0.95, f"only {exact}/{total} stages have Halide's exact op histogram"


def test_feature_layout_round_trip():
    v = np.arange(287, dtype=np.float32)
    f = PipelineFeatures.from_vector(v)
    assert np.array_equal(f.vector(), v.astype(np.int64))
    m = f.matrix()
    assert m.shape == (40, 7)
    assert m[0, 0] == 7 and m[23, 6] == 7 + 24 * 7 - 1 and m[24, 0] == 175


def test_access_classification_keeps_halides_swap():
    one, zero = Fraction(1), Fraction(0)
    # f(x, y) in a 2-loop stage: pointwise, also "transpose" and "broadcast" and "slice" per Halide's tests
    assert classify_access(((one, zero), (zero, one)), 2) == (True, True, True, True)
    # f(y, x): a permutation is not pointwise
    assert classify_access(((zero, one), (one, zero)), 2) == (False, True, True, True)
    # f(x) in a 2-loop stage (a column of zeros): none of the four
    assert classify_access(((one, zero),), 2) == (False, False, False, False)
    # f(x, x) from a 1-loop stage: a column with two ones
    assert classify_access(((one,), (one,)), 1) == (False, False, False, False)
    # f(x, y, 0) from a 2-loop stage: the all-zero row allows only "slice"
    assert classify_access(((one, zero), (zero, one), (zero, zero)), 2) == (False, False, False, True)
    # unknown derivative: nothing
    assert classify_access(((None, zero), (zero, one)), 2) == (False, False, False, False)


# ------------------------------------------------------------------ (b) Halide's allocations

_ALLOC = re.compile(r"^\s*allocate (\S+)\[(\w+) \* (.*)\]")


def _lowered_allocations(outs: list, dag: FunctionDAG, tmp_path: Path) -> dict[str, list[str]]:
    p = hl.Pipeline(outs)
    out_names = {o.name() for o in outs}
    for i, n in enumerate(dag.nodes):
        f = p.get_func(i)
        assert f.name() == n.name
        if n.name not in out_names:
            f.compute_root()
    for o in outs:
        n = dag.node(o.name())
        for a, s in zip(n.args, n.estimated_region):
            o.bound(hl.Var(a), s.min, s.extent)
    # Make the input sizes and Param values what the estimates say, so Halide's extents are constants
    _, params = hl.serialize_pipeline(p, get_params=True)
    for prm in params.values():
        if prm.is_buffer():
            for d in range(prm.dimensions()):
                prm.set_min_constraint(d, prm.min_constraint_estimate(d))
                prm.set_extent_constraint(d, prm.extent_constraint_estimate(d))
        elif prm.estimate().defined():
            prm.set_min_value(prm.estimate())
            prm.set_max_value(prm.estimate())
    path = tmp_path / "lowered.stmt"
    p.compile_to_lowered_stmt(str(path), p.infer_arguments(), hl.StmtOutputFormat.Text, hl.Target("x86-64-linux"))
    out = {}
    for line in path.read_text().splitlines():
        m = _ALLOC.match(line)
        if m:
            out[m.group(1)] = [t.strip() for t in m.group(3).split(" * ")]
    return out


@pytest.mark.parametrize("case", CASES)
def test_regions_match_halide_allocations(case, tmp_path):
    outs = ir_cases.build_case(case)
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        allocs = _lowered_allocations(outs, dag, tmp_path)
    compared, symbolic, wrong = 0, [], []
    for n in dag.nodes:
        if n.is_output:
            continue
        mine = [s.extent for s in n.region_computed]
        keys = [n.name] if len(n.output_types) == 1 else [f"{n.name}.{k}" for k in range(len(n.output_types))]
        for key in keys:
            assert key in allocs, f"Halide allocated no buffer for {key}"
            want = allocs[key]
            if all(w.isdigit() for w in want):
                got = [int(w) for w in want]
                # Halide folds constant extents together when it flattens dimensions
                if got != mine and math.prod(got) != math.prod(mine):
                    wrong.append(f"{key}: Halide {got}, ours {mine}")
                compared += 1
            else:
                symbolic.append(f"{key}: Halide {want} (depends on a runtime value), ours {mine}")
    assert not wrong, wrong
    if symbolic:
        warnings.warn(f"{case}: {len(symbolic)} allocations are symbolic in Halide's lowered code and were not "
                      "compared: " + " | ".join(symbolic))
    assert compared + len(symbolic) == sum(len(n.output_types) for n in dag.nodes if not n.is_output)
    assert compared >= len(symbolic)


# ------------------------------------------------------------------ coverage: one test per construct


def test_structure_and_orders():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.rdom_updates()))
    assert [n.index for n in dag.nodes] == list(range(len(dag.nodes)))
    assert [s.id for s in dag.stages] == list(range(len(dag.stages)))
    inp, acc, scan, out = (_node(dag, b) for b in ("in_rd_im", "rd_acc", "rd_scan", "rd_out"))
    assert inp.is_input and inp.input_param == "in_rd" and not acc.is_input
    assert out.is_output and [n.name for n in dag.outputs] == [out.name]
    assert dag.adams_order()[0] is out and dag.adams_order()[-1] is inp
    assert [s.name for s in dag.featurization_order()][:3] == [out.name, f"{scan.name}.update(0)", scan.name]
    assert dag.ancestors(out) == {inp.index, acc.index, scan.index}
    assert [p.name for p in scan.producers] == [acc.name] and [c.name for c in acc.consumers] == [scan.name]


def test_rdom_update_with_predicate_and_scan():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.rdom_updates()))
    acc, scan, inp = _node(dag, "rd_acc"), _node(dag, "rd_scan"), _node(dag, "in_rd_im")
    upd = acc.stages[1]
    assert upd.is_update and upd.definition.predicate is not None
    assert [(l.rvar, l.pure) for l in upd.loops] == [(True, False), (True, False), (False, True), (False, True)]
    assert [l.rvar_span for l in upd.rvar_loops] == [Span(0, 4), Span(0, 4)]
    # rd_out reads scan(x + 1) over [0,29] x [0,24]; the scan writes [1,35] and reads back [0,34]
    assert scan.region_required == (Span(1, 30), Span(0, 24))
    assert scan.region_computed == (Span(0, 35), Span(0, 24))
    assert scan.stages[0].loop_bounds == (Span(0, 34), Span(0, 24))
    assert scan.stages[1].loop_bounds == (Span(1, 35), Span(0, 24))
    assert acc.region_required == (Span(0, 35), Span(0, 24))
    # the RVar loops widen the input's region: x + r.x, y + r.y
    assert inp.region_required == (Span(0, 39), Span(0, 28))
    e = upd.incoming_edges[0]
    assert e.producer is inp and e.calls == 1
    assert e.call_sites[0].jacobian == ((1, 0, 1, 0), (0, 1, 0, 1))


def test_multiple_outputs():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.multi_output()))
    out1, out2, f = _node(dag, "mo_out1"), _node(dag, "mo_out2"), _node(dag, "mo_f")
    assert out1.is_output and out2.is_output
    # out1 is both an output and a producer of out2
    assert [e.consumer.node for e in out1.outgoing_edges] == [out2]
    assert out1.region_required == (Span(0, 63), Span(0, 47))
    # f: x..x+2 for out1, y..y+1 for out2
    assert f.region_required == (Span(0, 65), Span(0, 48))
    assert sorted(e.consumer.node.name for e in f.outgoing_edges) == sorted([out1.name, out2.name])


def test_size_one_and_scalar_outputs():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.size_one_output()))
    mean, total, inp = _node(dag, "s1_mean"), _node(dag, "s1_total"), _node(dag, "in_s1_im")
    assert mean.region_computed == (Span(0, 0),) and mean.stages[0].points == 1
    assert total.dimensions == 0 and total.region_computed == () and total.is_output
    assert total.stages[0].points == 1 and total.stages[1].points == 37
    assert inp.region_required == (Span(0, 36),)
    assert mean.stages[0].incoming_edges[0].footprint_at_estimates == ()


def test_boundary_conditions():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.boundary_conditions()))
    inp = [n for n in dag.nodes if n.is_input]
    assert len(inp) == 1
    # repeat_edge clamps into the input's estimated box; constant_exterior selects and clamps
    assert inp[0].region_required == (Span(0, 39), Span(0, 29))
    blur = _node(dag, "bc_blur")
    for e in blur.stages[0].incoming_edges:
        assert not e.data_dependent
        assert e.footprint_at_estimates in ((Span(-1, 40), Span(0, 29)), (Span(0, 39), Span(-2, 31)))
    # the repeat_edge Funcs clamp their loads into the input's estimated box, whatever tile asks
    clamped = [e for n in dag.nodes if ir.strip_suffix(n.name) == "repeat_edge" for e in n.stages[0].incoming_edges]
    assert len(clamped) == 2 and all(not e.all_bounds_linear for e in clamped)
    assert all(e.footprint([Span(-5, 100), Span(-5, 100)]) == (Span(0, 39), Span(0, 29)) for e in clamped)
    assert all(e.call_sites[0].jacobian == ((None, 0), (0, None)) for e in clamped)
    ext = _node(dag, "constant_exterior")
    assert ext.region_required == (Span(0, 39), Span(-2, 31))


def test_tuples():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.tuples()))
    pair, out = _node(dag, "tu_pair"), _node(dag, "tu_out")
    assert len(pair.output_types) == 2 and pair.bytes_per_point == 8
    e = out.stages[0].incoming_edges[0]
    assert sorted(c.value_index for c in e.call_sites) == [0, 1] and e.calls == 2
    assert pair.region_required == (Span(0, 32), Span(0, 19))
    # one store access per Tuple element
    assert pair.stages[0].features.accesses[0, 3].sum() == 2


def test_indirect_loads():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.indirect_loads()))
    lut, out = _node(dag, "ind_lut"), _node(dag, "ind_out")
    e = [e for e in out.stages[0].incoming_edges if e.producer is lut][0]
    assert e.data_dependent and e.calls == 2
    # clamp(..., 0, 99) from the code Func's value bounds, and [0, 255] from the uint8 input's type
    assert lut.region_required == (Span(0, 255),)
    assert all(c.jacobian == ((None,),) for c in e.call_sites)


def test_histogram_scatter():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.histogram()))
    hist, inp = _node(dag, "hist"), _node(dag, "in_hist_im")
    assert hist.region_required == (Span(0, 255),)
    assert hist.region_computed == (Span(0, 255),)  # the update writes at uint8 values
    upd = hist.stages[1]
    assert [l.var for l in upd.loops] == [rv.var for rv in upd.definition.rvars]  # no pure loop
    assert upd.loop_bounds == (Span(0, 23), Span(0, 15))
    assert inp.region_required == (Span(0, 23), Span(0, 15))
    assert not hist.is_pointwise and upd.features.op_histogram[OP_NAMES.index("SelfCall")].sum() == 1


def test_propagate_adjoints_pipeline():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.adjoints()))
    assert len(dag.nodes) > 5
    w = [n for n in dag.nodes if n.input_param == "w_adj"][0]
    assert w.region_required == (Span(0, 15),)
    for n in dag.nodes:
        assert all(s.extent >= 1 for s in n.region_computed), n.name
        for s in n.stages:
            assert len(s.loop_bounds) == len(s.loops)


def test_bit_packing():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.bitpack()))
    packed, inp = _node(dag, "bits_packed"), _node(dag, "in_bits_im")
    assert packed.region_required == (Span(0, 3),)  # x / 32 for x in [0, 127]
    assert inp.region_required == (Span(0, 127),)
    e = packed.stages[1].incoming_edges[0]
    assert e.call_sites[0].jacobian == ((Fraction(1), Fraction(32)),)  # loops (r, x): x*32 + r
    unpacked = _node(dag, "bits_unpacked")
    e2 = unpacked.stages[0].incoming_edges[0]
    assert e2.call_sites[0].jacobian == ((Fraction(1, 32),),)


def test_resampling_jacobians_and_footprints():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.resample()))
    down, up, tr = _node(dag, "rs_down"), _node(dag, "rs_up"), _node(dag, "rs_tr")
    e = up.stages[0].incoming_edges[0]
    assert {c.jacobian for c in e.call_sites} == {((Fraction(1, 2), Fraction(0)), (Fraction(0), Fraction(1)))}
    # tr over [0,15] x [0,47] reads up(y, x) and up(y, x + 3)
    assert up.region_required == (Span(0, 47), Span(0, 18))
    assert down.region_required == (Span(0, 24), Span(0, 18))  # x / 2 and (x + 1) / 2
    # a tile of the consumer maps to the footprint the interval arithmetic gives
    assert e.footprint([Span(10, 17), Span(2, 3)]) == (Span(5, 9), Span(2, 3))
    t = tr.stages[0].incoming_edges[0]
    assert t.call_sites[0].jacobian == ((0, 1), (1, 0))
    assert t.footprint([Span(0, 3), Span(10, 11)]) == (Span(10, 11), Span(0, 6))
    b = t.bounds[0][0]
    assert b.affine and b.coeff == 1 and b.constant == 0 and b.consumer_dim == 1 and not b.uses_max


def test_from_bytes_matches_from_pipeline():
    p = hl.Pipeline(ir_cases.boundary_conditions())
    a = FunctionDAG.from_pipeline(p)
    data, _ = serialize(p)
    b = FunctionDAG.from_bytes(data)
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    assert [n.region_computed for n in a.nodes] == [n.region_computed for n in b.nodes]
    assert [s.features.vector().tolist() for s in a.stages] == [s.features.vector().tolist() for s in b.stages]


def test_missing_estimates_are_named():
    x = hl.Var("x")
    inp = hl.ImageParam(hl.Float(32), 1, "noest")
    g = hl.Func("g_noest")
    g[x] = inp[x]
    f = hl.Func("f_noest")
    f[x] = g[x] + 1
    f.set_estimates([(0, 10)])
    with pytest.raises(EstimateError, match="ImageParam 'noest'.*dimension 0"):
        FunctionDAG.from_pipeline(hl.Pipeline([f]))
    inp.dim(0).set_estimate(0, 10)
    h = hl.Func("h_noest")
    h[x] = g[x] * 2
    with pytest.raises(EstimateError, match=r"'h_noest(\$[0-9]+)?'.*dimension 0"):
        FunctionDAG.from_pipeline(hl.Pipeline([h]))
    n = hl.Param(hl.Int(32), "n_noest")
    r = hl.RDom([(0, n)])
    k = hl.Func("k_noest")
    k[x] = 0.0
    k[x] += g[x + r]
    k.set_estimates([(0, 10)])
    with pytest.raises(EstimateError, match="Param 'n_noest'"):
        FunctionDAG.from_pipeline(hl.Pipeline([k]))
    n.set_estimate(4)
    dag = FunctionDAG.from_pipeline(hl.Pipeline([k]))
    assert dag.node(g.name()).region_required == (Span(0, 12),)


def test_extern_stage_is_unsupported():
    x = hl.Var("x")
    inp = hl.ImageParam(hl.Float(32), 1, "ext_in")
    inp.dim(0).set_estimate(0, 8)
    e = hl.Func("ext_stage")
    e.define_extern("some_extern", [inp], hl.Float(32), 1)
    f = hl.Func("ext_out")
    f[x] = e[x]
    f.set_estimates([(0, 8)])
    with pytest.raises(UnsupportedPipelineError, match="extern"):
        FunctionDAG.from_pipeline(hl.Pipeline([f]))


def test_describe_lists_stages_and_footprints():
    dag = FunctionDAG.from_pipeline(hl.Pipeline(ir_cases.rdom_updates()))
    text = describe(dag)
    for n in dag.nodes:
        assert n.name in text
    scan = _node(dag, "rd_scan")
    assert f"stage {scan.name}.update(0): loops" in text
    assert "footprint [1,35] x [0,24]" in text or "footprint [0,35] x [0,24]" in text
    assert len(text.splitlines()) >= len(dag.stages) + len(dag.edges)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("spec:")])
def test_bundled_workloads_build(case):
    dag = FunctionDAG.from_pipeline(ir_cases.build_pipeline(case))
    assert dag.outputs and all(n.region_computed or n.dimensions == 0 for n in dag.nodes)
    for e in dag.edges:
        assert len(e.footprint_at_estimates) == e.producer.dimensions
        assert e.calls >= len(e.call_sites) >= 1


def test_constant_extents_tell_rdom_sized_funcs_from_output_sized_ones():
    """``a1`` of the autoencoder training step is sized by its RDoms (hidden x batch): constant
    extents, a constant-size allocation in Halide's lowered statement. The adjoint of ``h3`` is
    sized along its feature dimension by the updated weights' output buffer: a run-time extent
    there, its batch dimension (an RDom) constant. Outputs are run-time in every dimension."""
    import halide_pipelines
    spec = halide_pipelines.get("ae_train_step")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    const = dag.constant_extents()
    # Halide's unique names: "h3$0", and for the adjoint "h3$0_0_d_def__", or, after enough Funcs of
    # the same name in one process, "h3_38_0_d_def__" (the counter joined with "_")
    by_name = {re.sub(r"[$_]\d+(?=_\d+_d_def__)|\$\d+", "", n.name).split("_0_d_def__")[0]
               + ("_adj" if "_d_def__" in n.name else ""): n.index for n in dag.nodes}
    assert const[by_name["a1"]] == (True, True)
    assert "h3_adj" in by_name, sorted(by_name)
    assert const[by_name["h3_adj"]] == (False, True)
    assert const[by_name["W1_new"]] == (False, False)
    # the nodes' own bounds are untouched by the analysis
    assert [s.extent for s in dag.node(next(n.name for n in dag.nodes if n.name.startswith("a1$"))).region_computed] == \
        [spec.test_sizes["d_hidden"], spec.test_sizes["batch"]]

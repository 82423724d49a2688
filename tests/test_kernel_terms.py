"""Accumulator terms of reductions (features/kernel_terms.py) and how the cost model and search use them.

The conv layer at its default size is the case that motivated them: the register-tiled micro-kernel
computed per tile of the output is 3-4x faster than the shapes Halide's weights prefer.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import halide as hl

import halide_pipelines
from autoscheduler.api import autoschedule
from autoscheduler.cost import CostModel
from autoscheduler.dag import FunctionDAG
from autoscheduler.features.kernel_terms import constant_extents_at_site, stage_factors, stage_terms
from autoscheduler.state import InnerTile, Kernel, LoopRef, OuterTile, Place, State

AVX512 = "x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41"   # 16 x f32 vectors


@pytest.fixture(scope="module")
def conv():
    spec = halide_pipelines.get("conv_layer")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.default_sizes).pipeline())
    names = [n.name.split("$")[0] for n in dag.nodes]
    return dag, names.index("relu"), names.index("conv")


def _conv_state(dag, relu, conv, *, site: str, kernel: bool) -> State:
    """relu: 2 vectors x 6 columns per register tile, rows in parallel tasks of 8; conv computed
    at relu's innermost tile loop (``site='tile'``) or per task (``'task'``)."""
    s = State.initial(dag, AVX512, 2).apply(Place(relu, "root"))
    s = s.apply(InnerTile(relu, 0, 0, 16, ((0, 2), (1, 6)))).apply(OuterTile(relu, 0, ((2, 8),), True))
    loops = s.site_loops(relu, 0)
    at = [r for r in loops if r.level == "inner"][-1] if site == "tile" else loops[0]
    s = s.apply(Place(conv, "at", at))
    s = s.apply(InnerTile(conv, 0, 0, 16, ((0, 2), (1, 6)))).apply(OuterTile(conv, 0, (), False))
    upd = Kernel(conv, 1, 0, 16, ((0, 2), (1, 6))) if kernel else InnerTile(conv, 1, 0, 16, ())
    return s.apply(upd).apply(OuterTile(conv, 1, (), False))


def test_micro_kernel_in_registers_only_when_it_is_the_whole_region(conv):
    dag, relu, c = conv
    tile = _conv_state(dag, relu, c, site="tile", kernel=True)
    assert constant_extents_at_site(tile, c)
    t = stage_terms(tile, c, 1)
    assert t is not None and t.accumulators == 12 and t.in_registers and t.factor == 1.0
    per_task = _conv_state(dag, relu, c, site="task", kernel=True)
    assert not constant_extents_at_site(per_task, c)
    t = stage_terms(per_task, c, 1)
    assert t is not None and not t.in_registers and t.factor >= 2.0
    # one accumulator per RVar step: latency-bound, 4 cycles x 2 ports
    single = stage_terms(_conv_state(dag, relu, c, site="tile", kernel=False), c, 1)
    assert single is not None and single.accumulators == 1 and single.factor == 8.0
    # stages without RVars (relu, conv's pure stage) are never scaled
    assert stage_terms(tile, relu, 0) is None and stage_terms(tile, c, 0) is None
    f = stage_factors(tile)
    assert f.shape == (len(dag.featurization_order()),) and np.all(f == 1.0)


def test_placed_but_untiled_reduction_gets_the_best_tile_it_can_still_have(conv):
    dag, relu, c = conv
    s = State.initial(dag, AVX512, 2).apply(Place(relu, "root"))
    s = s.apply(InnerTile(relu, 0, 0, 16, ((0, 2), (1, 6)))).apply(OuterTile(relu, 0, ((2, 8),), True))
    loops = s.site_loops(relu, 0)
    at_tile = s.apply(Place(c, "at", [r for r in loops if r.level == "inner"][-1]))
    at_task = s.apply(Place(c, "at", loops[0]))
    assert stage_terms(at_tile, c, 1).factor == 1.0          # 12 vectors fit: a Kernel can be in registers
    assert stage_terms(at_task, c, 1).factor >= 2.0          # no tile of it stays in registers
    assert stage_terms(s, c, 1) is None                      # not placed yet: no opinion


def test_cost_model_ranks_the_register_micro_kernel_first(conv):
    dag, relu, c = conv
    states = [_conv_state(dag, relu, c, site="tile", kernel=True),
              _conv_state(dag, relu, c, site="task", kernel=True),
              _conv_state(dag, relu, c, site="tile", kernel=False)]
    model = CostModel.load(None, parallelism=2)
    with_terms = model.predict(states)
    assert int(np.argmin(with_terms)) == 0
    model.kernel_terms = False
    plain = model.predict(states)
    assert np.all(with_terms >= plain * (1 - 1e-6))           # factors only ever scale up
    assert with_terms[2] > plain[2] and with_terms[0] == pytest.approx(plain[0])   # factor 1: unchanged


def test_training_predicts_what_the_search_ranks_by(conv):
    """Fine-tuning trains through the kernel factors: the training-side prediction of a schedule is
    the cost the search scores it with (otherwise fine-tuning would learn to rank without the
    factors the search then multiplies in)."""
    from cost_model.dataset import PipelineData
    from cost_model.train import log_predictions
    from autoscheduler.features import featurizer_for
    from autoscheduler.features.kernel_terms import batch_factors
    dag, relu, c = conv
    states = [_conv_state(dag, relu, c, site="tile", kernel=True),
              _conv_state(dag, relu, c, site="task", kernel=True),
              _conv_state(dag, relu, c, site="tile", kernel=False)]
    model = CostModel.load(None, parallelism=2)
    feat = featurizer_for(states[0].space)
    rows = np.stack(feat.batch(states)).astype(np.float32)
    factors = batch_factors(states)
    assert np.any(factors > 1.0)
    data = PipelineData("conv_layer", {}, "h", AVX512, "dev", 2, np.asarray(feat.pipeline, dtype=np.float32),
                        rows, np.ones(3), stage_factors=factors.astype(np.float32))
    logp, _ = log_predictions(model.net, data)
    np.testing.assert_allclose(np.exp(logp.detach().double().numpy()), model.predict(states), rtol=1e-4)
    assert data.subset([2, 0]).stage_factors.shape == (2, factors.shape[1])


def test_search_puts_conv_in_a_register_tile(conv):
    dag, relu, c = conv
    spec = halide_pipelines.get("conv_layer")
    sched = autoschedule(spec.build(**spec.default_sizes).outputs, AVX512, beam_size=16, passes=2,
                         parallelism=2)
    t = stage_terms(sched.state, c, 1)
    assert isinstance(sched.state.inner(c, 1), Kernel)
    assert t is not None and t.in_registers and t.accumulators >= 8


def test_only_accumulations_count_scans_and_histograms_do_not():
    from autoscheduler.features.kernel_terms import is_accumulation
    found = {}
    for name in ("iir_blur", "hist_eq", "conv_layer"):
        spec = halide_pipelines.get(name)
        dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
        found.update({re.sub(r"\$\d+", "", st.name): is_accumulation(st)
                      for st in dag.featurization_order() if st.definition.rvars})
    scans = [k for k in found if k.startswith(("blur_x_cols", "blur_y_cols"))]
    assert scans and not any(found[k] for k in scans)               # f(x, r) = f(x, r - 1) ...: a new row per step
    assert not found["hist_rows.update(0)"] and not found["cdf.update(0)"]  # data-dependent / scan
    assert found["hist.update(0)"] and found["conv.update(0)"]     # sums into fixed points


def test_step_loads_count_vectors_broadcasts_and_gathers(conv):
    from autoscheduler.features.kernel_terms import step_loads
    dag, relu, c = conv
    s = _conv_state(dag, relu, c, site="tile", kernel=True)
    # filter: a vector per vector of the tile; input: a broadcast per row of the tile
    assert step_loads(s, c, 1, Kernel(c, 1, 0, 16, ((1, 8),))) == 1 + 8
    assert step_loads(s, c, 1, Kernel(c, 1, 0, 16, ((0, 2), (1, 6)))) == 2 + 6
    assert step_loads(s, c, 1, Kernel(c, 1, 0, 16, ((0, 4), (1, 3)))) == 4 + 3
    # vectorised along x: the filter is broadcast, the input (channels innermost) gathered lane by lane
    assert step_loads(s, c, 1, InnerTile(c, 1, 1, 16, ())) == 1 + 16


def test_root_reduction_with_constant_tiles_keeps_its_accumulators_in_registers(conv):
    """A root Func split with RoundUp tails has a constant register tile at loop-invariant
    addresses around its RVar loop. With GuardWithIf tails (conv here: it reads the input, which
    RoundUp could overrun) the guards inside the tile keep the accumulators in memory; with RoundUp
    tails a tile unrolled along the stored-innermost dimension only stays in registers, but one
    that also unrolls rows does not: conv is sized by the output, so its row stride is a run-time
    value and LLVM cannot tell the rows apart."""
    dag, relu, c = conv
    assert dag.constant_extents()[c] == (False, False, False, False)
    s = State.initial(dag, AVX512, 2).apply(Place(relu, "root"))
    s = s.apply(InnerTile(relu, 0, 0, 16, ())).apply(OuterTile(relu, 0, ((2, 8),), True))
    s = s.apply(Place(c, "root"))
    s = s.apply(InnerTile(c, 0, 0, 16, ())).apply(OuterTile(c, 0, ((2, 8),), True))
    rows = s.apply(Kernel(c, 1, 0, 16, ((0, 2), (1, 6))))
    one_row = s.apply(Kernel(c, 1, 0, 16, ((0, 4),)))
    assert s.space.tail[c] == "GuardWithIf"
    t = stage_terms(rows, c, 1)
    assert t is not None and t.accumulators == 12 and not t.in_registers and t.factor >= 2.0
    s.space.tail[c] = "RoundUp"     # as for an internal Func that reads no input
    try:
        t = stage_terms(rows, c, 1)
        assert t is not None and t.accumulators == 12 and not t.in_registers and t.factor >= 2.0
        t = stage_terms(one_row, c, 1)
        assert t is not None and t.accumulators == 4 and t.in_registers
    finally:
        s.space.tail[c] = "GuardWithIf"


def _gemm_into_constant_rows() -> FunctionDAG:
    """``acc(f, n) = sum_r A(r, f) * B(r, n)``, read by ``out(n) = sum_{k < 32} acc(k, n)``: acc's
    dimension 0 has the constant extent 32 (an RDom), dimension 1 the output's run-time one."""
    A = hl.ImageParam(hl.Float(32), 2, "A")
    B = hl.ImageParam(hl.Float(32), 2, "B")
    f, n = hl.Var("f"), hl.Var("n")
    r, k = hl.RDom([(0, 64)], "r"), hl.RDom([(0, 32)], "k")
    acc = hl.Func("acc")
    acc[f, n] = hl.f32(0)
    acc[f, n] += A[r.x, f] * B[r.x, n]
    out = hl.Func("out")
    out[n] = hl.f32(0)
    out[n] += acc[k.x, n]
    A.set_estimates([(0, 64), (0, 32)])
    B.set_estimates([(0, 64), (0, 256)])
    out.set_estimate(n, 0, 256)
    return FunctionDAG.from_pipeline(hl.Pipeline([out]))


def test_root_rows_with_constant_strides_stay_in_registers():
    """The row stride of ``acc`` is the constant extent of its dimension 0: a root kernel that
    unrolls rows keeps its accumulators in registers (as ``a1`` of the autoencoders, 512 x 256,
    whose assembly has no store in its RVar loop)."""
    dag = _gemm_into_constant_rows()
    a = next(nd.index for nd in dag.nodes if nd.name.startswith("acc"))
    o = next(nd.index for nd in dag.nodes if nd.name.startswith("out"))
    assert dag.constant_extents()[a] == (True, False)
    s = State.initial(dag, AVX512, 2).apply(Place(o, "root"))
    s = s.apply(InnerTile(o, 0, 0, 16, ())).apply(OuterTile(o, 0, ((0, 128),), True))
    s = s.apply(InnerTile(o, 1, 0, 16, ())).apply(OuterTile(o, 1, ((0, 128),), True))
    s = s.apply(Place(a, "root"))
    s = s.apply(InnerTile(a, 0, 0, 16, ())).apply(OuterTile(a, 0, ((1, 128),), True))
    s = s.apply(Kernel(a, 1, 0, 16, ((0, 2), (1, 4))))
    s.space.tail[a] = "RoundUp"
    try:
        t = stage_terms(s, a, 1)
        assert t is not None and t.accumulators == 8 and t.in_registers
    finally:
        s.space.tail[a] = "GuardWithIf"

"""Extra schedule inputs of our network (``autoscheduler.features.extra_inputs``): a stage vectorised
across its Func's storage order scatters its stores (and an update gathers the value it updates);
the rows follow the schedule, go through the data set and its cache, and are required by a network
trained with them; a network trained through the kernel factors is scored as the search ranks."""

from __future__ import annotations

import re
from typing import Callable

import halide as hl
import numpy as np
import pytest
import torch

from autoscheduler.cost import CostModel
from autoscheduler.dag import FunctionDAG
from autoscheduler.features import network_inputs
from autoscheduler.features.extra_inputs import EXTRA_INPUT_NAMES, batch_extras, stage_extras
from autoscheduler.features.kernel_terms import batch_factors, stage_factors
from autoscheduler.state import Decision, InnerTile, Layout, Place, State, random_state
from cost_model.dataset import PipelineData
from cost_model.our_net import OurNetConfig
from cost_model.train import _predictions
from shared_pipelines import featurized_twice, tiny_ournet

AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"
SCATTER, GATHER, STALL = (EXTRA_INPUT_NAMES.index(n) for n in
                          ("scatter_store_lanes", "gathered_self_load_lanes", "accumulator_stall"))


def _pipeline() -> hl.Pipeline:
    """f(x, y) = 2 in(x, y) (a producer that can be stored either way); s(x, y) = sum_r f(x + r, y)
    (an update that can be vectorised along x or y); out(x, y) = s(x, y) + 1."""
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    x, y = hl.Var("x"), hl.Var("y")
    r = hl.RDom([(0, 8)], "r")
    f, s, out = hl.Func("f"), hl.Func("s"), hl.Func("out")
    f[x, y] = inp[x, y] * 2.0
    s[x, y] = 0.0
    s[x, y] += f[x + r.x, y]
    out[x, y] = s[x, y] + 1.0
    inp.dim(0).set_estimate(0, 72)
    inp.dim(1).set_estimate(0, 64)
    out.set_estimate(x, 0, 64).set_estimate(y, 0, 64)
    return hl.Pipeline([out])


def _complete(dag: FunctionDAG, prefer: Callable[[Decision], bool]) -> State:
    """A complete state: at each step the first offered decision ``prefer`` likes, else the first
    option that is not an optional Layout."""
    st = State.initial(dag, AVX2, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        st = st.apply(next((d for d in opts if prefer(d)), None)
                      or next(d for d in opts if not isinstance(d, Layout)))
    return st


def _rows(st: State) -> dict[str, list[float]]:
    return {re.sub(r"\$\d+", "", s.name): r.tolist()
            for s, r in zip(st.space.dag.featurization_order(), stage_extras(st))}


def _func(dag: FunctionDAG, name: str) -> int:
    return next(n.index for n in dag.nodes if re.sub(r"\$\d+", "", n.name) == name)


def _vector_dims(dag: FunctionDAG, f_layout: tuple[int, ...] | None) -> State:
    """Everything at root and vectorised along x (no register tiles); f stored as ``f_layout`` says
    (None: along its vector dimension; a Layout comes right after f's inner decision)."""
    f = _func(dag, "f")
    st = State.initial(dag, AVX2, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        d = next((d for d in opts if isinstance(d, Place) and d.where == "root"
                  or isinstance(d, InnerTile) and d.vector_width > 1 and d.vector_dim == 0 and not d.unroll),
                 None) or next(d for d in opts if not isinstance(d, Layout))
        st = st.apply(d)
        if f_layout is not None and isinstance(d, InnerTile) and d.func == f:
            st = st.apply(Layout(f, f_layout))
    return st


def _scan_pipeline() -> hl.Pipeline:
    """A scan along x over 4 rows: s(x, y) = in(x, y); s(r, y) = s(r - 1, y) + in(r, y). The update
    can only vectorise y (4 lanes), its pure stage only x (rows shorter than a vector)."""
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    x, y = hl.Var("x"), hl.Var("y")
    r = hl.RDom([(1, 63)], "r")
    s, out = hl.Func("s"), hl.Func("out")
    s[x, y] = inp[x, y]
    s[r.x, y] = s[r.x - 1, y] + inp[r.x, y]
    out[x, y] = s[x, y] * 2.0
    inp.dim(0).set_estimate(0, 64)
    inp.dim(1).set_estimate(0, 4)
    out.set_estimate(x, 0, 64).set_estimate(y, 0, 4)
    return hl.Pipeline([out])


def test_a_stage_vectorised_across_its_storage_order_scatters_its_stores():
    dag = FunctionDAG.from_pipeline(_pipeline())
    # everything along x, stored x-innermost: no scatter anywhere
    plain = _vector_dims(dag, f_layout=None)
    rows = _rows(plain)
    assert all(r[SCATTER] == 0 and r[GATHER] == 0 for r in rows.values()), rows
    # f stored y-innermost (a Layout) while vectorised along x: its stores scatter, 8 lanes of f32
    # on AVX2; nothing is gathered (a pure stage does not load what it stores)
    laid = _vector_dims(dag, f_layout=(1, 0))
    assert any(isinstance(d, Layout) for d in laid.decisions)
    rows = _rows(laid)
    assert rows["f"][SCATTER] == 8 and rows["f"][GATHER] == 0
    assert rows["s"] == _rows(plain)["s"] and rows["out"][SCATTER] == 0
    # a scan's update vectorised along y while its Func is stored along x: it scatters its stores
    # and gathers the value it updates, 4 lanes; its pure stage is dense
    sdag = FunctionDAG.from_pipeline(_scan_pipeline())
    scan = _complete(sdag, lambda d: isinstance(d, Place) and d.where == "root")
    s = _func(sdag, "s")
    assert scan.inner(s, 0).vector_dim == 0 and scan.inner(s, 1).vector_dim == 1
    rows = _rows(scan)
    assert rows["s.update(0)"][SCATTER] == 4 and rows["s.update(0)"][GATHER] == 4
    assert rows["s"][SCATTER] == 0 and rows["s"][GATHER] == 0
    # the third column is the kernel factor less one, stage by stage
    for st in (plain, laid, scan):
        assert np.allclose(stage_extras(st)[:, STALL], stage_factors(st) - 1.0)
    assert (stage_extras(plain)[:, STALL] > 0).any()           # s's single accumulator chain
    assert batch_extras([plain, laid]).shape == (2, len(dag.featurization_order()), 3)


def test_undecided_and_inlined_stages_have_zero_rows():
    dag = FunctionDAG.from_pipeline(_pipeline())
    assert not stage_extras(State.initial(dag, AVX2, parallelism=2)).any()
    inl = _complete(dag, lambda d: isinstance(d, Place) and d.where == "inline")
    f_row = [k for k, st in enumerate(dag.featurization_order()) if re.sub(r"\$\d+", "", st.name) == "f"][0]
    assert inl.is_inlined(_func(dag, "f"))
    assert not stage_extras(inl)[f_row].any()


def test_a_network_with_extra_inputs_needs_them_and_the_search_passes_them():
    dag = FunctionDAG.from_pipeline(_pipeline())
    states = [random_state(dag, AVX2, k, parallelism=2) for k in range(6)]
    inp = network_inputs(states)
    net = tiny_ournet(extra_inputs=True)
    with pytest.raises(ValueError, match="stage_extra"):
        net(inp.pipeline, inp.schedule, 2)
    extra = torch.from_numpy(batch_extras(states))
    with pytest.raises(ValueError, match=r"stage_extra must be \[6, "):
        net(inp.pipeline, inp.schedule, 2, stage_extra=extra[:2])
    with torch.no_grad():
        p = net(inp.pipeline, inp.schedule, 2, stage_extra=extra)
        shifted = net(inp.pipeline, inp.schedule, 2, stage_extra=extra + 8.0)
        single = net(inp.pipeline, inp.schedule[0], 2, stage_extra=extra[0])
    assert torch.isfinite(p).all() and not torch.allclose(p, shifted)
    assert torch.allclose(single, p[0])
    # the search passes them and multiplies each stage's cost by its kernel factor, as for any
    # network with per-stage costs
    cm = CostModel(net, 2, "test")
    with torch.no_grad():
        direct = net.forward_detailed(inp.pipeline, inp.schedule, 2, stage_extra=extra).stage_costs.double().numpy()
    assert np.allclose(cm.predict(states), (direct * batch_factors(states)).sum(1), rtol=1e-5)
    plain = CostModel(tiny_ournet(), 2, "test")
    assert np.allclose(plain.predict(states), (plain._stage_costs(inp, states) * batch_factors(states)).sum(1))


def test_a_network_trained_through_the_kernel_factors_is_scored_as_the_search_ranks():
    dag = FunctionDAG.from_pipeline(_pipeline())
    states = [random_state(dag, AVX2, k, parallelism=2) for k in range(6)]
    assert (batch_factors(states) > 1).any()                 # s's accumulator chain
    inp = network_inputs(states)
    extra = batch_extras(states)
    data = PipelineData("p", {}, "h", AVX2, "dev", 2, inp.pipeline.numpy(), inp.schedule.numpy(),
                        np.linspace(1.0, 2.0, len(states)), stage_extra=extra)
    net = tiny_ournet(extra_inputs=True, kernel_factors=True)
    with torch.no_grad():
        log_pred, _, costs = _predictions(net, data)
        plain = net.forward_detailed(inp.pipeline, inp.schedule, 2, stage_extra=torch.from_numpy(extra))
    assert costs is not None
    want = plain.stage_costs.double().numpy() * batch_factors(states)
    assert np.allclose(costs.double().numpy(), want, rtol=1e-5)
    assert np.allclose(log_pred.double().numpy(), np.log(want.sum(1)), rtol=1e-5)
    assert np.allclose(CostModel(net, 2, "test").predict(states), want.sum(1), rtol=1e-5)
    # without the flag, the same network is scored on its plain sum
    net.config = OurNetConfig(pipeline_dim=8, hidden=16, extra_inputs=True)
    with torch.no_grad():
        log_plain = _predictions(net, data)[0]
    assert np.allclose(log_plain.double().numpy(), plain.log_prediction.double().numpy(), rtol=1e-5)


def test_data_sets_carry_extra_inputs_through_the_cache(tmp_path):
    states, samples, first, again = featurized_twice("random_17", AVX2, (1, 2, 3), tmp_path)   # again: from the cache
    assert first is not None and again is not None and first.stage_extra is not None
    assert first.schedule.shape[-1] == 39 and first.stage_extra.shape == (*first.schedule.shape[:2], 3)
    assert again.stage_extra is not None and np.array_equal(first.stage_extra, again.stage_extra)
    assert np.array_equal(first.schedule, again.schedule)
    by_hash = {s.trace_hash(): st for s, st in zip(samples, states)}
    want = batch_extras([by_hash[h] for h in first.trace_hashes])
    assert np.array_equal(first.stage_extra, want)
    sub = first.subset([1])
    assert sub.stage_extra is not None and np.array_equal(sub.stage_extra, first.stage_extra[[1]])

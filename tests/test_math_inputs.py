"""Costly math calls per stage (``dag.features.math_calls``) and the network inputs made of them
(``OurNetConfig.math_inputs``): counted from the IR, carried through the data set and its cache,
required by a network trained with them, and passed by the search's cost function."""

from __future__ import annotations

import halide as hl
import numpy as np
import pytest
import torch

from autoscheduler.cost import CostModel
from autoscheduler.dag import FunctionDAG
from autoscheduler.features import network_inputs
from autoscheduler.features.kernel_terms import batch_factors
from autoscheduler.state import random_state
from cost_model.dataset import FeatureCache, Sample, featurize_group
from shared_pipelines import tiny_ournet

AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"


def _pipeline() -> hl.Pipeline:
    x, y = hl.Var("x"), hl.Var("y")
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    a, b, c, out = hl.Func("a"), hl.Func("b"), hl.Func("c"), hl.Func("out")
    a[x, y] = hl.tanh(inp[x, y]) + hl.sin(inp[x, y]) * hl.cos(inp[x, y])
    b[x, y] = hl.exp(a[x, y]) + hl.sqrt(hl.abs(a[x, y]) + 1.0)
    c[x, y] = hl.pow(b[x, y], 0.5) + hl.log(b[x, y] + 2.0)
    out[x, y] = c[x, y] + c[x + 1, y] + hl.floor(b[x, y])
    inp.dim(0).set_estimate(0, 64)
    inp.dim(1).set_estimate(0, 64)
    out.set_estimate(x, 0, 63).set_estimate(y, 0, 63)
    return hl.Pipeline([out])


def test_math_calls_count_libm_and_polynomial_functions_not_cheap_ones():
    dag = FunctionDAG.from_pipeline(_pipeline())
    rows = {st.name.split("$")[0]: st.math_calls.tolist() for st in dag.featurization_order()}
    assert rows["a"] == [3.0, 0.0]      # tanh, sin, cos: element by element
    assert rows["b"] == [0.0, 1.0]      # exp; sqrt and abs are instructions
    assert rows["c"] == [0.0, 2.0]      # pow, log
    assert rows["out"] == [0.0, 0.0]    # floor
    m = dag.math_calls()
    assert m.shape == (len(dag.featurization_order()), 2) and m.dtype == np.float32
    assert [r.tolist() for r in m] == [st.math_calls.tolist() for st in dag.featurization_order()]


def test_a_network_with_math_inputs_needs_them_and_reads_them():
    dag = FunctionDAG.from_pipeline(_pipeline())
    states = [random_state(dag, AVX2, k, parallelism=2) for k in range(4)]
    inp = network_inputs(states)
    net = tiny_ournet(math_inputs=True)
    with pytest.raises(ValueError, match="stage_math"):
        net(inp.pipeline, inp.schedule, 2)
    math_ = torch.from_numpy(dag.math_calls())
    with torch.no_grad():
        p = net(inp.pipeline, inp.schedule, 2, stage_math=math_)
        none = net(inp.pipeline, inp.schedule, 2, stage_math=torch.zeros_like(math_))
    assert torch.isfinite(p).all() and not torch.allclose(p, none)
    # the search's cost function passes them (and leaves networks without them alone)
    cm = CostModel(net, 2, "test")
    assert np.allclose(cm.predict(states), (cm._stage_costs(inp, states) * batch_factors(states)).sum(1))
    with torch.no_grad():
        direct = net.forward_detailed(inp.pipeline, inp.schedule, 2, stage_math=math_).stage_costs.double().numpy()
    assert np.allclose(cm._stage_costs(inp, states), direct, rtol=1e-5)
    assert np.isfinite(CostModel(tiny_ournet(), 2, "test").predict(states)).all()


def test_data_sets_carry_stage_math_through_the_cache(tmp_path):
    import halide_pipelines
    spec = halide_pipelines.get("random_17")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    st = random_state(dag, AVX2, 1, parallelism=2)
    samples = [Sample("random_17", dict(spec.test_sizes), "h17", AVX2, "dev", 2,
                      [d.to_dict() for d in st.decisions], 1e-3, "OK")]
    cache = FeatureCache(tmp_path)
    first = featurize_group(samples, cache)
    again = featurize_group(samples, cache)                     # from the cache file
    assert first is not None and again is not None
    assert first.stage_math is not None and np.array_equal(first.stage_math, again.stage_math)
    assert np.array_equal(first.stage_math, dag.math_calls())
    assert first.stage_math[:, 0].sum() >= 3                    # random_17's three tanh stages
    assert first.subset([0]).stage_math is first.stage_math

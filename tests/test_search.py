"""Beam search and the autoschedule() API: every schedule returned is legal and correct."""

from __future__ import annotations

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.api import autoschedule
from autoscheduler.errors import EstimateError, ToolkitError
from autoscheduler.schedules import apply_source, root_source

SEARCH = dict(beam_size=4, passes=1, time_budget_s=20.0)


def _root_outputs(spec, sizes, inputs):
    built = spec.build(**sizes)
    p = built.pipeline()
    apply_source(root_source(p), p)
    return halide_pipelines.realize(built, inputs, pipeline=p)


def _check(spec, built, p, sizes, seed=0):
    inputs = spec.make_inputs(seed, **sizes)
    got = halide_pipelines.realize(built, inputs, pipeline=p)
    want = _root_outputs(spec, sizes, inputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=max(spec.rtol, 1e-5), atol=max(spec.atol, 1e-6))


@pytest.mark.parametrize("name", halide_pipelines.names())
def test_searched_schedule_is_legal_and_reproduces_root(name):
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    built = spec.build(**sizes)
    sched = autoschedule(built.outputs, **SEARCH)
    assert np.isfinite(sched.predicted_cost) and sched.predicted_cost > 0
    sched.apply()
    _check(spec, built, sched.pipeline, sizes)


def test_schedule_searched_at_one_size_runs_at_other_sizes():
    """Searched for the estimates, realized on odd sizes and on sizes smaller than a tile."""
    spec = halide_pipelines.get("blur")
    for sizes in ({"width": 37, "height": 29}, {"width": 5, "height": 3}):
        est = spec.sizes(width=400, height=300)
        built = spec.build(**est)
        source = autoschedule(built.outputs, **SEARCH).source()
        small = spec.build(**spec.sizes(**sizes))
        p = small.pipeline()
        apply_source(source, p)
        _check(spec, small, p, spec.sizes(**sizes))


def test_top_k_candidates_are_ranked_and_distinct():
    spec = halide_pipelines.get("conv_layer")
    built = spec.build(**spec.test_sizes)
    sched = autoschedule(built.outputs, beam_size=8, passes=2, top_k=4)
    costs = [c.predicted_cost for c in sched.candidates]
    # the pick first (at test sizes a microsecond pipeline: refine_tasks may price it above the
    # network's best), the runners-up best predicted first
    assert sched.candidates[0].state == sched.state
    assert costs[1:] == sorted(costs[1:]) and len(costs) >= 2
    assert len({c.source for c in sched.candidates}) == len(costs)
    text = sched.explain()
    import re
    assert re.search(r"conv(\$\d+)?\.update\(0\)", text) and "Place(" in text


def test_missing_estimate_is_a_one_line_error():
    x = hl.Var("x")
    f = hl.Func("f")
    f[x] = x * 2
    with pytest.raises(EstimateError) as info:
        autoschedule(f)
    assert "\n" not in str(info.value) and "f" in str(info.value)


def test_empty_pipeline_and_cpu_weights_on_cuda_are_clear_errors():
    with pytest.raises(ToolkitError, match="empty pipeline"):
        autoschedule([])
    spec = halide_pipelines.get("blur")
    # CUDA targets are searched (tests/test_cuda_states.py) with the GPU cost, never with CPU weights
    with pytest.raises(ToolkitError, match="CPU weights; CUDA targets take GPU weights") as info:
        autoschedule(spec.build(**spec.test_sizes).outputs, "host-cuda", weights="baseline.weights")
    assert "\n" not in str(info.value)


def test_time_budget_still_returns_a_complete_legal_schedule():
    spec = halide_pipelines.get("local_laplacian")
    sizes = spec.sizes(**spec.test_sizes)
    built = spec.build(**sizes)
    sched = autoschedule(built.outputs, beam_size=8, passes=3, time_budget_s=0.5)
    assert sched.state.is_complete
    # the greedily completed state is scored like any other (was inf when the budget cut the beam)
    assert np.isfinite(sched.predicted_cost) and sched.predicted_cost > 0
    sched.apply()
    _check(spec, built, sched.pipeline, sizes)


def test_a_budget_too_short_for_the_full_beam_narrows_it_and_is_kept():
    """When the full beam cannot finish within the budget, the beam narrows for the rest of the
    pass (down to one state: greedy) instead of overrunning; with time to spare it stays full."""
    from autoscheduler.cost import CostModel
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.search import SearchOptions, beam_search
    from autoscheduler.state import State
    spec = halide_pipelines.get("local_laplacian")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    cost_fn = CostModel.load(parallelism=2).cost_fn(dag)
    greedy = beam_search(State.initial(dag, "host", 2), cost_fn,
                         SearchOptions(beam_size=1, passes=1, time_budget_s=600.0, refine=False))
    assert greedy.stats["beam_min"] == 1 and greedy.stats["pass0_narrowed"] == 0.0
    budget = 3 * greedy.elapsed_s   # a pass of beam 16 costs several times a greedy one
    r = beam_search(State.initial(dag, "host", 2), cost_fn,
                    SearchOptions(beam_size=16, passes=3, time_budget_s=budget, refine=False))
    assert r.best.is_complete and np.isfinite(r.cost) and not r.fallback
    assert r.stats["beam_min"] < 16 and r.elapsed_s < 1.2 * budget
    wide = beam_search(State.initial(dag, "host", 2), cost_fn,
                       SearchOptions(beam_size=4, passes=2, time_budget_s=600.0, refine=False))
    assert wide.passes_run == 2 and wide.stats["beam_min"] == 4 and wide.stats["pass1_narrowed"] == 0.0


def test_a_state_budget_paces_the_beam_the_same_on_a_slower_host():
    """Paced by states scored (``state_budget``), the narrowed beam walks the same states whatever
    the scoring costs: a cost function made 2 ms a batch slower picks the same schedule."""
    import time

    from autoscheduler.cost import CostModel
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.search import SearchOptions, beam_search
    from autoscheduler.state import State
    spec = halide_pipelines.get("local_laplacian")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    cost_fn = CostModel.load(parallelism=2).cost_fn(dag)

    def slow(states):
        time.sleep(2e-3)
        return cost_fn(states)

    greedy = beam_search(State.initial(dag, "host", 2), cost_fn,
                         SearchOptions(beam_size=1, passes=1, time_budget_s=600.0, refine=False))
    opts = SearchOptions(beam_size=16, passes=3, time_budget_s=600.0, refine=False,
                         state_budget=3 * greedy.states_scored)
    a = beam_search(State.initial(dag, "host", 2), cost_fn, opts)
    b = beam_search(State.initial(dag, "host", 2), slow, opts)
    assert a.stats["beam_min"] < 16 and a.states_scored < 1.2 * opts.state_budget
    assert a.best.decisions == b.best.decisions and a.states_scored == b.states_scored
    assert a.stats["beam_min"] == b.stats["beam_min"]


def test_top_k_candidates_differ_on_the_costly_funcs():
    """The top-k skips states that differ from a better one only in how a cheap Func is scheduled."""
    from autoscheduler.api import heavy_funcs
    spec = halide_pipelines.get("conv_layer")
    built = spec.build(**spec.test_sizes)
    sched = autoschedule(built.outputs, beam_size=8, passes=2, top_k=4)
    heavy = heavy_funcs(sched.state.space.dag, sched.stage_costs)
    assert heavy, "some Func carries the cost"
    sigs = [tuple(d for d in c.state.decisions if d.func in heavy) for c in sched.candidates]
    assert len(set(sigs)) == len(sigs)
    assert sched.candidates[0].state == sched.state


def _user_stencil(prefix: str) -> tuple[hl.ImageParam, hl.Func]:
    """A two-stage stencil of a user's own (not bundled), with estimates: (input, output)."""
    x, y = hl.Var("x"), hl.Var("y")
    inp = hl.ImageParam(hl.Float(32), 2, f"{prefix}_in")
    f = hl.Func(f"{prefix}_f")
    f[x, y] = inp[x, y] * 2 + inp[x + 1, y]
    g = hl.Func(f"{prefix}_g")
    g[x, y] = f[x, y] + f[x, y + 1]
    g.set_estimates([(0, 64), (0, 48)])
    inp.set_estimates([(0, 65), (0, 49)])
    return inp, g


def test_benchmark_top_k_keeps_the_fastest_measured_and_stores_them(tmp_path):
    """A user's pipeline (not bundled): measured on random inputs at its estimates, in isolated
    workers; the schedule returned is the fastest that measured OK and reproduces the output."""
    from autoscheduler.api import benchmark_top_k
    from autoscheduler.records import Records
    inp, g = _user_stencil("bt")
    db = tmp_path / "bt.sqlite"
    sched = benchmark_top_k(g, 3, beam_size=4, passes=2, db=str(db))
    assert len(sched.measurements) == len(sched.candidates) >= 2
    times = [r.statistic for r in sched.measurements]
    assert all(r.ok for r in sched.measurements)
    assert sched.picked == int(np.argmin(times))
    assert sched.state == sched.candidates[sched.picked].state
    with Records(str(db)) as rec:
        assert len(rec) >= 1
    sched.apply()
    data = np.random.default_rng(0).random((49, 65), dtype=np.float32)
    inp.set(hl.Buffer(data))
    out = np.array(g.realize([64, 48]))
    want = 2 * data[:48, :64] + data[:48, 1:65] + 2 * data[1:49, :64] + data[1:49, 1:65]
    np.testing.assert_allclose(out, want, rtol=1e-5)


def test_benchmark_top_k_retimes_its_finalists_side_by_side(monkeypatch):
    """Candidates within 20% of the fastest in the sequential timing are timed again round-robin,
    and those times decide (and replace theirs in ``.measurements``); the others are not re-timed."""
    from types import SimpleNamespace
    import autoscheduler.measure as measure
    import autoscheduler.measure.batch as batch
    from autoscheduler.api import benchmark_top_k
    inp, g = _user_stencil("rt")
    first = [1.00, 1.05, 1.50, 1.60]
    again = [1.20, 1.10]
    retimed: list[int] = []

    def fake_batch(cands, opts):
        return [SimpleNamespace(ok=True, statistic=first[i]) for i in range(len(cands))]

    def fake_retime(cands, rounds, opts):
        retimed.append(len(cands))
        return [SimpleNamespace(ok=True, statistic=again[i]) for i in range(len(cands))]

    monkeypatch.setattr(measure, "measure_batch", fake_batch)
    monkeypatch.setattr(batch, "retime_interleaved", fake_retime)
    sched = benchmark_top_k(g, 3, beam_size=4, passes=2)
    n = len(sched.candidates)
    assert n >= 2 and retimed == [2]
    assert sched.picked == 1 and sched.state == sched.candidates[1].state
    assert [r.statistic for r in sched.measurements] == (again + first[2:])[:n]


def test_refinement_variants_are_kept_for_the_top_k_without_changing_the_pick(monkeypatch):
    """With ``top_k`` > 1 the refinements' cost function records the complete states they score
    (the variants their margins turn down are the ones worth measuring); the pick is the same."""
    import random

    from autoscheduler.dag import FunctionDAG
    from autoscheduler.search import _Recorder
    from autoscheduler.state import State, random_state
    spec = halide_pipelines.get("blur")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    states = [random_state(dag, "host", random.Random(i), parallelism=2) for i in range(6)]
    partial = State.initial(dag, "host", parallelism=2)
    fake = {hash(s): float(i + 1) for i, s in enumerate(states)}
    rec = _Recorder(lambda sts: np.asarray([fake.get(hash(s), 0.5) for s in sts]), keep=3)
    got = rec(states[::-1] + [partial] + states[:1])
    assert list(got) == [fake[hash(s)] for s in states[::-1]] + [0.5, 1.0]   # costs passed through
    assert [c for c, _ in rec.best()] == [1.0, 2.0, 3.0]          # complete states only, best 3, no repeats
    built = spec.build(**spec.sizes(width=400, height=300))
    one = autoschedule(built.outputs, beam_size=8, passes=2)
    four = autoschedule(built.outputs, beam_size=8, passes=2, top_k=4)
    assert four.candidates[0].state == one.state
    # a variant a refinement scored and turned down reaches the runners-up; without top_k it does not
    from autoscheduler import search
    from autoscheduler.cost import CostModel
    variant = random_state(dag, "host", random.Random(99), parallelism=2)

    def turn_down(state, cost, cost_fn, deadline):
        cost_fn([variant])
        return cost, state, 1

    monkeypatch.setattr(search, "refine_tasks", turn_down)
    initial = State.initial(dag, "host", parallelism=2)
    model = CostModel.load(None, parallelism=2)
    for k, expect in ((64, True), (1, False)):
        res = search.beam_search(initial, model.predict, search.SearchOptions(beam_size=4, passes=1, top_k=k))
        assert (hash(variant) in {hash(s) for _, s in res.candidates}) is expect

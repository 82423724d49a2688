"""The parallel tasks' overhead (features/task_terms.py) and the refinement that uses it (refine.refine_tasks).

``index_sum`` (350 x 250, a few microseconds) is the case that motivated them: the network ranked a
grid of 14 tasks first, which ran twice as long as a grid of 2 (see the module doc)."""

from __future__ import annotations

import time

import pytest

import halide_pipelines
from autoscheduler.api import autoschedule
from autoscheduler.cost import CostModel
from autoscheduler.dag import FunctionDAG
from autoscheduler.features.task_terms import TASK_OVERHEAD_MS, stage_tasks, task_overhead
from autoscheduler.refine import TASK_MARGIN, refine_tasks
from autoscheduler.state import InnerTile, OuterTile, Place, State

AVX512 = "x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41"


def _dag(name: str) -> FunctionDAG:
    spec = halide_pipelines.get(name)
    return FunctionDAG.from_pipeline(spec.build(**spec.default_sizes).pipeline())


def _state(dag, rows: int | None) -> State:
    """index_sum at root, 4 x 16 lanes by 3 rows per register tile; ``rows`` per parallel task
    (None: serial)."""
    s = State.initial(dag, AVX512, 2).apply(Place(0, "root")).apply(InnerTile(0, 0, 0, 16, ((0, 4), (1, 3))))
    if rows is None:
        return s.apply(OuterTile(0, 0, (), False))
    return s.apply(OuterTile(0, 0, ((1, rows),), True))


def test_tasks_are_counted_for_parallel_root_stages_only():
    dag = _dag("index_sum")
    # 250 rows in tasks of 18: 14 tasks; of 126: 2; serial: none
    assert [stage_tasks(_state(dag, r), 0, 0) for r in (18, 126, None)] == [14, 2, 0]
    assert task_overhead(_state(dag, 18)) == pytest.approx(14 * TASK_OVERHEAD_MS)
    assert task_overhead(State.initial(dag, AVX512, 2)) == 0


def test_refine_tasks_coarsens_a_microsecond_grid():
    dag = _dag("index_sum")
    model = CostModel.load(None, parallelism=2)
    fine = _state(dag, 18)
    cost = float(model.predict([fine])[0])
    assert cost < float(model.predict([_state(dag, 126)])[0])   # the network alone prefers 14 tasks
    c, s, n = refine_tasks(fine, cost, model.predict, time.perf_counter() + 30)
    assert n > 0 and s is not fine
    assert 0 < stage_tasks(s, 0, 0) <= 4
    assert c + task_overhead(s) < cost + task_overhead(fine)
    assert s.inner(0, 0) == fine.inner(0, 0)      # the register tile kept


def test_refine_tasks_leaves_millisecond_pipelines_alone():
    """conv_layer's tasks cost a fraction of a percent of its prediction: nothing is tried."""
    spec = halide_pipelines.get("conv_layer")
    sched = autoschedule(spec.build(**spec.default_sizes).outputs, AVX512, beam_size=8, passes=1,
                         parallelism=2)
    assert task_overhead(sched.state) < TASK_MARGIN * sched.predicted_cost
    c, s, n = refine_tasks(sched.state, sched.predicted_cost, CostModel.load(None, parallelism=2).predict,
                           time.perf_counter() + 30)
    assert (c, s, n) == (sched.predicted_cost, sched.state, 0)


def test_search_gives_a_microsecond_pipeline_few_tasks():
    spec = halide_pipelines.get("index_sum")
    sched = autoschedule(spec.build(**spec.default_sizes).outputs, AVX512, parallelism=2)
    assert 2 <= stage_tasks(sched.state, 0, 0) <= 4, sched.source()

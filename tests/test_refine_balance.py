"""``refine_balance``: the pick's parallel task grids evened out (as many tasks, the last no longer short)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

import halide as hl
import halide_pipelines
from autoscheduler.apply import apply_state, schedule_source
from autoscheduler.dag import FunctionDAG
from autoscheduler.features.task_terms import stage_tasks
from autoscheduler.refine import BALANCE_TOLERANCE, refine_balance
from autoscheduler.state import InnerTile, OuterTile, Place, State
from autoscheduler.state.tilings import balanced_count

SSE = "x86-64-linux-sse41"


def _state(rows: int) -> State:
    """index_sum (350 x 250) at the root, 2 vectors x 6 rows per register tile, tasks of ``rows`` rows."""
    spec = halide_pipelines.get("index_sum")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes()).pipeline())
    st = State.initial(dag, SSE, 2).apply(Place(0, "root"))
    width = st.space.vector_width[st.space.node(0).stages[0].id]
    st = st.apply(InnerTile(0, 0, 0, width, ((0, 2), (1, 6))))
    return st.apply(OuterTile(0, 0, ((1, rows),), True))


def _flat(c: float):
    def fn(states: Sequence[State]) -> np.ndarray:
        return np.full(len(states), c)
    return fn


def _tile(st: State) -> int:
    return dict(st.outer(0, 0).tiles)[1]


def test_balanced_count_keeps_the_number_of_tiles():
    assert balanced_count(86, 48) == 43 and balanced_count(86, 43) == 43 and balanced_count(10, 4) == 4
    for units in range(1, 200):
        for k in range(1, units + 1):
            b = balanced_count(units, k)
            assert b <= k and -(-units // b) == -(-units // k)
            assert b == 1 or -(-units // (b - 1)) > -(-units // k)


def test_the_picks_tasks_are_evened_out_and_still_compute_the_reference():
    """250 rows in 6-row register tiles (42) and 24-tile tasks: tasks of 144 and 106 rows; evened
    out, 126 and 124: the same 2 tasks. The schedule is exact at the estimates, odd sizes and
    sizes below one task."""
    state = _state(144)
    before = State.from_space(state.space).apply(Place(0, "root"))
    before = before.apply(state.decisions[1])
    assert before.balanced_grid(state.decisions[2]) == OuterTile(0, 0, ((1, 126),), True)
    cost, out, n = refine_balance(state, 1.0, _flat(1.0), time.perf_counter() + 30)
    assert n == 1 and out is not state and _tile(out) == 126 and cost == 1.0
    assert stage_tasks(out, 0, 0) == stage_tasks(state, 0, 0) == 2
    spec = halide_pipelines.get("index_sum")
    src = schedule_source(out)
    for sz in ({"width": 350, "height": 250}, {"width": 37, "height": 131}, {"width": 20, "height": 7}):
        built = spec.build(**sz)
        p = built.pipeline()
        apply_state(out, p, src)
        got = halide_pipelines.realize(built, {}, hl.Target(SSE), pipeline=p)
        assert np.array_equal(got[0], spec.reference({}, **sz)[0]), sz


def test_even_tasks_are_kept_only_within_the_tolerance_and_balanced_grids_are_left_alone():
    state = _state(144)
    worse = 1.0 + 2 * BALANCE_TOLERANCE
    cost, out, n = refine_balance(state, 1.0, _flat(worse), time.perf_counter() + 30)
    assert out is state and cost == 1.0 and n == 1
    even = _state(126)
    cost, out, n = refine_balance(even, 1.0, _flat(0.5), time.perf_counter() + 30)
    assert out is even and n == 0
    cost, out, n = refine_balance(state, 1.0, _flat(0.5), time.perf_counter() - 1)   # past the deadline
    assert out is state and n == 0


def test_runners_up_are_evened_out_too_and_duplicates_dropped():
    """``api.balance_runners_up``: the pick stays as it is (the search balanced it); a runner-up's
    uneven grid is evened out; one that evens into a state already listed is dropped. 250 rows are
    42 register tiles: 24-tile tasks (144 rows) even out to 21 (126, the pick's grid), 20-tile
    tasks (3 tasks, the last of 2 tiles) to 14 (84 rows)."""
    from autoscheduler.api import balance_runners_up
    pick = _state(60)   # 10-tile tasks: uneven, but the pick is left to the search
    out = balance_runners_up([(1.0, pick), (1.0, _state(144)), (1.0, _state(126)), (1.0, _state(120))],
                             _flat(1.0))
    assert out[0][1] is pick
    assert [_tile(s) for _, s in out] == [60, 126, 84]

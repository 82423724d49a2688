"""``refine_fusion``: the root producers of a root Func moved, all at once, into its parallel task
loop (or a sub-tile of a task) with the Func given another task grid; the schedule still computes what
compute_root computes, at the estimates and at other sizes."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

import halide_pipelines
from autoscheduler.dag import FunctionDAG
from autoscheduler.refine import FUSION_RECOMPUTE, _computed, refine_fusion
from autoscheduler.state import Place, State
from tests.shared_pipelines import check_against_root

SSE = "x86-64-linux-sse41"


def _all_root(dag: FunctionDAG) -> State:
    """A complete state: every Func at root (inlined where root is not offered), first tilings."""
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:
        opts = st.options()
        roots = [d for d in opts if isinstance(d, Place) and d.where == "root"]
        st = st.apply(roots[0] if roots else opts[0])
    return st


def _inside(st: State, g: int) -> int:
    """How many Funcs are computed inside Func ``g`` (at any of its loops, transitively)."""
    return sum(1 for f in st.space.order
               if st.placement(f) is not None and st.placement(f).where == "at"
               and st.path_to_site(f)[0].func == g)


def _reward(g: int) -> Callable[[Sequence[State]], np.ndarray]:
    """Cheaper the more Funcs are computed inside ``g``, by far once any is (FUSION_MARGIN)."""
    return lambda states: np.array([100.0 if not _inside(s, g) else 50.0 - _inside(s, g) for s in states])


def _output(dag: FunctionDAG) -> int:
    return next(n.index for n in dag.nodes if n.is_output)


def _assert_recompute_bounded(before: State, after: State) -> None:
    """The Funcs moved from root compute at most FUSION_RECOMPUTE x their points at root (halos)."""
    moved = {f for f in before.space.order if before.placement(f).where == "root"
             and after.placement(f).where == "at"}
    assert moved and _computed(after, moved) <= FUSION_RECOMPUTE * _computed(before, moved)


def test_blur_x_moves_into_the_tasks_of_its_consumer():
    est = {"width": 256, "height": 192}
    spec = halide_pipelines.get("blur")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes(**est)).pipeline())
    st = _all_root(dag)
    g = _output(dag)
    assert _inside(st, g) == 0
    c, best, scored = refine_fusion(st, 100.0, _reward(g), time.perf_counter() + 60)
    assert best.is_complete and scored > 0 and c < 100.0 and _inside(best, g) >= 1
    _assert_recompute_bounded(st, best)
    check_against_root("blur", best, [est, {"width": 37, "height": 29}, {"width": 5, "height": 3}])


def test_camera_pipe_colour_planes_move_together_into_the_output_tasks():
    """No colour plane can move alone (its readers are at root too); the whole group moves, and the
    LUT ``curve``, read everywhere, stays at root (its region does not shrink)."""
    est = {"width": 512, "height": 384}
    spec = halide_pipelines.get("camera_pipe")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes(**est)).pipeline())
    st = _all_root(dag)
    g = _output(dag)
    c, best, _ = refine_fusion(st, 100.0, _reward(g), time.perf_counter() + 120)
    assert best.is_complete and _inside(best, g) >= 10
    curve = next(n.index for n in dag.nodes if n.name.split("$")[0] == "curve")
    assert best.placement(curve).where == "root"
    _assert_recompute_bounded(st, best)
    check_against_root("camera_pipe", best, [est, {"width": 40, "height": 32}, {"width": 136, "height": 70}])


def test_fusion_keeps_the_state_when_nothing_is_cheaper_or_time_is_up():
    est = {"width": 256, "height": 192}
    spec = halide_pipelines.get("blur")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes(**est)).pipeline())
    st = _all_root(dag)
    flat = lambda states: np.full(len(states), 5.0)     # noqa: E731 - every state costs the same
    c, best, _ = refine_fusion(st, 5.0, flat, time.perf_counter() + 60)
    assert best is st and c == 5.0
    g = _output(dag)
    slightly = lambda states: np.array([100.0 - _inside(s, g) for s in states])  # noqa: E731 - 1% cheaper
    c, best, _ = refine_fusion(st, 100.0, slightly, time.perf_counter() + 60)
    assert best is st and c == 100.0
    c, best, scored = refine_fusion(st, 100.0, _reward(_output(dag)), time.perf_counter() - 1)
    assert best is st and scored == 0

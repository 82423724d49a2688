"""``refine_kernels``: the register tile of a Func that hosts a reduction per tile, re-shaped (two
non-vector dimensions among the shapes) with its task grid re-chosen, still computes what
compute_root computes; nothing changes when no branch is cheaper by the margin, or for a host whose
reduction is not computed per register tile."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

import halide_pipelines
from autoscheduler.dag import FunctionDAG
from autoscheduler.refine import KERNEL_MARGIN, refine_kernels
from autoscheduler.state import InnerTile, Kernel, LoopRef, Place, State
from tests.shared_pipelines import check_against_root

SSE = "x86-64-linux-sse41"
EST = {"ci": 8, "co": 16, "width": 12, "height": 10, "batch": 4}


def _conv_dag() -> tuple[FunctionDAG, int, int]:
    spec = halide_pipelines.get("conv_layer")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes(**EST)).pipeline())
    idx = {n.name.split("$")[0]: n.index for n in dag.nodes}
    return dag, idx["relu"], idx["conv"]


def _start(dag: FunctionDAG, relu: int, conv: int) -> State:
    """relu at root with a one-row register tile (2 vectors x 2 columns), conv computed per register
    tile with that tile as its kernel: the shape the beam's menu gives a pure stage."""
    st = State.initial(dag, SSE, parallelism=2)
    st = st.apply(Place(relu, "root"))
    tile = next(d for d in st.options() if isinstance(d, InnerTile) and d.vector_dim == 0
                and d.unroll == ((0, 2), (1, 2)))
    st = st.apply(tile)
    st = st.apply(next(d for d in st.options() if getattr(d, "parallel", False)
                       and all(dim != 0 for dim, _ in d.tiles)))     # keeps a loop over channel tiles
    st = st.apply(Place(conv, "at", LoopRef(relu, 0, "inner", 0)))
    while not st.is_complete:
        opts = st.options()
        same = [d for d in opts if isinstance(d, (InnerTile, Kernel)) and d.unroll == tile.unroll]
        st = st.apply(same[0] if same else opts[0])
    return st


def _two_dim(st: State, f: int) -> bool:
    """``f``'s register tile unrolls two dimensions besides the vector's."""
    tile = next(d for d in st.decisions if isinstance(d, InnerTile) and d.func == f and d.stage == 0)
    return len([d for d, _ in tile.unroll if d != tile.vector_dim]) == 2


def _reward(relu: int) -> Callable[[Sequence[State]], np.ndarray]:
    return lambda states: np.array([10.0 if _two_dim(s, relu) else 20.0 for s in states])


def test_host_of_a_per_tile_reduction_takes_a_two_dimensional_tile():
    dag, relu, conv = _conv_dag()
    st = _start(dag, relu, conv)
    assert not _two_dim(st, relu)
    c, best, scored = refine_kernels(st, 20.0, _reward(relu), time.perf_counter() + 60)
    assert best.is_complete and scored > 0 and c == 10.0 and _two_dim(best, relu)
    # the reduction still runs per register tile, and its kernel copies the new tile
    relu_tile = next(d for d in best.decisions if isinstance(d, InnerTile) and d.func == relu)
    kernel = next(d for d in best.decisions if isinstance(d, Kernel) and d.func == conv)
    assert best.placement(conv).at == LoopRef(relu, 0, "inner", 0) and kernel.unroll == relu_tile.unroll
    check_against_root("conv_layer", best, [EST, {"ci": 3, "co": 5, "width": 7, "height": 5, "batch": 3},
                  {"ci": 1, "co": 1, "width": 1, "height": 1, "batch": 1}])


def test_no_change_below_the_margin_or_past_the_deadline():
    dag, relu, conv = _conv_dag()
    st = _start(dag, relu, conv)
    almost = lambda states: np.array([20.0 * (1 - KERNEL_MARGIN / 2) if _two_dim(s, relu) else 20.0
                                      for s in states])
    c, best, _ = refine_kernels(st, 20.0, almost, time.perf_counter() + 60)
    assert best is st and c == 20.0
    c, best, scored = refine_kernels(st, 20.0, _reward(relu), time.perf_counter() - 1)
    assert best is st and c == 20.0 and scored == 0


def test_reduction_not_computed_per_tile_leaves_the_host_alone():
    dag, relu, conv = _conv_dag()
    st = State.initial(dag, SSE, parallelism=2)
    while not st.is_complete:     # conv at root: relu hosts nothing
        st = st.apply(next((d for d in st.options() if isinstance(d, Place) and d.where == "root"),
                           st.options()[0]))
    c, best, scored = refine_kernels(st, 20.0, _reward(relu), time.perf_counter() + 60)
    assert best is st and scored == 0

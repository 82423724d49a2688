"""Costly math calls a schedule actually executes per point of each stage, after Halide hoists
loop-invariant calls out of the loops they do not depend on.

Why: ``FunctionDAG.math_calls`` counts a stage's libm and polynomial calls per point as the algorithm
states them. Halide's lowering lifts a call whose arguments do not change inside a loop out of that
loop, so how often the call runs depends on the schedule: a ``cos`` of a channel index runs once per
channel when the channel loop is outside the pixel loops, once per point when it is innermost (or
vectorised). random_55's fastest schedules (8-12 ms) compute its channel mix channel-outermost and
run 9 ``cos`` per channel; its slow ones (18-70 ms) run one per point, and the per-point count gave
the network no way to tell them apart (data/README.md).

``stage_math(state)`` -> [S, 2] float32, rows in ``dag.featurization_order()``, columns as
``FunctionDAG.math_calls`` (libm, polynomial): the calls each point of the stage pays for
(:func:`executed_fraction` of each call, summed). A Func inlined into its consumers counts its calls
in their loop nests, through the arguments they call it with. Stages not placed or tiled yet,
rfactored, or on a GPU keep the per-point count.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..dag import Stage
from ..dag.features import MATH_CLASSES
from ..state import State
from ..state.decisions import LEVEL_PARALLEL, LEVEL_UNROLL, LEVEL_VECTOR
from ..state.plan import LoopInfo, StagePlan

__all__ = ["stage_math", "batch_math", "executed_fraction"]


def _reads(loop: LoopInfo, dims: set[int], rvars: set[int]) -> bool:
    return (loop.dim >= 0 and loop.dim in dims) or (loop.rvar >= 0 and loop.rvar in rvars) \
        or any(d in dims for d in loop.fused)


def executed_fraction(stage: Stage, plan: StagePlan, deps: frozenset[str]) -> float:
    """Share of ``stage``'s iterations at its compute site on which a call reading the variables
    ``deps`` runs, under the loop nest ``plan`` (innermost loop first). A loop of one iteration
    reads nothing (its variable is a constant at the site). The call runs on every iteration of the
    serial loops outside the innermost serial loop it reads, that loop included. Unrolling comes
    first: every unrolled copy keeps its own call, and CSE works within one statement, unless the
    call is lifted out of a serial loop inside that one (any of the stage's serial loops, when it
    reads none), where the copies it does not tell apart merge. A vector loop it does not read
    computes it once per vector, as a scalar. Read off Halide's lowered statements of forty random
    schedules of tests/test_hoisted_math.py's pipeline: a geometric mean of 1.01 times the calls
    executed (0.03x to 33x; a call lifted beyond the compute site into the consumer's loops is the
    worst miss), where the per-point count was 8.5 to 4,096 times them (data/README.md)."""
    dims = {l.pure_dim for l in stage.loops if not l.rvar and l.var in deps}
    rvars = {k for k, rv in enumerate(stage.definition.rvars) if rv.var in deps}
    loops = plan.loops
    reads = [l.extent > 1 and _reads(l, dims, rvars) for l in loops]
    j = next((i for i, l in enumerate(loops) if reads[i] and l.level not in (LEVEL_VECTOR, LEVEL_UNROLL)),
             None)
    # lifted out of a serial loop inside the innermost one it reads: the unrolled copies it does not
    # read become one (with no such loop they stay in one block, one call per statement)
    lifted = any(l.extent > 1 and l.level not in (LEVEL_VECTOR, LEVEL_UNROLL, LEVEL_PARALLEL)
                 for l in (loops if j is None else loops[:j]))
    runs = total = 1.0
    for i, l in enumerate(loops):
        e = float(max(l.extent, 1))
        total *= e
        if l.level == LEVEL_VECTOR:
            runs *= e if reads[i] else 1.0
        elif l.level == LEVEL_UNROLL:
            runs *= e if reads[i] or not lifted else 1.0
        elif j is not None and i >= j:
            runs *= e
    return runs / total


def _site_fraction(state: State, stage: Stage, deps: frozenset[str], depth: int = 0) -> float:
    """:func:`executed_fraction` of a call reading ``deps`` in ``stage``'s expression, where the
    stage's Func may be inlined (then averaged over the calls of it in its consumers, their
    arguments' variables standing for its own), not placed or tiled yet, or rfactored (1: per point)."""
    f = stage.node.index
    if state.placement(f) is None or depth > 8:
        return 1.0
    if state.is_inlined(f):
        args = stage.node.args
        num = den = 0.0
        for edge in stage.node.outgoing_edges:
            consumer = edge.consumer
            for callee, arg_reads in consumer.call_arg_deps:
                if callee != stage.node.name:
                    continue
                mapped: frozenset[str] = frozenset()
                for k, a in enumerate(args):
                    if a in deps and k < len(arg_reads):
                        mapped |= arg_reads[k]
                w = float(max(consumer.points, 1))
                num += w * _site_fraction(state, consumer, mapped, depth + 1)
                den += w
        return num / den if den > 0 else 1.0
    if state.rfactor(f, stage.index) is not None:
        return 1.0
    plan = state.plan(f, stage.index)
    if plan is None or plan.gpu:
        return 1.0
    return executed_fraction(stage, plan, deps)


def stage_math(state: State, order: Sequence[Stage] | None = None) -> np.ndarray:
    """[S, 2] float32 costly math calls each point of each stage runs under ``state``'s loop nests."""
    dag = state.space.dag
    order = list(dag.featurization_order()) if order is None else list(order)
    out = np.zeros((len(order), MATH_CLASSES), dtype=np.float32)
    gpu = bool(getattr(state.space, "gpu", False))
    for k, st in enumerate(order):
        out[k] = st.math_calls
        if not st.math_deps or gpu:
            continue
        row = np.zeros(MATH_CLASSES, dtype=np.float64)
        for cls, deps in st.math_deps:
            row[cls] += _site_fraction(state, st, deps)
        out[k] = row
    return out


def batch_math(states: Sequence[State]) -> np.ndarray:
    """[B, S, 2] float32 :func:`stage_math` of states of one search space."""
    if not states:
        return np.zeros((0, 0, MATH_CLASSES), dtype=np.float32)
    order = states[0].space.dag.featurization_order()
    return np.stack([stage_math(s, order) for s in states])

"""Adams2019 features of a CPU RFactor stage (``state/cpu_rfactor.py``): one row, approximated.

Halide's ``rfactor`` makes a stage three: the intermediate's pure stage (``factor`` x pure points
set to the identity), the intermediate's update (the whole reduction, with the partial results as
vector lanes and parallel tasks) and the combining stage (``factor`` x pure points). The DAG, and so
the cost network's input, has one row for the stage. It is featurized as the intermediate's update,
which does all the work: the stage's own loops (the reduction's points, loads and bytes are the
same), with the split RVar's loop standing for the partial results: ``width`` lanes of it
vectorised (loads classified along the RVar: dense where it walks a producer's innermost storage
dimension), its outer part (or the outermost pure loop) the parallel task loop.

Approximated (left out): the intermediate's storage (``factor`` x pure points, a few KB) and its
initialisation, the combining stage (``factor`` x pure points of serial work, small by the menu's
rule), the GuardWithIf predicate when ``factor`` does not divide the RVar's extent, and the order of
the intermediate's loops (RVars outside the vector loop, as for any update).
"""

from __future__ import annotations

from typing import Optional

from ..state import State
from ..state.decisions import LEVEL_PARALLEL, LEVEL_VECTOR
from .adams_dag import AStage
from .loopnest import RFactorChain


def rfactor_chain(state: State, st: AStage) -> Optional[RFactorChain]:
    """The chain description of stage ``st`` when ``state`` rfactors it (CPU), else None."""
    f, s = st.f, st.s
    if state.rfactor(f, s) is None:
        return None
    plan = state.plan(f, s)
    assert plan is not None and plan.rfactor is not None
    rp = plan.rfactor
    loops = st.stage.loops
    ri = next(i for i, l in enumerate(loops) if l.rvar and l.var == rp.rvar)
    intm = rp.intm[1]
    width = next((l.extent for l in intm.loops if l.level == LEVEL_VECTOR), 1)
    u_dim = len(state.space.node(f).args)
    par, par_idx, tasks = "", -1, 1
    for l in intm.loops:
        if l.level != LEVEL_PARALLEL:
            continue
        tasks = l.extent
        if u_dim in l.fused:
            par = "u"
        else:
            par = "pure"
            par_idx = next(i for i, lp in enumerate(loops) if not lp.rvar and lp.pure_dim in l.fused)
    task_pure = tuple(True if i == ri else p for i, p in enumerate(st.loops_pure))
    return RFactorChain(ri, rp.factor, width, par, par_idx, tasks, task_pure)


__all__ = ["rfactor_chain"]

"""What handing out parallel tasks costs: the thread pool's time per task, for microsecond pipelines.

Measured here (2-core AVX-512, Halide's thread pool; ``f(x, y) = x + y``, rows split into T parallel
tasks, vectorised by 16; min of 15 x 100 runs, quiet machine):

    352 x 256:   T      1     2     4     8     16     32     64     128
                 us   6.4   4.5   4.6   4.5   10.4   16.8   26.0   43.4
    1024 x 2048: T = 2, 8, 32, 128, 256: 222, 239, 206, 221, 248 us

about 0.3 us per task while tasks are short (a few us of work each), next to nothing once each task
has tens of microseconds of work to hide it. The network (Adams2019's weights) does not price it:
on the bundled ``index_sum`` (350 x 250, ~5 us) it ranked a grid of 14 tasks (12 us) above grids of
2-4 tasks (5 us). Adding the term to every prediction of the search instead changed the beam's path
on millisecond pipelines (ae_forward, harris, bwn_conv picks ran 1.7-1.9x slower than the same code
without it, interleaved) for an overhead that is a fraction of a percent there, so only
``refine.refine_tasks`` uses it, where it decides.
"""

from __future__ import annotations

import numpy as np

from ..state import State
from ..state.decisions import LEVEL_PARALLEL, WHERE_ROOT

TASK_OVERHEAD_MS = 3e-4
"""Milliseconds per parallel task (0.3 us, the slope of the 352 x 256 row in the module doc)."""


def stage_tasks(state: State, f: int, s: int) -> int:
    """Parallel tasks stage ``s`` of Func ``f`` hands out per run of the pipeline (0: serial or not
    decided; in the CPU space only root stages have parallel loops)."""
    p = state.placement(f)
    plan = state.plan(f, s)
    if p is None or p.where != WHERE_ROOT or plan is None or plan.parallel is None:
        return 0
    return max(1, int(np.prod([l.extent for l in plan.loops if l.level == LEVEL_PARALLEL])))


def task_overhead(state: State) -> float:
    """The thread pool's time (ms) for all the parallel tasks of ``state``."""
    return TASK_OVERHEAD_MS * sum(stage_tasks(state, st.node.index, st.index)
                                  for n in state.space.dag.nodes if not n.is_input for st in n.stages)

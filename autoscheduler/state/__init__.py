"""The search space (CPU and CUDA): decisions (``decisions``), the loop nest each stage gets
(``plan``), the menu of tilings the search offers (``tilings``; ``gpu`` for CUDA targets: limits,
menus, the reduction test behind RFactor) and the search state itself (``state``).

``State.initial(dag, target)`` / ``initial_state``, ``state.children()`` / ``children(state)``,
``state.apply(decision)``, ``random_state(dag, target, rng)``, ``State.from_trace(dag, trace,
target)``, ``state.to_json()`` / ``State.from_json(dag, text)``. ``autoscheduler.apply`` turns a
complete state into Python schedule source.
"""

from __future__ import annotations

from .decisions import (DECISION_KINDS, DECISION_TYPES, GPU_UNROLL_LIMIT, LEVELS, SITE_LEVELS, UNROLL_LIMIT, WHERES,
                        Decision, IllegalDecisionError, InnerTile, Kernel, Layout, LoopRef, OuterTile, Place,
                        RFactor, Wrap, decision_from_dict)
from .plan import (TAIL_GUARD, TAIL_ROUND_UP, LoopInfo, RFactorPlan, Split, StagePlan, base_names, plan_rfactor,
                   plan_stage)
from .state import (FORMAT, INLINE_CALL_LIMIT, SearchSpace, State, children, initial_state, random_state)

__all__ = [
    "DECISION_KINDS", "DECISION_TYPES", "GPU_UNROLL_LIMIT", "LEVELS", "SITE_LEVELS", "UNROLL_LIMIT", "WHERES",
    "Decision", "IllegalDecisionError", "InnerTile", "Kernel", "Layout", "LoopRef", "OuterTile", "Place", "RFactor",
    "Wrap",
    "decision_from_dict", "TAIL_GUARD", "TAIL_ROUND_UP", "LoopInfo", "RFactorPlan", "Split", "StagePlan",
    "base_names", "plan_rfactor", "plan_stage",
    "FORMAT", "INLINE_CALL_LIMIT", "SearchSpace", "State", "children", "initial_state", "random_state",
]

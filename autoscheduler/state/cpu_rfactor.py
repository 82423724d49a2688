"""RFactor on CPU targets: the loops of an rfactored reduction and the menu that offers it.

A reduction over a long RVar into a small pure domain (a training step's scalar loss, a bias
gradient summed over the batch) has next to nothing to vectorise or parallelise: its RVars are
serial and its pure loops are short. Halide's ``rfactor`` turns part of the RVar into a pure
dimension ``u`` of an intermediate Func, whose ``factor`` partial results are independent: they
can be vector lanes and parallel tasks. ``state.py`` decides legality (root Funcs' associative
updates, ``gpu.reduction_problem``; no ``atomic`` on CPU); this module plans the loops
(:func:`plan_cpu_rfactor`, see :class:`plan.RFactorPlan`) and says when the search offers it
(:func:`cpu_rfactor_options`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..dag import Node, Span, Stage
from . import gpu as gpu_rules
from .decisions import LEVEL_INNER, LEVEL_PARALLEL, LEVEL_RVAR, LEVEL_VECTOR, RFactor
from .plan import TAIL_GUARD, LoopInfo, RFactorPlan, Split, StagePlan, rfactor_names

SMALL_PURE_FACTOR = 4      # menu: pure points below parallelism x vector width x this ...
LONG_RVAR_FACTOR = 4       # ... and an RVar at least this many vectors long
TASK_MULTIPLES = (1, 2, 8)  # menu: factors of vector width x {1, 2 x cores, 8 x cores}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_cpu_rfactor(node: Node, stage: Stage, rf: RFactor, bounds: Sequence[Span], width: int,
                     parallelism: int) -> StagePlan:
    """The plan of a CPU :class:`RFactor` stage: the final combining stage's loops (``r_i`` serial,
    innermost, then the pure loops, serial), with the intermediate's two stages in ``plan.rfactor``
    (see :class:`RFactorPlan` for their loops). ``bounds``: the stage's loop spans at its (root)
    compute site; ``width``: the stage's natural vector width; ``parallelism``: the core count."""
    ext = {l.var: max(bounds[j].extent, 1) for j, l in enumerate(stage.loops)}
    pure = [(node.args[l.pure_dim], l.pure_dim, ext[l.var]) for l in stage.pure_loops]  # innermost first
    rv_loops = [l for l in stage.loops if l.rvar]
    rvar_index = {rv.var: k for k, rv in enumerate(stage.definition.rvars)}
    split_var = rv_loops[rf.rvar].var
    outer, inner, var = rfactor_names(node, stage)
    u_dim = len(node.args)
    rvars: list[LoopInfo] = []
    for l in rv_loops:
        if l.var == split_var:
            rvars.append(LoopInfo(outer, LEVEL_RVAR, -1, rvar_index.get(l.var, -1), _ceil_div(ext[l.var], rf.factor)))
        else:
            rvars.append(LoopInfo(l.var, LEVEL_RVAR, -1, rvar_index.get(l.var, -1), ext[l.var]))

    vec = width > 1 and rf.factor % width == 0
    splits: tuple[Split, ...] = ()
    vector: list[LoopInfo] = []
    u_outer = LoopInfo(var, LEVEL_INNER, u_dim, -1, rf.factor)
    if vec:
        u_o, u_v = f"{var}_o", f"{var}_v"
        splits = (Split(var, u_o, u_v, width, TAIL_GUARD),)
        vector = [LoopInfo(u_v, LEVEL_VECTOR, u_dim, -1, width, tile_extent=width)]
        u_outer = LoopInfo(u_o, LEVEL_INNER, u_dim, -1, rf.factor // width)
    serial_pure = [LoopInfo(v, LEVEL_INNER, d, -1, e) for v, d, e in pure]
    u_serial = [u_outer]
    par: Optional[LoopInfo] = None
    if parallelism > 1:
        if u_outer.extent >= 2:
            par, u_serial = u_outer, []
        elif serial_pure and serial_pure[-1].extent >= 2:
            par = serial_pure.pop()
    tail_par = [] if par is None else [LoopInfo(par.var, LEVEL_PARALLEL, -1, -1, par.extent, fused=(par.dim,))]

    def intm_plan(s: int, with_rvars: bool) -> StagePlan:
        loops = vector + (rvars if with_rvars else []) + u_serial + serial_pure + tail_par
        return StagePlan(node.index, s, splits, tuple(l.var for l in loops), (),
                         par.var if par is not None else None, (vector[0].var, width) if vector else None,
                         (), tuple(loops))

    storage = (var,) + tuple(node.args) if (vec and node.args) else ()
    final_loops = [LoopInfo(inner, LEVEL_RVAR, -1, rf.rvar, rf.factor)] + \
        [LoopInfo(v, LEVEL_INNER, d, -1, e) for v, d, e in pure]
    rplan = RFactorPlan(split_var, rf.rvar, outer, inner, rf.factor, var, False, (intm_plan(0, False), intm_plan(1, True)),
                        storage)
    order = tuple(l.var for l in final_loops) if pure else ()
    return StagePlan(node.index, stage.index, (), order, (), None, None, (), tuple(final_loops), "", (), (), rplan)


def cpu_rfactor_options(func: int, stage: int, node: Node, st: Stage, pure_points: int,
                        rvar_ext: Sequence[int], width: int, parallelism: int) -> list[RFactor]:
    """RFactor choices the CPU search offers for a root Func's update: when its pure domain is small
    (fewer than parallelism x vector width x SMALL_PURE_FACTOR points: too little to fill the
    cores' vectors) and an RVar is long (at least LONG_RVAR_FACTOR vectors), the longest RVar split
    by vector width x {1, 2 x cores, 8 x cores} (one vector of partial sums; a few tasks of
    vectors per core), each capped at the largest multiple of the vector width within the RVar."""
    if not rvar_ext:
        return []
    _, why = gpu_rules.reduction_problem(node, st)
    w = max(1, width)
    cores = max(1, parallelism)
    longest = max(range(len(rvar_ext)), key=lambda k: (rvar_ext[k], -k))
    ext = rvar_ext[longest]
    if why or pure_points >= cores * w * SMALL_PURE_FACTOR or ext < LONG_RVAR_FACTOR * w:
        return []
    cap = ext // w * w
    factors: list[int] = []
    for m in TASK_MULTIPLES:
        f = min(w * (m if m == 1 else m * cores), cap)
        if f >= 2 and f not in factors:
            factors.append(f)
    return [RFactor(func, stage, longest, f, False) for f in factors]


__all__ = ["plan_cpu_rfactor", "cpu_rfactor_options", "SMALL_PURE_FACTOR", "LONG_RVAR_FACTOR", "TASK_MULTIPLES"]

"""The loop nest one stage gets from its two tiling decisions, as plain data.

For every pure dimension ``d`` of the stage, with vector width ``V`` (1 unless ``d`` is the vector
dimension), unroll factor ``u`` and register tile ``r = u * V``, and an optional outer tile ``T``
(a multiple of ``r``), the loops are, outermost first::

    d_o   (outer tile loop, ceil(E / T) iterations)           only with an outer tile
    d_i   (register tiles inside the tile: T / r, or ceil(E / r) without an outer tile)
    d_u   (unrolled, u)                                        only with u > 1
    d_v   (vectorised, V)                                      only for the vector dimension

and the stage's loops are ordered, innermost first: the vector loop, the unrolled loops (vector
dimension first), the RVars (serial, in their RDom order), the ``d_i`` loops, the ``d_o`` loops (for
a parallel root Func fused into one parallel task loop). Splits are outer-first, so every split after
the first one of a dimension is exact and only the first carries a tail.

Halide names: the unsplit loop keeps the Func's argument name; derived loops are named from a base
name per argument (the argument itself, or ``d<k>`` for Halide's auto-generated ``v123`` names, so
that a schedule prints the same on every build) plus ``_o``, ``_i``, ``_u``, ``_v`` (``_r`` for the
vector register tile before it is cut into ``_u`` x ``_v``).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from ..dag import Node, Span, Stage
from .decisions import (LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, LEVEL_RVAR, LEVEL_UNROLL, LEVEL_VECTOR,
                        InnerTile, Kernel, OuterTile)

TAIL_GUARD = "GuardWithIf"
TAIL_ROUND_UP = "RoundUp"

_AUTO_NAME = re.compile(r"^v\d+$")
_SUFFIXES = ("_o", "_i", "_u", "_v", "_r", "_par")
_RESERVED = {"hl", "pipeline"}


def base_names(node: Node) -> list[str]:
    """Per Func argument, the stem of the names of the loops split from it (see module doc)."""
    taken = set(node.args)
    for d in node.func.definitions:
        taken.update(rv.var for rv in d.rvars)
    out: list[str] = []
    for k, a in enumerate(node.args):
        ok = a.isidentifier() and not keyword.iskeyword(a) and not _AUTO_NAME.match(a) and a not in _RESERVED
        b = a if ok else f"d{k}"
        while (b != a and b in taken) or b in out or any(b + s in taken for s in _SUFFIXES):
            b += "_"
        out.append(b)
    return out


@dataclass(frozen=True)
class Split:
    """``stage.split(old, outer, inner, factor, tail)``."""

    old: str
    outer: str
    inner: str
    factor: int
    tail: str


@dataclass(frozen=True)
class LoopInfo:
    """One loop of a scheduled stage. ``dim``: Func argument index (-1 for RVars and the fused task
    loop); ``rvar``: index into the stage's RVars (``Func.rvars(update)[rvar]``), -1 for pure loops;
    ``extent``: iterations at the estimates, per iteration of the Func's compute site;
    ``tile_extent``: the constant extent of loops that are inside a tile (vector, unrolled, and the
    register-tile loop of a dimension that has an outer tile), else 0; ``fused``: dims of the task loop."""

    var: str
    level: str
    dim: int
    rvar: int
    extent: int
    tile_extent: int = 0
    fused: tuple[int, ...] = ()

    def covers_dim(self, d: int) -> bool:
        return self.dim == d or d in self.fused


@dataclass(frozen=True)
class StagePlan:
    """Everything Halide needs to schedule one stage, and the resulting loops (innermost first)."""

    func: int
    stage: int
    splits: tuple[Split, ...]
    order: tuple[str, ...]            # reorder() argument, innermost first ( () : no reorder needed)
    fuses: tuple[tuple[str, str, str], ...]   # fuse(inner, outer, fused), in order
    parallel: Optional[str]
    vectorize: Optional[tuple[str, int]]
    unroll: tuple[str, ...]
    loops: tuple[LoopInfo, ...]

    def loop(self, level: str, dim: int) -> LoopInfo:
        for l in self.loops:
            if l.level == level and (level == LEVEL_PARALLEL or l.dim == dim):
                return l
        raise KeyError((level, dim))

    def index_of(self, var: str) -> int:
        for i, l in enumerate(self.loops):
            if l.var == var:
                return i
        raise KeyError(var)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_stage(node: Node, stage: Stage, bases: Sequence[str], inner: Union[InnerTile, Kernel],
               outer: OuterTile, tail: str, bounds: Sequence[Span]) -> StagePlan:
    """The splits, order, fusion and labels of ``stage`` under ``inner`` and ``outer``; ``bounds``
    are the stage's loop spans (``stage.loops`` order) at its compute site, for the loop extents."""
    args = node.args
    unroll = dict(inner.unroll)
    tiles = dict(outer.tiles)
    extents = {l.pure_dim: bounds[j].extent for j, l in enumerate(stage.loops) if not l.rvar}
    dims = [l.pure_dim for l in stage.pure_loops]
    rvar_index = {rv.var: k for k, rv in enumerate(stage.definition.rvars)}

    splits: list[Split] = []
    vec_loop: list[LoopInfo] = []
    vec_unroll: list[LoopInfo] = []
    unrolled: list[LoopInfo] = []
    inner_loops: list[LoopInfo] = []
    outer_loops: list[LoopInfo] = []
    for d in dims:
        a, b, e = args[d], bases[d], max(extents.get(d, 1), 1)
        v = inner.vector_width if d == inner.vector_dim and inner.vector_width > 1 else 1
        u = unroll.get(d, 1)
        r = u * v
        t = tiles.get(d)
        reg = f"{b}_r" if (v > 1 and u > 1) else f"{b}_v" if v > 1 else f"{b}_u" if u > 1 else ""
        cur: Optional[str] = a
        if t is not None:
            if t == r:
                if r == 1:
                    outer_loops.append(LoopInfo(a, LEVEL_OUTER, d, -1, e))
                else:
                    splits.append(Split(a, f"{b}_o", reg, r, tail))
                    outer_loops.append(LoopInfo(f"{b}_o", LEVEL_OUTER, d, -1, _ceil_div(e, r)))
                cur = None
            else:
                splits.append(Split(a, f"{b}_o", f"{b}_i", t, tail))
                outer_loops.append(LoopInfo(f"{b}_o", LEVEL_OUTER, d, -1, _ceil_div(e, t)))
                cur = f"{b}_i"
        if cur is not None:
            if r > 1:
                splits.append(Split(cur, cur, reg, r, tail if cur == a else TAIL_GUARD))
            if t is not None:
                inner_loops.append(LoopInfo(cur, LEVEL_INNER, d, -1, t // r, tile_extent=t // r))
            else:
                inner_loops.append(LoopInfo(cur, LEVEL_INNER, d, -1, _ceil_div(e, r)))
        if v > 1 and u > 1:
            splits.append(Split(reg, f"{b}_u", f"{b}_v", v, TAIL_GUARD))
        if v > 1:
            vec_loop.append(LoopInfo(f"{b}_v", LEVEL_VECTOR, d, -1, v, tile_extent=v))
        if u > 1:
            info = LoopInfo(f"{b}_u", LEVEL_UNROLL, d, -1, u, tile_extent=u)
            (vec_unroll if v > 1 else unrolled).append(info)

    rvars = [LoopInfo(l.var, LEVEL_RVAR, -1, rvar_index.get(l.var, -1), bounds[j].extent)
             for j, l in enumerate(stage.loops) if l.rvar]
    loops = vec_loop + vec_unroll + unrolled + rvars + inner_loops + outer_loops
    order = tuple(l.var for l in loops)

    # Halide's order after the splits alone: each split puts (inner, outer) where old was.
    default = [l.var if l.rvar else args[l.pure_dim] for l in stage.loops]
    for s in splits:
        p = default.index(s.old)
        default[p:p + 1] = [s.inner, s.outer]
    if default == list(order):
        order = ()

    fuses: list[tuple[str, str, str]] = []
    parallel: Optional[str] = None
    final = list(loops)
    if outer.parallel and outer_loops:
        fused_dims = tuple(l.dim for l in outer_loops)
        name = outer_loops[0].var
        if len(outer_loops) > 1:
            stem = "_".join(bases[l.dim] for l in outer_loops)
            name = f"{stem}_par"
            cur_name = outer_loops[0].var
            for k, l in enumerate(outer_loops[1:], start=2):
                new = name if k == len(outer_loops) else "_".join(bases[o.dim] for o in outer_loops[:k]) + "_par"
                fuses.append((cur_name, l.var, new))
                cur_name = new
        tasks = 1
        for l in outer_loops:
            tasks *= l.extent
        final = final[:len(final) - len(outer_loops)] + [
            LoopInfo(name, LEVEL_PARALLEL, -1, -1, tasks, fused=fused_dims)]
        parallel = name
    vectorize = (vec_loop[0].var, vec_loop[0].extent) if vec_loop else None
    return StagePlan(node.index, stage.index, tuple(splits), order, tuple(fuses), parallel, vectorize,
                     tuple(l.var for l in vec_unroll + unrolled), tuple(final))

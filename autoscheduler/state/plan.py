"""The loop nest one stage gets from its two tiling decisions, as plain data.

For every pure dimension ``d`` of the stage, with vector width ``V`` (1 unless ``d`` is the vector
dimension), unroll factor ``u`` and register tile ``r = u * V``, and an optional outer tile ``T``
(a multiple of ``r``), the loops are, outermost first::

    d_o   (outer tile loop, ceil(E / T) iterations)           only with an outer tile
    d_s   (sub-tile loop inside a task: T / S, or ceil(E / S)) only with a sub-tile S (``OuterTile.sub``)
    d_i   (register tiles inside the (sub-)tile: S / r, T / r, or ceil(E / r) without an outer tile)
    d_u   (unrolled, u)                                        only with u > 1
    d_v   (vectorised, V)                                      only for the vector dimension

and the stage's loops are ordered, innermost first: the vector loop, the unrolled loops (vector
dimension first), the RVars (serial, in their RDom order), the ``d_i`` loops, the block loop of the
outermost RVar when ``OuterTile.rblock`` cuts it (its in-block loop stays with the RVars), the ``d_s``
loops (level ``outer``: serial, sites for producers), the ``d_o`` loops (for a parallel root Func fused
into one parallel task loop). Splits are outer-first, so every split after
the first one of a dimension is exact and only the first carries a tail.

Halide names: the unsplit loop keeps the Func's argument name; derived loops are named from a base
name per argument (the argument itself, or ``d<k>`` for Halide's auto-generated ``v123`` names, so
that a schedule prints the same on every build) plus ``_o``, ``_i``, ``_u``, ``_v`` (``_r`` for the
vector register tile before it is cut into ``_u`` x ``_v``).

GPU (``gpu`` argument): in a kernel (``GPU_KERNEL``: a root Func's stage with a parallel OuterTile) the
``d_o`` loops of the tiled dimensions are ``gpu_blocks`` (level ``block``) and their ``d_i`` loops
``gpu_threads`` (level ``thread``; a dimension whose tile equals its register tile has no thread
loop); untiled dimensions keep a serial ``d_i`` loop inside the threads. The order is, innermost
first: unrolled loops, RVars, serial ``d_i`` loops, thread loops, block loops. At a consumer's block
loop (``GPU_BLOCK``: shared memory, parallel OuterTile) the same holds except that the ``d_o`` loops
stay serial (level ``outer``, outside the thread loops, at block level). ``GPU_SINGLE`` is a root
stage without tiles run by one GPU thread (``gpu_single_thread``); a stage inside a thread is
planned as on the CPU (serial). Nothing is vectorised or fused on GPU. ``plan_rfactor`` plans an
:class:`RFactor` stage (the intermediate's two stages and the final combining stage) on GPU;
``cpu_rfactor.plan_cpu_rfactor`` on CPU.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from ..dag import Node, Span, Stage
from .decisions import (LEVEL_BLOCK, LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, LEVEL_RVAR, LEVEL_THREAD,
                        LEVEL_UNROLL, LEVEL_VECTOR, InnerTile, Kernel, OuterTile, RFactor)

TAIL_GUARD = "GuardWithIf"
TAIL_ROUND_UP = "RoundUp"

GPU_KERNEL = "kernel"   # a root stage with a parallel OuterTile: blocks and threads
GPU_BLOCK = "block"     # a stage computed at a consumer's block loop with a parallel OuterTile: threads
GPU_SINGLE = "single"   # a root stage without tiles on GPU: one thread (gpu_single_thread)
GPU_SERIAL = "serial"   # a GPU stage inside a thread: serial loops only
RFACTOR_THREADS = 256   # threads per block of the rfactor kernels
MAX_GRID_YZ = 65535     # CUDA's limit on the 2nd and 3rd grid dimensions

_AUTO_NAME = re.compile(r"^v\d+$")
_SUFFIXES = ("_o", "_s", "_i", "_u", "_v", "_r", "_par")
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
    gpu: str = ""                       # "" (CPU) or one of GPU_KERNEL, GPU_BLOCK, GPU_SINGLE, GPU_SERIAL
    gpu_blocks: tuple[str, ...] = ()    # gpu_blocks() argument, innermost first
    gpu_threads: tuple[str, ...] = ()   # gpu_threads() argument, innermost first
    rfactor: Optional["RFactorPlan"] = None

    @property
    def threads(self) -> tuple[int, ...]:
        """Extents of the thread loops, innermost (CUDA's x) first."""
        return tuple(l.extent for l in self.loops if l.level == LEVEL_THREAD)

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(l.extent for l in self.loops if l.level == LEVEL_BLOCK)

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
               outer: OuterTile, tail: str, bounds: Sequence[Span], gpu: str = "") -> StagePlan:
    """The splits, order, fusion and labels of ``stage`` under ``inner`` and ``outer``; ``bounds``
    are the stage's loop spans (``stage.loops`` order) at its compute site, for the loop extents;
    ``gpu`` the stage's GPU context (module doc; "" on CPU)."""
    threaded = gpu in (GPU_KERNEL, GPU_BLOCK)
    args = node.args
    unroll = dict(inner.unroll)
    tiles = dict(outer.tiles)
    subs = dict(outer.sub)
    extents = {l.pure_dim: bounds[j].extent for j, l in enumerate(stage.loops) if not l.rvar}
    dims = [l.pure_dim for l in stage.pure_loops]
    rvar_index = {rv.var: k for k, rv in enumerate(stage.definition.rvars)}

    splits: list[Split] = []
    vec_loop: list[LoopInfo] = []
    vec_unroll: list[LoopInfo] = []
    unrolled: list[LoopInfo] = []
    inner_loops: list[LoopInfo] = []
    thread_loops: list[LoopInfo] = []
    outer_loops: list[LoopInfo] = []
    sub_loops: list[LoopInfo] = []
    outer_level = LEVEL_BLOCK if gpu == GPU_KERNEL else LEVEL_OUTER
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
                    outer_loops.append(LoopInfo(a, outer_level, d, -1, e))
                else:
                    splits.append(Split(a, f"{b}_o", reg, r, tail))
                    outer_loops.append(LoopInfo(f"{b}_o", outer_level, d, -1, _ceil_div(e, r)))
                cur = None
            else:
                splits.append(Split(a, f"{b}_o", f"{b}_i", t, tail))
                outer_loops.append(LoopInfo(f"{b}_o", outer_level, d, -1, _ceil_div(e, t)))
                cur = f"{b}_i"
        sub = subs.get(d)
        if sub is not None and cur is not None and sub == r:
            # a strip one register tile wide: the sub-tile loop is the register-tile loop
            n_sub = t // sub if t is not None else _ceil_div(e, sub)
            if r > 1:
                splits.append(Split(cur, f"{b}_s", reg, r, TAIL_GUARD if t is not None else tail))
            sub_loops.append(LoopInfo(f"{b}_s" if r > 1 else cur, LEVEL_OUTER, d, -1, n_sub,
                                      tile_extent=n_sub if t is not None else 0))
            cur = None
        elif sub is not None and cur is not None:
            # the serial sub-tile level inside a task: exact inside a task tile, the first split
            # (with the stage's tail) of an untiled dimension
            if t is not None:
                splits.append(Split(cur, f"{b}_s", cur, sub, TAIL_GUARD))
                sub_loops.append(LoopInfo(f"{b}_s", LEVEL_OUTER, d, -1, t // sub, tile_extent=t // sub))
            else:
                splits.append(Split(a, f"{b}_s", f"{b}_i", sub, tail))
                sub_loops.append(LoopInfo(f"{b}_s", LEVEL_OUTER, d, -1, _ceil_div(e, sub)))
                cur = f"{b}_i"
            t = sub
        if cur is not None:
            if r > 1:
                splits.append(Split(cur, cur, reg, r, tail if cur == a else TAIL_GUARD))
            if t is not None and threaded:
                thread_loops.append(LoopInfo(cur, LEVEL_THREAD, d, -1, t // r, tile_extent=t // r))
            elif t is not None:
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
    block_loops: list[LoopInfo] = []
    if outer.rblock and rvars and not gpu:
        # the outermost RVar in blocks: the block loop right outside the register-tile loops
        last = rvars[-1]
        ro, ri = rblock_names(node, stage)
        splits.append(Split(last.var, ro, ri, outer.rblock, TAIL_GUARD))
        rvars[-1] = LoopInfo(ri, LEVEL_RVAR, -1, last.rvar, min(outer.rblock, max(last.extent, 1)))
        block_loops.append(LoopInfo(ro, LEVEL_RVAR, -1, last.rvar, _ceil_div(max(last.extent, 1), outer.rblock)))
    loops = (vec_loop + vec_unroll + unrolled + rvars + inner_loops + thread_loops + block_loops + sub_loops
             + outer_loops)
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
    if gpu:
        return StagePlan(node.index, stage.index, tuple(splits), order, (), None, None,
                         tuple(l.var for l in vec_unroll + unrolled), tuple(loops), gpu,
                         tuple(l.var for l in outer_loops) if gpu == GPU_KERNEL else (),
                         tuple(l.var for l in thread_loops) if threaded else ())
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


@dataclass(frozen=True)
class RFactorPlan:
    """How an :class:`RFactor` stage is computed. ``f.update(k).split(rvar, outer, inner, factor,
    GuardWithIf).rfactor(inner, var)`` makes the intermediate (``f``'s pure dimensions, then ``var``
    of extent ``factor``), computed at root with the two stage plans ``intm`` (its pure definition and
    its update, which reduces ``outer`` and the stage's other RVars serially inside each thread); the
    stage itself (the :class:`StagePlan` holding this) then combines the ``factor`` partial results
    over the RVar ``inner``, with ``atomic()`` when ``atomic``.

    On GPU (``plan_rfactor``) the intermediate's stages are fixed-shape kernels (``var`` spread over
    threads and blocks) and the update reduces ``outer`` serially inside each thread. On CPU
    (``cpu_rfactor.plan_cpu_rfactor``; ``atomic`` is never set) the intermediate's pure stage and
    update are, innermost first: ``var_v`` (``var`` split by the natural vector width, vectorised;
    only when ``factor`` is a multiple of it, else ``var`` stays whole and serial), the update's
    RVars (``outer`` in the split RVar's place, the others in their order, serial), ``var_o`` (or
    ``var``), the pure loops; the outermost of ``var_o`` / ``var`` (when it has >= 2 iterations) or
    else the outermost pure loop (when >= 2) is the parallel loop, moved outermost. So each task
    reduces its share of the RVar into a vector of partial sums held in one register.
    ``storage``: the intermediate's ``reorder_storage`` (Var names, innermost first: ``var`` first,
    so that the vector stores are dense), empty when not needed. The combining stage then reduces
    ``inner`` (``factor`` partial results) serially, innermost, with its pure loops serial."""

    rvar: str
    rvar_index: int
    outer: str
    inner: str
    factor: int
    var: str
    atomic: bool
    intm: tuple[StagePlan, StagePlan]
    storage: tuple[str, ...] = ()


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _fixed_gpu_plan(func: int, stage: int, pure: Sequence[tuple[str, int, int]], rvars: Sequence[LoopInfo],
                    spread: Optional[LoopInfo]) -> StagePlan:
    """A kernel of a fixed shape: the loop ``spread`` (a pure loop or an RVar) split into
    ``RFACTOR_THREADS``-wide thread tiles (threads inside, blocks outside), up to two of the ``pure``
    loops (var, dim, extent; innermost first) as further block dimensions, and the rest serial inside
    each thread (the RVars innermost). No ``spread`` loop: one thread (``gpu_single_thread``)."""
    serial_rv = list(rvars)
    if spread is None:
        loops = serial_rv + [LoopInfo(v, LEVEL_INNER, d, -1, e) for v, d, e in pure]
        return StagePlan(func, stage, (), tuple(l.var for l in loops), (), None, None, (), tuple(loops),
                         GPU_SINGLE)
    b = min(RFACTOR_THREADS, _pow2_at_least(max(spread.extent, 1)))
    outer, inner = f"{spread.var}_o", f"{spread.var}_i"
    splits = (Split(spread.var, outer, inner, b, TAIL_GUARD),)
    thread = LoopInfo(inner, LEVEL_THREAD, spread.dim, spread.rvar, b, tile_extent=b)
    block = LoopInfo(outer, LEVEL_BLOCK, spread.dim, spread.rvar, _ceil_div(spread.extent, b))
    blocks = [block]
    serial: list[LoopInfo] = []
    for v, d, e in reversed(list(pure)):        # the outermost pure loops become blocks
        if len(blocks) < 3 and e <= MAX_GRID_YZ and e > 1:
            blocks.append(LoopInfo(v, LEVEL_BLOCK, d, -1, e))
        else:
            serial.insert(0, LoopInfo(v, LEVEL_INNER, d, -1, e))
    extra = blocks[1:]
    extra.reverse()                              # innermost first, after the spread block
    loops = serial_rv + serial + [thread, block] + extra
    return StagePlan(func, stage, splits, tuple(l.var for l in loops), (), None, None, (), tuple(loops),
                     GPU_KERNEL, tuple(l.var for l in [block] + extra), (inner,))


def _free_stem(node: Node, stem: str) -> str:
    """``stem``, with ``_`` appended until no argument or RVar name of the Func starts with it."""
    taken = set(node.args) | {rv.var for d in node.func.definitions for rv in d.rvars}
    while any(n.startswith(stem) for n in taken):
        stem += "_"
    return stem


def rblock_names(node: Node, stage: Stage) -> tuple[str, str]:
    """Halide names of the block loop and the in-block loop of an ``OuterTile.rblock`` split."""
    stem = _free_stem(node, f"rb{stage.index}")
    return f"{stem}_o", f"{stem}_i"


def rfactor_names(node: Node, stage: Stage) -> tuple[str, str, str]:
    """Halide names of the split RVars and of the intermediate's new Var for an RFactor stage."""
    stem = _free_stem(node, f"rf{stage.index}")
    return f"{stem}_o", f"{stem}_i", f"{stem}_u"


def plan_rfactor(node: Node, stage: Stage, rf: RFactor, bounds: Sequence[Span]) -> StagePlan:
    """The plan of an :class:`RFactor` stage: the final combining stage's loops, with the
    intermediate's two stages in ``plan.rfactor`` (see :class:`RFactorPlan`). ``bounds``: the stage's
    loop spans at its (root) compute site."""
    ext = {l.var: max(bounds[j].extent, 1) for j, l in enumerate(stage.loops)}
    pure = [(node.args[l.pure_dim], l.pure_dim, ext[l.var]) for l in stage.pure_loops]
    rv_loops = [(j, l) for j, l in enumerate(stage.loops) if l.rvar]
    rvar_index = {rv.var: k for k, rv in enumerate(stage.definition.rvars)}
    split_var = rv_loops[rf.rvar][1].var
    outer, inner, var = rfactor_names(node, stage)
    r_ext = ext[split_var]
    u_dim = len(node.args)
    # the intermediate: pure stage over (pure..., var), update reducing outer + the other RVars
    intm_rvars = []
    for _, l in rv_loops:
        if l.var == split_var:
            intm_rvars.append(LoopInfo(outer, LEVEL_RVAR, -1, rvar_index.get(l.var, -1),
                                       _ceil_div(r_ext, rf.factor)))
        else:
            intm_rvars.append(LoopInfo(l.var, LEVEL_RVAR, -1, rvar_index.get(l.var, -1), ext[l.var]))
    u_loop = LoopInfo(var, LEVEL_INNER, u_dim, -1, rf.factor)
    intm0 = _fixed_gpu_plan(node.index, 0, pure, (), u_loop)
    intm1 = _fixed_gpu_plan(node.index, 1, pure, intm_rvars, u_loop)
    inner_rv = LoopInfo(inner, LEVEL_RVAR, -1, rf.rvar, rf.factor)
    if rf.atomic:
        final = _fixed_gpu_plan(node.index, stage.index, pure, (), inner_rv)
    elif pure:
        v, d, e = pure[0]
        final = _fixed_gpu_plan(node.index, stage.index, pure[1:], (inner_rv,), LoopInfo(v, LEVEL_INNER, d, -1, e))
    else:
        final = _fixed_gpu_plan(node.index, stage.index, (), (inner_rv,), None)
    rplan = RFactorPlan(split_var, rf.rvar, outer, inner, rf.factor, var, rf.atomic, (intm0, intm1))
    return StagePlan(final.func, final.stage, final.splits, final.order, (), None, None, (), final.loops,
                     final.gpu, final.gpu_blocks, final.gpu_threads, rplan)

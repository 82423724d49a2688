"""Hand-built terms for the innermost loop of a reduction: how many accumulators it keeps in flight.

Why this exists: Adams2019's features (and so its network) were made for a space where an update's
RVars sit outside its vectorised pure loop and nothing is unrolled around them. Our space also has
the GEMM micro-kernel shape (:class:`~autoscheduler.state.Kernel`: a register tile of pure points,
unrolled, inside the RVar loops), and what decides its speed is a fact the 39 features do not hold:
each step of the innermost RVar updates ``A`` independent accumulators, and a loop-carried chain of
floating-point adds completes one step per FMA latency. With ``A`` below latency x FMA ports the
loop is latency-bound, whatever the memory traffic. Measured on conv_layer (2-core AVX-512, 64->64
channels, 56x56): one accumulator vector per RVar step ran at ~1/8 of the FMA peak, a 2x6 tile of
vectors (12 accumulators) kept in registers at 82-110 GFLOP/s, the same tile whose Func spans many
tiles at its compute site (accumulators live in memory between RVar steps) at 38 GFLOP/s, while the
Adams2019 weights ranked these the other way round.

``stage_factors(state)`` gives, per stage in featurization order, the factor by which that stage's
innermost loop runs slower than its issue-bound ideal (1 for stages without RVars, for stages not
decided yet, and for reductions with enough accumulators in registers). The cost model multiplies
each stage's predicted cost by it (``autoscheduler.cost``) and our network can read it as a
feature. The constants are the target's, not fitted: FMA latency 4 cycles and 2 FMA ports on
AVX2/AVX-512 cores (1 cycle for integer adds); an accumulator kept in memory costs a store per
step (one store port) and a store-to-load forwarding delay on its chain.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..ir.nodes import Call, Load, Variable, walk
from ..state import Kernel, State
from ..state.decisions import (LEVEL_INNER, LEVEL_RVAR, LEVEL_UNROLL, LEVEL_VECTOR, UNROLL_LIMIT, WHERE_INLINE,
                               WHERE_ROOT)
from ..state.layout import read_order, storage_order
from ..state.plan import TAIL_ROUND_UP

FLOAT_LATENCY = 4        # cycles of a dependent FMA / float add chain (Skylake..Sapphire Rapids)
INT_LATENCY = 1          # integer add chains
ISSUE_PORTS = 2          # vector FMA (or ALU) ports
STORE_PORTS = 1          # vector stores per cycle
LOAD_PORTS = 2           # vector loads per cycle
RELOAD_LATENCY = 5       # store-to-load forwarding: an accumulator kept in memory adds this per step
MAX_FACTOR = 16.0


@dataclass(frozen=True)
class KernelTerms:
    """The innermost RVar loop of one reduction stage.

    ``accumulators``: vectors (or scalars) updated per step of the innermost RVar; ``in_registers``:
    the Func's region at its compute site is exactly that register tile (every pure loop outside it
    runs once), so the accumulators need not be stored between steps; ``factor``: cycles per step
    over the issue-bound ideal (>= 1)."""

    accumulators: int
    in_registers: bool
    factor: float


def _is_float(state: State, f: int) -> bool:
    types = state.space.node(f).output_types
    return any(getattr(t, "is_float", False) for t in types)


def is_accumulation(stage: Any) -> bool:
    """An update that accumulates into the same points at every RVar step: it has RVars and its
    left-hand side names none of them (a scan such as ``f(x, r) = f(x, r - 1) + ...`` writes a new
    row per step, and a histogram writes where the data says: neither carries a chain per point)."""
    d = stage.definition
    if not d.rvars or d.is_init:
        return False
    names = {rv.var for rv in d.rvars}
    for a in d.args:
        for e in walk(a):
            if isinstance(e, Variable) and e.name in names:
                return False
            if isinstance(e, (Call, Load)):
                return False
    return True


def stage_terms(state: State, f: int, s: int) -> KernelTerms | None:
    """Terms of stage ``s`` of Func ``f``, or None when it has no RVars or no inner decision yet.

    Read off the inner decision and the stage's extents at its site, so they are known as soon
    as the inner decision is made (the search ranks inner decisions before the outer tiling)."""
    inner = state.inner(f, s)
    st = state.space.stage(f, s)
    if not is_accumulation(st) or state.rfactor(f, s) is not None:
        return None     # an RFactor stage's chains are its partial results (vector lanes): factor 1
    if inner is None:
        return _best_case_terms(state, f, s) if state.placement(f) is not None else None
    if not isinstance(inner, Kernel):
        acc, in_regs = 1, True   # one accumulator at one address for the whole RVar loop
    else:
        tile = {d: k for d, k in inner.unroll}
        tile[inner.vector_dim] = tile.get(inner.vector_dim, 1) * inner.vector_width
        acc = 1
        for _, k in inner.unroll:
            acc *= k
        bounds = state.stage_bounds(f, s)
        fits = all(bounds[j].extent <= tile.get(l.pure_dim, 1)
                   for j, l in enumerate(st.loops) if not l.rvar)
        # the tile stays in registers across RVar steps only when it is the Func's whole region
        # at its site, with compile-time constant extents (no guards inside the RVar loop);
        # otherwise it is reloaded and stored every step
        in_regs = (fits and constant_extents_at_site(state, f)) or \
            constant_root_tiles(state, f, [d for d, k in inner.unroll if k > 1])
    return _terms(acc, in_regs, _latency(state, f), step_loads(state, f, s, inner))


def constant_root_tiles(state: State, f: int, unrolled: Sequence[int] | None = None) -> bool:
    """A root Func split with RoundUp tails (not an output, no input it could read past) whose
    register tile rows LLVM can tell apart: each register tile has constant extents and
    loop-invariant addresses across the RVar loop inside it, and its accumulators are promoted to
    registers for the whole loop, however many tiles the Func spans, when the storage strides of
    the tile's unrolled dimensions (``unrolled``; None: every dimension but the outermost stored,
    the best tile not chosen yet) are compile-time constants (``FunctionDAG.constant_extents``).
    Measured on ae_train_step: ``a1`` (512 x 256, sized by RDoms) keeps a 4 x 3 tile in registers;
    the adjoint of ``h3`` (sized by an output) reloads and stores its 8-row tile every step."""
    p = state.placement(f)
    if p is None or p.where != WHERE_ROOT or state.space.tail[f] != TAIL_ROUND_UP:
        return False
    order = storage_order(state, f)
    const = state.space.dag.constant_extents()[f]
    # a dimension's stride is the product of the extents stored inside it
    return all(const[inside] for d in (order[1:] if unrolled is None else unrolled)
               for inside in order[:order.index(d)])


def _latency(state: State, f: int) -> int:
    return FLOAT_LATENCY if _is_float(state, f) else INT_LATENCY


def _terms(acc: int, in_regs: bool, latency: int, loads: float = 0.0) -> KernelTerms:
    """Cycles per RVar step of ``acc`` accumulators over the issue-bound ideal."""
    ideal = acc / ISSUE_PORTS
    if in_regs:                                       # the add chain of one accumulator; the loads
        cycles = max(ideal, float(latency), loads / LOAD_PORTS)
    else:                                             # a store per accumulator per step, a reload,
        cycles = max(acc / STORE_PORTS, (loads + acc) / LOAD_PORTS,  # and a chain through memory
                     float(latency + RELOAD_LATENCY))
    return KernelTerms(acc, in_regs, float(min(MAX_FACTOR, max(1.0, cycles / ideal))))


def step_loads(state: State, f: int, s: int, inner: Any) -> float:
    """Vector loads (or broadcasts) one RVar step of the register tile issues.

    Each distinct load of the stage is issued once per register-tile point it varies over: a vector
    per vector of the tile if it varies along the vector dimension (``width`` scalar loads, a gather,
    if that is not its stride-1 storage dimension), one broadcast otherwise, times the unrolled
    factor of every other tile dimension it varies along. A 1-vector x 8-row tile of a conv issues
    9 loads for 8 FMAs; a 2 x 6 tile 8 for 12."""
    st = state.space.stage(f, s)
    v = inner.vector_dim
    width = max(1, int(inner.vector_width))
    unroll = dict(inner.unroll) if isinstance(inner, Kernel) else {}
    loops_of: dict[int, list[int]] = {}
    for j, l in enumerate(st.loops):
        if not l.rvar:
            loops_of.setdefault(l.pure_dim, []).append(j)
    total = 0.0
    for e in st.incoming_edges:
        if e.producer.index == f:
            continue
        store_dim = read_order(state, e.producer.index, f)[0]   # its Layout, or the Wrap f reads
        for lj in e.load_jacobians:
            m = lj.matrix

            def coeff(row: int, d: int) -> Any:
                vals = [m[row][j] for j in loops_of.get(d, ()) if row < len(m) and j < len(m[row])]
                if any(x is None for x in vals):
                    return None
                return sum(vals) if vals else 0

            def varies(d: int) -> bool:
                return any(coeff(r, d) != 0 for r in range(len(m)))

            n = 1.0
            if v is not None and varies(v):
                contiguous = store_dim < len(m) and coeff(store_dim, v) == 1 and \
                    all(coeff(r, v) == 0 for r in range(len(m)) if r != store_dim)
                n *= unroll.get(v, 1) * (1 if contiguous else width)
            for d, k in unroll.items():
                if d != v and varies(d):
                    n *= k
            total += n * max(1, lj.count)
    return total


def _best_case_terms(state: State, f: int, s: int) -> KernelTerms:
    """Terms of the best register tile a placed, not yet tiled reduction stage can still get.

    The search places a Func before it tiles it, and the network prices the placement with the
    stage untiled: without this lookahead a site where the micro-kernel fits in registers (a
    consumer's register tile) lost to coarser sites before its Kernel could be tried."""
    st = state.space.stage(f, s)
    bounds = state.stage_bounds(f, s)
    width = max(1, state.space.vector_width[st.id])
    points = 1
    for j, l in enumerate(st.loops):
        if not l.rvar:
            points *= max(1, bounds[j].extent)
    vectors = -(-points // width)
    if vectors <= UNROLL_LIMIT and constant_extents_at_site(state, f):
        return _terms(vectors, True, _latency(state, f))   # the whole region is its largest tile
    return _terms(min(UNROLL_LIMIT, vectors), constant_root_tiles(state, f), _latency(state, f))


def constant_extents_at_site(state: State, f: int) -> bool:
    """Whether Func ``f``'s extents at its compute site are compile-time constants: it is computed
    at a consumer's loop and every loop of that consumer inside the site is a vector, unrolled or
    register-tile loop of constant extent (an output's tiles are constant because ``apply``
    specialises them with ShiftInwards; an internal Func's guarded tails are not). A root Func spans
    the whole (run-time) extent of its consumers."""
    p = state.placement(f)
    if p is None or p.at is None:
        return False
    ref = p.at
    plan = state.plan(ref.func, ref.stage)
    if plan is None:
        return False
    i = plan.index_of(plan.loop(ref.level, ref.dim).var)
    consumer_is_output = state.space.node(ref.func).is_output
    guarded = {sp.old for sp in plan.splits if sp.tail == "GuardWithIf"}
    node = state.space.node(ref.func)
    for l in plan.loops[:i]:
        if l.level == LEVEL_RVAR:
            continue
        if l.level in (LEVEL_VECTOR, LEVEL_UNROLL):
            if not consumer_is_output and 0 <= l.dim < len(node.args) and node.args[l.dim] in guarded:
                return False
            continue
        if l.level == LEVEL_INNER and l.tile_extent > 0:
            continue
        return False
    return True


_REDUCTIONS: "weakref.WeakKeyDictionary[Any, list[tuple[int, int, int, frozenset[int]]]]" = \
    weakref.WeakKeyDictionary()
_MEMO: "weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], tuple[Any, Any, KernelTerms | None]]]" = \
    weakref.WeakKeyDictionary()


def _reduction_stages(dag: Any) -> list[tuple[int, int, int, frozenset[int]]]:
    """(row in featurization order, func, stage, the Func and its producers) of every stage with
    RVars (memoized per DAG)."""
    found = _REDUCTIONS.get(dag)
    if found is None:
        found = [(k, st.node.index, st.index,
                  frozenset({st.node.index} | {e.producer.index for e in st.incoming_edges}))
                 for k, st in enumerate(dag.featurization_order()) if is_accumulation(st)]
        _REDUCTIONS[dag] = found
    return found


def stage_factors(state: State, order: Any = None) -> np.ndarray:
    """Per stage in featurization order (``dag.featurization_order()``), the slowdown factor of its
    innermost loop; 1.0 for stages without RVars or not yet decided.

    A state keeps its factors and, per reduction stage, the Funcs its terms read (the stage's own,
    its host's, its producers': ``State.derived["factors"]``); after a decision that places no
    Func, a child keeps the parent's factor for every stage whose terms read none of the decided
    Funcs (building the memo key below was most of this function's time)."""
    dag = state.space.dag
    n = len(order) if order is not None else len(dag.featurization_order())
    pd = state.parent_derived
    prev = pd.get("factors") if pd is not None else None
    changed = state.non_placing_change() if prev is not None and prev[0] == n else None
    parent_reads: dict[tuple[int, int], frozenset[int]] = {}
    dirty = dirty2 = -1
    if changed is not None:
        assert prev is not None
        out = prev[1].copy()
        parent_reads = prev[2]
        dirty, dirty2 = changed
    else:
        out = np.ones(n, dtype=np.float64)
    reads: dict[tuple[int, int], frozenset[int]] = {}
    memo = _MEMO.setdefault(state.space, {})
    for k, f, s, own in _reduction_stages(dag):
        old = parent_reads.get((f, s))
        if old is not None and dirty not in old and dirty2 not in old:
            reads[(f, s)] = old          # out[k] is the parent's
            continue
        p = state.placement(f)
        reads[(f, s)] = own | {p.at.func} if p is not None and p.at is not None else own
        out[k] = 1.0
        if p is None or p.where == WHERE_INLINE or state.rfactor(f, s) is not None:
            continue
        # the terms depend on the stage's inner decision and bounds and on the plan of the consumer
        # stage it is computed in (children share those objects with their parent); at root on the
        # Func's storage order (its row strides), and once tiled on the order it reads each
        # producer in (its gathers): producers are decided after it
        bounds = state.stage_bounds(f, s)
        plan = state.plan(p.at.func, p.at.stage) if p.at is not None else None
        inner = state.inner(f, s)
        key = (f, s, inner, p, id(bounds), id(plan),
               storage_order(state, f) if p.where == WHERE_ROOT else None,
               _read_orders(state, f, s) if inner is not None else None)
        hit = memo.get(key)
        if hit is not None and hit[0] is bounds and hit[1] is plan:
            t = hit[2]
        else:
            t = stage_terms(state, f, s)
            if len(memo) > 200_000:
                memo.clear()
            memo[key] = (bounds, plan, t)
        if t is not None:
            out[k] = t.factor
    if state.derived is None:
        state.derived = {}
    state.derived["factors"] = (n, out, reads)
    return out.copy()


def _read_orders(state: State, f: int, s: int) -> tuple[int, ...]:
    """The innermost storage dimension stage (f, s) reads each producer in (``step_loads``)."""
    return tuple(read_order(state, e.producer.index, f)[0]
                 for e in state.space.stage(f, s).incoming_edges if e.producer.index != f)


def batch_factors(states: list[State]) -> np.ndarray:
    """[B, S] factors for a batch of states of one pipeline."""
    if not states:
        return np.ones((0, 0))
    n = len(states[0].space.dag.featurization_order())
    return np.stack([stage_factors(s, range(n)) for s in states])

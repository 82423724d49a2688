"""Local refinement of a complete state: retile the Funcs that host others, with what they host
(``refine_tiles``: larger tiles; ``refine_kernels``: other shapes and task grids around a reduction
computed per tile), move the root producers of a root Func into its tasks, together
(``refine_fusion``), producers into sub-tiles of their stencil consumers (``refine_sites``) and
into serial outer tiles of hosts computed inside other Funcs (``refine_host_sites``), re-size
the sub-tiles producers are computed in (``refine_sub_tiles``), give a microsecond pipeline
fewer parallel tasks (``refine_tasks``), and even out the pick's parallel tasks (``refine_balance``).

Why: the beam decides a consumer's register tile before the Funcs computed inside that tile are
placed, so it prices the tile by the consumer's own (often cheap, pointwise) stage. A reduction
computed per tile then inherits whatever tile won: ae_train_step's weight update ``W1_new`` took a
2 x 2 tile and its gradient GEMM, computed per tile, kept 4 accumulators in flight, while a 2 x 6 tile
for both was predicted cheaper (14.3 vs 15.4) and ran 6% faster, but was never generated.

``refine_tiles`` takes the search's best state and, for every pure-stage tile decision of a Func that
has another Func computed at one of its loops, tries every larger tile (more unrolled points) the
menu offers there with the same vector dimension and width and no more padding in tails than the
tile it replaces or Adams2019's 1/7 (the network does not price tails: a 6-image tile over a batch of
8 computes 12). Only larger: the network and the kernel terms under-rate accumulators beyond the
latency bound (conv_layer's output tile refined from 2 x 6 to 2 x 4, predicted 13% cheaper, ran 52%
slower), so smaller tiles are left to the beam. The rest of the trace is replayed as it was, except
the tile decisions of the Funcs computed at that Func (and any decision the new tile made illegal),
which are re-chosen greedily by the cost model among the options of the same kind (with the same
padding limit). The cheapest predicted state wins if it beats the original; rounds repeat from it
while time is left.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from .dag import box_points
from .features.task_terms import stage_tasks, task_overhead
from .state import SearchSpace, State
from .state.state import is_stencil_edge
from .state.decisions import (LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, WHERE_AT, WHERE_INLINE, WHERE_ROOT, Decision,
                              IllegalDecisionError, InnerTile, Kernel, Layout, LoopRef, OuterTile, Place, Wrap)

CostFn = Callable[[Sequence[State]], np.ndarray]
SITE_FINALISTS = 6      # partial branches per moved producer that refine_sites completes
KERNEL_MARGIN = 0.05    # refine_kernels keeps the search's pick unless predicted this much cheaper:
                        # ae_forward's layers retiled, predicted 0.1% cheaper, ran 3-5% slower (two A/Bs)
MOVE_MARGIN = 0.005     # refine_sites / refine_host_sites keep the pick unless a move is predicted this
                        # much cheaper (a near-tie is below what the network resolves): camera_pipe's
                        # red moved to a 256-wide outer tile of its host, predicted 0.08% cheaper, ran
                        # 20% slower (8.9 vs 7.4 ms); unsharp's move, predicted 0.6% cheaper, ran 0.81x
FUSION_MARGIN = 0.2     # refine_fusion keeps the pick unless predicted this much cheaper: a group of
                        # Funcs moved is where the network is least reliable (bilateral_grid's blurz
                        # per task, predicted 3.7% cheaper, ran 24% slower; camera_pipe's planes,
                        # predicted 65% cheaper, ran 1.6x faster)
FUSION_RECOMPUTE = 1.25  # refine_fusion: the moved Funcs compute at most this x their points at root.
                        # The network under-prices recompute: bilateral_grid's blurz per output task
                        # (1.46x its points) was predicted 16% cheaper and ran 31% slower;
                        # camera_pipe's colour planes per task (1.12x) ran 1.6x faster
MAX_PADDING = 8 / 7     # Adams2019's tiling rule: at most 1/7 of a tile's points wasted in tails
BALANCE_TOLERANCE = 0.02  # refine_balance keeps even tasks predicted at most this much costlier (the
                          # network does not see that the slowest task sets the time; a chosen margin,
                          # not a measured one: on the 8 bundled picks it changed, the evened grids
                          # were all predicted cheaper)
TASK_MARGIN = 0.05      # refine_tasks only acts where the tasks' overhead it saves is at least this share
                        # of the predicted cost: microsecond pipelines (index_sum: 14 tasks, 0.0042 ms
                        # of overhead on a prediction of 0.0007), never millisecond ones


def _hosts(state: State) -> set[int]:
    """Funcs another Func is computed at (a loop of theirs is a compute site)."""
    out: set[int] = set()
    for f in state.space.order:
        p = state.placement(f)
        if p is not None and p.at is not None:
            out.add(p.at.func)
    return out


def _points(d: InnerTile) -> int:
    n = 1
    for _, k in d.unroll:
        n *= k
    return n


def _padding(state: State, d: Union[InnerTile, Kernel]) -> float:
    """Points the register tile ``d`` computes over the points its stage needs (tails padded)."""
    st = state.space.stage(d.func, d.stage)
    unroll = dict(d.unroll)
    out = 1.0
    for l, b in zip(st.loops, state.stage_bounds(d.func, d.stage)):
        if l.rvar:
            continue
        e = max(b.extent, 1)
        t = unroll.get(l.pure_dim, 1) * (d.vector_width if l.pure_dim == d.vector_dim else 1)
        out *= -(-e // t) * t / e
    return out


def _same_slot(a: Decision, b: Decision) -> bool:
    return type(a) is type(b) and a.func == b.func and getattr(a, "stage", None) == getattr(b, "stage", None)


def _replay(start: State, suffix: Sequence[Decision], host: int, cost_fn: CostFn,
            deadline: float, moved: Optional[Place] = None,
            partial: bool = False,
            retarget: Optional[Callable[[State, Place], Place]] = None) -> tuple[Optional[State], int]:
    """``suffix`` replayed on ``start``; the tiles of Funcs computed at ``host``, and decisions that
    no longer apply, re-chosen greedily among the options of the same kind. With ``moved`` (a new
    placement of a Func, replacing its Place in ``suffix``), that Func's tiles and those of every
    Func computed inside it, transitively, are re-chosen too. (state, states scored); None when a
    decision has no counterpart or the deadline passes. With ``partial`` (a quick first look), the
    state right after the moved Func's own decisions comes back (not complete; with ``moved`` only,
    else the complete state), and decisions are re-chosen without scoring (``_plain``).
    ``retarget(state, place)`` may replace each Place of the suffix when its slot comes (several
    Funcs moved in one replay, ``refine_fusion``)."""
    st = start
    inside: set[int] = set()
    hosts = {host}
    scored = 0
    for d in suffix:
        if st.is_complete:
            break
        if retarget is not None and isinstance(d, Place):
            d = retarget(st, d)
        if partial and moved is not None and moved.func in inside and st.slot is not None \
                and st.slot[1] != moved.func:
            return st, scored
        if moved is not None and isinstance(d, Place) and d.func == moved.func:
            d = moved
            inside.add(d.func)
            hosts.add(d.func)
        elif isinstance(d, Place) and d.at is not None and d.at.func in hosts:
            inside.add(d.func)
            if moved is not None:
                hosts.add(d.func)
        if isinstance(d, Place) or d.func not in inside:
            try:
                st = st.apply(d)
                continue
            except IllegalDecisionError:
                if d is moved:
                    return None, scored
        if isinstance(d, (Layout, Wrap)):
            continue        # optional decisions: dropped where no longer legal
        if time.perf_counter() > deadline:
            return None, scored
        if partial:     # a quick first look: the plainest tile, no scoring
            try:
                st = st.apply(_plain(d))
                continue
            except IllegalDecisionError:
                pass
        opts = [o for o in st.options() if _same_slot(o, d)]
        if opts and partial:
            st = st.apply(opts[0])
            continue
        if opts and isinstance(d, (InnerTile, Kernel)):   # no tail-padded tiles the beam would not take
            if moved is not None and d.func == moved.func:
                # the moved producer: no tile over the limit at all, whatever its old tile wasted (none
                # left: no state). Computed per sub-tile it covers the sub-tile plus its halo, which a
                # vector of 32 lanes can overshoot by half (stencil_chain's first stage at 64-wide
                # sub-tiles: 96 lanes for 68 points, predicted 9% cheaper, ran 13-27% slower in four
                # A/Bs); the network does not price those lanes.
                opts = [o for o in opts if isinstance(o, (InnerTile, Kernel)) and _padding(st, o) <= MAX_PADDING]
            else:
                limit = max(_padding(st, d), MAX_PADDING)
                opts = [o for o in opts if isinstance(o, (InnerTile, Kernel)) and _padding(st, o) <= limit] or opts
        best, n = _cheapest([st.apply(o) for o in opts], cost_fn)
        scored += n
        if best is None:
            return None, scored
        st = best
    return (st if st.is_complete or partial else None), scored


def _cheapest(kids: Sequence[State], cost_fn: CostFn) -> tuple[Optional[State], int]:
    """The state of ``kids`` the cost model prices lowest (None when none is finite), states scored."""
    if not kids:
        return None, 0
    costs = np.asarray(cost_fn(kids), dtype=np.float64)
    costs[~np.isfinite(costs)] = np.inf
    if not np.isfinite(costs).any():
        return None, len(kids)
    return kids[int(np.argmin(costs))], len(kids)


def _plain(d: Decision) -> Decision:
    """The plainest decision of ``d``'s kind and slot: one vector, nothing unrolled, no tiling."""
    if isinstance(d, (InnerTile, Kernel)):
        return InnerTile(d.func, d.stage, d.vector_dim, d.vector_width, ())
    if isinstance(d, OuterTile):
        return OuterTile(d.func, d.stage)
    return d


def refine_tiles(state: State, cost: float, cost_fn: CostFn, deadline: float,
                 rounds: int = 2) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` improved by retiling the Funcs that host others (see
    the module doc) until a round finds nothing better, ``rounds`` are done or ``deadline``
    (``time.perf_counter()``) passes."""
    best, best_cost, scored = state, cost, 0
    if not state.is_complete or state.space.gpu or not math.isfinite(cost):
        return best_cost, best, scored
    for _ in range(rounds):
        hosts = _hosts(best)
        trace = list(best.decisions)
        st = State.from_space(best.space)
        found: list[State] = []
        for k, d in enumerate(trace):
            if isinstance(d, InnerTile) and d.func in hosts and d.stage == 0:
                for alt in st.options():
                    if time.perf_counter() > deadline:
                        break
                    if not (_same_slot(alt, d) and isinstance(alt, InnerTile)) or \
                            alt.vector_dim != d.vector_dim or alt.vector_width != d.vector_width or \
                            _points(alt) <= _points(d) or \
                            _padding(st, alt) > max(_padding(st, d), MAX_PADDING):
                        continue
                    done, n = _replay(st.apply(alt), trace[k + 1:], d.func, cost_fn, deadline)
                    scored += n
                    if done is not None:
                        found.append(done)
            st = st.apply(d)
        if not found:
            break
        costs = np.asarray(cost_fn(found), dtype=np.float64)
        scored += len(found)
        costs[~np.isfinite(costs)] = np.inf
        i = int(np.argmin(costs))
        if not costs[i] < best_cost * (1 - 1e-6):
            break
        best, best_cost = found[i], float(costs[i])
        if time.perf_counter() > deadline:
            break
    return best_cost, best, scored


def refine_sites(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with one producer moved into a sub-tile of its
    stencil consumer, when that is predicted cheaper.

    Why: a sub-tiled task grid (``OuterTile.sub``) pays off only once a producer is computed at its
    sub-tile loop, but the beam prices the grid before that producer is placed, when the extra loop
    level is pure overhead; with the placements of the Funcs so far equal, the coarse-to-fine penalty
    then crowds it out of the beam. max_filter's vertical scan wants its consumer root, in column
    strips one register tile wide, with the scan computed per strip (a few MB of scan state instead of
    240 MB): predicted 18.4 vs 37.2, measured 63 vs 133 ms, never generated. blur's x-blur wants
    512 x 8 sub-tiles of a 32-task grid (predicted 0.224 vs 0.239, 1.03 vs 1.20 ms).

    For every single-stage Func ``c`` with a stencil above it (``SearchSpace.stencil_above``) and
    every producer ``p`` it reads as a stencil (``is_stencil_edge``; a producer read point for point
    gains nothing from a sub-tile over being computed per row, and harris's ``trace`` moved into one
    was predicted 6% cheaper and ran 12-20% slower in three of four A/Bs) that is not inlined: ``c`` computed at root (if it was not), each of its
    register tiles with the original's vector dimension, each sub-tiled task grid
    (``State.sub_grid_options``), ``p`` computed at the innermost sub-tile loop; the rest of the trace
    replayed, the tiles of ``p`` and of what is computed inside it re-chosen greedily, and any
    decision made illegal re-chosen (see ``_replay``)."""
    return _refine_moves(state, cost, cost_fn, deadline, _site_branches)


BranchFn = Callable[[State, Sequence[Decision], int], list[tuple[State, int, Place]]]


def _refine_moves(state: State, cost: float, cost_fn: CostFn, deadline: float,
                  branches: BranchFn) -> tuple[float, State, int]:
    """The moves ``branches(state, trace, f)`` proposes for every Func ``f`` (outputs first), each
    completed (``_complete_branches``); the cheapest kept if it beats ``state`` by MOVE_MARGIN."""
    return _per_func(state, cost, cost_fn, deadline, MOVE_MARGIN,
                     lambda trace, f, found: _complete_branches(branches(state, trace, f), trace, f, cost_fn,
                                                                deadline, found))


FuncWork = Callable[[Sequence[Decision], int, list[State]], int]


def _per_func(state: State, cost: float, cost_fn: CostFn, deadline: float, margin: float,
              work: FuncWork) -> tuple[float, State, int]:
    """``work(trace, f, found)`` for every Func ``f`` (outputs first) while time lasts, each adding
    complete states to ``found`` and returning the states it scored; the cheapest found kept if it
    beats ``state`` by ``margin`` (relative). Nothing for incomplete, GPU or unpriced states."""
    if not state.is_complete or state.space.gpu or not math.isfinite(cost):
        return cost, state, 0
    trace = list(state.decisions)
    found: list[State] = []
    scored = 0
    for f in state.space.order:
        if time.perf_counter() > deadline:
            break
        scored += work(trace, f, found)
    return _pick(state, cost, found, cost_fn, scored, margin)


def _finalists(group: Sequence[tuple[State, int]], cost_fn: CostFn) -> list[int]:
    """The second items (branch indices) of the SITE_FINALISTS cheapest states of ``group``, cheapest
    first, unpriced ones left out (``group`` is scored once, ``len(group)`` states)."""
    costs = np.asarray(cost_fn([p for p, _ in group]), dtype=np.float64)
    costs[~np.isfinite(costs)] = np.inf
    return [group[int(j)][1] for j in np.argsort(costs, kind="stable")[:SITE_FINALISTS] if np.isfinite(costs[j])]


def _complete_branches(branches: Sequence[tuple[State, int, Place]], trace: Sequence[Decision], host: int,
                       cost_fn: CostFn, deadline: float, found: list[State]) -> int:
    """Two phases over ``branches`` (state, where ``trace`` resumes, the moved producer's Place):
    every branch replayed up to the moved producer's own tiles (partial states at one slot per
    producer: comparable), then only the best SITE_FINALISTS per producer completed, into
    ``found``. Returns the states scored."""
    scored = 0
    partials: dict[int, list[tuple[State, int]]] = {}
    for i, (start, k, moved) in enumerate(branches):
        if time.perf_counter() > deadline:
            break
        part, n = _replay(start, trace[k:], host, cost_fn, deadline, moved=moved, partial=True)
        scored += n
        if part is not None:
            partials.setdefault(moved.func, []).append((part, i))
    for group in partials.values():
        scored += len(group)
        for i in _finalists(group, cost_fn):
            if time.perf_counter() > deadline:
                break
            start, k, moved = branches[i]
            done, n = _replay(start, trace[k:], host, cost_fn, deadline, moved=moved)
            scored += n
            if done is not None:
                found.append(done)
    return scored


def _site_branches(state: State, trace: Sequence[Decision], c: int) -> list[tuple[State, int, Place]]:
    """For consumer ``c`` (see ``refine_sites``): (state at ``c``'s outer slot with a sub-tiled task
    grid applied, where the trace resumes, the moved producer's new Place)."""
    space = state.space
    node = space.node(c)
    if c not in space.stencil_above or len(node.stages) != 1:
        return []
    producers = sorted({e.producer.index for e in node.stages[0].incoming_edges
                        if not e.producer.is_input and is_stencil_edge(e) and _placed(state, e.producer.index)})
    k_inner = next((k for k, d in enumerate(trace) if isinstance(d, InnerTile) and d.func == c), None)
    if not producers or k_inner is None or not isinstance(trace[k_inner + 1], OuterTile):
        return []
    st = State.from_space(space)
    try:
        for d in trace[:k_inner]:
            st = st.apply(Place(c, WHERE_ROOT) if isinstance(d, Place) and d.func == c else d)
    except IllegalDecisionError:
        return []
    orig = trace[k_inner]
    assert isinstance(orig, InnerTile)
    out: list[tuple[State, int, Place]] = []
    for inner in st.options():
        if not (isinstance(inner, InnerTile) and inner.func == c and inner.vector_dim == orig.vector_dim):
            continue
        at_outer = st.apply(inner)
        for grid in at_outer.sub_grid_options(c, 0):
            out += [(at_outer.apply(grid), k_inner + 2, Place(p, WHERE_AT, LoopRef(c, 0, LEVEL_OUTER, grid.sub[0][0])))
                    for p in producers]
    return out


def refine_host_sites(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with a producer moved from the innermost loops of a
    host that is itself computed inside another Func to an outer tile loop of that host, the host
    given that serial tiling, when that is predicted cheaper.

    Why: the host's outer tiling is decided before its producers are placed, and tiled or not it
    prices the same then (its own loops cost the same), so the beam, full of near-ties, keeps the
    untiled one; only the producer's placement shows the difference. The tile level is what moves a
    dimension's loop outside the others: max_filter's scan ``vert_log[x, y, c, t]``, untiled, loops
    over its levels ``t`` outermost and computes its input copy per row block and level (5 passes
    over the strip); tiled by 3 rows, with the copy at the row-tile loop, each copy serves every
    level: predicted 13.6 vs 18.8, measured 41 vs 63 ms (Adams2019: 47 ms), never generated, not
    even with a beam of 128.

    For every Func ``p`` computed at an innermost loop of a Func ``h`` that is computed at a loop of
    a third Func: each serial outer tiling of ``h``'s stage the menu offers, ``p`` computed at the
    outer loop of each tiled dimension; the rest of the trace replayed, the tiles of ``p`` and of what
    is computed inside it re-chosen greedily (two phases, as in ``refine_sites``)."""
    return _refine_moves(state, cost, cost_fn, deadline, _host_branches)


def _host_branches(state: State, trace: Sequence[Decision], p: int) -> list[tuple[State, int, Place]]:
    """For producer ``p`` (see ``refine_host_sites``): (state with its host's stage given a serial
    outer tiling, where the trace resumes, ``p``'s new Place at an outer loop of that tiling)."""
    pl = state.placement(p)
    if pl is None or pl.at is None or pl.at.level != LEVEL_INNER:
        return []
    h, s = pl.at.func, pl.at.stage
    hp = state.placement(h)
    if hp is None or hp.at is None:
        return []
    k = next((i for i, d in enumerate(trace) if isinstance(d, OuterTile) and d.func == h and d.stage == s), None)
    if k is None:
        return []
    st = State.from_space(state.space)
    for d in trace[:k]:
        st = st.apply(d)
    out: list[tuple[State, int, Place]] = []
    for o in st.options():
        if not (_same_slot(o, trace[k]) and isinstance(o, OuterTile) and o.tiles and not o.parallel):
            continue
        tiled = st.apply(o)
        out += [(tiled, k + 1, Place(p, WHERE_AT, LoopRef(h, s, LEVEL_OUTER, dim))) for dim, _ in o.tiles]
    return out


def refine_fusion(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with the root producers of a root Func ``g`` computed
    per task of ``g`` (at its parallel loop) or per sub-tile of a task, ``g`` given another task
    grid, when that is predicted cheaper.

    Why: the beam tiles ``g`` before any producer is placed, when a grid of row bands and one of
    small tiles price alike (``g``'s own loops cost the same), and a producer can move into ``g``'s
    tasks only once every Func that reads it is inside them too: one producer at a time is never
    legal, the whole group at once is. camera_pipe's half-resolution colour planes stayed at root,
    its output in 480-row bands; computed per task of 1280 x 32 output pixels (this refinement's
    pick) they are predicted 3.64 vs 10.45 and ran 7.34 vs 11.89 ms (Adams2019 6.90, interleaved),
    and no single move from the beam's pick leads there.

    For every root Func ``g`` with a parallel task grid and a root Func feeding it or what is
    computed inside it (single-stage ``g`` only), each parallel grid the menu offers for it, and
    each sub-tiled grid (``State.sub_grid_options``): the rest of the trace replayed with every root
    Func without updates that the menu allows at ``g``'s parallel loop (or innermost sub-tile loop)
    moved there (the menu's prunes apply: a region that does not shrink, a LUT read everywhere,
    stays at root), everything else kept where still legal, the rest re-chosen greedily (the
    plainest tiles first: one batch of complete states ranks the grids; then the best
    SITE_FINALISTS grids with tiles re-chosen by the cost model, ``_replay``). The moved Funcs may
    compute at most FUSION_RECOMPUTE x their points at root, and the winner must be predicted
    FUSION_MARGIN cheaper than ``state``."""
    return _per_func(state, cost, cost_fn, deadline, FUSION_MARGIN,
                     lambda trace, g, found: _fuse_into(state, trace, g, cost_fn, deadline, found))


def _fuse_into(state: State, trace: Sequence[Decision], g: int, cost_fn: CostFn, deadline: float,
               found: list[State]) -> int:
    """``refine_fusion``'s work for root Func ``g``: each grid's replay with the plainest tiles (kept
    in ``found``: complete already), the best SITE_FINALISTS again with tiles the cost model
    re-chooses. Returns the states scored."""
    branches = _fusion_branches(state, trace, g)
    firsts: list[tuple[State, int]] = []
    scored = 0
    for i, (start, k, site) in enumerate(branches):
        if time.perf_counter() > deadline:
            break
        done, n = _replay(start, trace[k:], -1, cost_fn, deadline, partial=True, retarget=_to_site(site))
        scored += n
        if done is not None and done.is_complete and _moved_from_root(state, done) \
                and _fusion_recompute_ok(state, done):
            firsts.append((done, i))
            found.append(done)      # complete already: greedy tiles need not beat it
    if not firsts:
        return scored
    scored += len(firsts)
    for i in _finalists(firsts, cost_fn):
        if time.perf_counter() > deadline:
            break
        start, k, site = branches[i]
        done, n = _replay(start, trace[k:], -1, cost_fn, deadline, retarget=_to_site(site))
        scored += n
        if done is not None and _fusion_recompute_ok(state, done):
            found.append(done)
    return scored


def refine_sub_tiles(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with the sub-tiles of a root Func that producers are
    computed in re-sized (same task grid), the tiles of those producers re-chosen, when that is
    predicted cheaper.

    Why: the menu offers three sub-tile sizes per dimension (a spread of ``tilings.SUB_COUNTS``,
    for a beam that prices them before any producer is placed), so the size the producers would
    want may be missing: unsharp's producers were computed per 512 x 8 sub-tile, where a 5-row
    blur halo nearly doubles their rows; 512 x 16 and 512 x 32 were predicted 6% cheaper and ran 9%
    faster (5.80 / 5.78 vs 6.37 ms, interleaved), but the menu had 8 and 32 rows only with other
    widths. For every root Func with a sub-tiled task grid and a Func computed at one of its
    sub-tile loops: every sub-tile size of ``State.sub_size_options`` for that grid, the producers
    moved to the innermost sub-tile loop, the rest of the trace replayed with the tiles of the
    Funcs computed at it re-chosen greedily (``_replay``). Only sizes under which those producers
    compute no more points in all (halos included) than before: the network under-prices
    recompute (blur's 256 x 8 sub-tiles re-sized to 1024 x 4, predicted 1.8% cheaper, ran 33%
    slower)."""
    if not state.is_complete or state.space.gpu or not math.isfinite(cost):
        return cost, state, 0
    trace = list(state.decisions)
    found: list[State] = []
    scored = 0
    for k, d in enumerate(trace):
        if time.perf_counter() > deadline:
            break
        if not (isinstance(d, OuterTile) and d.sub and d.parallel):
            continue
        at_sub = {f for f in state.space.order
                  if (p := state.placement(f)) is not None and p.at is not None and p.at.func == d.func
                  and p.at.stage == d.stage and p.at.level == LEVEL_OUTER and p.at.dim in dict(d.sub)}
        if not at_sub:
            continue
        st = State.from_space(state.space)
        for e in trace[:k]:
            st = st.apply(e)
        limit = _computed(state, at_sub)
        for o in st.sub_size_options(d.func, d.stage, d.tiles):
            if o == d or time.perf_counter() > deadline:
                continue
            site = LoopRef(d.func, d.stage, LEVEL_OUTER, o.sub[0][0])
            moved = [Place(e.func, WHERE_AT, site) if isinstance(e, Place) and e.func in at_sub else e
                     for e in trace[k + 1:]]
            done, n = _replay(st.apply(o), moved, d.func, cost_fn, deadline)
            scored += n
            if done is not None and _computed(done, at_sub) <= limit:
                found.append(done)
    return _pick(state, cost, found, cost_fn, scored, MOVE_MARGIN)


def _computed(state: State, funcs: set[int]) -> int:
    """Points of ``funcs`` computed in all (each region at its site times the times it is computed)."""
    total = 0
    for f in funcs:
        p = state.placement(f)
        site = p.at if p is not None else None
        node = state.space.node(f)
        total += state.realizations(f) * box_points(node.stage_regions(state.required_at(f, site))[0])
    return total


def _to_site(site: LoopRef) -> Callable[[State, Place], Place]:
    """A ``_replay`` retarget: a root Func (single-stage, not an output) computed at ``site`` where
    the menu offers it there. A reduction keeps its root schedule (its register tiles, task grid and
    RVar blocks, ``refine_kernels``): ae_forward's first GEMM moved into the tasks of its ReLU was
    predicted 2.3x cheaper and ran 1.34x slower."""
    def retarget(st: State, d: Place) -> Place:
        node = st.space.node(d.func)
        if d.where != WHERE_ROOT or node.is_output or len(node.stages) > 1:
            return d
        moved = Place(d.func, WHERE_AT, site)
        return moved if moved in st.options() else d
    return retarget


def _fusion_branches(state: State, trace: Sequence[Decision], g: int) -> list[tuple[State, int, LoopRef]]:
    """For root Func ``g`` (see ``refine_fusion``): (state with ``g``'s stage given a parallel task
    grid, where the trace resumes, the loop its root producers move to), one per grid of the menu
    and per sub-tiled grid; none when no root Func feeds ``g`` or what is computed inside it."""
    p = state.placement(g)
    node = state.space.node(g)
    if p is None or p.where != WHERE_ROOT or len(node.stages) != 1:
        return []
    k = next((i for i, d in enumerate(trace) if isinstance(d, OuterTile) and d.func == g and d.stage == 0), None)
    tiling = trace[k] if k is not None else None
    if k is None or not isinstance(tiling, OuterTile) or not tiling.parallel or not _fed_from_root(state, g):
        return []
    st = State.from_space(state.space)
    for d in trace[:k]:
        st = st.apply(d)
    grids = {o: None for o in st.options() if _same_slot(o, trace[k]) and isinstance(o, OuterTile) and o.parallel}
    grids.update({o: None for o in st.fusion_grid_options(g, 0)})
    out = [(st.apply(o), k + 1, LoopRef(g, 0, LEVEL_PARALLEL, -1)) for o in grids]
    out += [(st.apply(o), k + 1, LoopRef(g, 0, LEVEL_OUTER, o.sub[0][0])) for o in st.sub_grid_options(g, 0)]
    return out


def _fed_from_root(state: State, g: int) -> bool:
    """Whether ``g`` or a Func computed inside it (transitively) reads a root Func (not an output)."""
    for f in state.space.order:
        if f != g and not (state.placement(f) is not None and any(r.func == g for r in state.path_to_site(f))):
            continue
        for st in state.space.node(f).stages:
            if any(not e.producer.is_input and _at_root(state, e.producer.index) for e in st.incoming_edges):
                return True
    return False


def _at_root(state: State, f: int) -> bool:
    p = state.placement(f)
    return p is not None and p.where == WHERE_ROOT and not state.space.node(f).is_output


def _fusion_recompute_ok(before: State, after: State) -> bool:
    """Whether the Funcs ``after`` moved from root into tasks compute at most FUSION_RECOMPUTE x
    the points they computed at root (their halos, recomputed by neighbouring tasks)."""
    moved = _moved_from_root(before, after)
    return _computed(after, moved) <= FUSION_RECOMPUTE * _computed(before, moved)


def _moved_from_root(before: State, after: State) -> set[int]:
    """The Funcs at root (not outputs) in ``before`` that ``after`` computes at a loop."""
    return {f for f in before.space.order
            if _at_root(before, f) and (after.placement(f) or Place(f, WHERE_ROOT)).where == WHERE_AT}


def _placed(state: State, f: int) -> bool:
    p = state.placement(f)
    return p is not None and p.where != WHERE_INLINE


def _pick(best: State, best_cost: float, found: Sequence[State], cost_fn: CostFn,
          scored: int, margin: float = 1e-6) -> tuple[float, State, int]:
    """The cheapest of ``found`` if it beats ``best`` by more than ``margin`` (relative)."""
    if not found:
        return best_cost, best, scored
    costs = np.asarray(cost_fn(list(found)), dtype=np.float64)
    costs[~np.isfinite(costs)] = np.inf
    i = int(np.argmin(costs))
    if costs[i] < best_cost * (1 - margin):
        return float(costs[i]), found[i], scored + len(found)
    return best_cost, best, scored + len(found)


def refine_kernels(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with a Func that hosts a reduction re-tiled in another
    register-tile shape of at least as many points, with a task grid re-chosen for it, when that is
    predicted cheaper.

    Why: the beam picks the host's register tile and task grid before the reduction computed in that
    tile is placed, pricing them by the host's own (pointwise) stage, and its menu gives pure stages
    one-row tiles only. conv_layer_b8's ReLU took 2 vectors x 6 rows in 30-row tasks (4 of 60 rows
    computed twice); 2 vectors x 3 columns x 2 images in one-row tasks, Adams2019's shape, is
    predicted 15% cheaper and was never generated. ``refine_tiles`` only tries larger tiles, with the
    task grid kept. With this step conv_layer_b8 takes 2 vectors x 2 columns x 3 rows in 28 tasks
    (predicted 12% cheaper) and ran 7-8% faster in two A/Bs, 1.02-1.04x Adams2019's time instead of
    1.11-1.12x; conv_layer the same shape, 5-7% faster.

    For every InnerTile of a Func with a reduction computed per register tile (at the loop right
    outside the tile, where its accumulators are the tile; bilateral_grid's output retiled around a
    blur computed per row, predicted 13% cheaper, ran 4-5% slower in two A/Bs): each tile of
    its menu and each two-dimensional tile (``State.two_row_tile_options``) with the same vector, at
    least as many points and no more tail padding than it or Adams2019's 1/7, each task grid the menu
    offers then; the hosted Funcs' tiles that copied the old tile copy the new one. Two phases: every
    branch replayed up to the last decision of the hosted Funcs (partial states at one slot: comparable)
    and scored in one batch, then the best ``SITE_FINALISTS`` completed twice, as copied and with
    the hosted tiles re-chosen greedily (``_replay``)."""
    space = state.space
    if not state.is_complete or space.gpu or not math.isfinite(cost):
        return cost, state, 0
    trace = list(state.decisions)
    sites = {d.func: d.at for d in trace if isinstance(d, Place) and d.at is not None}
    parent = {f: at.func for f, at in sites.items()}
    found: list[State] = []
    scored = 0
    for k, d, st in _walk(trace, space, deadline):
        if isinstance(d, InnerTile) and d.stage == 0 and d.vector_dim is not None:
            # a reduction computed per register tile: at the loop right outside the tile
            tile_loop = LoopRef(d.func, 0, LEVEL_INNER, d.vector_dim)
            if any(at == tile_loop and len(space.node(f).stages) > 1 for f, at in sites.items()):
                inside = {f for f in parent if _computed_in(f, d.func, parent)}
                got, n = _kernel_branches(st, trace, k, inside, cost_fn, deadline)
                found += got
                scored += n
    return _pick(state, cost, found, cost_fn, scored, KERNEL_MARGIN)


def _walk(trace: Sequence[Decision], space: SearchSpace, deadline: float) -> Iterator[tuple[int, Decision, State]]:
    """(index, decision, the state before it) along ``trace`` replayed from the start of ``space``,
    until ``deadline`` passes: the loop of the refinements that branch at decisions of a kind."""
    st = State.from_space(space)
    for k, d in enumerate(trace):
        if time.perf_counter() > deadline:
            return
        yield k, d, st
        st = st.apply(d)


def _computed_in(f: int, host: int, parent: dict[int, int]) -> bool:
    while f in parent:
        f = parent[f]
        if f == host:
            return True
    return False


def _kernel_branches(st: State, trace: Sequence[Decision], k: int, inside: set[int], cost_fn: CostFn,
                     deadline: float) -> tuple[list[State], int]:
    """``refine_kernels`` for the InnerTile ``trace[k]`` (``st``: the state before it)."""
    d = trace[k]
    assert isinstance(d, InnerTile) and d.vector_dim is not None
    j = next((i for i, e in enumerate(trace) if i > k and isinstance(e, OuterTile) and e.func == d.func
              and e.stage == d.stage), None)
    if j is None or any(not isinstance(e, (Layout, Wrap)) for e in trace[k + 1:j]):
        return [], 0
    last = max(i for i, e in enumerate(trace) if e.func in inside)
    if last <= j:
        return [], 0
    limit = max(_padding(st, d), MAX_PADDING)
    alts: dict[tuple, InnerTile] = {}
    for o in list(st.options()) + st.two_row_tile_options(d.func, d.stage, d.vector_dim, d.vector_width):
        if isinstance(o, InnerTile) and _same_slot(o, d) and o.vector_dim == d.vector_dim and \
                o.vector_width == d.vector_width and o.unroll != d.unroll and _points(o) >= _points(d) and \
                _padding(st, o) <= limit:
            alts.setdefault(o.unroll, o)
    branches: list[tuple[State, list[Decision]]] = []   # (state after the new tile and grid, suffix)
    partials: list[State] = []
    scored = 0
    for alt in alts.values():
        try:
            s1 = st.apply(alt)
        except IllegalDecisionError:
            continue
        for e in trace[k + 1:j]:
            try:
                s1 = s1.apply(e)
            except IllegalDecisionError:
                pass
        suffix = [_copy_tile(e, d, alt, inside) for e in trace[j + 1:]]
        for grid in [o for o in s1.options() if isinstance(o, OuterTile) and _same_slot(o, trace[j])]:
            if time.perf_counter() > deadline:
                break
            s2 = s1.apply(grid)
            part, _ = _apply_all(s2, suffix[:last - j], None)
            if part is not None:
                branches.append((s2, suffix))
                partials.append(part)
    if not partials:
        return [], scored
    costs = np.asarray(cost_fn(partials), dtype=np.float64)
    scored += len(partials)
    costs[~np.isfinite(costs)] = np.inf
    found: list[State] = []
    for i in np.argsort(costs, kind="stable")[:SITE_FINALISTS]:
        if not np.isfinite(costs[i]) or time.perf_counter() > deadline:
            break
        s2, suffix = branches[int(i)]
        copied, n = _apply_all(partials[int(i)], suffix[last - j:], cost_fn)
        scored += n
        greedy, n = _replay(s2, trace[j + 1:], d.func, cost_fn, deadline)
        scored += n
        found += [s for s in (copied, greedy) if s is not None and s.is_complete]
    return found, scored


def _copy_tile(e: Decision, old: InnerTile, new: InnerTile, inside: set[int]) -> Decision:
    """A hosted Func's tile that copied the host's old register tile copies the new one."""
    if isinstance(e, (InnerTile, Kernel)) and e.func in inside and e.unroll == old.unroll and \
            e.vector_dim == old.vector_dim:
        return replace(e, unroll=new.unroll)
    return e


def _apply_all(start: State, decisions: Sequence[Decision], cost_fn: Optional[CostFn],
               rewrite: Optional[Callable[[State, Decision], Optional[Decision]]] = None
               ) -> tuple[Optional[State], int]:
    """``decisions`` applied in order; one that is illegal there re-chosen greedily among the options
    of its kind and slot (optional layouts dropped), or, without ``cost_fn``, the end: (None, 0).
    ``rewrite(state, decision)`` may offer a replacement, applied instead where legal.
    (state, states scored); None when nothing fits."""
    st, scored = start, 0
    for e in decisions:
        if st.is_complete:
            break
        r = rewrite(st, e) if rewrite is not None else None
        if r is not None:
            try:
                st = st.apply(r)
                continue
            except IllegalDecisionError:
                pass
        try:
            st = st.apply(e)
            continue
        except IllegalDecisionError:
            pass
        if isinstance(e, (Layout, Wrap)):
            continue
        if cost_fn is None:
            return None, scored
        best, n = _cheapest([st.apply(o) for o in st.options() if _same_slot(o, e)], cost_fn)
        scored += n
        if best is None:
            return None, scored
        st = best
    return st, scored


def refine_tasks(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with coarser task grids where the thread pool's time
    for the tasks it saves (``features.task_terms``, which the network does not price) outweighs
    what the network predicts the coarser grid costs, and is at least ``TASK_MARGIN`` of the
    predicted cost: only pipelines of microseconds, where handing out a task is the work.

    Why: ``index_sum`` (350 x 250 int32, 5-7 us) took rows in 14 tasks, predicted 6% cheaper than
    2 tasks; the 14 tasks ran 12 us, 2-4 tasks 5 us (Adams2019: 4 tasks, 6-7 us). For every
    parallel OuterTile of a root stage: each grid of its menu with fewer tasks (still parallel),
    the rest of the trace replayed (decisions no longer legal re-chosen greedily); the cheapest
    predicted cost plus overhead wins if below the pick's."""
    space = state.space
    if not state.is_complete or space.gpu or not math.isfinite(cost) or cost <= 0:
        return cost, state, 0
    overhead = task_overhead(state)
    if overhead < TASK_MARGIN * cost:
        return cost, state, 0
    trace = list(state.decisions)
    found: list[State] = []
    scored = 0
    for k, d, st in _walk(trace, space, deadline):
        if isinstance(d, OuterTile) and d.parallel and (p := st.placement(d.func)) is not None \
                and p.where == WHERE_ROOT:
            tasks = stage_tasks(state, d.func, d.stage)     # its plan is fixed once decided
            for o in st.options():
                if not (isinstance(o, OuterTile) and _same_slot(o, d) and o.parallel and o != d):
                    continue
                branch = st.apply(o)
                if not 0 < stage_tasks(branch, d.func, d.stage) < tasks:
                    continue
                done, n = _apply_all(branch, trace[k + 1:], cost_fn)
                scored += n
                if done is not None and done.is_complete:
                    found.append(done)
    if not found:
        return cost, state, scored
    costs = np.asarray(cost_fn(found), dtype=np.float64)
    scored += len(found)
    totals = costs + np.asarray([task_overhead(f) for f in found])
    totals[~np.isfinite(totals)] = np.inf
    i = int(np.argmin(totals))
    if totals[i] < cost + overhead and overhead - task_overhead(found[i]) >= TASK_MARGIN * cost:
        return float(costs[i]), found[i], scored
    return cost, state, scored


def refine_balance(state: State, cost: float, cost_fn: CostFn, deadline: float) -> tuple[float, State, int]:
    """(cost, state, states scored): ``state`` with every parallel task grid of a root stage cut
    into tasks as even as whole register tiles allow (``State.balanced_grid``: the same number of
    tasks, each a little shorter), kept unless predicted more than ``BALANCE_TOLERANCE`` costlier.

    Why: the menu's task sizes (powers of two, divisors) leave the last task short, and on a few
    tasks per core the longest one sets the time: ae_forward's first layer took 48 x 3 rows per
    task over 256 rows, tasks of 144 and 112 rows on two cores; 43 x 3 makes them 129 and 127. The
    network prices the work of all tasks (less padding: a little cheaper), not the slowest one. The
    same grids offered in the beam's menu instead changed its path on other workloads (stencil_chain
    1.27x slower, a pick predicted costlier than before), so they are applied to the pick only,
    decisions that no longer fit re-chosen greedily (``_apply_all``)."""
    space = state.space
    if not state.is_complete or space.gpu or not math.isfinite(cost) or cost <= 0 \
            or time.perf_counter() > deadline:
        return cost, state, 0
    done, scored = _apply_all(State.from_space(space), state.decisions, cost_fn,
                              rewrite=lambda st, d: st.balanced_grid(d) if isinstance(d, OuterTile) else None)
    if done is None or not done.is_complete or done.decisions == state.decisions:
        return cost, state, scored
    c = float(np.asarray(cost_fn([done]), dtype=np.float64)[0])
    if math.isfinite(c) and c <= cost * (1 + BALANCE_TOLERANCE):
        return c, done, scored + 1
    return cost, state, scored + 1

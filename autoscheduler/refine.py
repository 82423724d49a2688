"""Local refinement of a complete state: retile the Funcs that host others, with what they host.

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
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .state import State
from .state.decisions import Decision, IllegalDecisionError, InnerTile, Kernel, Layout, Place, Wrap

CostFn = Callable[[Sequence[State]], np.ndarray]
MAX_PADDING = 8 / 7     # Adams2019's tiling rule: at most 1/7 of a tile's points wasted in tails


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
            deadline: float) -> tuple[Optional[State], int]:
    """``suffix`` replayed on ``start``; the tiles of Funcs computed at ``host``, and decisions that
    no longer apply, re-chosen greedily among the options of the same kind. (state, states scored);
    None when a decision has no counterpart or the deadline passes."""
    st = start
    inside: set[int] = set()
    scored = 0
    for d in suffix:
        if st.is_complete:
            break
        if isinstance(d, Place) and d.at is not None and d.at.func == host:
            inside.add(d.func)
        if isinstance(d, Place) or d.func not in inside:
            try:
                st = st.apply(d)
                continue
            except IllegalDecisionError:
                pass
        if isinstance(d, (Layout, Wrap)):
            continue        # optional decisions: dropped where no longer legal
        if time.perf_counter() > deadline:
            return None, scored
        opts = [o for o in st.options() if _same_slot(o, d)]
        if opts and isinstance(d, (InnerTile, Kernel)):   # no tail-padded tiles the beam would not take
            limit = max(_padding(st, d), MAX_PADDING)
            opts = [o for o in opts if isinstance(o, (InnerTile, Kernel)) and _padding(st, o) <= limit] or opts
        kids = [st.apply(o) for o in opts]
        if not kids:
            return None, scored
        costs = np.asarray(cost_fn(kids), dtype=np.float64)
        scored += len(kids)
        costs[~np.isfinite(costs)] = np.inf
        if not np.isfinite(costs).any():
            return None, scored
        st = kids[int(np.argmin(costs))]
    return (st if st.is_complete else None), scored


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

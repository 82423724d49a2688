"""Beam search over the decision sequence, from the outputs back to the inputs.

States are grouped by their next decision slot (which Func / stage / kind of decision comes next).
Every state in a group has decided the same stages, so their partial costs (the cost model sums over
decided stages only) are comparable. The search always expands the earliest group in decision order:
its best ``beam_size`` states (after diversity penalties and optional random dropout) are expanded,
all their children are scored in one batched cost-model call, and the children join the groups of
their own next slot. Complete states have no slot and are collected last.

Coarse-to-fine passes (after Adams2019): in pass k a state's cost is multiplied by how many states of
its group with the same coarse signature (its placement decisions) were already kept, so early beams
spread over structurally different choices; each later pass penalises children whose coarse signature
was not among the best final states of the previous pass, refining inside the good regions.

A time budget bounds the search. The beam aims to end by ``BEAM_END`` of it (refinement gets the
rest): before each expansion it narrows to the width at which the slots left fit in the time left,
at what expanding one state has cost lately, down to one state (a greedy completion). Scoring
with a slower network (``ours.pt``: five networks and extra inputs) or a pipeline of many stages
thus narrows the whole rest of the pass, instead of running the full beam until the time is gone
and completing greedily what is left (the producers nearest the inputs, often the heaviest: a
training step's weight gradients). A pass that narrowed is the last; later passes start only
before ``BEAM_END``, and a pass still running at the deadline is dropped when an earlier one
finished. When every child is pruned (or
nothing is returned for any reason) the fallback is compute_root everywhere with the first tiling
offered.

Last, while the budget lasts, the best state's Funcs that host others get their register tiles
re-chosen together with the tiles of the Funcs computed inside them (``refine.refine_tiles``): the
beam prices a consumer's tile before those reductions are placed. Then, for at most half the beam's
time each, the Funcs with a reduction computed per register tile try other tile shapes with their
task grids re-chosen (``refine.refine_kernels``), the root producers of a root Func are tried
together in its tasks or their sub-tiles, under each task grid (``refine.refine_fusion``),
producers of stencils are tried in sub-tiles of their consumers (``refine.refine_sites``),
producers computed at the innermost loops of a host that is itself computed inside another Func
are tried at serial outer tile loops of that host (``refine.refine_host_sites``), and the
sub-tiles that producers are computed in are re-sized (``refine.refine_sub_tiles``), for the same
reason: the beam prices a tile or a sub-tiled grid before anything is computed in it. Last, a
pipeline of microseconds gets coarser task grids where the thread pool's time per task, which the
network does not price, outweighs it (``refine.refine_tasks``), and the pick's task grids are
evened out (``refine.refine_balance``: as many tasks, the last no longer short).
"""

from __future__ import annotations

import bisect
import math
import random
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from .refine import (refine_balance, refine_fusion, refine_host_sites, refine_kernels, refine_sites,
                     refine_sub_tiles, refine_tasks, refine_tiles)
from .state import State
from .state.decisions import WHERE_ROOT, InnerTile, Kernel, Place

CostFn = Callable[[Sequence[State]], np.ndarray]

_COMPLETE = (math.inf,)
COST_WINDOW = 16   # expansions the beam's per-state cost estimate averages over
BEAM_END = 0.8     # with refinement on, the beam search aims to end by this share of the budget
REFINE_END = 0.97   # refinement stops at this share of the budget (a greedy replay step may overrun it)
REFINE_SHARE = 0.5  # the time of refine_kernels and of each site move (refine_sites, ...), as a share of the beam's ...
REFINE_MIN_S = 1.0  # ... but at least this


@dataclass
class SearchOptions:
    """Knobs of one search. ``passes`` coarse-to-fine passes of beam ``beam_size``; ``dropout`` is
    the percent chance that a whole pass never drops a candidate (100 = never drop, as Adams2019)."""

    beam_size: int = 32
    passes: int = 3
    dropout: int = 100
    seed: int = 0
    time_budget_s: float = 30.0
    top_k: int = 1
    state_budget: int = 0   # > 0: pace the beam by states scored, not seconds (repeatable picks)
    refine: bool = True     # refine the best state afterwards: tiles of hosts, sites of producers (``refine.py``)


@dataclass
class SearchResult:
    best: State
    cost: float
    candidates: list[tuple[float, State]]
    states_scored: int
    elapsed_s: float
    passes_run: int
    fallback: bool = False
    stats: dict[str, float] = field(default_factory=dict)


def _coarse(state: State) -> tuple:
    """The coarse structure: where every decided Func is computed and stored, and the register-tile
    shape of every Func that consumes a reduction. That shape decides what the reduction computed
    inside its tile can do (its accumulators are the consumer's tile) while the consumer's own
    predicted cost barely depends on it: without it the beam filled with variants of one tile shape
    and the conv_layer micro-kernel needed a 4x larger beam. Other Funcs' tiles stay out: spreading
    the beam over them cost stencil pipelines (harris 28 -> 97 ms) within the same time budget."""
    tiled = _reduction_consumers(state.space.dag)
    return tuple(d for d in state.decisions
                 if isinstance(d, Place) or (isinstance(d, (InnerTile, Kernel)) and d.func in tiled))


_CONSUMERS: "weakref.WeakKeyDictionary[object, frozenset[int]]" = weakref.WeakKeyDictionary()


def _reduction_consumers(dag: object) -> frozenset[int]:
    """Funcs that directly consume a Func with an RVar stage (memoized per DAG)."""
    found = _CONSUMERS.get(dag)
    if found is None:
        nodes = getattr(dag, "nodes")
        found = frozenset(c.index for n in nodes if any(l.rvar for st in n.stages for l in st.loops)
                          for c in n.consumers)
        _CONSUMERS[dag] = found
    return found


def _slot_key(state: State, order: dict[int, int]) -> tuple:
    if state.slot is None:
        return _COMPLETE
    kind, f, s = state.slot
    return (order[f], s, {"place": 0, "inner": 1, "outer": 2}.get(kind, 3))


def _root_path(initial: State) -> Iterator[State]:
    """The states from ``initial`` to its compute_root completion: every Func at root with the first
    (parallel outer, vectorised inner) tiling offered; the last one yielded is complete."""
    state = initial
    while not state.is_complete:
        yield state
        opts = state.options()
        roots = [d for d in opts if isinstance(d, Place) and d.where == WHERE_ROOT]
        state = state.apply(roots[0] if roots else opts[0])
    yield state


def fallback_state(initial: State) -> State:
    """compute_root for every Func with the first (parallel outer, vectorised inner) tiling offered."""
    return deque(_root_path(initial), maxlen=1)[0]


def beam_search(initial: State, cost_fn: CostFn, options: SearchOptions | None = None) -> SearchResult:
    opts = options or SearchOptions()
    rng = random.Random(opts.seed)
    start = time.perf_counter()
    order = {f: i for i, f in enumerate(initial.space.order)} if hasattr(initial.space, "order") \
        else _decision_order(initial)
    slot_keys = _slot_keys(initial, order)
    n_slots = max(1, len(slot_keys))
    keep_p = (opts.dropout / 100.0) ** (1.0 / n_slots) if opts.dropout < 100 else 1.0
    finals: list[tuple[float, State]] = []
    scored = 0
    blessed: set[tuple] = set()
    passes_run = 0
    stats: dict[str, float] = {"slots": float(n_slots), "beam_min": float(opts.beam_size)}
    # The budget is a deadline. The beam aims to end by ``beam_end`` (refinement gets the rest):
    # before each expansion it narrows to the width at which the slots left fit in the time left,
    # at the mean time one beam state's expansion took over the last ``COST_WINDOW`` expansions
    # (the first ones, on cold featurizer caches, cost several times what later ones do), down to
    # one state (greedy). The width is revised before every expansion, so an estimate that is off
    # is corrected as the pass goes on.
    # With ``state_budget`` the same rule counts states scored instead of seconds, so the widths,
    # and the pick, do not depend on how fast the host is (the time budget still drops a pass that
    # runs past it, as a safety net).
    by_states = opts.state_budget > 0
    beam_end = (opts.state_budget if by_states else opts.time_budget_s) * (BEAM_END if opts.refine else 1.0)

    def used() -> float:
        return float(scored) if by_states else time.perf_counter() - start

    recent: deque[tuple[float, int, int]] = deque(maxlen=COST_WINDOW)  # (cost, states, width) per expansion
    for p in range(max(1, opts.passes)):
        if used() > beam_end and finals:
            break
        passes_run += 1
        frontier: dict[tuple, list[tuple[float, State]]] = {_slot_key(initial, order): [(0.0, initial)]}
        pass_finals: list[tuple[float, State]] = []
        narrowed = False
        groups = 0
        while frontier:
            key = min(frontier)
            group = frontier.pop(key)
            if key == _COMPLETE:
                pass_finals = sorted(group, key=lambda cs: cs[0])
                break
            if time.perf_counter() - start > opts.time_budget_s and finals:
                narrowed = True         # past the deadline with a complete pick: drop this pass
                break
            now = used()
            width = opts.beam_size
            if recent:
                left = max(1, len(slot_keys) - bisect.bisect_left(slot_keys, key))  # groups still to expand
                states = sum(n for _, n, _ in recent)
                per_state = sum(t for t, _, _ in recent) / states
                fill = states / sum(w for _, _, w in recent)  # groups smaller than the width expand them all
                width = max(1, min(width, int((beam_end - now) / (left * per_state * fill))))
                if width < opts.beam_size:
                    narrowed = True
                    stats["beam_min"] = min(stats["beam_min"], float(width))
            beam = _select(group, width, p, blessed, keep_p, rng)
            t_expand = used()
            children: list[State] = []
            seen: set[int] = set()
            for _, st in beam:
                for child in st.children():
                    h = hash(child)
                    if h in seen:
                        continue
                    seen.add(h)
                    children.append(child)
            groups += 1
            if not children:
                continue
            costs = np.asarray(cost_fn(children), dtype=np.float64)
            scored += len(children)
            for c, child in zip(costs, children):
                if not math.isfinite(c):
                    continue  # pruned by the cost function
                frontier.setdefault(_slot_key(child, order), []).append((float(c), child))
            recent.append((used() - t_expand, len(beam), width))
        stats[f"pass{p}_groups"] = float(groups)
        stats[f"pass{p}_end_s"] = time.perf_counter() - start
        stats[f"pass{p}_narrowed"] = float(narrowed)
        if pass_finals:
            best_cost = pass_finals[0][0]
            blessed = {_coarse(s) for c, s in pass_finals[: opts.beam_size] if c <= 1.2 * best_cost}
            finals.extend(pass_finals)
        if narrowed:
            break       # no time for another pass
    uniq: dict[int, tuple[float, State]] = {}
    for c, s in finals:
        if s.is_complete and (hash(s) not in uniq or c < uniq[hash(s)][0]):
            uniq[hash(s)] = (c, s)
    ranked = sorted(uniq.values(), key=lambda cs: cs[0])
    stats["beam_end_s"] = time.perf_counter() - start
    if ranked and opts.refine:
        end = start + REFINE_END * opts.time_budget_s
        beam_s = time.perf_counter() - start
        # asked for runners-up: the refinements' scored variants join them (see _Recorder)
        recorder = _Recorder(cost_fn, opts.top_k) if opts.top_k > 1 else None
        cost_fn = recorder if recorder is not None else cost_fn
        c, s, n = refine_tiles(ranked[0][1], ranked[0][0], cost_fn, end)
        scored += n
        def share_end() -> float:
            """REFINE_SHARE of the beam's own time from now (many hosts or stencils: many branches)."""
            return min(end, time.perf_counter() + max(REFINE_MIN_S, REFINE_SHARE * beam_s))

        # register-tile shapes and task grids of the Funcs that host reductions (Adams2019's
        # two-dimensional tiles among them)
        c, s, n = refine_kernels(s, c, cost_fn, share_end())
        scored += n
        # then the site moves (root producers together into the tasks of a root consumer first:
        # camera_pipe's beam leaves little of the budget, and its search ran out before this move
        # when it came third; into sub-tiles of root consumers; into outer tiles of hosts computed
        # inside others; sub-tiles re-sized), and the tiles again around a moved producer
        c2, s2, n = refine_fusion(s, c, cost_fn, share_end())
        scored += n
        c2, s2, n = refine_sites(s2, c2, cost_fn, share_end())
        scored += n
        c2, s2, n = refine_host_sites(s2, c2, cost_fn, share_end())
        scored += n
        c2, s2, n = refine_sub_tiles(s2, c2, cost_fn, share_end())
        scored += n
        c2, s2, n = refine_tasks(s2, c2, cost_fn, share_end())
        scored += n
        if s2 is not s:
            c, s, n = refine_tiles(s2, c2, cost_fn, end)
            scored += n
        # last, the pick's task grids evened out (the network prices all tasks' work, not the slowest)
        c, s, n = refine_balance(s, c, cost_fn, end)
        scored += n
        if s is not ranked[0][1]:
            # the refined pick first, also when the beam had it lower down (refine_tasks may pick a
            # state the network alone prices higher)
            ranked = [(c, s)] + [cs for cs in ranked if hash(cs[1]) != hash(s)]
        if recorder is not None:
            known = {hash(st) for _, st in ranked}
            extra = [cs for cs in recorder.best() if hash(cs[1]) not in known]
            ranked = ranked[:1] + sorted(ranked[1:] + extra, key=lambda cs: cs[0])
    elapsed = time.perf_counter() - start
    if not ranked:
        fb = fallback_state(initial)
        return SearchResult(fb, float("nan"), [(float("nan"), fb)], scored, elapsed, passes_run, True, stats)
    return SearchResult(ranked[0][1], ranked[0][0], ranked[: max(1, opts.top_k)], scored, elapsed,
                        passes_run, stats=stats)


class _Recorder:
    """The cost function the refinements get when runners-up are asked for (``top_k`` > 1): it
    keeps the best ``keep`` complete states they score. Why: a refinement turns down variants that
    are predicted only a little cheaper (or costlier) than the pick, because there the network is
    least reliable (``refine.KERNEL_MARGIN``, ``FUSION_MARGIN``, ...); those are the states worth
    measuring, and the beam's own runners-up rarely differ from the pick in its heavy Funcs."""

    def __init__(self, cost_fn: CostFn, keep: int) -> None:
        self.cost_fn = cost_fn
        self.keep = max(1, keep)
        self.seen: dict[int, tuple[float, State]] = {}

    def __call__(self, states: Sequence[State]) -> np.ndarray:
        costs = np.asarray(self.cost_fn(states), dtype=np.float64)
        for c, st in zip(costs, states):
            if st.is_complete and math.isfinite(c):
                h = hash(st)
                if h not in self.seen or c < self.seen[h][0]:
                    self.seen[h] = (float(c), st)
        if len(self.seen) > 2 * self.keep:
            self.seen = dict(sorted(self.seen.items(), key=lambda kv: kv[1][0])[: self.keep])
        return costs

    def best(self) -> list[tuple[float, State]]:
        return sorted(self.seen.values(), key=lambda cs: cs[0])[: self.keep]


def diverse_top_k(ranked: Sequence[tuple[float, State]], k: int, heavy: frozenset[int],
                  max_ratio: float = 4.0) -> list[tuple[float, State]]:
    """The ``k`` states worth measuring from ``ranked`` (complete states, best predicted first).

    Why: the search's next-best states usually differ from the best only in how a cheap stage is
    tiled, so measuring them learns nothing the best did not show; where the model is wrong it is
    wrong about them all alike. Here a state enters only when its decisions on the ``heavy`` Funcs
    (the ones carrying most of the predicted cost) differ from every state chosen before, and its
    predicted cost is within ``max_ratio`` of the best; the remaining places are filled in ranked
    order. Returned with ``ranked[0]`` (the pick) first, then best predicted first."""
    if k <= 1 or len(ranked) <= 1:
        return list(ranked[: max(1, k)])
    best = ranked[0][0]
    chosen: list[tuple[float, State]] = []
    taken: set[int] = set()
    seen: set[tuple] = set()
    for i, (c, st) in enumerate(ranked):
        if len(chosen) >= k:
            break
        if chosen and math.isfinite(best) and best > 0 and c > max_ratio * best:
            break
        sig = tuple(d for d in st.decisions if d.func in heavy)
        if sig in seen:
            continue
        seen.add(sig)
        chosen.append((c, st))
        taken.add(i)
    for i, cs in enumerate(ranked):
        if len(chosen) >= k:
            break
        if i not in taken:
            chosen.append(cs)
    # the pick first (refine_tasks may pick a state the network alone prices above runners-up)
    return chosen[:1] + sorted(chosen[1:], key=lambda cs: cs[0])


def _select(group: list[tuple[float, State]], beam: int, pass_index: int, blessed: set[tuple],
            keep_p: float, rng: random.Random) -> list[tuple[float, State]]:
    """The states of one group to expand: best first, with coarse-to-fine penalties and dropout."""
    group = sorted(group, key=lambda cs: cs[0])
    counts: dict[tuple, int] = {}
    adjusted: list[tuple[float, int, State]] = []
    for i, (cost, st) in enumerate(group):
        sig = _coarse(st)
        n = counts.get(sig, 0)
        counts[sig] = n + 1
        penalty = 1.0 + n if pass_index == 0 else 1.0 + 0.25 * n
        if pass_index > 0 and blessed and not any(sig == b[: len(sig)] for b in blessed):
            penalty += 10.0
        adjusted.append((cost * penalty if cost > 0 else cost + penalty - 1.0, i, st))
    adjusted.sort(key=lambda t: (t[0], t[1]))
    chosen: list[tuple[float, State]] = []
    for k, (c, _, st) in enumerate(adjusted):
        if len(chosen) >= beam:
            break
        last = k == len(adjusted) - 1 and not chosen
        if keep_p < 1.0 and not last and rng.random() > keep_p:
            continue
        chosen.append((c, st))
    return chosen


def _decision_order(initial: State) -> dict[int, int]:
    """Func index -> position in decision order (outputs first), read off the slots."""
    order: dict[int, int] = {}
    for st in _root_path(initial):
        if st.slot is not None and st.slot[1] not in order:
            order[st.slot[1]] = len(order)
    return order


def _slot_keys(initial: State, order: dict[int, int]) -> list[tuple]:
    """The slot keys along the compute_root path, sorted: every slot a state can reach (inlining
    a Func skips its tiling slots), so the groups a pass expands after key k are at most those
    after k here."""
    return sorted(_slot_key(st, order) for st in _root_path(initial) if not st.is_complete)

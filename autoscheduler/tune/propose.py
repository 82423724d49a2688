"""The candidates of one tuning round, drawn with the current cost model (Adams2019's recipe).

A round of ``batch`` candidates: one full beam search (its best schedule not measured yet), then
dropout-randomised beam searches of beam 1 (greedy) to 4 with different seeds, a share
(``mutate_share``) of mutations of the fastest schedules measured so far (TVM's evolutionary step:
one decision of a parent's trace replaced by another legal choice, the parent's later decisions kept
wherever they still apply and the rest completed greedily with the model; this refines a good
schedule's tiles locally, which a model-guided search from scratch keeps missing once the model is
wrong about them), and a share (``random_share``) of uniformly random legal states for exploration,
which show the model the slow corners a model-guided search never visits. Candidates are distinct by the records' key (the hash of
the schedule source); schedules in ``exclude`` (already measured) are redrawn, a few times at most.

Everything is deterministic in (seed, round, model, exclude): a tuner that was killed mid-round and
restarts proposes the same round again, given the database as it was when the round began.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..apply import schedule_source
from ..collect import DROPOUTS
from ..measure import schedule_hash
from ..search import SearchOptions, beam_search

CostFn = Callable[[Sequence[Any]], np.ndarray]

GREEDY_BEAMS = (1, 1, 2, 4)


@dataclass(frozen=True)
class ProposeOptions:
    """``batch`` candidates per round, ``random_share`` of them uniformly random; the full beam
    search uses ``beam_size`` and ``passes``; every search stops after ``search_time_budget_s``."""

    batch: int = 16
    random_share: float = 0.2
    beam_size: int = 32
    passes: int = 3
    search_time_budget_s: float = 30.0
    max_redraws: int = 3
    mutate_share: float = 0.4


@dataclass
class Proposal:
    """A complete state to measure, with what the model predicted and how it was drawn."""

    state: Any
    source: str
    schedule_hash: str
    trace: list[Any]
    predicted: float
    origin: str


def split_batch(opts: ProposeOptions, parents: int = 0) -> tuple[int, int, int]:
    """(searched, mutated, random) counts of a round: at least one searched candidate; mutations
    only when there are measured parents to mutate."""
    n = max(1, opts.batch)
    n_random = min(n - 1, int(round(n * min(1.0, max(0.0, opts.random_share)))))
    n_mutate = 0
    if parents:
        n_mutate = min(n - 1 - n_random, int(round(n * min(1.0, max(0.0, opts.mutate_share)))))
    return n - n_random - n_mutate, n_mutate, n_random


def _slot_key(state: Any) -> tuple[Any, ...]:
    return tuple(state.slot) if state.slot is not None else ()


Replayed = tuple[list[Any], list[Any]]


def replay_parent(initial: Any, parent: Sequence[Any]) -> Replayed | None:
    """(decisions, the states before each and after the last) of a parent trace, None when it no
    longer replays in ``initial``'s space."""
    from ..errors import ToolkitError
    from ..state.decisions import decision_from_dict
    try:
        decisions = [decision_from_dict(d) if isinstance(d, dict) else d for d in parent]
        states = [initial]
        for d in decisions:
            states.append(states[-1].apply(d))
    except (ToolkitError, ValueError, KeyError):
        return None
    return decisions, states


def mutate(initial: Any, parent: Sequence[Any], cost: CostFn, rng: random.Random,
           tries: int = 4) -> Any | None:
    """A mutation of ``parent`` (a decision trace of ``initial``'s space): one decision replaced by
    another legal choice of its slot, the parent's decisions of the later slots kept where they
    still apply, the rest chosen greedily by ``cost``. None when the parent no longer replays or
    no decision has an alternative after ``tries`` draws."""
    return mutate_replayed(replay_parent(initial, parent), cost, rng, tries)


def mutate_replayed(replayed: Replayed | None, cost: CostFn, rng: random.Random, tries: int = 4) -> Any | None:
    """``mutate`` of a parent already replayed (``replay_parent``): a round replays each parent once."""
    from ..errors import ToolkitError
    if replayed is None or not replayed[0]:
        return None
    decisions, states = replayed
    # a slot's decisions in order: optional ones (Layout, Wrap) keep the slot, the last one moves it
    by_slot: dict[tuple[Any, ...], list[Any]] = {}
    for st, d in zip(states, decisions):
        by_slot.setdefault(_slot_key(st), []).append(d)
    for _ in range(tries):
        i = rng.randrange(len(decisions))
        alternatives = [o for o in states[i].options() if o != decisions[i]]
        if not alternatives:
            continue
        try:
            state = states[i].apply(alternatives[rng.randrange(len(alternatives))])
        except ToolkitError:
            continue
        todo = dict(by_slot)                       # each slot's decisions are replayed once
        while not state.is_complete:
            nxt = None
            kept = todo.pop(_slot_key(state), None)
            if kept:
                try:
                    nxt = state
                    for d in kept:
                        nxt = nxt.apply(d)
                except ToolkitError:
                    nxt = None
            if nxt is None:
                kids = state.children()
                if not kids:
                    break
                costs = np.asarray(cost(kids), dtype=np.float64)
                costs[~np.isfinite(costs)] = np.inf
                nxt = kids[int(np.argmin(costs))]
            state = nxt
        if state.is_complete:
            return state
    return None


def random_walk(initial: Any, rng: random.Random) -> Any:
    """A uniformly random legal state of ``initial``'s search space (one uniform choice per slot,
    as ``state.random_state``, but in this space so the featurizer's caches are shared)."""
    state = initial
    while not state.is_complete:
        opts = state.options()
        state = state.apply(opts[rng.randrange(len(opts))])
    return state


def propose(initial: Any, cost: CostFn, round_index: int, opts: ProposeOptions, *,
            exclude: set[str], seed: int = 0, deadline: float | None = None,
            parents: Sequence[Sequence[Any]] = ()) -> list[Proposal]:
    """The round's candidates, none of them in ``exclude`` (schedule hashes), in draw order.
    ``parents``: decision traces of the fastest measured schedules, fastest first (mutated)."""
    rng = random.Random(f"tune:{seed}:{round_index}")
    n_search, n_mutate, n_random = split_batch(opts, len(parents))
    seen = set(exclude)
    out: list[Proposal] = []

    def budget() -> float:
        left = math.inf if deadline is None else deadline - time.perf_counter()
        return max(0.5, min(opts.search_time_budget_s, left))

    def add(state: Any, predicted: float | None, origin: str) -> bool:
        source = str(schedule_source(state))
        h = schedule_hash(source)
        if h in seen:
            return False
        seen.add(h)
        if predicted is None or not math.isfinite(predicted):
            predicted = float(cost([state])[0])
        out.append(Proposal(state, source, h, [d.to_dict() for d in state.decisions], float(predicted), origin))
        return True

    searched = 0
    full = beam_search(initial, cost, SearchOptions(beam_size=opts.beam_size, passes=opts.passes, dropout=100,
                                                    seed=rng.randrange(1 << 30), time_budget_s=budget(),
                                                    top_k=max(opts.batch, 8)))
    for c, s in full.candidates:
        if add(s, c, "beam"):
            searched += 1
            break
    attempts = 0
    while searched < n_search and attempts < (n_search + 1) * (opts.max_redraws + 1):
        if deadline is not None and time.perf_counter() > deadline and out:
            break
        attempts += 1
        beam, dropout = rng.choice(GREEDY_BEAMS), rng.choice(DROPOUTS)
        res = beam_search(initial, cost, SearchOptions(beam_size=beam, passes=1, dropout=dropout,
                                                       seed=rng.randrange(1 << 30), time_budget_s=budget(),
                                                       top_k=1))
        if add(res.best, res.cost, f"beam{beam}/dropout{dropout}"):
            searched += 1
    replayed: dict[int, Replayed | None] = {}        # each parent replayed once per round
    mutated, attempts = 0, 0
    while mutated < n_mutate and attempts < n_mutate * (opts.max_redraws + 1):
        if deadline is not None and time.perf_counter() > deadline and out:
            break
        attempts += 1
        k = min(int(rng.expovariate(1.0)), len(parents) - 1)     # the fastest parents most often
        if k not in replayed:
            replayed[k] = replay_parent(initial, parents[k])
        child = mutate_replayed(replayed[k], cost, rng)
        if child is not None and add(child, None, f"mutate#{k}"):
            mutated += 1
    drawn, attempts = 0, 0
    while drawn < n_random and attempts < n_random * (opts.max_redraws + 1):
        attempts += 1
        if add(random_walk(initial, rng), None, "random"):
            drawn += 1
    return out


__all__ = ["Proposal", "ProposeOptions", "mutate", "propose", "replay_parent", "random_walk", "split_batch", "DROPOUTS"]

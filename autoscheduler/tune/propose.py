"""The candidates of one tuning round, drawn with the current cost model (Adams2019's recipe).

A round of ``batch`` candidates: one full beam search (its best schedule not measured yet), then
dropout-randomised beam searches of beam 1 (greedy) to 4 with different seeds, and a share
(``random_share``) of uniformly random legal states for exploration, which show the model the slow
corners a model-guided search never visits. Candidates are distinct by the records' key (the hash of
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


@dataclass
class Proposal:
    """A complete state to measure, with what the model predicted and how it was drawn."""

    state: Any
    source: str
    schedule_hash: str
    trace: list[Any]
    predicted: float
    origin: str


def split_batch(opts: ProposeOptions) -> tuple[int, int]:
    """(searched, random) counts of a round: at least one searched candidate."""
    n = max(1, opts.batch)
    n_random = min(n - 1, int(round(n * min(1.0, max(0.0, opts.random_share)))))
    return n - n_random, n_random


def random_walk(initial: Any, rng: random.Random) -> Any:
    """A uniformly random legal state of ``initial``'s search space (one uniform choice per slot,
    as ``state.random_state``, but in this space so the featurizer's caches are shared)."""
    state = initial
    while not state.is_complete:
        opts = state.options()
        state = state.apply(opts[rng.randrange(len(opts))])
    return state


def propose(initial: Any, cost: CostFn, round_index: int, opts: ProposeOptions, *,
            exclude: set[str], seed: int = 0, deadline: float | None = None) -> list[Proposal]:
    """The round's candidates, none of them in ``exclude`` (schedule hashes), in draw order."""
    rng = random.Random(f"tune:{seed}:{round_index}")
    n_search, n_random = split_batch(opts)
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
    drawn, attempts = 0, 0
    while drawn < n_random and attempts < n_random * (opts.max_redraws + 1):
        attempts += 1
        if add(random_walk(initial, rng), None, "random"):
            drawn += 1
    return out


__all__ = ["Proposal", "ProposeOptions", "propose", "random_walk", "split_batch", "DROPOUTS"]

"""Apply history best: the fastest stored schedule of a pipeline on a target and device (TVM's
``ApplyHistoryBest``), so that ``autoschedule(outputs, db=...)`` returns a measured schedule instead of
searching when the database has one.

Records are matched by the pipeline's canonical hash (the algorithm and its estimates, names
canonicalised), the full target string and this machine's device fingerprint. Only successful records
with a decision trace that replays in the pipeline's search space qualify (a labelled baseline stored
by ``tune --baselines`` has no trace), so the result is a search state like any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import ToolkitError
from ..measure import device_fingerprint
from ..records import Record, Records


@dataclass
class HistoryBest:
    """The best stored record and its state, replayed in the caller's search space."""

    record: Record
    state: Any


def history_best(db: str | os.PathLike[str], initial: Any, target: str,
                 device: str | None = None) -> HistoryBest | None:
    """The fastest replayable OK record of ``initial``'s pipeline on ``target`` and ``device``
    (default: this machine's fingerprint for ``target``), or None. Opens ``db`` read-only: a missing
    or corrupt file is a one-line DatabaseError."""
    from cost_model.dataset import replay
    dev = device if device is not None else device_fingerprint(target)
    with Records(db, readonly=True) as records:
        rows = records.rows(initial.space.pipeline_hash)
    ok = sorted((r for r in rows if r.ok and r.statistic is not None and r.trace is not None
                 and r.target == target and r.device == dev), key=lambda r: (r.statistic, r.id or 0))
    for rec in ok:
        try:
            return HistoryBest(rec, replay(initial.space, rec.trace or []))
        except (ToolkitError, ValueError, KeyError, TypeError):
            continue  # a trace from an older search space: try the next best
    return None


__all__ = ["HistoryBest", "history_best"]

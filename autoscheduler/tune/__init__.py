"""Autotuning: rounds of search with the current cost model, measurement of what is new, fine-tuning
of the model on the measurements, until a round count, a time budget or no improvement; resumable
from the tuning database. ``tune(...)`` -> ``TuneResult``; ``history_best`` for "apply history best".

``task`` (what is tuned), ``propose`` (one round's candidates), ``progress`` (what a resumed run
needs, beside the database), ``loop`` (the rounds), ``history`` (the best stored schedule).
"""

from .history import HistoryBest, history_best
from .loop import (DEFAULT_REPLAY, EXECUTORS, RoundStats, TimeSplit, TuneOptions, TuneResult, make_executor,
                   tune)
from .progress import Progress, ProgressStore, all_progress, tune_dir
from .propose import Proposal, ProposeOptions, propose
from .task import TuneTask, task_for

__all__ = ["tune", "TuneOptions", "TuneResult", "RoundStats", "TimeSplit", "make_executor", "DEFAULT_REPLAY",
           "EXECUTORS", "HistoryBest", "history_best", "Progress", "ProgressStore", "all_progress", "tune_dir",
           "Proposal", "ProposeOptions", "propose", "TuneTask", "task_for"]

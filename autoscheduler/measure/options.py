"""Every knob of a measurement in one place (timeouts, sampling, limits, parallelism)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class MeasureOptions:
    """How candidates are built and timed.

    Sampling: ``warmup`` runs, then ``n_samples`` samples, each ``repeats`` back-to-back runs with
    ``repeats`` chosen so a sample lasts at least ``min_sample_s``; the statistic is the min.
    ``num_threads`` (default: the core count) is set as HL_NUM_THREADS in every worker.
    ``memory_limit_mb`` caps each worker's address space (RLIMIT_AS; not applied to CUDA workers,
    whose driver reserves large virtual ranges). ``max_consecutive_errors`` failures in a row abort
    the batch (0: never). ``builds_per_phase`` is how many candidates each build worker compiles before the
    timing phase times them one at a time.
    """

    n_samples: int = 5
    min_sample_s: float = 0.1
    warmup: int = 1
    seed: int = 0
    num_threads: int | None = None
    build_workers: int = 2
    builds_per_phase: int = 2
    build_timeout_s: float = 120.0
    reference_timeout_s: float = 300.0
    run_timeout_s: float = 60.0
    worker_start_timeout_s: float = 60.0
    memory_limit_mb: int | None = 8192
    check_outputs: bool = True
    max_consecutive_errors: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.build_workers < 1 or self.builds_per_phase < 1:
            raise ValueError("n_samples, build_workers and builds_per_phase must be >= 1")
        if min(self.build_timeout_s, self.run_timeout_s, self.reference_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")

    @property
    def threads(self) -> int:
        return self.num_threads if self.num_threads else (os.cpu_count() or 1)

    def with_(self, **changes: object) -> "MeasureOptions":
        return replace(self, **changes)  # type: ignore[arg-type]

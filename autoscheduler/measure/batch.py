"""The measurement API the tuner and the CLI call: a batch, interleaved re-timing, the A/A noise floor."""

from __future__ import annotations

from typing import Sequence

from tqdm import tqdm

from .candidate import Candidate
from .executor import Executor, LocalExecutor, ResultCallback
from .options import MeasureOptions
from .result import MeasureAbortedError, MeasureResult, NoiseFloor


def measure_batch(candidates: Sequence[Candidate], options: MeasureOptions | None = None, *,
                  executor: Executor | None = None,
                  on_result: ResultCallback | None = None) -> list[MeasureResult]:
    """Build, check and time every candidate; failures are results with an error code.

    ``on_result(index, result)`` runs as each candidate finishes (commit it to the records there, so a
    killed driver loses nothing measured). After ``options.max_consecutive_errors`` failures in a row,
    raises MeasureAbortedError holding the results so far. Without ``executor`` a LocalExecutor is
    started and closed around the batch.
    """
    opts = options or MeasureOptions()
    own = executor is None
    ex: Executor = executor if executor is not None else LocalExecutor()
    done: list[MeasureResult] = []
    streak = 0
    best: float | None = None
    bar = tqdm(total=len(candidates), disable=not opts.progress, desc="measure", unit="cand", leave=False)

    def callback(i: int, r: MeasureResult) -> None:
        nonlocal streak, best
        done.append(r)
        bar.update(1)
        if r.statistic is not None and (best is None or r.statistic < best):
            best = r.statistic
            bar.set_postfix(best_ms=f"{best * 1e3:.3f}")
        if on_result is not None:
            on_result(i, r)
        streak = 0 if r.ok else streak + 1
        if opts.max_consecutive_errors and streak >= opts.max_consecutive_errors:
            raise MeasureAbortedError(
                f"{streak} candidates in a row failed (last: {r.code.value}: {r.message[:200]}); "
                "stopped measuring: check the pipeline, target and limits, or raise "
                "MeasureOptions.max_consecutive_errors", list(done))

    try:
        return ex.submit(candidates, opts, callback)
    finally:
        bar.close()
        if own:
            ex.close()


def retime_interleaved(candidates: Sequence[Candidate], rounds: int = 5,
                       options: MeasureOptions | None = None, *,
                       executor: Executor | None = None) -> list[MeasureResult]:
    """Re-time finalists interleaved (A B C A B C ...), one sample per round each, so drift cancels."""
    opts = options or MeasureOptions()
    own = executor is None
    ex: Executor = executor if executor is not None else LocalExecutor()
    try:
        return ex.submit_interleaved(candidates, rounds, opts)
    finally:
        if own:
            ex.close()


def noise_floor(candidate: Candidate, rounds: int = 5, options: MeasureOptions | None = None, *,
                executor: Executor | None = None) -> NoiseFloor:
    """A/A test: the same schedule built twice (on different workers) and timed interleaved.

    ``rel_diff`` is |min_a - min_b| / min(min_a, min_b): wins smaller than it are noise.
    """
    a, b = retime_interleaved([candidate, candidate], rounds, options, executor=executor)
    if a.statistic is None or b.statistic is None:
        bad = a if a.statistic is None else b
        raise MeasureAbortedError(
            f"the A/A run of '{candidate.pipeline}' failed ({bad.code.value}: {bad.message[:200]}); "
            "use a candidate that measures OK", [a, b])
    lo, hi = sorted((a.statistic, b.statistic))
    return NoiseFloor(rel_diff=(hi - lo) / lo if lo > 0 else 0.0, a=a, b=b)

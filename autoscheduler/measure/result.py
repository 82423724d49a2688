"""What a measurement returns: the error code vocabulary (single source of truth) and the result."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from ..errors import ToolkitError
from .candidate import Candidate


class ErrorCode(str, enum.Enum):
    """Outcome of measuring one candidate. The records store the value (the same string)."""

    OK = "OK"
    BUILD_ERROR = "BUILD_ERROR"          # the schedule could not be applied or Halide refused to compile
    BUILD_TIMEOUT = "BUILD_TIMEOUT"      # building (or computing the reference output) took too long
    RUN_ERROR = "RUN_ERROR"              # the pipeline failed at run time, or the worker crashed
    RUN_TIMEOUT = "RUN_TIMEOUT"          # checking or timing took longer than the run timeout
    WRONG_ANSWER = "WRONG_ANSWER"        # output differs from the compute_root reference
    OUT_OF_MEMORY = "OUT_OF_MEMORY"      # the worker ran past its memory limit


@dataclass
class MeasureResult:
    """One candidate's measurement. Times in seconds; ``samples`` are seconds per run.

    Each sample is the mean over ``repeats`` back-to-back runs (stretched to the minimum sample time);
    ``statistic`` is the min of the samples. ``device`` is the fingerprint of the machine that ran it.
    """

    candidate: Candidate
    code: ErrorCode
    message: str = ""
    samples: list[float] = field(default_factory=list)
    repeats: int = 0
    build_s: float | None = None
    run_s: float | None = None
    num_threads: int = 0
    device: str = ""
    timestamp: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.code is ErrorCode.OK

    @property
    def statistic(self) -> float | None:
        return min(self.samples) if self.ok and self.samples else None


@dataclass
class NoiseFloor:
    """An A/A run: one schedule built twice and timed interleaved; ``rel_diff`` = |a - b| / min(a, b)."""

    rel_diff: float
    a: MeasureResult
    b: MeasureResult


class MeasureAbortedError(ToolkitError):
    """Too many candidates in a row failed: the setup, not the candidates, is probably broken."""

    def __init__(self, message: str, results: list[MeasureResult]) -> None:
        super().__init__(message)
        self.results = results


class DeviceUnavailableError(ToolkitError):
    """A candidate's target needs a device (a CUDA GPU) that this machine does not have."""

"""Measurement: build, check and time candidate schedules in isolated worker processes.

``measure_batch(candidates, options)`` is the entry point; ``retime_interleaved`` re-times finalists,
``noise_floor`` runs the A/A test. Error codes live in ``ErrorCode`` (the only vocabulary the records use).
"""

from .batch import measure_batch, noise_floor, retime_interleaved
from .candidate import Candidate, schedule_hash, trace_hash
from .device import cuda_available, cuda_target, device_fingerprint, preload_libcuda
from .executor import Executor, LocalExecutor, ResultCallback
from .options import MeasureOptions
from .result import DeviceUnavailableError, ErrorCode, MeasureAbortedError, MeasureResult, NoiseFloor

__all__ = ["Candidate", "MeasureOptions", "MeasureResult", "ErrorCode", "NoiseFloor", "Executor",
           "LocalExecutor", "ResultCallback", "measure_batch", "retime_interleaved", "noise_floor",
           "MeasureAbortedError", "DeviceUnavailableError", "device_fingerprint", "cuda_available",
           "cuda_target", "preload_libcuda", "schedule_hash", "trace_hash"]

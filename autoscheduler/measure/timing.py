"""Inside a worker: check a compiled candidate's output, then time it (CPU or CUDA).

CPU: warm-up runs, then samples of ``repeats`` back-to-back runs each, with ``repeats`` stretched so a
sample lasts at least ``min_sample_s`` (a sample that comes out shorter is retaken with more repeats);
every sample is kept, the caller takes the min.
CUDA: inputs are copied to the device before anything is timed, the first (warm-up) call absorbs the
device JIT and module load, and a sample is ``repeats`` back-to-back calls followed by one
``device_sync`` on the outputs (Halide's Python bindings have no event API).
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from .builder import Compiled


def output_arrays(c: Compiled) -> list[np.ndarray]:
    """Copies of the outputs of the last run (brought back from the device first when on a GPU)."""
    arrays = []
    for buf in c.workload.outputs:
        if c.cuda:
            buf.copy_to_host()
        arrays.append(np.array(buf, copy=True))
    return arrays


def compare(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray], rtol: float,
            atol: float, mismatch_fraction: float = 0.0) -> str | None:
    """None when every output matches the reference within tolerance (but for ``mismatch_fraction``
    of its values, see ``PipelineSpec.mismatch_fraction``); else what differs, one line."""
    if len(outputs) != len(reference):
        return f"{len(outputs)} outputs, the reference has {len(reference)}"
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        if out.shape != ref.shape:
            return f"output {i} has shape {out.shape}, the reference {ref.shape}"
        if rtol == 0 and atol == 0 and out.dtype == ref.dtype and np.array_equal(out, ref):
            continue  # exact workloads: the fast path
        a, b = out.astype(np.float64), ref.astype(np.float64)
        close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        bad = int(close.size - np.count_nonzero(close))
        if bad > mismatch_fraction * close.size:
            where = tuple(int(j) for j in np.argwhere(~close)[0])
            return (f"output {i}: {bad} of {close.size} values differ from the compute_root reference "
                    f"(first at numpy index {where}: {float(a[where])!r} vs {float(b[where])!r}; rtol={rtol}, atol={atol})")
    return None


def copy_inputs_to_device(c: Compiled, target: Any) -> None:
    for v in c.workload.values:
        if hasattr(v, "copy_to_device"):
            v.set_host_dirty(True)
            v.copy_to_device(target)


def _sync(c: Compiled) -> None:
    if c.cuda:
        for buf in c.workload.outputs:
            buf.device_sync()


def _timed(c: Compiled, runs: int) -> float:
    """Seconds for ``runs`` back-to-back runs (plus one device sync at the end on a GPU)."""
    t0 = time.perf_counter()
    for _ in range(runs):
        c.run()
    _sync(c)
    return time.perf_counter() - t0


def time_candidate(c: Compiled, *, warmup: int, n_samples: int, min_sample_s: float) -> list[float]:
    """Samples in seconds per run. Calibrates ``c.repeats`` on the first call, then reuses it."""
    for _ in range(warmup):
        _timed(c, 1)
    if c.repeats is None:
        # Grow a probe until it is long enough to trust, as Halide's benchmark() does.
        probe, per_run = 1, _timed(c, 1)
        while per_run * probe < min_sample_s / 10 and probe < 1 << 20:
            probe *= 4
            per_run = min(per_run, _timed(c, probe) / probe)
        c.repeats = max(1, math.ceil(min_sample_s / max(per_run, 1e-9)))
    samples: list[float] = []
    retries = 0
    while len(samples) < n_samples:
        took = _timed(c, c.repeats)
        if took < min_sample_s and retries < 8:
            # The estimate was optimistic: stretch the sample and take it again.
            retries += 1
            c.repeats = max(c.repeats + 1, math.ceil(c.repeats * 1.05 * min_sample_s / max(took, 1e-9)))
            continue
        samples.append(took / c.repeats)
    return samples

"""In-process timing of an already scheduled pipeline, for one-off ``autoschedule run`` reports.

Tuning never uses this: it measures through ``autoscheduler.measure`` in isolated workers. Here the
user asked to run one schedule they chose, in their own process, so a plain timer is honest enough:
JIT compile timed apart, one warm-up, samples stretched to at least ``min_sample_s``, min and median.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping

import halide as hl

from halide_pipelines.spec import BuiltPipeline, aligned_inputs, output_buffers


def time_callable(fn: Callable[[], Any], *, repeats: int = 5, min_sample_s: float = 0.05) -> dict[str, float]:
    """Time any zero-argument callable (PyTorch baselines): one warm-up, samples stretched to at
    least ``min_sample_s``, min and median in milliseconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    inner = max(1, int(min_sample_s / max(time.perf_counter() - t0, 1e-7)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner * 1e3)
    return {"min_ms": min(samples), "median_ms": statistics.median(samples)}


def time_pipeline(built: BuiltPipeline, pipeline: hl.Pipeline, inputs: Mapping[str, Any],
                  target: hl.Target, *, repeats: int = 5, min_sample_s: float = 0.05) -> dict[str, float]:
    keep = built.bind_inputs(aligned_inputs(inputs))   # see halide_pipelines.spec.aligned
    t0 = time.perf_counter()
    pipeline.compile_jit(target)
    compile_s = time.perf_counter() - t0
    bufs = output_buffers(built)
    pipeline.realize(bufs, target)  # warm-up
    t0 = time.perf_counter()
    pipeline.realize(bufs, target)
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_sample_s / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            pipeline.realize(bufs, target)
        samples.append((time.perf_counter() - t0) / inner * 1e3)
    del keep
    return {"compile_s": compile_s, "min_ms": min(samples), "median_ms": statistics.median(samples),
            "inner_repeats": float(inner)}


def check_against_root(spec: Any, sizes: Mapping[str, int], built: BuiltPipeline, pipeline: hl.Pipeline,
                       inputs: Mapping[str, Any], target: hl.Target) -> str | None:
    """Run the scheduled ``pipeline`` once and the workload's compute_root schedule on the same inputs:
    None when the outputs agree within the workload's tolerance, else what differs (one line).

    Why: a schedule Halide accepts can still compute wrong values (a sliding window that loses its
    warm-up rows, ``tests/test_known_wrong_answers.py``); measured schedules are checked by the
    measurement layer, and ``autoschedule run`` checks the one it prints the same way."""
    from halide_pipelines.spec import realize

    from .measure.timing import compare
    from .schedules import apply_source, root_source
    out = realize(built, inputs, target, pipeline=pipeline)
    ref_built = spec.build(**sizes)
    ref_pipeline = ref_built.pipeline()
    apply_source(root_source(ref_pipeline), ref_pipeline)
    ref = realize(ref_built, inputs, target, pipeline=ref_pipeline)
    return compare(out, ref, spec.rtol, spec.atol, spec.mismatch_fraction)

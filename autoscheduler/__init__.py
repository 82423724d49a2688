"""A Python autoscheduler and autotuner for Halide pipelines.

``autoschedule(outputs, target)`` searches a schedule for any Halide pipeline with estimates and
returns a ``Schedule`` (``.apply()``, ``.source()``, ``.loop_nest()``, ``.explain()``, ``.candidates``);
``benchmark_top_k(outputs, k)`` also measures k diverse candidates and keeps the fastest.
"""

from .errors import ToolkitError


def autoschedule(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`autoscheduler.api.autoschedule` (imported lazily: it loads torch)."""
    from .api import autoschedule as _autoschedule
    return _autoschedule(*args, **kwargs)


def benchmark_top_k(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`autoscheduler.api.benchmark_top_k` (imported lazily: it loads torch)."""
    from .api import benchmark_top_k as _benchmark_top_k
    return _benchmark_top_k(*args, **kwargs)


__all__ = ["ToolkitError", "autoschedule", "benchmark_top_k"]

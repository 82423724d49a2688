"""A Python autoscheduler and autotuner for Halide pipelines.

``autoschedule(outputs, target)`` searches a schedule for any Halide pipeline with estimates and
returns a ``Schedule`` (``.apply()``, ``.source()``, ``.loop_nest()``, ``.explain()``, ``.candidates``).
"""

from .errors import ToolkitError


def autoschedule(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`autoscheduler.api.autoschedule` (imported lazily: it loads torch)."""
    from .api import autoschedule as _autoschedule
    return _autoschedule(*args, **kwargs)


__all__ = ["ToolkitError", "autoschedule"]

"""A Python autoscheduler and autotuner for Halide pipelines."""

from .errors import ToolkitError

__all__ = ["ToolkitError"]

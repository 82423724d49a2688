"""One exception hierarchy for everything a user can get wrong; the CLI prints it as one line."""

from __future__ import annotations


class ToolkitError(Exception):
    """Root of the toolkit's errors. The message is one line that names the problem and the fix."""


class UnknownPipelineError(ToolkitError):
    """A pipeline name that is not bundled."""


class TargetError(ToolkitError):
    """A Halide target string that Halide does not accept."""


class EstimateError(ToolkitError):
    """An output, ImageParam or Param without the estimates the scheduler needs."""


class ScheduleError(ToolkitError):
    """A named or emitted schedule that cannot be applied to the pipeline."""


class BaselineError(ToolkitError):
    """A Halide autoscheduler plugin that failed, crashed, or got bad parameters."""


class IRVersionError(ToolkitError):
    """A serialized pipeline written by a Halide version this decoder does not read."""


class UnsupportedPipelineError(ToolkitError):
    """A pipeline construct the introspection cannot model (extern stages, ...)."""


class DatabaseError(ToolkitError):
    """The tuning database is locked, corrupt, or cannot be written."""


class WeightsError(ToolkitError):
    """A cost-model weights file that is missing, corrupt, or of another feature version."""

"""What is tuned: one pipeline at fixed sizes on one target, and how a worker rebuilds it.

A bundled workload travels to the measurement workers as its registered name and sizes; a user's own
pipeline (output Funcs with estimates) as ``hl.serialize_pipeline`` bytes with its output shapes taken
from the output estimates and its scalar Params set to their estimates. Either way the search runs on
a FunctionDAG built here, in the driver, and every measurement is keyed by that DAG's canonical hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ToolkitError, UnknownPipelineError
from ..measure import Candidate


@dataclass
class TuneTask:
    """One pipeline to tune. ``name`` labels it (the registered name of a bundled workload);
    ``target`` is the full Halide target string the records are keyed by."""

    name: str
    sizes: dict[str, int]
    target: str
    pipeline: Any  # hl.Pipeline, unscheduled: for the DAG and the named / plugin baselines
    dag: Any  # FunctionDAG
    spec: Any = None  # the PipelineSpec of a bundled workload
    serialized: bytes | None = None
    output_shapes: list[list[int]] | None = field(default=None)

    @property
    def bundled(self) -> bool:
        return self.spec is not None

    def candidate(self, source: str, trace: list[Any] | None = None,
                  predicted_cost: float | None = None) -> Candidate:
        return Candidate(self.name, dict(self.sizes), source, self.target, trace, predicted_cost,
                         serialized=self.serialized, output_shapes=self.output_shapes)


def task_for(what: Any, target: str, *, sizes: dict[str, int] | None = None,
             small: bool = False) -> TuneTask:
    """A TuneTask from a bundled name, a PipelineSpec, or output Funcs / an ``hl.Pipeline``.

    ``sizes`` override a workload's default sizes (``small``: start from its test sizes); they do not
    apply to a user's pipeline, whose sizes are its estimates.
    """
    import halide_pipelines
    from halide_pipelines.spec import PipelineSpec

    from ..dag import FunctionDAG

    spec: Any = None
    if isinstance(what, str):
        try:
            spec = halide_pipelines.get(what)
        except halide_pipelines.UnknownPipelineError as e:
            raise UnknownPipelineError(str(e)) from None
    elif isinstance(what, PipelineSpec):
        spec = what
    if spec is not None:
        base = dict(spec.test_sizes) if small else {}
        try:
            full = spec.sizes(**{**base, **(sizes or {})})
        except ValueError as e:
            raise ToolkitError(str(e)) from None
        pipeline = spec.build(**full).pipeline()
        return TuneTask(spec.name, dict(full), target, pipeline, FunctionDAG.from_pipeline(pipeline), spec)
    if sizes:
        raise ToolkitError("sizes apply to bundled workloads only; a pipeline of your own is tuned at "
                           "its estimates")
    import halide as hl

    from ..api import as_pipeline
    pipeline = as_pipeline(what)
    dag = FunctionDAG.from_pipeline(pipeline)
    by_name = {n.func.name: n for n in dag.nodes if n.is_output}
    shapes: list[list[int]] = []
    for f in pipeline.outputs():
        node = by_name.get(f.name())
        region = None if node is None else node.estimated_region
        if region is None:
            raise ToolkitError(f"output '{f.name()}' has no estimates; call set_estimates on it before tuning")
        shapes.append([int(s.extent) for s in region])
    params: dict[str, int] = {}
    for name, value in dag.estimates.values.items():
        if "." not in name and float(value).is_integer():
            params[name] = int(value)
    names = [f.name() for f in pipeline.outputs()]
    return TuneTask("+".join(names), params, target, pipeline, dag,
                    serialized=bytes(hl.serialize_pipeline(pipeline)), output_shapes=shapes)


__all__ = ["TuneTask", "task_for"]

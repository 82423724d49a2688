"""Named schedules expressed as Python schedule source.

Every schedule the toolkit applies, measures or stores is Python source that runs with ``hl`` and
``pipeline`` (an ``hl.Pipeline`` of the outputs) in scope and addresses Funcs as
``pipeline.get_func(i)`` in realization order. Keeping one representation means a named schedule, a
Halide baseline and a searched state all apply, measure and store the same way.
"""

from __future__ import annotations

from typing import Any

import halide as hl

from .errors import ScheduleError


def pipeline_funcs(pipeline: hl.Pipeline) -> list[Any]:
    """All Funcs of the pipeline in realization order (``get_func(i)`` until it runs out)."""
    funcs = []
    i = 0
    while True:
        try:
            funcs.append(pipeline.get_func(i))
        except Exception:  # Halide raises HalideError past the last index
            return funcs
        i += 1


def is_input_wrapper(f: Any) -> bool:
    """An ImageParam's own Func (``<name>_im`` over ``_0.._n``): it is data, not a stage to schedule."""
    args = [str(a) for a in f.args()]
    name = f.name().split("$", 1)[0]  # a rebuilt pipeline's wrappers are renamed W_im$1, W_im$2, ...
    return name.endswith("_im") and args == [f"_{i}" for i in range(len(args))]


def schedulable_indices(pipeline: hl.Pipeline) -> list[int]:
    """Realization indices of the Funcs a schedule may touch (input wrappers excluded)."""
    return [i for i, f in enumerate(pipeline_funcs(pipeline)) if not is_input_wrapper(f)]


def root_source(pipeline: hl.Pipeline) -> str:
    """compute_root for every stage: the correctness reference of every other schedule."""
    outputs = {f.name() for f in pipeline.outputs()}
    funcs = pipeline_funcs(pipeline)
    lines = ["# compute_root every stage (reference schedule)"]
    for i in schedulable_indices(pipeline):
        if funcs[i].name() not in outputs:
            lines.append(f"pipeline.get_func({i}).compute_root()")
    return "\n".join(lines) + "\n"


def default_source(pipeline: hl.Pipeline) -> str:
    """Halide's own default: every non-output Func inlined, outputs serial. Nothing to call."""
    return "# Halide's default schedule: every stage inlined into its consumers\n"


NAMED = {"root": root_source, "default": default_source}


def named_source(name: str, pipeline: hl.Pipeline) -> str:
    try:
        return NAMED[name](pipeline)
    except KeyError:
        raise ScheduleError(f"unknown schedule '{name}'; choose one of {sorted(NAMED)}") from None


def apply_source(source: str, pipeline: hl.Pipeline) -> None:
    """Run schedule source against the pipeline's Funcs; a failure names the offending line."""
    try:
        code = compile(source, "<schedule>", "exec")
    except SyntaxError as e:
        raise ScheduleError(f"schedule source does not parse (line {e.lineno}): {e.msg}") from None
    try:
        exec(code, {"hl": hl, "pipeline": pipeline})
    except Exception as e:  # Halide raises HalideError with a multi-line message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ScheduleError(f"schedule could not be applied: {first}") from None

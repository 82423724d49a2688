"""What is measured: a candidate schedule of one pipeline, as plain data that crosses processes.

A Candidate never holds Halide objects. The worker that measures it rebuilds the pipeline from the
registered spec's name and sizes (or from ``serialized`` bytes, for pipelines that are not bundled),
applies ``schedule_source`` and compiles it for ``target``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """One schedule of one pipeline to build, check and time.

    ``pipeline`` names a registered spec (``halide_pipelines.get``) unless ``serialized`` holds the
    bytes of ``hl.serialize_pipeline``; then ``pipeline`` is only a label, ``output_shapes`` gives
    each output buffer's extents (Halide order, one per output Func in output order), ``sizes`` gives
    the value of each scalar Param by name (missing ones are 1), and inputs are filled with seeded
    random values over the regions Halide infers from the output shapes.
    ``trace`` (the search's decision trace), ``predicted_cost`` and ``features`` are carried to the
    records verbatim; measurement does not read them.
    """

    pipeline: str
    sizes: dict[str, int]
    schedule_source: str
    target: str = "host"
    trace: list[Any] | None = None
    predicted_cost: float | None = None
    features: bytes | None = None
    serialized: bytes | None = None
    output_shapes: list[list[int]] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.serialized is not None and self.output_shapes is None:
            raise ValueError(f"candidate of '{self.pipeline}': serialized pipelines need output_shapes")

    @property
    def is_cuda(self) -> bool:
        return is_cuda_target(self.target)

    def schedule_hash(self) -> str:
        return schedule_hash(self.schedule_source)

    def trace_hash(self) -> str | None:
        return None if self.trace is None else trace_hash(self.trace)

    def workload_key(self) -> tuple[Any, ...]:
        """Identifies the algorithm and its inputs (not the schedule): one reference output per key."""
        blob = None if self.serialized is None else hashlib.sha256(self.serialized).hexdigest()
        shapes = None if self.output_shapes is None else tuple(tuple(s) for s in self.output_shapes)
        return (self.pipeline, tuple(sorted(self.sizes.items())), blob, shapes)


def is_cuda_target(target: str) -> bool:
    return "cuda" in target.split("-")


def schedule_hash(source: str) -> str:
    """Hash of a schedule's source, trailing whitespace of each line ignored."""
    norm = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(norm.encode()).hexdigest()


def trace_hash(trace: list[Any]) -> str:
    return hashlib.sha256(json.dumps(trace, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

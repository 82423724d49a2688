"""Inside a worker: rebuild a candidate's pipeline from plain data, apply its schedule, compile it.

Runs only in worker processes (it JIT-compiles and may crash). The algorithm comes from the registered
spec (``spec.build(**sizes)``) or from serialized bytes; inputs are made once per workload and seed and
shared by every candidate of that workload, so all of them (and the reference) see the same data.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import halide as hl

import halide_pipelines
from halide_pipelines.spec import aligned, output_buffers

from .. import schedules
from .candidate import Candidate
from .device import preload_libcuda


@dataclass
class Workload:
    """A freshly built, unscheduled pipeline with values for every argument and its output buffers."""

    pipeline: Any  # hl.Pipeline
    arguments: list[Any]  # hl.Argument, in the order the compiled callable takes them
    values: list[Any]  # one per argument: an hl.Buffer or a Python scalar
    outputs: list[Any]  # hl.Buffer per output (Tuple elements flattened)
    rtol: float
    atol: float
    keep: list[Any] = field(default_factory=list)  # Params that must outlive the pipeline
    bindings: list[tuple[Any, Any]] = field(default_factory=list)  # (ImageParam/Param/Parameter, value)
    mismatch_fraction: float = 0.0  # PipelineSpec.mismatch_fraction

    def bind(self) -> None:
        """Bind the argument values to the pipeline's parameters (for ``Pipeline.realize``)."""
        for param, value in self.bindings:
            if isinstance(param, (hl.ImageParam, hl.Param)):
                param.set(value)
            elif param.is_buffer():
                param.set_buffer(value)


@dataclass
class Compiled:
    """A scheduled, compiled candidate ready to run: ``run()`` executes it once.

    On the CPU it runs through an ``hl.Callable`` (the cheapest call). On a GPU it runs through
    ``Pipeline.realize`` with the inputs bound to the parameters: the Python Callable marks every
    input host-dirty and copies every output back to the host on each call (Halide issue #6868),
    which would time PCIe transfers instead of the kernels.
    """

    workload: Workload
    fn: Any  # hl.Callable, or None when run through realize
    build_s: float
    cuda: bool
    target: Any = None  # hl.Target
    repeats: int | None = None  # runs per sample, calibrated on the first timing

    def run(self) -> None:
        if self.fn is None:
            self.workload.pipeline.realize(self.workload.outputs, self.target)
        else:
            self.fn(*self.workload.values, *self.workload.outputs)


class LRU:
    """A small cache that forgets the least recently used entry beyond ``size`` entries: a worker
    tunes a few workloads at a time, and inputs and reference outputs can be large."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
        else:
            self._items[key] = make()
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return self._items[key]


InputCache = LRU  # input arrays per (workload, seed), made once per worker process


def load(c: Candidate, seed: int, cache: InputCache) -> Workload:
    """The candidate's algorithm, unscheduled, with its inputs bound to argument values."""
    if c.serialized is not None:
        return _load_serialized(c, seed, cache)
    spec = halide_pipelines.get(c.pipeline)
    built = spec.build(**c.sizes)
    pipeline = built.pipeline()
    arrays = cache.get(c.workload_key() + (seed,), lambda: spec.make_inputs(seed, **c.sizes))
    key_of = {param.name(): key for key, param in built.inputs.items()}
    arguments = list(pipeline.infer_arguments())
    values: list[Any] = []
    bindings: list[tuple[Any, Any]] = []
    for a in arguments:
        if a.name not in key_of:
            raise ValueError(f"pipeline argument '{a.name}' is not among the spec's inputs")
        v = arrays[key_of[a.name]]
        values.append(hl.Buffer(np.ascontiguousarray(v)) if _is_buffer(a) else v)
        bindings.append((built.inputs[key_of[a.name]], values[-1]))
    return Workload(pipeline, arguments, values, output_buffers(built), spec.rtol, spec.atol,
                    bindings=bindings, mismatch_fraction=spec.mismatch_fraction)


def _is_buffer(a: Any) -> bool:
    return bool(a.kind == hl.ArgumentKind.InputBuffer)


def _random_array(rng: np.random.Generator, t: Any, shape: tuple[int, ...]) -> np.ndarray:
    if t.is_float():
        return rng.random(shape).astype(np.float64 if t.bits() == 64 else np.float32)
    if t.is_bool():
        return rng.integers(0, 2, shape).astype(np.bool_)
    dtype = np.dtype(f"{'u' if t.is_uint() else ''}int{t.bits()}")
    return rng.integers(0, min(100, np.iinfo(dtype).max), shape).astype(dtype)


def _load_serialized(c: Candidate, seed: int, cache: InputCache) -> Workload:
    assert c.serialized is not None and c.output_shapes is not None
    params = dict(hl.deserialize_parameters(c.serialized))
    keep: list[Any] = []
    for name, p in list(params.items()):
        if not p.is_buffer():
            value: int | float = c.sizes.get(name, 1)
            value = float(value) if p.type().is_float() else int(value)
            typed = hl.Param(p.type(), name, value)
            keep.append(typed)
            params[name] = typed.parameter()
    pipeline = hl.deserialize_pipeline(c.serialized, params)
    outputs = [hl.Buffer(t, list(shape))
               for f, shape in zip(pipeline.outputs(), c.output_shapes) for t in f.types()]

    def make() -> dict[str, Any]:
        # Halide infers every input's required region from the output shapes.
        pipeline.infer_input_bounds(outputs[0] if len(outputs) == 1 else outputs)
        rng = np.random.default_rng(seed)
        arrays: dict[str, Any] = {}
        for name in sorted(params):
            p = params[name]
            if p.is_buffer():
                buf = p.buffer()
                shape = tuple(buf.dim(i).extent() for i in reversed(range(buf.dimensions())))
                mins = [buf.dim(i).min() for i in range(buf.dimensions())]
                if any(mins):
                    raise ValueError(f"input '{name}' needs a region not starting at 0 ({mins})")
                arrays[name] = aligned(_random_array(rng, p.type(), shape))
        return arrays

    arrays = cache.get(c.workload_key() + (seed,), make)
    arguments = list(pipeline.infer_arguments())
    values = [hl.Buffer(arrays[a.name]) if _is_buffer(a) else keep_value(params[a.name], c)
              for a in arguments]
    bindings = [(params[a.name], v) for a, v in zip(arguments, values) if _is_buffer(a)]
    return Workload(pipeline, arguments, values, outputs, rtol=1e-4, atol=1e-4, keep=keep,
                    bindings=bindings)


def keep_value(p: Any, c: Candidate) -> int | float:
    value = c.sizes.get(p.name(), 1)
    return float(value) if p.type().is_float() else int(value)


def compile_candidate(c: Candidate, w: Workload, source: str, target: str) -> Compiled:
    """Apply ``source`` to the workload's pipeline and JIT-compile it for ``target``."""
    t0 = time.perf_counter()
    schedules.apply_source(source, w.pipeline)
    t = hl.Target(target)
    cuda = c.is_cuda and target != reference_target()
    if cuda:
        preload_libcuda()
        w.bind()
        w.pipeline.compile_jit(t)
        fn = None
    else:
        fn = w.pipeline.compile_to_callable(w.arguments, t)
    return Compiled(w, fn, time.perf_counter() - t0, cuda=cuda, target=t)


def reference_target() -> str:
    """The reference runs on the host CPU whatever the candidate's target: it is the ground truth."""
    return "host"


def root_schedule(w: Workload) -> str:
    return schedules.root_source(w.pipeline)

"""The contract every bundled workload fulfils: build fresh Funcs, make inputs, compute a reference.

Array convention: numpy arrays are C-ordered with Halide's dimensions reversed, which is what
``hl.Buffer(array)`` and ``numpy.asarray(buffer)`` do by default. A Halide Func over (c, x, y, n) is
therefore a numpy array of shape (n, y, x, c).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import halide as hl

Sizes = dict[str, int]
Arrays = dict[str, Any]  # numpy arrays for ImageParams, Python scalars for Params


@dataclass
class BuiltPipeline:
    """One fresh instance of a workload's algorithm, ready to be scheduled once.

    ``inputs`` maps each input's name (the key used by ``make_inputs``) to its ImageParam or Param.
    ``output_shapes`` holds each output's extents in Halide order (innermost first), equal to the
    estimates set on the outputs. Every output and input carries estimates, as the autoschedulers need.
    """

    outputs: list[hl.Func]
    inputs: dict[str, Any]
    output_shapes: list[list[int]]
    sizes: Sizes = field(default_factory=dict)

    def pipeline(self) -> hl.Pipeline:
        return hl.Pipeline(self.outputs)

    def bind_inputs(self, arrays: Mapping[str, Any]) -> list[Any]:
        """Set every input's value; returns the Buffers so they outlive the realization."""
        keep: list[Any] = []
        for name, param in self.inputs.items():
            if name not in arrays:
                raise KeyError(f"no value for input '{name}'")
            value = arrays[name]
            if isinstance(param, hl.ImageParam):
                buf = hl.Buffer(np.ascontiguousarray(value))
                param.set(buf)
                keep.append(buf)
            else:
                param.set(value)
        return keep


@dataclass(frozen=True)
class PipelineSpec:
    """A named workload: algorithm builder, input generator and a reference that is not Halide.

    ``build(**sizes)`` returns a new BuiltPipeline each call (one spec can be scheduled many times);
    ``make_inputs(seed, **sizes)`` returns the inputs as numpy arrays / scalars keyed by input name;
    ``reference(inputs, **sizes)`` returns the expected outputs as numpy arrays in output order.
    ``test_sizes`` are small sizes for correctness tests; ``default_sizes`` are the benchmark sizes.
    ``flops(**sizes)`` (optional) counts the useful arithmetic of one run, for % of peak.
    ``torch_fn(inputs, **sizes)`` (optional, deep-learning workloads) returns a zero-argument callable
    that runs the same computation in PyTorch on tensors prepared beforehand, for side-by-side timing.
    """

    name: str
    description: str
    build_fn: Callable[..., BuiltPipeline]
    inputs_fn: Callable[..., Arrays]
    reference_fn: Callable[..., list[np.ndarray]]
    default_sizes: Sizes
    test_sizes: Sizes
    rtol: float = 1e-4
    atol: float = 1e-4
    tags: tuple[str, ...] = ()
    mismatch_fraction: float = 0.0
    """Share of output values allowed outside rtol/atol: for workloads whose data-dependent lookups
    flip when a schedule reorders float arithmetic (local_laplacian's LUT index: 0.01% of pixels at
    default sizes, up to 674 levels apart, between compute_root and any other schedule, and as many
    between compute_root and the numpy reference). 0 everywhere else."""
    flops_fn: Callable[..., float] | None = None
    default_schedule_ok: bool = True  # False when Halide's all-inline default is too slow to try
    torch_fn: Callable[..., Callable[[], Any]] | None = None

    def torch_runner(self, inputs: Arrays, **sizes: int) -> Callable[[], Any] | None:
        """A zero-argument callable running the PyTorch equivalent (tensors prepared), for benchmarks."""
        return None if self.torch_fn is None else self.torch_fn(inputs, **self.sizes(**sizes))

    def sizes(self, **overrides: int) -> Sizes:
        unknown = set(overrides) - set(self.default_sizes)
        if unknown:
            known = ", ".join(sorted(self.default_sizes))
            raise ValueError(f"{self.name}: unknown size(s) {sorted(unknown)}; known: {known}")
        return {**self.default_sizes, **overrides}

    def build(self, **sizes: int) -> BuiltPipeline:
        full = self.sizes(**sizes)
        built = self.build_fn(**full)
        built.sizes = full
        return built

    def make_inputs(self, seed: int = 0, **sizes: int) -> Arrays:
        # aligned here, once, for every caller that times them (see ``aligned``)
        return aligned_inputs(self.inputs_fn(np.random.default_rng(seed), **self.sizes(**sizes)))

    def reference(self, inputs: Arrays, **sizes: int) -> list[np.ndarray]:
        return [np.asarray(r) for r in self.reference_fn(inputs, **self.sizes(**sizes))]

    def flops(self, **sizes: int) -> float | None:
        return None if self.flops_fn is None else float(self.flops_fn(**self.sizes(**sizes)))


def output_buffers(built: BuiltPipeline) -> list[hl.Buffer]:
    """Allocate the output Buffers: one per output Func, or one per element of a Tuple-valued Func."""
    return [hl.Buffer(t, list(shape))
            for f, shape in zip(built.outputs, built.output_shapes) for t in f.types()]


def realize(built: BuiltPipeline, inputs: Mapping[str, Any], target: hl.Target | None = None,
            pipeline: hl.Pipeline | None = None) -> list[np.ndarray]:
    """Run the (already scheduled) pipeline once on the given inputs; returns numpy copies.

    The result has one array per output buffer (Tuple elements flattened), in output order.
    """
    keep = built.bind_inputs(inputs)
    p = pipeline if pipeline is not None else built.pipeline()
    t = target if target is not None else hl.get_jit_target_from_environment()
    bufs = output_buffers(built)
    p.realize(bufs, t)
    del keep
    return [np.array(b, copy=True) for b in bufs]


def set_output_estimates(f: hl.Func, shape: Sequence[int]) -> None:
    """Estimate a Func's full domain as [0, extent) along each dimension."""
    f.set_estimates([(0, int(e)) for e in shape])


def set_input_estimates(p: hl.ImageParam, shape: Sequence[int]) -> None:
    """Estimate an ImageParam's dims (Halide order) as [0, extent)."""
    for d, e in enumerate(shape):
        p.dim(d).set_estimate(0, int(e))


ALIGNMENT = 128   # bytes: input buffers start here, as Halide's own allocations do


def aligned(a: np.ndarray, alignment: int = ALIGNMENT) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts at a multiple of ``alignment`` bytes.

    Why: numpy's large arrays start 16 bytes past a malloc'd block, at varying offsets within a
    cache line, and a schedule that loads vectors of an input runs at the mercy of that offset:
    conv_layer_b8's pick ran 6.3-6.6 ms with its vector-loaded input 64-byte aligned and 7.9-8.2 ms
    when not, in one process. Each worker made its inputs once, so every candidate it held inherited
    its luck (an A/A test: the same schedule 6.6 ms on one worker, 8.0-8.2 ms on the two others).
    An array that is already aligned and C-contiguous comes back as is."""
    a = np.asarray(a)
    if a.flags.c_contiguous and a.ctypes.data % alignment == 0:
        return a
    raw = np.empty(a.nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def aligned_inputs(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """``arrays`` with every array aligned (``aligned``): ``PipelineSpec.make_inputs`` returns these,
    and ``timing.time_pipeline`` applies it to inputs of any origin, so that measured times compare
    schedules, not allocations."""
    return {k: aligned(v) if isinstance(v, np.ndarray) and v.ndim > 0 else v for k, v in arrays.items()}

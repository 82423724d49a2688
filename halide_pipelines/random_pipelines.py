"""Random Halide pipelines for cost-model training data (Adams2019-style), deterministic in the seed.

``spec(seed)`` returns the PipelineSpec ``random_<seed>``: 4 to 20 Funcs drawn from stencils (unrolled and
RDom), convolutions over channels and taps, pooling, activations, boundary conditions, up/down-sampling,
all-to-all channel mixing, scans, unary math, histograms, data-dependent gathers, pointwise combinations
of two earlier stages (so the pipeline is a DAG), and casts between float32, int32, int16, uint16 and
uint8. Its reference is its own compute_root-everything output (the correctness reference of every other
schedule).

How the generator keeps outputs comparable across schedules:

* Every stage carries a value interval, a rough RMS and an *exactness* grid: a stage is exact when all
  its values are multiples of ``2**grid`` below ``2**24`` grid units (or it is an integer type), so no
  float rounding happened anywhere upstream and any schedule computes bit-identical values. Everything
  discontinuous in the data (histogram bins, gather indices, float -> int casts) is computed only from
  exact stages, so a reordered float reduction can never flip an index. Integer stages are exact by
  construction: arithmetic is done in int32 with interval-checked bounds (no overflow) and narrowed with
  saturation.
* Float stages are renormalised by a power of two when the RMS estimate leaves [1/8, 8] (after
  convolutions, products, exp...), magnitudes are clamped to 1e6 where a pure definition allows it, and
  exp/log/sqrt/pow/division get clamped or shifted arguments, so no NaN or inf can appear.
* Inputs are quantised (images: integers or multiples of 1/256; weights: multiples of 2**-10), so the
  input itself is an exact source.

Costs: at the design ("default") sizes the plan bounds every stage's elements and the total work of the
compute_root schedule (a few 1e8 scalar operations). ``RandomPlan.inline_cost`` estimates the work of
Halide's default schedule (everything inlined; Funcs with update definitions recomputed at the innermost
loop of each consumer), which is exponential on stencil chains and quadratic on scans and histograms.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

import halide as hl

from autoscheduler.errors import ToolkitError

from .spec import BuiltPipeline, PipelineSpec, Sizes, set_input_estimates, set_output_estimates


class RandomPipelineError(ToolkitError, ValueError):
    """Bad arguments for a random pipeline: stage bounds, size class, or sizes beyond the safe range."""


# Stage kinds the generator draws from (the input's own boundary stage is "input", not listed here).
KINDS = ("stencil", "stencil_rdom", "conv", "pool", "activation", "pad", "resample", "all_to_all",
         "scan", "unary", "histogram", "gather", "binary", "cast")

LAYOUTS = {"image": ("x", "y", "c"), "tensor3": ("c", "x", "y"), "tensor4": ("c", "x", "y", "n")}

SIZE_CLASSES = ("default", "test")

# Bounds the design (default-size) plan respects.
_MAX_ELEMENTS = 4 << 20          # elements of any one stage
_MAX_TOTAL_ELEMENTS = 40 << 20   # sum over stages (memory of compute_root)
_MAX_STAGE_WORK = 1.5e8          # scalar operations of one stage under compute_root
_MAX_TOTAL_WORK = 3.0e8          # scalar operations of the whole pipeline under compute_root
_SIZE_LIMIT_FACTOR = 4           # build() accepts sizes up to this multiple of the design sizes
_FLOAT_CLAMP = 1.0e6
_INT_LIMIT = 1 << 29             # bound on |value| of every int32 stage

_HTYPES: dict[str, Callable[[], Any]] = {
    "f32": lambda: hl.Float(32), "i32": lambda: hl.Int(32), "i16": lambda: hl.Int(16),
    "u16": lambda: hl.UInt(16), "u8": lambda: hl.UInt(8)}
_NPTYPES: dict[str, Any] = {"f32": np.float32, "i32": np.int32, "i16": np.int16, "u16": np.uint16,
                            "u8": np.uint8}
_INT_RANGE: dict[str, tuple[int, int]] = {"i32": (-_INT_LIMIT, _INT_LIMIT), "i16": (-(1 << 15), (1 << 15) - 1),
                                          "u16": (0, (1 << 16) - 1), "u8": (0, 255)}


def _ht(t: str) -> Any:
    return _HTYPES[t]()


def _i32(e: Any) -> Any:
    return hl.cast(hl.Int(32), e)


def _f32(e: Any) -> Any:
    return hl.cast(hl.Float(32), e)


def _fc(x: float) -> Any:
    """A float32 constant (Halide warns when a Python float loses precision implicitly)."""
    return hl.f32(float(x))


def _sat(t: str, e: Any) -> Any:
    """Narrow an int32 expression to integer type ``t`` with saturation."""
    if t == "i32":
        return e
    lo, hi = _INT_RANGE[t]
    return hl.cast(_ht(t), hl.clamp(e, lo, hi))


def _uniform_rms(lo: float, hi: float) -> float:
    return math.sqrt(max((lo * lo + lo * hi + hi * hi) / 3.0, 1e-12))


@dataclass(frozen=True)
class Ext:
    """One symbolic extent: ``floor(sizes[key] * scale)`` (at least 1), or the constant ``scale``."""

    key: str
    scale: Fraction

    def at(self, sizes: Sizes) -> int:
        if not self.key:
            return int(self.scale)
        return max(1, math.floor(sizes[self.key] * self.scale))


def _const(n: int) -> Ext:
    return Ext("", Fraction(n))


Shape = tuple[Ext, ...]


@dataclass(frozen=True)
class _Val:
    """What the plan knows about a stage's values: type, interval, exactness grid, rough RMS."""

    type: str
    lo: float
    hi: float
    grid: int | None
    rms: float

    @property
    def bound(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    @property
    def is_float(self) -> bool:
        return self.type == "f32"

    @property
    def exact(self) -> bool:
        if not self.is_float:
            return True
        return self.grid is not None and self.bound * 2.0 ** -self.grid < 2 ** 24

    def int_range(self) -> tuple[int, int]:
        """Interval of the integer view (value / 2**grid) of an exact stage."""
        g = 0 if not self.is_float else (self.grid or 0)
        return math.floor(self.lo * 2.0 ** -g), math.ceil(self.hi * 2.0 ** -g)


def _exact_grid(lo: float, hi: float, grid: int | None) -> int | None:
    """The grid if values on it stay below 2**24 units (no float rounding), else None."""
    if grid is None or max(abs(lo), abs(hi)) * 2.0 ** -grid >= 2 ** 24:
        return None
    return grid


@dataclass(frozen=True)
class _Post:
    """Power-of-two gain and optional symmetric clamp applied to a float stage's result."""

    shift: int = 0
    clamp: float | None = None

    def apply(self, e: Any) -> Any:
        if self.shift:
            e = e * (2.0 ** self.shift)
        if self.clamp is not None:
            e = hl.clamp(e, -self.clamp, self.clamp)
        return e


def _float_out(lo: float, hi: float, grid: int | None, rms: float, can_clamp: bool = True) -> tuple[_Val, _Post]:
    """Value facts of a float result after renormalisation (RMS into [1/8, 8]) and clamping."""
    grid = _exact_grid(lo, hi, grid)
    shift = 0
    if rms > 8.0 or rms < 0.125:
        shift = max(-30, min(30, -round(math.log2(max(rms, 1e-30)))))
    s = 2.0 ** shift
    lo, hi, rms = lo * s, hi * s, rms * s
    grid = None if grid is None else grid + shift
    clamp = None
    if can_clamp and max(abs(lo), abs(hi)) > _FLOAT_CLAMP:
        clamp = _FLOAT_CLAMP
        lo, hi = max(lo, -_FLOAT_CLAMP), min(hi, _FLOAT_CLAMP)
        grid = None if grid is None else min(grid, 6)  # 1e6 is a multiple of 2**6
    if lo > hi:
        lo, hi = hi, lo
    return _Val("f32", lo, hi, _exact_grid(lo, hi, grid), max(rms, 1e-30)), _Post(shift, clamp)


def _float_view(v: _Val) -> tuple[_Val, int]:
    """Facts of a stage read as float32 (ints are cast and scaled by 2**shift to RMS ~ 1)."""
    if v.is_float:
        return v, 0
    shift = max(-30, min(30, -round(math.log2(max(v.rms, 1e-3)))))
    s = 2.0 ** shift
    return _Val("f32", v.lo * s, v.hi * s, _exact_grid(v.lo * s, v.hi * s, shift), v.rms * s), shift


def _interval_lin(terms: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """Interval of sum(w * x) for terms (w, lo_x, hi_x)."""
    lo = sum(min(w * a, w * b) for w, a, b in terms)
    hi = sum(max(w * a, w * b) for w, a, b in terms)
    return lo, hi


def _interval_mul(a: _Val, b: _Val) -> tuple[float, float]:
    p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return min(p), max(p)


def _int_result(t: str, lo: float, hi: float) -> tuple[float, float]:
    """Interval after saturating to integer type t."""
    tlo, thi = _INT_RANGE[t]
    lo2 = min(max(lo, tlo), thi)
    hi2 = min(max(hi, tlo), thi)
    return float(lo2), float(hi2)


class _Ctx:
    """Build-time state: sizes, Vars, the Funcs made so far and the ImageParams."""

    def __init__(self, plan: "RandomPlan", sizes: Sizes) -> None:
        self.plan = plan
        self.sizes = sizes
        self.vars = [hl.Var(d) for d in plan.dims]
        self.funcs: dict[int, Any] = {}
        self.params: dict[str, Any] = {}

    def ext(self, e: Ext) -> int:
        return e.at(self.sizes)

    def extents(self, j: int) -> list[int]:
        return [e.at(self.sizes) for e in self.plan.stages[j].shape]

    def load(self, j: int, coords: Sequence[Any]) -> Any:
        return self.funcs[j][list(coords)]

    def fit(self, j: int, target: Sequence[int], coords: Sequence[Any]) -> Any:
        """Read stage j at coords of a stage with extents ``target`` (nearest resampling on mismatch)."""
        src = self.extents(j)
        mapped = [c if s == t else (c * s) // t for c, s, t in zip(coords, src, target)]
        return self.load(j, mapped)

    def fload(self, j: int, coords: Sequence[Any], target: Sequence[int] | None = None) -> Any:
        """Stage j read as float32 (ints cast and scaled as in the plan's float view)."""
        e = self.load(j, coords) if target is None else self.fit(j, target, coords)
        st = self.plan.stages[j]
        if st.val.is_float:
            return e
        return _f32(e) * (2.0 ** st.float_shift)

    def iload(self, j: int, coords: Sequence[Any], target: Sequence[int] | None = None) -> Any:
        """Integer view (value / 2**grid as int32) of an exact stage."""
        e = self.load(j, coords) if target is None else self.fit(j, target, coords)
        st = self.plan.stages[j]
        if st.val.is_float:
            return _i32(e * (2.0 ** -(st.val.grid or 0)))
        return _i32(e)

    def param(self, name: str, t: str, shape: Sequence[Ext]) -> Any:
        p = hl.ImageParam(_ht(t), len(shape), name)
        set_input_estimates(p, [e.at(self.sizes) for e in shape])
        self.params[name] = p
        return p


Emit = Callable[[_Ctx], None]
SizeFn = Callable[[Sizes], float]


@dataclass
class _Stage:
    """One planned step: what it reads, what it produces, its cost model, and how to emit it."""

    index: int
    kind: str
    variant: str
    shape: Shape
    val: _Val
    funcs: int                        # Funcs this step adds to the pipeline
    inputs: tuple[int, ...]           # stages read (data dependences)
    own_ops: float                    # arithmetic per output point
    reads: list[tuple[int, SizeFn, int]]  # (producer, evaluations per point when inlined, code copies)
    root_work: SizeFn                 # scalar operations under compute_root
    access_points: SizeFn             # points computed per consumer access when not compute_root
    inlinable: bool                   # pure (no update definition), so the default schedule inlines it
    emit: Emit
    float_shift: int = 0
    params: list["_InputDesc"] = field(default_factory=list)  # ImageParams this step adds

    def describe(self) -> str:
        return f"{self.kind}:{self.variant}"


@dataclass
class _InputDesc:
    name: str
    type: str
    shape: Shape
    make: Callable[[np.random.Generator, Sizes], np.ndarray]


def _points(shape: Shape, sizes: Sizes) -> float:
    n = 1.0
    for e in shape:
        n *= e.at(sizes)
    return n


@dataclass
class RandomPlan:
    """The algorithm of one random pipeline, independent of sizes; ``build(sizes)`` emits it."""

    seed: int
    layout: str
    dims: tuple[str, ...]
    design_sizes: Sizes
    test_sizes: Sizes
    stages: list[_Stage] = field(default_factory=list)
    inputs: list[_InputDesc] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kind of every step after the input stage, in order (with repeats)."""
        return tuple(s.kind for s in self.stages[1:])

    @property
    def func_count(self) -> int:
        """Funcs of the pipeline other than input wrappers (the stage count)."""
        return sum(s.funcs for s in self.stages)

    def axis(self, name: str) -> int:
        return self.dims.index(name)

    def describe(self) -> str:
        used = sorted(set(self.kinds))
        steps = " ".join(s.describe() for s in self.stages)
        return (f"random pipeline seed {self.seed} ({self.layout}, {self.func_count} funcs, "
                f"{len(self.outputs)} output(s)); kinds: {','.join(used)}; steps: {steps}")

    def check_sizes(self, sizes: Sizes) -> None:
        for k, v in sizes.items():
            if v < 1:
                raise RandomPipelineError(f"random_{self.seed}: size {k}={v} must be >= 1")
            limit = _SIZE_LIMIT_FACTOR * self.design_sizes[k]
            if v > limit:
                raise RandomPipelineError(f"random_{self.seed}: size {k}={v} exceeds {limit} "
                                 f"({_SIZE_LIMIT_FACTOR}x the design size); value bounds are not guaranteed")

    def build(self, sizes: Sizes) -> BuiltPipeline:
        self.check_sizes(sizes)
        ctx = _Ctx(self, sizes)
        for inp in self.inputs:
            ctx.param(inp.name, inp.type, inp.shape)
        for st in self.stages:
            st.emit(ctx)
        outs = [ctx.funcs[i] for i in self.outputs]
        shapes = [ctx.extents(i) for i in self.outputs]
        for f, sh in zip(outs, shapes):
            set_output_estimates(f, sh)
        return BuiltPipeline(outputs=outs, inputs={p: ctx.params[p] for p in ctx.params},
                             output_shapes=shapes)

    def make_inputs(self, rng: np.random.Generator, sizes: Sizes) -> dict[str, Any]:
        return {inp.name: inp.make(rng, sizes) for inp in self.inputs}

    def root_work(self, sizes: Sizes) -> float:
        """Scalar operations of the compute_root schedule (the estimate the plan's budget bounds)."""
        return sum(s.root_work(sizes) for s in self.stages)

    def inline_point_costs(self, sizes: Sizes) -> list[float]:
        """Operations to compute one point of each stage under Halide's default schedule."""
        cost: list[float] = []
        for st in self.stages:
            c = st.own_ops
            for p, per_point, _ in st.reads:
                c += per_point(sizes) * self.stages[p].access_points(sizes) * cost[p]
            cost.append(min(c, 1e300))
        return cost

    def inline_code_size(self) -> int:
        """Rough expression size of the outputs once every pure stage is inlined."""
        size: list[float] = []
        for st in self.stages:
            s = st.own_ops + 1
            for p, _, copies in st.reads:
                s += copies * size[p] if self.stages[p].inlinable else copies + size[p]
            size.append(min(s, 1e300))
        return int(min(sum(size[i] for i in self.outputs), 1e18))

    def inline_cost(self, sizes: Sizes, points: Sequence[float] | None = None) -> float:
        """Operations of the default schedule realizing ``points`` points of each output (all by default)."""
        cost = self.inline_point_costs(sizes)
        n = points if points is not None else [_points(self.stages[i].shape, sizes) for i in self.outputs]
        return float(sum(k * cost[i] for k, i in zip(n, self.outputs)))


class _Gen:
    """Draws the plan: one stage at a time, each applied to the latest stage (or an earlier one)."""

    def __init__(self, seed: int, min_stages: int, max_stages: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.min_stages = min_stages
        self.max_stages = max_stages
        layout = self.rng.choice(["image", "image", "tensor3", "tensor4"])
        design, test = self._sizes(layout)
        self.plan = RandomPlan(seed, layout, LAYOUTS[layout], design, test)
        self.limit = {k: v * _SIZE_LIMIT_FACTOR for k, v in design.items()}
        self.min_scale = Fraction(1, 8) if layout == "image" else Fraction(1, 4)
        self.max_scale = Fraction(4) if layout == "image" else Fraction(2)
        self.total_work = 0.0
        self.total_elements = 0.0
        self.relaxed = False  # set when the pipeline budget runs out before min_stages is reached

    # ----- sizes -------------------------------------------------------------------------------
    def _sizes(self, layout: str) -> tuple[Sizes, Sizes]:
        r = self.rng
        if layout == "image":
            w = r.choice([256, 384, 512, 640, 768, 1024, 1536, 2048])
            h = r.choice([256, 384, 512, 640, 768, 1024, 1536, 2048])
            while w * h > (1 << 20):
                if w >= h:
                    w //= 2
                else:
                    h //= 2
            c = r.choice([1, 2, 3, 3])
            feat = r.choice([4, 8])
            design = {"width": w, "height": h, "channels": c, "features": feat}
            test = {"width": r.randint(24, 40), "height": r.randint(16, 32), "channels": c, "features": 4}
            return design, test
        chans = r.choice([16, 32, 64, 128])
        feat = r.choice([f for f in (64, 128, 256) if f >= chans])
        batch = r.choice([1, 2, 4]) if layout == "tensor4" else 1
        target = r.choice([1 << 17, 1 << 18, 1 << 19])
        side = int(math.sqrt(target / (feat * batch)))
        side = max(16, min(128, side))
        w = max(16, min(128, int(side * r.choice([0.75, 1.0, 1.0, 1.25]))))
        h = max(16, min(128, side))
        design = {"width": w, "height": h, "channels": chans, "features": feat}
        test = {"width": r.randint(8, 14), "height": r.randint(8, 12), "channels": 4, "features": 8}
        if layout == "tensor4":
            design["batch"] = batch
            test["batch"] = min(batch, 2)
        return design, test

    # ----- helpers -----------------------------------------------------------------------------
    @property
    def stages(self) -> list[_Stage]:
        return self.plan.stages

    def n(self, shape: Shape, sizes: Sizes | None = None) -> float:
        return _points(shape, sizes if sizes is not None else self.plan.design_sizes)

    def ax(self, name: str) -> int:
        return self.plan.axis(name)

    def spatial(self) -> tuple[int, int]:
        return self.ax("x"), self.ax("y")

    def exact_stages(self) -> list[int]:
        return [s.index for s in self.stages if s.val.exact]

    def add(self, st: _Stage) -> bool:
        """Accept a drawn stage if it fits the design budget and the Func budget."""
        d = self.plan.design_sizes
        elements = self.n(st.shape)
        work = st.root_work(d)
        if elements > _MAX_ELEMENTS or work > _MAX_STAGE_WORK:
            return False
        over = self.total_work + work > _MAX_TOTAL_WORK or self.total_elements + elements > _MAX_TOTAL_ELEMENTS
        if over and not self.relaxed:
            return False
        if self.plan.func_count + st.funcs > self.max_stages:
            return False
        self.total_work += work
        self.total_elements += elements
        self.stages.append(st)
        self.plan.inputs.extend(st.params)
        return True

    def stage(self, kind: str, variant: str, shape: Shape, val: _Val, emit: Emit, *, funcs: int = 1,
              inputs: Sequence[int], own_ops: float, reads: list[tuple[int, SizeFn, int]],
              root_work: SizeFn | None = None, access_points: SizeFn | None = None,
              inlinable: bool = True) -> _Stage:
        idx = len(self.stages)

        def default_root(sizes: Sizes) -> float:
            return _points(shape, sizes) * (own_ops + sum(per_point(sizes) for _, per_point, _ in reads))

        _, fshift = _float_view(val)
        return _Stage(idx, kind, variant, shape, val, funcs, tuple(inputs), own_ops, reads,
                      root_work or default_root, access_points or (lambda s: 1.0), inlinable, emit,
                      float_shift=fshift)

    # ----- drawing -----------------------------------------------------------------------------
    def run(self) -> RandomPlan:
        r = self.rng
        self._input_stage()
        target = r.randint(self.min_stages, self.max_stages)
        frontier = [0]
        weights = {"stencil": 10, "stencil_rdom": 8, "conv": 8, "pool": 6, "activation": 8, "pad": 5,
                   "resample": 6, "all_to_all": 6, "scan": 5, "unary": 7, "histogram": 4, "gather": 5,
                   "binary": 8, "cast": 9}
        if self.plan.layout != "image":
            weights.update(conv=12, all_to_all=10)
        failures = 0
        while failures <= 200:
            count = self.plan.func_count
            if count >= self.max_stages:
                break
            two = len(frontier) == 2
            forced = None
            if count >= target:
                if not two or r.random() < 0.5:   # done (two frontier stages become two outputs)
                    break
                forced = "binary"
            w = dict(weights)
            if two:
                w["binary"] *= 5
            kind = forced or r.choices(list(w), weights=list(w.values()))[0]
            cur = frontier[-1]
            src = cur
            branch = (not two and kind != "binary" and len(self.stages) >= 3
                      and count + 2 <= self.max_stages and r.random() < 0.15)
            if branch:
                src = r.randrange(0, len(self.stages) - 1)
            other = frontier[0] if two else None
            st = self._draw(kind, src, other)
            if st is None or not self.add(st):
                failures += 1
                # The total budget is spent but min_stages is not reached: keep only the per-stage caps.
                self.relaxed = failures > 100 and count < self.min_stages
                continue
            consumed = set(st.inputs)
            frontier = [f for f in frontier if f not in consumed] + [st.index]
        if self.plan.func_count < self.min_stages:
            raise RandomPipelineError(f"random_{self.seed}: could not reach {self.min_stages} stages")
        self.plan.outputs = sorted(frontier)
        return self.plan

    def _draw(self, kind: str, j: int, other: int | None) -> _Stage | None:
        fn = getattr(self, f"_k_{kind}")
        if kind == "binary":
            return fn(j, other)  # type: ignore[no-any-return]
        return fn(j)  # type: ignore[no-any-return]

    # ----- the input ---------------------------------------------------------------------------
    def _input_stage(self) -> None:
        r = self.rng
        dims = self.plan.dims
        shape = tuple(self._base_ext(d) for d in dims)
        if self.plan.layout == "image":
            t = r.choice(["u8", "u8", "u16", "f32", "f32", "i16"])
        else:
            t = r.choice(["f32", "f32", "f32", "f32", "i16", "u8"])
        ilo, ihi, scale = {"u8": (0, 255, 1.0), "u16": (0, 4095, 1.0), "i16": (-2048, 2047, 1.0),
                           "f32": ((0 if self.plan.layout == "image" else -256), 256, 1.0 / 256)}[t]

        def make(rng: np.random.Generator, sizes: Sizes) -> np.ndarray:
            ext = [e.at(sizes) for e in shape]
            a = rng.integers(ilo, ihi + 1, size=tuple(reversed(ext)))
            return (a * scale).astype(_NPTYPES[t]) if t == "f32" else a.astype(_NPTYPES[t])

        self.plan.inputs.append(_InputDesc("input", t, shape, make))
        grid = -8 if t == "f32" else 0
        val = _Val(t, ilo * scale, ihi * scale, grid, _uniform_rms(ilo * scale, ihi * scale))
        variant = r.choice(["repeat_edge", "repeat_edge", "zero"])
        if variant == "zero":
            val = _Val(t, min(val.lo, 0.0), max(val.hi, 0.0), grid, val.rms)

        def emit(ctx: _Ctx) -> None:
            im = ctx.params["input"]
            f = hl.Func("s0_input")
            clamped = [hl.clamp(v, im.dim(d).min(), im.dim(d).max()) for d, v in enumerate(ctx.vars)]
            if variant == "zero":
                inside = None
                for d in (self.ax("x"), self.ax("y")):
                    v = ctx.vars[d]
                    c = (v >= im.dim(d).min()) & (v <= im.dim(d).max())
                    inside = c if inside is None else inside & c
                f[ctx.vars] = hl.select(inside, im[clamped], hl.cast(_ht(t), 0))
            else:
                f[ctx.vars] = im[clamped]
            ctx.funcs[0] = f

        st = self.stage("input", variant, shape, val, emit, inputs=(), own_ops=1, reads=[])
        self.stages.append(st)
        self.total_elements += self.n(shape)
        self.total_work += st.root_work(self.plan.design_sizes)

    def _base_ext(self, d: str) -> Ext:
        return Ext({"x": "width", "y": "height", "c": "channels", "n": "batch"}[d], Fraction(1))

    def _scaled(self, shape: Shape, axes: Sequence[int], factor: Fraction) -> Shape | None:
        out = list(shape)
        for a in axes:
            e = shape[a]
            s = e.scale * factor
            if s < self.min_scale or s > self.max_scale:
                return None
            if factor < 1 and e.at(self.plan.design_sizes) < 8:
                return None
            out[a] = Ext(e.key, s)
        return tuple(out)

    def _channel_out(self, shape: Shape) -> Ext:
        r = self.rng
        c = shape[self.ax("c")]
        opts = [c, Ext("features", Fraction(1)), Ext("features", Fraction(1)), Ext("channels", Fraction(1))]
        if self.plan.layout != "image":
            opts += [Ext("features", Fraction(1, 2)), Ext("features", Fraction(2))]
        ext = r.choice(opts)
        if ext.key == "features" and ext.at(self.plan.design_sizes) > 256:
            ext = Ext("features", Fraction(1))
        return ext

    # ----- kinds -------------------------------------------------------------------------------
    def _k_pad(self, j: int) -> _Stage | None:
        r = self.rng
        v = self.stages[j].val
        shape = self.stages[j].shape
        variant = r.choice(["repeat_edge", "constant_exterior", "mirror_image", "mirror_interior"])
        val = v
        if variant == "constant_exterior":
            val = _Val(v.type, min(v.lo, 0.0), max(v.hi, 0.0), v.grid, v.rms)
        sx, sy = self.spatial()

        def emit(ctx: _Ctx) -> None:
            ext = ctx.extents(j)
            bounds = [hl.Range(0, ext[d]) if d in (sx, sy) else hl.Range() for d in range(len(ext))]
            f = ctx.funcs[j]
            bc = hl.BoundaryConditions
            if variant == "repeat_edge":
                g = bc.repeat_edge(f, bounds)
            elif variant == "constant_exterior":
                g = bc.constant_exterior(f, hl.cast(_ht(v.type), 0), bounds)
            elif variant == "mirror_image":
                g = bc.mirror_image(f, bounds)
            else:
                g = bc.mirror_interior(f, bounds)
            ctx.funcs[idx] = g

        # constant_exterior is a select over a repeat_edge Func: two Funcs
        st = self.stage("pad", variant, shape, val, emit, funcs=2 if variant == "constant_exterior" else 1,
                        inputs=(j,), own_ops=4, reads=[(j, lambda s: 1.0, 1)])
        idx = st.index
        return st

    def _k_stencil(self, j: int) -> _Stage | None:
        r = self.rng
        v = self.stages[j].val
        shape = self.stages[j].shape
        sx, sy = self.spatial()
        variant = r.choice(["x", "y", "xy"])
        if variant == "xy":
            offs = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        else:
            k = r.choice([3, 5, 7])
            shift = r.choice([0, 0, 0, 1, -1])
            offs = [((o, 0) if variant == "x" else (0, o)) for o in range(-(k // 2) + shift, k // 2 + 1 + shift)]
        w = [r.randint(-2, 4) for _ in offs]
        if sum(w) <= 0:
            w[len(w) // 2] += 1 - sum(w)
        if all(x == 0 for x in w):
            w[0] = 1
        taps = [(o, wt) for o, wt in zip(offs, w) if wt != 0]
        total = sum(abs(wt) for _, wt in taps)
        s = max(0, math.ceil(math.log2(total)))
        lo, hi = _interval_lin([(wt, v.lo, v.hi) for _, wt in taps])
        gain = math.sqrt(sum(wt * wt for _, wt in taps)) / 2 ** s
        if v.is_float:
            raw_grid = v.grid
            val, post = _float_out(lo / 2 ** s, hi / 2 ** s, None if raw_grid is None else raw_grid - s,
                                   v.rms * gain)
            if _exact_grid(lo, hi, raw_grid) is None:
                val = _Val(val.type, val.lo, val.hi, None, val.rms)
        else:
            if total * v.bound > _INT_LIMIT:
                return None
            lo2, hi2 = _int_result(v.type, math.floor(lo / 2 ** s), math.floor(hi / 2 ** s))
            val, post = _Val(v.type, lo2, hi2, 0, max(v.rms * gain, 1e-3)), _Post()

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            e: Any = None
            for (dx, dy), wt in taps:
                c = list(xs)
                c[sx] = xs[sx] + dx
                c[sy] = xs[sy] + dy
                term = ctx.load(j, c) if v.is_float else _i32(ctx.load(j, c))
                term = term * wt
                e = term if e is None else e + term
            if v.is_float:
                e = post.apply(e * (2.0 ** -s))
            else:
                e = _sat(v.type, e >> s if s else e)
            f = hl.Func(f"s{idx}_stencil")
            f[xs] = e
            ctx.funcs[idx] = f

        ntaps = float(len(taps))
        st = self.stage("stencil", f"{variant}{len(taps)}", shape, val, emit, inputs=(j,), own_ops=2 * len(taps),
                        reads=[(j, lambda sz: ntaps, len(taps))])
        idx = st.index
        return st

    def _k_stencil_rdom(self, j: int) -> _Stage | None:
        r = self.rng
        v = self.stages[j].val
        shape = self.stages[j].shape
        sx, sy = self.spatial()
        axes = r.choice(["x", "y", "xy"])
        k = r.choice([3, 5]) if axes == "xy" else r.choice([3, 5, 7, 9])
        h = k // 2
        form = r.choice(["update", "sum"])
        weighting = r.choice(["box", "tent"])

        def w1(i: int) -> int:
            return 1 if weighting == "box" else h + 1 - abs(i - h)

        ws = [w1(a) * w1(b) for a in range(k) for b in range(k)] if axes == "xy" else [w1(a) for a in range(k)]
        W = sum(ws)
        n = len(ws)
        pow2 = W & (W - 1) == 0
        gain = max(math.sqrt(sum(x * x for x in ws)) / W, 0.5)
        int_out = "i32" if (not v.is_float and form == "update") else v.type
        if v.is_float:
            grid = (v.grid - int(math.log2(W))) if (pow2 and v.grid is not None) else None
            val, post = _float_out(v.lo, v.hi, grid, v.rms * gain, can_clamp=form == "sum")
        else:
            if W * v.bound > _INT_LIMIT:
                return None
            if form == "update":
                val, post = _Val("i32", W * v.lo, W * v.hi, 0, max(v.rms * gain * W, 1e-3)), _Post()
            else:
                val, post = _Val(v.type, v.lo, v.hi, 0, max(v.rms * gain, 1e-3)), _Post()

        def wexpr(rv: Any) -> Any:
            return 1 if weighting == "box" else (h + 1) - hl.max(rv - h, h - rv)

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_stencil_rdom"
            if axes == "xy":
                rd = hl.RDom([(0, k), (0, k)], f"{name}_r")
                c = list(xs)
                c[sx] = xs[sx] + rd.x - h
                c[sy] = xs[sy] + rd.y - h
                wt = wexpr(rd.x) * wexpr(rd.y) if weighting == "tent" else 1
            else:
                rd = hl.RDom([(0, k)], f"{name}_r")
                c = list(xs)
                a = sx if axes == "x" else sy
                c[a] = xs[a] + rd.x - h
                wt = wexpr(rd.x)
            f = hl.Func(name)
            if v.is_float:
                term = ctx.load(j, c) * wt
                scale = _fc((1.0 / W) * 2.0 ** post.shift)
                if form == "update":
                    f[xs] = hl.f32(0.0)
                    f[xs] = f[xs] + term * scale
                else:
                    f[xs] = post.apply(hl.sum(term, f"{name}_sum") * _fc(1.0 / W))
            else:
                term = _i32(ctx.load(j, c)) * wt
                if form == "update":
                    f[xs] = hl.i32(0)
                    f[xs] = f[xs] + term
                else:
                    f[xs] = _sat(int_out, hl.sum(term, f"{name}_sum") / W)
            ctx.funcs[idx] = f

        st = self.stage("stencil_rdom", f"{form}_{weighting}_{axes}{k}", shape, val, emit,
                        funcs=1 if form == "update" else 2, inputs=(j,), own_ops=3 * n,
                        reads=[(j, lambda sz: float(n), 1)], inlinable=False)
        idx = st.index
        return st

    def _weights_input(self, name: str, shape: Shape, fan_in: Shape, bias: bool = False) -> _InputDesc:
        def make(rng: np.random.Generator, sizes: Sizes) -> np.ndarray:
            ext = [e.at(sizes) for e in shape]
            if bias:
                a = rng.integers(-100, 101, size=tuple(reversed(ext)))
            else:
                fi = max(1, int(_points(fan_in, sizes)))
                amp = max(1, int(math.sqrt(3.0 / fi) * 1024))
                a = rng.integers(-amp, amp + 1, size=tuple(reversed(ext)))
            return (a * (2.0 ** -10)).astype(np.float32)

        return _InputDesc(name, "f32", shape, make)

    def _k_conv(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        fv, _ = _float_view(src.val)
        ca = self.ax("c")
        sx, sy = self.spatial()
        cin = src.shape[ca]
        cin_design = cin.at(self.plan.design_sizes)
        k = r.choice([1, 3, 3, 5] if cin_design <= 4 else [1, 3, 3])
        cout = self._channel_out(src.shape)
        shape = tuple(cout if d == ca else e for d, e in enumerate(src.shape))
        form = r.choice(["update", "sum"])
        bias = r.random() < 0.5
        fan_lim = cin.at(self.limit) * k * k
        bound = fv.bound * math.sqrt(3.0 * fan_lim) + (0.1 if bias else 0.0)
        grid = None if fv.grid is None else fv.grid - 10
        val, post = _float_out(-bound, bound, grid, fv.rms, can_clamp=form == "sum")
        idx = len(self.stages)
        wname, bname = f"s{idx}_weights", f"s{idx}_bias"
        wshape = (cin, _const(k), _const(k), cout)

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_conv"
            ci_n = ctx.ext(cin)
            w = ctx.params[wname]
            if self.plan.layout == "image":
                rd = hl.RDom([(0, k), (0, k), (0, ci_n)], f"{name}_r")
                kx, ky, ci = rd.x, rd.y, rd.z
            else:
                rd = hl.RDom([(0, ci_n), (0, k), (0, k)], f"{name}_r")
                ci, kx, ky = rd.x, rd.y, rd.z
            c = list(xs)
            c[sx] = xs[sx] + kx - k // 2
            c[sy] = xs[sy] + ky - k // 2
            c[ca] = ci
            co = xs[ca]
            scale = 2.0 ** post.shift
            term = w[ci, kx, ky, co] * ctx.fload(j, c)
            init: Any = ctx.params[bname][co] * scale if bias else hl.f32(0.0)
            f = hl.Func(name)
            if form == "update":
                f[xs] = init
                f[xs] = f[xs] + term * scale
            else:
                f[xs] = post.apply(hl.sum(term, f"{name}_sum") + (ctx.params[bname][co] if bias else 0.0))
            ctx.funcs[idx] = f

        def fan(sz: Sizes) -> float:
            return float(cin.at(sz) * k * k)

        def root(sz: Sizes) -> float:
            return _points(shape, sz) * (3 * fan(sz) + 1)

        params = [self._weights_input(wname, wshape, (cin, _const(k), _const(k)))]
        if bias:
            params.append(self._weights_input(bname, (cout,), (), bias=True))
        st = self.stage("conv", f"{form}_k{k}{'_bias' if bias else ''}", shape, val, emit,
                        funcs=1 if form == "update" else 2, inputs=(j,), own_ops=2 * k * k * cin_design,
                        reads=[(j, fan, 1)], root_work=root, inlinable=False)
        st.params = params
        return st

    def _k_all_to_all(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        fv, _ = _float_view(src.val)
        ca = self.ax("c")
        cin = src.shape[ca]
        cin_design = cin.at(self.plan.design_sizes)
        cout = self._channel_out(src.shape)
        shape = tuple(cout if d == ca else e for d, e in enumerate(src.shape))
        variants = ["weights_update", "weights_sum", "trig"]
        if cin_design <= 4 and cin.key == "channels":
            variants.append("unrolled")
        variant = r.choice(variants)
        alpha, beta = r.uniform(0.5, 2.5), r.uniform(0.5, 2.5)
        cin_lim = cin.at(self.limit)
        bound = fv.bound * math.sqrt(3.0 * cin_lim)
        grid = None if (fv.grid is None or variant in ("trig", "unrolled")) else fv.grid - 10
        val, post = _float_out(-bound, bound, grid, fv.rms, can_clamp=variant in ("weights_sum", "unrolled"))
        idx = len(self.stages)
        wname = f"s{idx}_matrix"

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_all_to_all"
            n_in = ctx.ext(cin)
            co = xs[ca]
            f = hl.Func(name)
            scale = 2.0 ** post.shift

            def at(ci: Any) -> Any:
                c = list(xs)
                c[ca] = ci
                return ctx.fload(j, c)

            amp = math.sqrt(2.0 / n_in)
            if variant == "unrolled":
                e: Any = None
                for ci in range(n_in):
                    t = at(ci) * (hl.cos(_f32(co) * _fc(beta) + _fc(ci * alpha)) * _fc(amp))
                    e = t if e is None else e + t
                f[xs] = post.apply(e)
            elif variant == "trig":
                rd = hl.RDom([(0, n_in)], f"{name}_r")
                f[xs] = hl.f32(0.0)
                f[xs] = f[xs] + at(rd.x) * (hl.cos(_f32(rd.x) * _fc(alpha) + _f32(co) * _fc(beta)) * _fc(amp * scale))
            else:
                rd = hl.RDom([(0, n_in)], f"{name}_r")
                m = ctx.params[wname]
                if variant == "weights_update":
                    f[xs] = hl.f32(0.0)
                    f[xs] = f[xs] + m[rd.x, co] * at(rd.x) * scale
                else:
                    f[xs] = post.apply(hl.sum(m[rd.x, co] * at(rd.x), f"{name}_sum"))
            ctx.funcs[idx] = f

        params = [self._weights_input(wname, (cin, cout), (cin,))] if variant.startswith("weights") else []

        def fan(sz: Sizes) -> float:
            return float(cin.at(sz))

        def root(sz: Sizes) -> float:
            return _points(shape, sz) * (3 * fan(sz) + (4 * fan(sz) if variant in ("trig", "unrolled") else 0))

        st = self.stage("all_to_all", variant, shape, val, emit,
                        funcs=2 if variant == "weights_sum" else 1, inputs=(j,),
                        own_ops=3 * cin_design, reads=[(j, fan, 1 if variant != "unrolled" else cin_design)],
                        root_work=root, inlinable=variant == "unrolled")
        st.params = params
        return st

    def _k_pool(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        v = src.val
        sx, sy = self.spatial()
        shape = self._scaled(src.shape, (sx, sy), Fraction(1, 2))
        if shape is None:
            return None
        K = r.choice([2, 3])
        op = r.choice(["max", "avg"])
        form = r.choice(["unrolled", "update", "inline"])
        off = 1 if K == 3 else 0
        n = K * K
        out_t = v.type
        if op == "max":
            val, post = v, _Post()
        elif v.is_float:
            grid = (v.grid - 2) if (K == 2 and v.grid is not None) else None
            val, post = _float_out(v.lo, v.hi, grid, v.rms, can_clamp=form != "update")
        else:
            if form == "update":
                if n * v.bound > _INT_LIMIT:
                    return None
                out_t = "i32"
                val, post = _Val("i32", n * v.lo, n * v.hi, 0, v.rms * n), _Post()
            else:
                val, post = _Val(v.type, v.lo, v.hi, 0, v.rms), _Post()
        lo_init = v.lo

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_pool"
            f = hl.Func(name)

            def tap(dx: Any, dy: Any) -> Any:
                c = list(xs)
                c[sx] = xs[sx] * 2 + dx - off
                c[sy] = xs[sy] * 2 + dy - off
                return ctx.load(j, c)

            if form == "unrolled":
                e: Any = None
                for dy in range(K):
                    for dx in range(K):
                        t = tap(dx, dy)
                        if op == "avg" and not v.is_float:
                            t = _i32(t)
                        e = t if e is None else (hl.max(e, t) if op == "max" else e + t)
                if op == "avg":
                    e = post.apply(e * _fc(1.0 / n)) if v.is_float else _sat(out_t, e / n)
                f[xs] = e
            elif form == "update":
                rd = hl.RDom([(0, K), (0, K)], f"{name}_r")
                t = tap(rd.x, rd.y)
                if op == "max":
                    f[xs] = _fc(lo_init) if v.is_float else hl.cast(_ht(v.type), hl.i32(int(lo_init)))
                    f[xs] = hl.max(f[xs], t)
                elif v.is_float:
                    f[xs] = hl.f32(0.0)
                    f[xs] = f[xs] + t * _fc((1.0 / n) * 2.0 ** post.shift)
                else:
                    f[xs] = hl.i32(0)
                    f[xs] = f[xs] + _i32(t)
            else:
                rd = hl.RDom([(0, K), (0, K)], f"{name}_r")
                t = tap(rd.x, rd.y)
                if op == "max":
                    f[xs] = hl.maximum(t, f"{name}_max")
                elif v.is_float:
                    f[xs] = post.apply(hl.sum(t, f"{name}_sum") * _fc(1.0 / n))
                else:
                    f[xs] = _sat(out_t, hl.sum(_i32(t), f"{name}_sum") / n)
            ctx.funcs[idx] = f

        st = self.stage("pool", f"{op}{K}_{form}", shape, val, emit, funcs=2 if form == "inline" else 1,
                        inputs=(j,), own_ops=2 * n, reads=[(j, lambda sz: float(n), n if form == "unrolled" else 1)],
                        inlinable=form == "unrolled")
        idx = st.index
        return st

    def _k_activation(self, j: int) -> _Stage | None:
        r = self.rng
        v = self.stages[j].val
        shape = self.stages[j].shape
        if v.is_float:
            op = r.choice(["relu", "leaky_relu", "tanh", "sigmoid"])
        elif v.lo < 0:
            op = r.choice(["relu", "relu", "tanh", "sigmoid"])
        else:
            op = r.choice(["tanh", "sigmoid"])
        fv, _ = _float_view(v)
        post = _Post()
        if op == "relu":
            val = _Val(v.type, max(v.lo, 0.0), max(v.hi, 0.0), v.grid, max(v.rms / math.sqrt(2), 1e-6))
        elif op == "leaky_relu":
            lo = v.lo * 0.125 if v.lo < 0 else v.lo
            val, post = _float_out(lo, v.hi, None if v.grid is None else v.grid - 3, v.rms * 0.75)
        elif op == "tanh":
            val = _Val("f32", math.tanh(fv.lo), math.tanh(fv.hi), None, max(min(fv.rms, 0.8), 1e-3))
            val, post = _float_out(val.lo, val.hi, None, val.rms)
        else:
            def sig(x: float) -> float:
                return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))
            val, post = _float_out(sig(fv.lo), sig(fv.hi), None, 0.6)

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            f = hl.Func(f"s{idx}_{op}")
            if op == "relu":
                e = ctx.load(j, xs)
                f[xs] = hl.max(e, hl.cast(_ht(v.type), 0))
            elif op == "leaky_relu":
                e = ctx.load(j, xs)
                f[xs] = post.apply(hl.max(e, e * 0.125))
            elif op == "tanh":
                f[xs] = post.apply(hl.tanh(ctx.fload(j, xs)))
            else:
                e = hl.clamp(ctx.fload(j, xs), -30.0, 30.0)
                f[xs] = post.apply(1.0 / (1.0 + hl.exp(-e)))
            ctx.funcs[idx] = f

        st = self.stage("activation", op, shape, val, emit, inputs=(j,),
                        own_ops=2 if op in ("relu", "leaky_relu") else 12, reads=[(j, lambda sz: 1.0, 1)])
        idx = st.index
        return st

    def _k_resample(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        v = src.val
        sx, sy = self.spatial()
        direction = r.choice(["up", "down"])
        method = r.choice(["nearest", "linear"] if direction == "up" else ["nearest", "box"])
        axes_name = r.choice(["x", "y", "xy"])
        axes = {"x": (sx,), "y": (sy,), "xy": (sx, sy)}[axes_name]
        shape = self._scaled(src.shape, axes, Fraction(2) if direction == "up" else Fraction(1, 2))
        if shape is None:
            return None
        ntaps = 1 if method == "nearest" else 2 ** len(axes)
        if method == "nearest":
            val = v
        elif v.is_float:
            val = _Val("f32", v.lo, v.hi, None if v.grid is None else v.grid - len(axes), v.rms)
            val = _Val("f32", val.lo, val.hi, _exact_grid(val.lo, val.hi, val.grid), val.rms)
        else:
            val = v

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            f = hl.Func(f"s{idx}_{direction}_{method}")
            if method == "nearest":
                c = list(xs)
                for a in axes:
                    c[a] = xs[a] // 2 if direction == "up" else xs[a] * 2
                f[xs] = ctx.load(j, c)
            else:
                e: Any = None
                combos = [(0,), (1,)] if len(axes) == 1 else [(0, 0), (1, 0), (0, 1), (1, 1)]
                for combo in combos:
                    c = list(xs)
                    for a, bit in zip(axes, combo):
                        if direction == "up":
                            c[a] = xs[a] // 2 + (xs[a] % 2) * bit
                        else:
                            c[a] = xs[a] * 2 + bit
                    t = ctx.load(j, c)
                    t = t if v.is_float else _i32(t)
                    e = t if e is None else e + t
                if v.is_float:
                    f[xs] = e * (1.0 / len(combos))
                else:
                    f[xs] = _sat(v.type, e / len(combos))
            ctx.funcs[idx] = f

        st = self.stage("resample", f"{direction}_{method}_{axes_name}", shape, val, emit, inputs=(j,),
                        own_ops=2 * ntaps, reads=[(j, lambda sz: float(ntaps), ntaps)])
        idx = st.index
        return st

    def _k_scan(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        v = src.val
        shape = src.shape
        axis_name = r.choice(["x", "y"])
        a_ix = self.ax(axis_name)
        e_axis = shape[a_ix]
        options = ["iir", "iir2", "running_max"]
        if not v.is_float and e_axis.at(self.limit) * v.bound <= _INT_LIMIT:
            options += ["prefix_sum", "prefix_sum"]
        variant = r.choice(options)
        alpha = r.choice([0.5, 0.75, 0.875])
        fv, _ = _float_view(v)
        if variant in ("iir", "iir2"):
            val, post = _float_out(fv.lo, fv.hi, None, fv.rms, can_clamp=False)
        elif variant == "running_max":
            val, post = v, _Post()
        else:
            e_lim = e_axis.at(self.limit)
            e_des = e_axis.at(self.plan.design_sizes)
            val = _Val("i32", min(0.0, v.lo * e_lim), max(0.0, v.hi * e_lim), 0,
                       max(1.0, e_des * max(abs(v.lo + v.hi) / 2, v.rms / 4)))
            post = _Post()

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_scan"
            n_ax = ctx.ext(e_axis)
            f = hl.Func(name)
            rd = hl.RDom([(1, max(n_ax - 1, 1))], f"{name}_r")

            def at(fn: Any, pos: Any) -> Any:
                c = list(xs)
                c[a_ix] = pos
                return fn[c]

            def src_at(pos: Any) -> Any:
                c = list(xs)
                c[a_ix] = pos
                if variant in ("iir", "iir2"):
                    return ctx.fload(j, c)
                return ctx.load(j, c) if variant == "running_max" else _i32(ctx.load(j, c))

            lhs = list(xs)
            lhs[a_ix] = rd.x
            f[xs] = src_at(xs[a_ix]) * (2.0 ** post.shift) if variant in ("iir", "iir2") else src_at(xs[a_ix])
            if variant in ("iir", "iir2"):
                f[lhs] = at(f, rd.x - 1) * alpha + src_at(rd.x) * ((1.0 - alpha) * 2.0 ** post.shift)
                if variant == "iir2":
                    rb = hl.RDom([(1, max(n_ax - 1, 1))], f"{name}_rb")
                    back = list(xs)
                    back[a_ix] = (n_ax - 1) - rb.x
                    f[back] = at(f, n_ax - rb.x) * alpha + at(f, (n_ax - 1) - rb.x) * (1.0 - alpha)
            elif variant == "running_max":
                f[lhs] = hl.max(at(f, rd.x - 1), src_at(rd.x))
            else:
                f[lhs] = at(f, rd.x - 1) + src_at(rd.x)
            ctx.funcs[idx] = f

        updates = 2 if variant == "iir2" else 1
        st = self.stage("scan", f"{variant}_{axis_name}", shape, val, emit, inputs=(j,), own_ops=3 * updates,
                        reads=[(j, lambda sz: 1.0, 1)], access_points=lambda sz: float(e_axis.at(sz)),
                        inlinable=False)
        idx = st.index
        return st

    def _k_unary(self, j: int) -> _Stage | None:
        r = self.rng
        v = self.stages[j].val
        shape = self.stages[j].shape
        fv, _ = _float_view(v)
        op = r.choice(["exp", "log", "sqrt", "sin", "cos", "atan", "square", "pow", "abs"])
        B = fv.bound
        eps = 1.0 / 64
        if op == "exp":
            lo, hi = math.exp(max(min(fv.lo, 4.0), -4.0)), math.exp(max(min(fv.hi, 4.0), -4.0))
            val, post = _float_out(lo, hi, None, math.exp(min(fv.rms, 4.0)))
        elif op == "log":
            val, post = _float_out(math.log(eps), math.log(B + eps), None, max(1.0, abs(math.log(fv.rms + eps))))
        elif op == "sqrt":
            val, post = _float_out(0.0, math.sqrt(B), None, math.sqrt(fv.rms))
        elif op in ("sin", "cos"):
            val, post = _float_out(-1.0, 1.0, None, 0.7)
        elif op == "atan":
            val, post = _float_out(-math.pi / 2, math.pi / 2, None, min(fv.rms, 1.0))
        elif op == "square":
            val, post = _float_out(0.0, B * B, None if fv.grid is None else 2 * fv.grid, fv.rms ** 2)
        elif op == "pow":
            val, post = _float_out(eps ** 1.5, (B + eps) ** 1.5, None, (fv.rms + eps) ** 1.5)
        else:
            val, post = _float_out(0.0, B, fv.grid, fv.rms)

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            e = ctx.fload(j, xs)
            if op == "exp":
                e = hl.exp(hl.clamp(e, -4.0, 4.0))
            elif op == "log":
                e = hl.log(hl.abs(e) + eps)
            elif op == "sqrt":
                e = hl.sqrt(hl.abs(e))
            elif op == "sin":
                e = hl.sin(e)
            elif op == "cos":
                e = hl.cos(e)
            elif op == "atan":
                e = hl.atan(e)
            elif op == "square":
                e = e * e
            elif op == "pow":
                e = hl.pow(hl.abs(e) + eps, 1.5)
            else:
                e = hl.abs(e)
            f = hl.Func(f"s{idx}_{op}")
            f[xs] = post.apply(e)
            ctx.funcs[idx] = f

        st = self.stage("unary", op, shape, val, emit, inputs=(j,),
                        own_ops=2 if op in ("square", "abs") else 20, reads=[(j, lambda sz: 1.0, 1)])
        idx = st.index
        return st

    def _bin_of(self, src: int, bits: int) -> tuple[int, int]:
        """(offset, shift) mapping the integer view of exact stage src into [0, 2**bits)."""
        ilo, ihi = self.stages[src].val.int_range()
        span = max(1, ihi - ilo)
        return ilo, max(0, span.bit_length() - bits)

    def _exact_source(self, j: int, prefer: float) -> int:
        if self.stages[j].val.exact and self.rng.random() < prefer:
            return j
        return self.rng.choice(self.exact_stages())

    def _k_histogram(self, j: int) -> _Stage | None:
        r = self.rng
        cur = self.stages[j]
        src = self._exact_source(j, 0.7)
        sx, sy = self.spatial()
        variant = "equalize" if src == j else "modulate"
        table = r.choice(["counts", "cdf"])
        kb = r.choice([4, 5, 6, 8])
        B = 1 << kb
        ilo, shift = self._bin_of(src, kb)
        s_shape = self.stages[src].shape
        int_out = variant == "equalize" and table == "counts" and r.random() < 0.4
        shape = cur.shape
        fv, _ = _float_view(cur.val)
        if int_out:  # a count is at most the number of pixels of one (channel, batch) plane
            ext_lim = [e.at(self.limit) for e in s_shape]
            n_lim = ext_lim[sx] * ext_lim[sy]
            val, post = _Val("i32", 0.0, float(n_lim), 0, max(1.0, self.n(s_shape) / B)), _Post()
        elif variant == "equalize":
            val, post = _float_out(0.0, 1.0, None, 0.58 if table == "cdf" else 1.0 / B)
        else:
            val, post = _float_out(min(fv.lo, 0.0) * 1.5, max(fv.hi, 0.0) * 1.5, None, fv.rms)
        ns = [d for d in range(len(self.plan.dims)) if d not in (sx, sy)]

        def spatial_points(sz: Sizes) -> float:
            e = [x.at(sz) for x in s_shape]
            return float(e[sx] * e[sy])

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            name = f"s{idx}_hist"
            b = hl.Var("b")
            ext = ctx.extents(src)
            n_pix = ext[sx] * ext[sy]

            def bin_of(coords: Sequence[Any], target: Sequence[int] | None) -> Any:
                iv = ctx.iload(src, coords, target)
                return hl.clamp((iv - ilo) >> shift if shift else iv - ilo, 0, B - 1)

            hist = hl.Func(name)
            hargs = [b] + [xs[d] for d in ns]
            hist[hargs] = hl.i32(0)
            rd = hl.RDom([(0, ext[sx]), (0, ext[sy])], f"{name}_r")
            c = list(xs)
            c[sx], c[sy] = rd.x, rd.y
            hist[[bin_of(c, None)] + [xs[d] for d in ns]] = hist[[bin_of(c, None)] + [xs[d] for d in ns]] + 1
            tab = hist
            if table == "cdf":
                cdf = hl.Func(f"s{idx}_cdf")
                cdf[hargs] = hist[hargs]
                rb = hl.RDom([(1, B - 1)], f"s{idx}_cdf_r")
                cargs = [rb.x] + [xs[d] for d in ns]
                cdf[cargs] = cdf[[rb.x - 1] + [xs[d] for d in ns]] + hist[cargs]
                tab = cdf
            out = hl.Func(f"s{idx}_{variant}")
            target = None if variant == "equalize" else ctx.extents(j)
            count = tab[[bin_of(xs, target)] + [xs[d] for d in ns]]
            if int_out:
                out[xs] = count
            elif variant == "equalize":
                out[xs] = post.apply(_f32(count) * _fc(1.0 / n_pix))
            else:
                out[xs] = post.apply(ctx.fload(j, xs) * (0.5 + _f32(count) * _fc(1.0 / n_pix)))
            ctx.funcs[idx] = out

        inputs = (j, src) if src != j else (j,)
        # Under the default schedule the table is rebuilt for every looked-up point, and a cdf rebuilds the
        # histogram for every bin it scans (measured), so one output point costs N or B*N src evaluations.
        per_table = float(B) if table == "cdf" else 1.0
        reads: list[tuple[int, SizeFn, int]] = [(src, lambda sz: per_table * spatial_points(sz) + 1.0, 2)]
        if src != j:
            reads.append((j, lambda sz: 1.0, 1))

        def root(sz: Sizes) -> float:
            return 6 * spatial_points(sz) * _points(tuple(s_shape[d] for d in ns), sz) + 8 * _points(shape, sz)

        st = self.stage("histogram", f"{variant}_{table}{B}{'_int' if int_out else ''}", shape, val, emit,
                        funcs=3 if table == "cdf" else 2, inputs=inputs, own_ops=8 + (B if table == "cdf" else 0),
                        reads=reads, root_work=root)
        idx = st.index
        return st

    def _k_gather(self, j: int) -> _Stage | None:
        r = self.rng
        cur = self.stages[j]
        src = self._exact_source(j, 0.5)
        axes = ["x", "y"] + (["c"] if cur.shape[self.ax("c")].at(self.plan.design_sizes) > 1 else [])
        axis_name = r.choice(axes)
        a_ix = self.ax(axis_name)
        mode = r.choice(["absolute", "displace"])
        form = r.choice(["inline", "index_func"])
        ilo, shift = self._bin_of(src, 8)
        shape = cur.shape

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            ext = ctx.extents(j)
            E = ext[a_ix]
            iv = ctx.iload(src, xs, ext)
            t = hl.clamp((iv - ilo) >> shift if shift else iv - ilo, 0, 255)
            if mode == "absolute":
                idx_e = (t * E) // 256
            else:
                idx_e = xs[a_ix] + ((t - 128) * max(1, E // 4)) // 128
            idx_e = hl.clamp(idx_e, 0, E - 1)
            if form == "index_func":
                ixf = hl.Func(f"s{idx}_index")
                ixf[xs] = idx_e
                idx_e = ixf[xs]
            c = list(xs)
            c[a_ix] = idx_e
            f = hl.Func(f"s{idx}_gather")
            f[xs] = ctx.load(j, c)
            ctx.funcs[idx] = f

        inputs = (j, src) if src != j else (j,)
        reads: list[tuple[int, SizeFn, int]] = [(j, lambda sz: 1.0, 1)]
        reads.append((src, lambda sz: 1.0, 1))
        st = self.stage("gather", f"{mode}_{axis_name}_{form}", shape, cur.val, emit,
                        funcs=2 if form == "index_func" else 1, inputs=inputs, own_ops=8, reads=reads)
        idx = st.index
        return st

    def _k_binary(self, j: int, other: int | None) -> _Stage | None:
        r = self.rng
        if len(self.stages) < 2:
            return None
        a = self.stages[j]
        if other is None:
            cands = [s.index for s in self.stages if s.index != j]
            same = [i for i in cands if self.stages[i].shape == a.shape]
            other = r.choice(same) if same and r.random() < 0.6 else r.choice(cands)
        k = other
        b = self.stages[k]
        shape = a.shape
        if a.val.is_float or b.val.is_float:
            fa, _ = _float_view(a.val)
            fb, _ = _float_view(b.val)
            op = r.choice(["add", "sub", "mul", "max", "min", "avg", "div"])
            g = None if (fa.grid is None or fb.grid is None) else min(fa.grid, fb.grid)
            if op == "add":
                lo, hi, rms = fa.lo + fb.lo, fa.hi + fb.hi, math.hypot(fa.rms, fb.rms)
            elif op == "sub":
                lo, hi, rms = fa.lo - fb.hi, fa.hi - fb.lo, math.hypot(fa.rms, fb.rms)
            elif op == "avg":
                lo, hi, rms = (fa.lo + fb.lo) / 2, (fa.hi + fb.hi) / 2, math.hypot(fa.rms, fb.rms) / 2
                g = None if g is None else g - 1
            elif op == "mul":
                lo, hi = _interval_mul(fa, fb)
                rms = fa.rms * fb.rms
                g = None if (fa.grid is None or fb.grid is None) else fa.grid + fb.grid
            elif op == "max":
                lo, hi, rms = max(fa.lo, fb.lo), max(fa.hi, fb.hi), max(fa.rms, fb.rms)
            elif op == "min":
                lo, hi, rms = min(fa.lo, fb.lo), min(fa.hi, fb.hi), min(fa.rms, fb.rms)
            else:
                lo, hi, rms, g = min(fa.lo, 0.0), max(fa.hi, 0.0), fa.rms / (1 + fb.rms), None
            val, post = _float_out(lo, hi, g, rms)
            is_float = True
        else:
            op = r.choice(["add", "sub", "max", "min", "absdiff", "avg", "mul"])
            A, Bv = a.val, b.val
            if op == "add":
                lo, hi = A.lo + Bv.lo, A.hi + Bv.hi
            elif op == "sub":
                lo, hi = A.lo - Bv.hi, A.hi - Bv.lo
            elif op == "max":
                lo, hi = max(A.lo, Bv.lo), max(A.hi, Bv.hi)
            elif op == "min":
                lo, hi = min(A.lo, Bv.lo), min(A.hi, Bv.hi)
            elif op == "absdiff":
                lo, hi = 0.0, max(A.hi - Bv.lo, Bv.hi - A.lo, 0.0)
            elif op == "avg":
                lo, hi = math.floor((A.lo + Bv.lo) / 2), math.floor((A.hi + Bv.hi) / 2)
            else:
                lo, hi = _interval_mul(A, Bv)
            if max(abs(lo), abs(hi)) > _INT_LIMIT:
                return None
            tlo, thi = _INT_RANGE[A.type]
            out_t = A.type if (A.type == Bv.type and lo >= tlo and hi <= thi) else "i32"
            rms = A.rms * Bv.rms if op == "mul" else max(A.rms, Bv.rms)
            val, post = _Val(out_t, float(lo), float(hi), 0, max(rms, 1e-3)), _Post()
            is_float = False

        def emit(ctx: _Ctx) -> None:
            xs = ctx.vars
            target = ctx.extents(j)
            if is_float:
                x, y = ctx.fload(j, xs), ctx.fload(k, xs, target)
                e = {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
                     "max": lambda: hl.max(x, y), "min": lambda: hl.min(x, y), "avg": lambda: (x + y) * 0.5,
                     "div": lambda: x / (1.0 + hl.abs(y))}[op]()
                e = post.apply(e)
            else:
                x, y = _i32(ctx.load(j, xs)), _i32(ctx.fit(k, target, xs))
                e = {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
                     "max": lambda: hl.max(x, y), "min": lambda: hl.min(x, y), "avg": lambda: (x + y) >> 1,
                     "absdiff": lambda: _i32(hl.absd(x, y))}[op]()
                e = _sat(val.type, e)
            f = hl.Func(f"s{idx}_{op}")
            f[xs] = e
            ctx.funcs[idx] = f

        st = self.stage("binary", op, shape, val, emit, inputs=(j, k), own_ops=3,
                        reads=[(j, lambda sz: 1.0, 1), (k, lambda sz: 1.0, 1)])
        idx = st.index
        return st

    def _k_cast(self, j: int) -> _Stage | None:
        r = self.rng
        src = self.stages[j]
        v = src.val
        shape = src.shape
        if not v.exact:
            return None
        if not v.is_float and r.random() < 0.6:
            fv, fshift = _float_view(v)
            variant = f"{v.type}_to_f32"

            def emit_f(ctx: _Ctx) -> None:
                f = hl.Func(f"s{idx}_cast")
                f[ctx.vars] = ctx.fload(j, ctx.vars)
                ctx.funcs[idx] = f

            st = self.stage("cast", variant, shape, fv, emit_f, inputs=(j,), own_ops=2,
                            reads=[(j, lambda sz: 1.0, 1)])
            idx = st.index
            return st
        ilo, ihi = v.int_range()
        types = ["u8", "u16", "i16", "i32"] if ilo >= 0 else ["i16", "i32"]
        types = [t for t in types if t != v.type] or ["i32"]
        t = r.choice(types)
        tlo, thi = _INT_RANGE[t]
        top = max(abs(ilo), abs(ihi), 1)
        shift = max(0, top.bit_length() - thi.bit_length())
        lo, hi = math.floor(ilo / 2 ** shift), math.floor(ihi / 2 ** shift)
        lo, hi = max(lo, tlo), min(hi, thi)
        g = 0 if not v.is_float else (v.grid or 0)
        rms = max(1.0, v.rms * 2.0 ** (-g - shift))
        val = _Val(t, float(lo), float(hi), 0, rms)

        def emit(ctx: _Ctx) -> None:
            iv = ctx.iload(j, ctx.vars)
            f = hl.Func(f"s{idx}_cast")
            f[ctx.vars] = _sat(t, iv >> shift if shift else iv)
            ctx.funcs[idx] = f

        st = self.stage("cast", f"{v.type}_to_{t}", shape, val, emit, inputs=(j,), own_ops=3,
                        reads=[(j, lambda sz: 1.0, 1)])
        idx = st.index
        return st


@lru_cache(maxsize=256)
def plan(seed: int, max_stages: int = 20, min_stages: int = 4) -> RandomPlan:
    """The random pipeline's algorithm for ``seed`` (a pure function of its arguments)."""
    if not 1 <= min_stages <= max_stages:
        raise RandomPipelineError(f"need 1 <= min_stages ({min_stages}) <= max_stages ({max_stages})")
    if max_stages < 2:
        raise RandomPipelineError("max_stages must be at least 2")
    return _Gen(seed, min_stages, max_stages).run()


def spec(seed: int, *, max_stages: int = 20, min_stages: int = 4, size_class: str = "default") -> PipelineSpec:
    """The PipelineSpec ``random_<seed>``: ``min_stages``..``max_stages`` Funcs (input wrappers excluded).

    The algorithm depends only on (seed, max_stages, min_stages). ``size_class="test"`` makes the small
    test sizes the spec's defaults (same algorithm). Sizes are ``width``, ``height``, ``channels`` (input
    channels), ``features`` (hidden channel count) and, for 4-D tensors, ``batch``; ``build`` accepts up to
    4x the design sizes. The reference is the compute_root schedule realized by Halide; ``flops`` is the
    plan's estimate of the compute_root work.
    """
    if size_class not in SIZE_CLASSES:
        raise RandomPipelineError(f"unknown size_class '{size_class}'; choose one of {SIZE_CLASSES}")
    p = plan(int(seed), max_stages, min_stages)
    defaults = dict(p.design_sizes if size_class == "default" else p.test_sizes)

    def build(**sizes: int) -> BuiltPipeline:
        return p.build(dict(sizes))

    def inputs(rng: np.random.Generator, **sizes: int) -> dict[str, Any]:
        return p.make_inputs(rng, dict(sizes))

    def reference(inp: dict[str, Any], **sizes: int) -> list[np.ndarray]:
        from autoscheduler.schedules import apply_source, root_source
        from .spec import realize
        built = p.build(dict(sizes))
        pipe = built.pipeline()
        apply_source(root_source(pipe), pipe)
        return realize(built, inp, pipeline=pipe)

    def flops(**sizes: int) -> float:
        return p.root_work(dict(sizes))

    # Halide's default schedule at the design sizes: worth trying only when its estimated work is a
    # few tenths of a second of scalar code and its inlined expressions stay small enough to JIT.
    default_ok = p.inline_cost(p.design_sizes) <= 5e8 and p.inline_code_size() <= 5000
    return PipelineSpec(
        name=f"random_{seed}", description=p.describe(), build_fn=build, inputs_fn=inputs,
        reference_fn=reference, default_sizes=defaults, test_sizes=dict(p.test_sizes),
        rtol=2e-3, atol=2e-3, tags=("random",), flops_fn=flops, default_schedule_ok=default_ok)

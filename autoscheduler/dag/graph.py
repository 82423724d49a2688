"""The FunctionDAG: Funcs, their stages and loops, producer->consumer edges, footprints, features.

Built once per pipeline from the decoded IR (``autoscheduler.ir``), following Adams2019's
``FunctionDAG.cpp``: one Node per Func (ImageParam wrappers included, flagged ``is_input``), one
Stage per definition (pure, then each update) with its loops innermost first, one Edge per
(producer Func, consumer stage) pair with every call site, Halide's call count, symbolic footprint
bounds compiled to Python, and the post-CSE load Jacobians. ``Node.index`` is the realization index
(``pipeline.get_func(i)``); Adams2019 orders nodes the other way (``adams_id``).

Bounds at the estimates (every Func computed at root, outputs over their estimates) are filled in
for every node and stage: ``region_required``, ``region_computed`` and ``Stage.loop_bounds``.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from ..errors import EstimateError, UnsupportedPipelineError
from ..ir import nodes as ir
from ..ir.decode import decode_bytes, decode_pipeline
from ..ir.schema import CallType, TypeCode
from .bounds import (BoundsEvaluator, End, Interval, Lin, Num, ParamEstimates, compile_box, e_max, e_min,
                     type_bounds)
from .features import (MATH_CLASSES, Differentiator, Jacobian, LoadJacobian, PipelineFeatures, StageFeaturizer,
                       class_counts, math_call_deps)
from .simplify import Simplifier


@dataclass(frozen=True)
class Span:
    """A concrete closed interval ``[min, max]`` of integer coordinates."""

    min: int
    max: int

    @property
    def extent(self) -> int:
        return self.max - self.min + 1

    def union(self, o: "Span") -> "Span":
        return Span(min(self.min, o.min), max(self.max, o.max))

    def __str__(self) -> str:
        return f"[{self.min}, {self.max}]"


Box = tuple[Span, ...]


def box_points(box: Box) -> int:
    n = 1
    for s in box:
        n *= max(s.extent, 0)
    return n


@dataclass(frozen=True)
class Loop:
    """One loop of a stage's default loop nest (innermost first, as Halide's ``dims()``).

    ``pure`` is Halide's ``Dim::is_pure`` (a pure Var, or an RVar that is safe to reorder);
    ``pure_dim`` the index of the Func argument the loop iterates (-1 for an RVar);
    ``rvar_span`` the concrete range of an RVar with Param estimates applied (None for pure loops,
    whose range is the Func's region computed in ``pure_dim``).
    """

    var: str
    pure: bool
    rvar: bool
    pure_dim: int
    rvar_span: Optional[Span] = None


@dataclass(frozen=True)
class BoundInfo:
    """One endpoint of an edge footprint in one producer dimension, in terms of the consumer's loop
    bounds. ``affine`` when it is ``coeff * (min or max of consumer loop consumer_dim) + constant``
    (``coeff`` 0: a constant); ``expr`` the symbolic form (None: unbounded, replaced by the
    producer's estimate); flags for data-dependent and estimate-dependent bounds."""

    expr: End
    affine: bool
    coeff: Num
    constant: Num
    consumer_dim: int
    uses_max: bool
    data_dependent: bool
    depends_on_estimate: bool


@dataclass(frozen=True)
class CallSite:
    """One call of the producer in the consumer stage (as written, before simplification):
    which Tuple element, the index Exprs, and the load Jacobian ``[producer dim][consumer loop]``
    (Fraction, or None where the index is not affine in that loop)."""

    value_index: int
    args: tuple[ir.Expr, ...]
    jacobian: Jacobian

    @property
    def is_affine(self) -> bool:
        return all(c is not None for row in self.jacobian for c in row)


FootprintFn = Callable[[Sequence[int], Sequence[int]], list[tuple[int, int]]]


@dataclass(eq=False)
class Edge:
    """Producer Func -> consumer stage.

    ``calls``: Halide's count of calls to the producer in the stage (per point of its loop nest);
    ``call_sites``: each call with its Jacobian; ``load_jacobians``: the distinct Jacobians of the
    loads left after Halide's simplify + CSE, with multiplicities (what Adams2019 stores);
    ``bounds[d]``: (min, max) BoundInfo of producer dimension ``d``; ``footprint(lo, hi)`` the box
    of the producer read for consumer loops spanning ``[lo[j], hi[j]]``.
    """

    producer: "Node"
    consumer: "Stage"
    calls: int
    call_sites: tuple[CallSite, ...]
    load_jacobians: tuple[LoadJacobian, ...]
    bounds: tuple[tuple[BoundInfo, BoundInfo], ...]
    _fn: FootprintFn = field(repr=False)
    footprint_at_estimates: Box = ()

    @property
    def all_bounds_affine(self) -> bool:
        return all(b.affine for pair in self.bounds for b in pair)

    @property
    def all_bounds_linear(self) -> bool:
        """Every footprint endpoint is affine in the consumer's loop bounds (several loops allowed)."""
        return all(isinstance(b.expr, Lin) for pair in self.bounds for b in pair)

    @property
    def data_dependent(self) -> bool:
        return any(b.data_dependent for pair in self.bounds for b in pair)

    @functools.cached_property
    def reuse(self) -> float:
        """Loads of the producer per element of the region the consumer stage reads, at the
        estimates: how many passes over that region the stage makes (0 when the region is unknown).
        Computed once (the search's storage-layout menu asks for it at every slot)."""
        region = box_points(self.footprint_at_estimates) if self.footprint_at_estimates else 0
        return self.consumer.points * self.calls / region if region > 0 else 0.0

    def footprint(self, loop_box: Sequence[Span]) -> Box:
        """Region of the producer required to compute the consumer stage over ``loop_box``."""
        lo = [s.min for s in loop_box]
        hi = [s.max for s in loop_box]
        return tuple(Span(int(a), int(b)) for a, b in self._fn(lo, hi))

    def footprint_raw(self, lo: Sequence[int], hi: Sequence[int]) -> list[tuple[int, int]]:
        """Fast path of ``footprint``: loop mins / maxes in, ``[(min, max), ...]`` out."""
        return self._fn(lo, hi)


@dataclass(eq=False)
class Stage:
    """One definition of a Func: ``index`` 0 is the pure definition, ``k`` is ``update(k - 1)``."""

    node: "Node"
    index: int
    id: int
    name: str
    definition: ir.Definition
    loops: tuple[Loop, ...]
    features: PipelineFeatures = field(default_factory=PipelineFeatures)
    incoming_edges: list[Edge] = field(default_factory=list)
    narrowest_bits: int = 0
    loop_bounds: Box = ()
    # costly math calls per point by class (``features.math_calls``): not in Halide's features
    math_calls: np.ndarray = field(default_factory=lambda: np.zeros(MATH_CLASSES, dtype=np.float32))
    # each of those calls: (class, variables its arguments read); each Func call: (callee, variables
    # each argument reads); for loop-invariant hoisting (``features.math_inputs``)
    math_deps: tuple[tuple[int, frozenset[str]], ...] = ()
    call_arg_deps: tuple[tuple[str, tuple[frozenset[str], ...]], ...] = ()

    @property
    def is_update(self) -> bool:
        return self.index > 0

    @property
    def pure_loops(self) -> tuple[Loop, ...]:
        return tuple(l for l in self.loops if l.pure and not l.rvar)

    @property
    def rvar_loops(self) -> tuple[Loop, ...]:
        return tuple(l for l in self.loops if l.rvar)

    def loop_for_region(self, computed: Sequence[Span]) -> Box:
        """Loop bounds of this stage when its Func computes region ``computed``."""
        return tuple(computed[l.pure_dim] if l.rvar_span is None else l.rvar_span for l in self.loops)

    def native_vector_size(self, vector_bits: int) -> int:
        """Lanes of the narrowest type used here in a ``vector_bits``-wide SIMD register
        (Halide's ``Target::natural_vector_size``, e.g. 256 for AVX2)."""
        bits = self.narrowest_bits or 32
        return max(1, vector_bits // max(bits, 8))

    @property
    def points(self) -> int:
        """Iterations of the innermost statement over ``loop_bounds`` (the estimates)."""
        return box_points(self.loop_bounds)


RegionFn = Callable[[Sequence[int], Sequence[int]], list[tuple[int, int]]]


@dataclass(eq=False)
class Node:
    """A Func of the pipeline (an ImageParam's wrapper Func is a Node with ``is_input``)."""

    index: int
    adams_id: int
    name: str
    func: ir.Func
    stages: list[Stage] = field(default_factory=list)
    outgoing_edges: list[Edge] = field(default_factory=list)
    bytes_per_point: int = 0
    is_input: bool = False
    is_output: bool = False
    is_wrapper: bool = False
    is_pointwise: bool = False
    is_boundary_condition: bool = False
    input_param: Optional[str] = None
    estimated_region: Optional[Box] = None
    region_required: Box = ()
    region_computed: Box = ()
    region_computed_data_dependent: bool = False
    # per stage: compiled footprints of the stage's calls to its own Func (what it reads of earlier
    # stages) and, for updates, of the coordinates it writes; both over the stage's loop bounds
    _self_reads: list[list[RegionFn]] = field(default_factory=list, repr=False)
    _writes: list[Optional[RegionFn]] = field(default_factory=list, repr=False)

    @property
    def args(self) -> tuple[str, ...]:
        return self.func.args

    @property
    def dimensions(self) -> int:
        return len(self.func.args)

    @property
    def output_types(self) -> tuple[ir.Type, ...]:
        return self.func.output_types

    @property
    def incoming_edges(self) -> list[Edge]:
        return [e for s in self.stages for e in s.incoming_edges]

    @property
    def producers(self) -> list["Node"]:
        seen: dict[int, Node] = {}
        for e in self.incoming_edges:
            seen.setdefault(e.producer.index, e.producer)
        return list(seen.values())

    @property
    def consumers(self) -> list["Node"]:
        seen: dict[int, Node] = {}
        for e in self.outgoing_edges:
            seen.setdefault(e.consumer.node.index, e.consumer.node)
        return list(seen.values())

    def stage_regions(self, required: Sequence[Span]) -> tuple[Box, list[Box]]:
        """(region computed, loop bounds of each stage) when ``required`` is required of this Func.

        As Halide's bounds inference: each stage covers what consumers require plus what later
        stages of the same Func read of it (scans, histograms read earlier stages); the region
        computed (the allocation at root) also covers every coordinate an update writes.
        """
        if len(self.stages) == 1:
            return tuple(required), [self.stages[0].loop_for_region(required)]
        n = len(self.stages)
        loops: list[Box] = [()] * n
        regions: list[list[Span]] = [list(required) for _ in range(n)]
        lo_req = [s.min for s in required]
        hi_req = [s.max for s in required]
        for s in range(n - 1, -1, -1):
            st = self.stages[s]
            loops[s] = st.loop_for_region(regions[s])
            lo = [b.min for b in loops[s]]
            hi = [b.max for b in loops[s]]
            for fn in self._self_reads[s]:
                fp = fn(lo, hi)
                for e in range(s):
                    regions[e] = [Span(min(r.min, int(a)), max(r.max, int(b))) for r, (a, b) in zip(regions[e], fp)]
        alloc = [Span(a, b) for a, b in zip(lo_req, hi_req)]
        for s in range(n):
            alloc = [a.union(r) for a, r in zip(alloc, regions[s])]
            fn_w = self._writes[s]
            if fn_w is not None:
                lo = [b.min for b in loops[s]]
                hi = [b.max for b in loops[s]]
                alloc = [Span(min(r.min, int(a)), max(r.max, int(b))) for r, (a, b) in zip(alloc, fn_w(lo, hi))]
        return tuple(alloc), loops

    def required_to_computed(self, required: Sequence[Span]) -> Box:
        """Region computed (allocated at root) when ``required`` is required."""
        return self.stage_regions(required)[0]

    @property
    def bytes_at_root(self) -> int:
        return self.bytes_per_point * box_points(self.region_computed)


@contextmanager
def _recursion_limit(n: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    if old < n:
        sys.setrecursionlimit(n)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _const_int(e: Optional[ir.Expr], ev: BoundsEvaluator) -> Optional[int]:
    if e is None:
        return None
    iv = ev.bounds(e, {})
    v = iv.const_value()
    return int(v) if v is not None else None


def _is_wrapper(f: ir.Func) -> bool:
    """Halide's ``Function::is_wrapper``: one value, a call with exactly the pure args."""
    if f.init is None or len(f.init.values) != 1 or f.updates:
        return False
    c = f.init.values[0]
    if not isinstance(c, ir.Call) or len(c.args) != len(f.args):
        return False
    return all(isinstance(a, ir.Variable) and a.name == v for a, v in zip(c.args, f.args))


class _CallCollector:
    """All Func calls in a stage's Exprs, each with the let bindings in scope at the call."""

    def __init__(self) -> None:
        self.sites: list[tuple[ir.Call, dict[str, ir.Expr]]] = []
        self.counts: dict[str, int] = {}
        self.narrowest = 0

    def _type(self, t: ir.Type) -> None:
        if t.bits > 1 and (not self.narrowest or t.bits < self.narrowest):
            self.narrowest = t.bits

    def visit(self, e: ir.Expr, lets: dict[str, ir.Expr]) -> None:
        stack: list[tuple[ir.Expr, dict[str, ir.Expr]]] = [(e, lets)]
        while stack:
            n, lt = stack.pop()
            if isinstance(n, ir.Let):
                stack.append((n.value, lt))
                inner = dict(lt)
                inner[n.name] = n.value
                stack.append((n.body, inner))
                continue
            if isinstance(n, (ir.IntImm, ir.UIntImm, ir.FloatImm, ir.Variable, ir.Cast)):
                self._type(n.type)
            if isinstance(n, ir.Call):
                self._type(n.type)
                self.counts[n.name] = self.counts.get(n.name, 0) + 1
                if n.call_type == CallType.Halide:
                    self.sites.append((n, lt))
            for c in n.children():
                stack.append((c, lt))


class FunctionDAG:
    """The algorithm of a pipeline as a DAG of Nodes (Funcs), Stages and Edges.

    ``nodes`` are in realization order (``nodes[i]`` is ``pipeline.get_func(i)``), producers before
    consumers; ``stages`` likewise (``Stage.id`` is the position in this tuple); ``edges`` in the
    order their consumer stages appear. Build with ``FunctionDAG.from_pipeline(hl.Pipeline)`` (which
    also reads ImageParam / Param estimates from the live objects) or ``FunctionDAG.from_bytes``.
    """

    def __init__(self, pipeline: ir.Pipeline) -> None:
        self.ir = pipeline
        self.nodes: tuple[Node, ...] = ()
        self.stages: tuple[Stage, ...] = ()
        self.edges: tuple[Edge, ...] = ()
        self._by_name: dict[str, Node] = {}
        self._constant_extents: Optional[dict[int, tuple[bool, ...]]] = None
        with _recursion_limit(20000):
            self._build()

    # -- constructors
    @classmethod
    def from_pipeline(cls, pipeline: Any) -> "FunctionDAG":
        """From an ``hl.Pipeline`` (or an already decoded ``ir.Pipeline``)."""
        if isinstance(pipeline, ir.Pipeline):
            return cls(pipeline)
        return cls(decode_pipeline(pipeline))

    @classmethod
    def from_bytes(cls, data: bytes, order: Optional[Sequence[str]] = None) -> "FunctionDAG":
        """From ``hl.serialize_pipeline`` bytes. ImageParam estimates come from their wrapper Funcs;
        scalar Param estimates are not in the bytes (a Param that bounds depend on then raises
        EstimateError)."""
        return cls(decode_bytes(data, order=order))

    # -- lookups
    def node(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def outputs(self) -> list[Node]:
        return [n for n in self.nodes if n.is_output]

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.is_input]

    def adams_order(self) -> list[Node]:
        """Nodes outputs first (Adams2019's node order, the order decisions are made in)."""
        return list(reversed(self.nodes))

    def featurization_order(self) -> list[Stage]:
        """Stages in the order of Adams2019's featurization records: nodes outputs first, inputs
        skipped, each node's stages last update first."""
        return [s for n in reversed(self.nodes) if not n.is_input for s in reversed(n.stages)]

    def math_calls(self) -> np.ndarray:
        """[S, 2] float32: each stage's costly math calls per point (``features.math_calls``), rows in
        ``featurization_order``."""
        rows = [st.math_calls for st in self.featurization_order()]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, MATH_CLASSES), np.float32)

    def ancestors(self, node: Node) -> set[int]:
        """Realization indices of every Func ``node`` depends on, transitively."""
        out: set[int] = set()
        stack = [node]
        while stack:
            for p in stack.pop().producers:
                if p.index not in out:
                    out.add(p.index)
                    stack.append(p)
        return out

    def constant_extents(self) -> dict[int, tuple[bool, ...]]:
        """Per Func (by realization index), per dimension: whether its region at root has the same
        extent whatever the output sizes are, so that Halide's allocation of it, and the strides
        that come from it, are compile-time constants.

        Why: LLVM keeps a reduction's register tile in registers across the RVar loop only when it
        can tell the tile's rows apart; a row's address is ``row * stride``, and a stride that is
        a run-time value may make two rows alias. A root GEMM whose extents come from RDoms
        (``a1`` of the autoencoders: ``allocate a1[float32 * 512 * 256]``) keeps its accumulators in
        registers; one sized by an output (the adjoint of ``h3``, sized by the updated weights'
        buffer) loads and stores them every step (its assembly), at a quarter of the speed.
        Found by re-deriving the root regions with every output's extents grown by two amounts:
        a dimension whose extent moves is run-time; one read through a data-dependent or
        Param-dependent footprint is run-time too (Halide bounds it by the run-time values)."""
        if self._constant_extents is None:
            base = self._root_regions(0)
            grown = [self._root_regions(g) for g in (5, 11)]
            out: dict[int, tuple[bool, ...]] = {}
            for node in self.nodes:
                flags = [all(r[node.index][d].extent == base[node.index][d].extent for r in grown)
                         for d in range(len(base[node.index]))]
                for e in node.outgoing_edges:
                    for d, pair in enumerate(e.bounds):
                        if d < len(flags) and any(b.data_dependent or b.depends_on_estimate for b in pair):
                            flags[d] = False
                out[node.index] = tuple(flags)
            self._constant_extents = out
        return self._constant_extents

    def _root_regions(self, grow: int) -> dict[int, Box]:
        """Every Func's region computed at root when each output's estimated extents grow by
        ``grow``, without touching the nodes."""
        return {node.index: computed for node, _, computed, _ in self._propagate_regions(grow)}

    def _propagate_regions(self, grow: int = 0) -> Iterator[tuple[Node, Box, Box, list[Box]]]:
        """Root-level bounds, consumers first: outputs over their estimates (each extent grown by
        ``grow``), every other Func over what its consumers (each at its own root-level loop
        bounds) read. Yields (node, region required, region computed, loop bounds per stage)."""
        loops: dict[int, list[Box]] = {}
        for node in reversed(self.nodes):
            req: Optional[list[Span]] = None
            if node.is_output and node.estimated_region is not None:
                req = [Span(sp.min, sp.max + grow) for sp in node.estimated_region]
            for e in node.outgoing_edges:
                fp = e.footprint(loops[e.consumer.node.index][e.consumer.index])
                req = list(fp) if req is None else [a.union(b) for a, b in zip(req, fp)]
            if req is None:
                req = list(node.estimated_region or ())
            computed, loops[node.index] = node.stage_regions(req)
            yield node, tuple(req), computed, loops[node.index]

    # -- construction
    def _build(self) -> None:
        p = self.ir
        outputs = set(p.output_names)
        for f in p.funcs:
            if f.is_extern:
                raise UnsupportedPipelineError(
                    f"Func '{f.name}' is an extern stage ({f.extern_function_name}); the FunctionDAG cannot "
                    "model extern stages: define it with Halide Funcs instead")
            for s, d in enumerate(f.definitions):
                if d.splits:
                    raise UnsupportedPipelineError(
                        f"Func '{f.name}' stage {s} already has scheduling directives (split/tile/fuse); "
                        "build a fresh, unscheduled pipeline to autoschedule it")
                if d.specializations:
                    raise UnsupportedPipelineError(
                        f"Func '{f.name}' stage {s} has specializations, which the FunctionDAG does not model")
            if f.init is None:
                raise UnsupportedPipelineError(f"Func '{f.name}' has no definition")
        self.estimates = self._param_estimates()
        self.evaluator = BoundsEvaluator(self.estimates, self._func_value_bounds)
        self._value_bounds: dict[tuple[str, int], Interval] = {}
        self._value_bounds_busy: set[str] = set()
        simplifier = Simplifier()

        n_funcs = len(p.funcs)
        nodes: list[Node] = []
        for i, f in enumerate(p.funcs):
            node = Node(index=i, adams_id=n_funcs - 1 - i, name=f.name, func=f)
            node.is_output = f.name in outputs
            node.bytes_per_point = sum(v.type.bytes for v in f.init.values) if f.init else 0
            nodes.append(node)
            self._by_name[f.name] = node
        self.nodes = tuple(nodes)

        stages: list[Stage] = []
        edges: list[Edge] = []
        for node in nodes:
            f = node.func
            node.is_wrapper = _is_wrapper(f)
            node.estimated_region = self._estimated_region(node)
            for s, d in enumerate(f.definitions):
                st = Stage(node=node, index=s, id=len(stages), name=f.name if s == 0 else f"{f.name}.update({s - 1})",
                           definition=d, loops=self._loops(f, d))
                node.stages.append(st)
                stages.append(st)
            self._region_computed(node)
        self.stages = tuple(stages)

        for node in nodes:
            any_incoming = False
            node.is_pointwise = not node.func.updates
            for st in node.stages:
                new_edges, pointwise = self._edges_of(st, simplifier)
                if new_edges:
                    any_incoming = True
                    node.is_pointwise &= pointwise
                for e in new_edges:
                    st.incoming_edges.append(e)
                    e.producer.outgoing_edges.append(e)
                edges.extend(new_edges)
            node.is_boundary_condition = node.is_pointwise and node.name.startswith("repeat_edge")
            node.is_input = not node.func.updates and node.is_wrapper and not any_incoming
            if node.is_input:
                call = node.func.init.values[0] if node.func.init else None
                if isinstance(call, ir.Call) and call.param_name:
                    node.input_param = call.param_name
        self.edges = tuple(edges)
        self._bounds_at_estimates()

    def _param_estimates(self) -> ParamEstimates:
        est = ParamEstimates(self.ir)
        # From bare bytes, ImageParam estimates are only on their wrapper Funcs ("<name>_im").
        wrappers: dict[str, ir.Func] = {}
        for f in self.ir.funcs:
            call = f.init.values[0] if f.init is not None and len(f.init.values) == 1 else None
            if _is_wrapper(f) and isinstance(call, ir.Call) and call.call_type == CallType.Image and call.param_name:
                wrappers.setdefault(call.param_name, f)
        for prm in self.ir.parameters:
            if not (prm.external and prm.is_buffer):
                continue
            wrapper = wrappers.get(prm.name)
            for d in range(prm.dimensions):
                for field_name, attr in (("min", "min"), ("extent", "extent")):
                    key = f"{prm.name}.{field_name}.{d}"
                    if key in est.values or wrapper is None or d >= len(wrapper.args):
                        continue
                    b = wrapper.estimate(wrapper.args[d])
                    v = _const_int(getattr(b, attr), BoundsEvaluator(est, lambda n, i: Interval.everything())) \
                        if b is not None else None
                    if v is not None:
                        est.values[key] = v
                        est.missing.pop(key, None)
            for d in range(prm.dimensions):
                for field_name in ("min", "extent"):
                    key = f"{prm.name}.{field_name}.{d}"
                    if key not in est.values:
                        raise EstimateError(
                            f"ImageParam '{prm.name}' has no estimate for dimension {d}; call "
                            f"{prm.name}.dim({d}).set_estimate(min, extent) before autoscheduling")
        return est

    def _estimated_region(self, node: Node) -> Optional[Box]:
        """Outputs: estimates (``Func.bound`` wins); other Funcs with estimates on every dim: them."""
        f = node.func
        ev = BoundsEvaluator(self.estimates, lambda n, i: Interval.everything())
        spans: dict[str, Span] = {}
        for b in f.estimates:
            mn, ex = _const_int(b.min, ev), _const_int(b.extent, ev)
            if mn is not None and ex is not None:
                spans[b.var] = Span(mn, mn + ex - 1)
        for b in f.bounds:
            mn, ex = _const_int(b.min, ev), _const_int(b.extent, ev)
            if mn is not None and ex is not None:
                spans[b.var] = Span(mn, mn + ex - 1)
        missing = [d for d, a in enumerate(f.args) if a not in spans]
        if missing:
            if node.is_output:
                d = missing[0]
                raise EstimateError(
                    f"output Func '{f.name}' has no estimate for dimension {d} ('{f.args[d]}'); call "
                    f"{f.name}.set_estimate({f.args[d]}, min, extent) (or set_estimates) before autoscheduling")
            return None
        return tuple(spans[a] for a in f.args)

    def _loops(self, f: ir.Func, d: ir.Definition) -> tuple[Loop, ...]:
        rvars = {rv.var: rv for rv in d.rvars}
        loops = []
        for dim in d.dims:
            if dim.var in rvars:
                rv = rvars[dim.var]
                mn = _const_int(rv.min, self.evaluator)
                ex = _const_int(rv.extent, self.evaluator)
                if mn is None or ex is None:
                    raise UnsupportedPipelineError(
                        f"RVar '{rv.var}' of Func '{f.name}' has bounds that are not constant after applying "
                        "Param estimates")
                loops.append(Loop(dim.var, dim.is_pure, True, -1, Span(mn, mn + ex - 1)))
            elif dim.var in f.args:
                loops.append(Loop(dim.var, dim.is_pure, False, f.args.index(dim.var)))
            # anything else is a synthetic loop such as __outermost
        return tuple(loops)

    def _scope_for_loops(self, loops: Sequence[Loop]) -> dict[str, Interval]:
        return {l.var: Interval(Lin.sym(0, j), Lin.sym(1, j)) for j, l in enumerate(loops)}

    def _region_computed(self, node: Node) -> None:
        """Compile each stage's self-reads and update writes over the stage's loop bounds."""
        f = node.func
        node._self_reads = []
        node._writes = []
        for st in node.stages:
            scope = self._scope_for_loops(st.loops)
            collector = _CallCollector()
            d = st.definition
            for e in list(d.args) + list(d.values) + ([d.predicate] if d.predicate is not None else []):
                collector.visit(e, {})
            reads: list[RegionFn] = []
            for call, lets in collector.sites:
                if call.name != node.name:
                    continue
                let_scope = dict(scope)
                for lname, lval in lets.items():
                    let_scope[lname] = self.evaluator.bounds(lval, let_scope)
                ends: list[tuple[End, End]] = []
                for j, arg in enumerate(call.args):
                    iv = self.evaluator.bounds(arg, let_scope)
                    lo: End = iv.lo
                    hi: End = iv.hi
                    if lo is None or hi is None:  # unbounded self-read: the whole required region
                        node.region_computed_data_dependent = True
                        lo = lo if lo is not None else Lin(-(1 << 62))
                        hi = hi if hi is not None else Lin(1 << 62)
                    ends.append((lo, hi))
                reads.append(_clamped_box(ends))
            node._self_reads.append(reads)
            write = None
            if st.index > 0 and any(not (isinstance(a, ir.Variable) and a.name == f.args[j])
                                    for j, a in enumerate(d.args)):
                ends_w: list[tuple[End, End]] = []
                for j, arg in enumerate(d.args):
                    iv = self.evaluator.bounds(arg, scope)
                    if iv.lo is None or iv.hi is None:
                        node.region_computed_data_dependent = True
                        iv = Interval(Lin(1 << 62), Lin(-(1 << 62)))  # contributes nothing
                    ends_w.append((iv.lo, iv.hi))
                write = compile_box(ends_w)
            node._writes.append(write)

    def _func_value_bounds(self, name: str, value_index: int) -> Interval:
        """Bounds of a Func's values over its whole domain (Halide's compute_function_value_bounds)."""
        key = (name, value_index)
        hit = self._value_bounds.get(key)
        if hit is not None:
            return hit
        node = self._by_name.get(name)
        result = Interval.everything()
        if node is not None:
            f = node.func
            t = f.output_types[value_index] if value_index < len(f.output_types) else ir.INT32
            result = type_bounds(t)
            if not f.updates and f.init is not None and name not in self._value_bounds_busy \
                    and value_index < len(f.init.values):
                self._value_bounds_busy.add(name)
                saved = self.evaluator.flags
                try:
                    iv = self.evaluator.bounds(f.init.values[value_index], {})
                finally:
                    self.evaluator.flags = saved
                    self._value_bounds_busy.discard(name)
                tb = type_bounds(t)
                lo = iv.lo if iv.lo is not None else tb.lo
                hi = iv.hi if iv.hi is not None else tb.hi
                result = Interval(lo, hi)
        self._value_bounds[key] = result
        return result

    def _edges_of(self, st: Stage, simplifier: Simplifier) -> tuple[list[Edge], bool]:
        node = st.node
        d = st.definition
        collector = _CallCollector()
        exprs: list[ir.Expr] = list(d.args) + list(d.values)
        if d.predicate is not None:
            exprs.append(d.predicate)
        for e in exprs:
            collector.visit(e, {})
        st.narrowest_bits = collector.narrowest
        featurizer = StageFeaturizer(node.name, [l.var for l in st.loops], simplifier)
        st.features = featurizer.run(d)
        st.math_deps, st.call_arg_deps = math_call_deps(exprs)   # one walk: the calls and what they read
        st.math_calls = class_counts(st.math_deps)

        # Halide's is_pointwise test: every Func/Image call indexes with exactly the pure args.
        pointwise = True
        for e in exprs:
            for n in ir.walk(e):
                if isinstance(n, ir.Call) and n.call_type in (CallType.Halide, CallType.Image):
                    pointwise &= len(n.args) == len(node.func.args) and all(
                        isinstance(a, ir.Variable) and a.name == v for a, v in zip(n.args, node.func.args))

        scope = self._scope_for_loops(st.loops)
        loop_vars = [l.var for l in st.loops]
        diff = Differentiator(loop_vars)
        by_producer: dict[str, list[tuple[ir.Call, dict[str, ir.Expr]]]] = {}
        for call, lets in collector.sites:
            if call.name == node.name or call.name not in self._by_name:
                continue  # self-loads are not edges
            by_producer.setdefault(call.name, []).append((call, lets))

        edges = []
        for pname in sorted(by_producer, key=lambda n: self._by_name[n].index):
            producer = self._by_name[pname]
            sites = by_producer[pname]
            call_sites = []
            per_dim: list[list[tuple[Interval, bool, bool]]] = [[] for _ in range(producer.dimensions)]
            for call, lets in sites:
                let_scope = dict(scope)
                for lname, lval in lets.items():
                    let_scope[lname] = self.evaluator.bounds(lval, let_scope)
                for k, arg in enumerate(call.args[:producer.dimensions]):
                    iv = self.evaluator.bounds(arg, let_scope)
                    per_dim[k].append((iv, self.evaluator.flags.data_dependent,
                                       self.evaluator.flags.depends_on_estimate))
                simple_args = tuple(simplifier(a) for a in call.args)
                call_sites.append(CallSite(call.value_index, call.args, diff.jacobian(simple_args, loop_vars, lets)))
            bounds = []
            ends = []
            for k in range(producer.dimensions):
                lo: End = Lin(0)
                hi: End = Lin(0)
                dd_lo = dd_hi = est_dep = False
                for n_site, (iv, dd, ed) in enumerate(per_dim[k]):
                    if n_site == 0:
                        lo, hi = iv.lo, iv.hi
                    else:
                        lo, hi = e_min(lo, iv.lo, True), e_max(hi, iv.hi, False)
                    dd_lo |= dd
                    dd_hi |= dd
                    est_dep |= ed
                if lo is None or hi is None:
                    if producer.estimated_region is None:
                        raise UnsupportedPipelineError(
                            f"the access of '{pname}' by '{st.name}' is unbounded in dimension {k} "
                            f"(data-dependent index); clamp the index or set_estimates on '{pname}'")
                    fallback = producer.estimated_region[k]
                    if lo is None:
                        lo, dd_lo = Lin(fallback.min), True
                    if hi is None:
                        hi, dd_hi = Lin(fallback.max), True
                ends.append((lo, hi))
                bounds.append((_bound_info(lo, dd_lo, est_dep), _bound_info(hi, dd_hi, est_dep)))
            edges.append(Edge(producer=producer, consumer=st, calls=collector.counts.get(pname, 0),
                              call_sites=tuple(call_sites),
                              load_jacobians=tuple(featurizer.jacobians.get(pname, ())),
                              bounds=tuple(bounds), _fn=compile_box(ends)))
        return edges, pointwise

    def _bounds_at_estimates(self) -> None:
        """Root-level bounds at the estimates (``_propagate_regions``), stored on the nodes, their
        stages and their outgoing edges."""
        for node, req, computed, loops in self._propagate_regions():
            for e in node.outgoing_edges:
                e.footprint_at_estimates = e.footprint(e.consumer.loop_bounds)
            node.region_required, node.region_computed = req, computed
            for st, lb in zip(node.stages, loops):
                st.loop_bounds = lb


def _clamped_box(ends: list[tuple[End, End]]) -> RegionFn:
    """A footprint whose unbounded ends (encoded as +-2**62) are dropped by the caller's union:
    such ends are replaced by the union's own value, i.e. they do not widen the region."""
    fn = compile_box(ends)
    big = 1 << 61

    def clamped(lo: Sequence[int], hi: Sequence[int]) -> list[tuple[int, int]]:
        out = []
        for a, b in fn(lo, hi):
            out.append((a if a > -big else (1 << 62), b if b < big else -(1 << 62)))
        return out

    return clamped


def _bound_info(e: End, data_dependent: bool, est_dep: bool) -> BoundInfo:
    if isinstance(e, Lin) and len(e.terms) <= 1:
        if not e.terms:
            return BoundInfo(e, True, 0, e.const, -1, False, data_dependent, est_dep)
        (side, idx), c = next(iter(e.terms.items()))
        return BoundInfo(e, True, c, e.const, idx, side == 1, data_dependent, est_dep)
    return BoundInfo(e, False, 0, 0, -1, False, data_dependent, est_dep)

"""What the schedule featurizer needs from the FunctionDAG, precomputed once per (DAG, target).

Everything here follows Adams2019's ``FunctionDAG`` semantics (``FunctionDAG.{h,cpp}`` in Halide),
which differ from ``autoscheduler.dag``'s own bounds in two places:

* the region computed of a Func with update definitions is the region required united with what
  each update's left-hand side writes (self-reads of earlier stages are *not* followed), and every
  stage's pure loops span that region (``required_to_computed`` / ``loop_nest_for_region``);
* an output's region at the root is its estimate alone (consumers of an output are ignored there).

Indices: ``f`` is a Func's realization index (``dag.nodes[f]``), ``(f, s)`` a stage.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

from ..dag import Edge, FunctionDAG, Node, Stage

Span = tuple[int, int]           # (min, max), inclusive
SpanList = list[Span]
Jac = tuple[tuple[Optional[Fraction], ...], ...]

EMPTY_MIN = (1 << 62)
EMPTY_MAX = -(1 << 62)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ----------------------------------------------------------------------------- optional rationals
# Adams2019's OptionalRational: None is "does not exist" (not a constant derivative).

def opt_add(a: Optional[Fraction], b: Optional[Fraction]) -> Optional[Fraction]:
    if a is None or b is None:
        return None
    return a + b


def opt_mul(a: Optional[Fraction], b: Optional[Fraction]) -> Optional[Fraction]:
    if a is not None and a == 0:
        return a
    if b is not None and b == 0:
        return b
    if a is None or b is None:
        return None
    return a * b


def jac_entry(m: Jac, i: int, j: int) -> Optional[Fraction]:
    """``LoadJacobian::operator()(i, j)``: scalar producers / consumers have all-zero strides."""
    if not m:
        return Fraction(0)
    row = m[i]
    if not row:
        return Fraction(0)
    return row[j]


def jac_consumer_dims(m: Jac) -> int:
    if not m or not m[0]:
        return 0
    return len(m[0])


def jac_mul(a: Jac, b: Jac) -> Jac:
    """``a * b`` as Adams2019 multiplies Jacobians to look through an inlined Func: ``a`` maps the
    inlined Func's loops to the producer's coordinates, ``b`` the consumer's loops to the inlined
    Func's coordinates."""
    rows = len(a)
    cols = jac_consumer_dims(b)
    inner = jac_consumer_dims(a)
    out = []
    for i in range(rows):
        row = []
        for j in range(cols):
            acc: Optional[Fraction] = Fraction(0)
            for k in range(inner):
                acc = opt_add(acc, opt_mul(jac_entry(a, i, k), jac_entry(b, k, j)))
            row.append(acc)
        out.append(tuple(row))
    return tuple(out)


class AStage:
    """One stage, as the featurizer sees it."""

    __slots__ = ("f", "s", "id", "name", "loops_pure", "loops_rvar", "pure_dims", "rvar_spans", "n_loops",
                 "native_vector", "incoming", "upstream", "root_loops", "pcm", "is_update", "stage")

    def __init__(self, f: int, s: int, stage: Stage, native_vector: int) -> None:
        self.f = f
        self.s = s
        self.stage = stage
        self.id = stage.id
        self.name = stage.name
        self.is_update = s > 0
        self.loops_pure = tuple(l.pure for l in stage.loops)
        self.loops_rvar = tuple(l.rvar for l in stage.loops)
        self.pure_dims = tuple(l.pure_dim for l in stage.loops)
        self.rvar_spans = tuple(None if l.rvar_span is None else (l.rvar_span.min, l.rvar_span.max)
                                for l in stage.loops)
        self.n_loops = len(stage.loops)
        self.native_vector = native_vector
        self.incoming: list[AEdge] = []
        self.upstream: frozenset[int] = frozenset()     # Funcs this stage depends on, transitively
        self.root_loops: SpanList = []
        self.pcm = 0.0

    def loops_for(self, computed: Sequence[Span]) -> SpanList:
        """Loop spans of this stage when its Func computes ``computed``."""
        out: SpanList = []
        for pd, rs in zip(self.pure_dims, self.rvar_spans):
            out.append(rs if rs is not None else computed[pd])
        return out


class AEdge:
    """Producer Func -> consumer stage, with the footprint as a function of the consumer's loops."""

    __slots__ = ("producer", "consumer", "calls", "jacobians", "_fn", "edge")

    def __init__(self, edge: Edge, consumer: AStage) -> None:
        self.edge = edge
        self.producer = edge.producer.index
        self.consumer = consumer
        self.calls = edge.calls
        self.jacobians: tuple[tuple[Jac, int], ...] = tuple((j.matrix, j.count) for j in edge.load_jacobians)
        self._fn = edge.footprint_raw

    def footprint(self, loops: Sequence[Span]) -> SpanList:
        lo = [a for a, _ in loops]
        hi = [b for _, b in loops]
        return [(int(a), int(b)) for a, b in self._fn(lo, hi)]


class ANode:
    """One Func."""

    __slots__ = ("f", "name", "dims", "bytes_per_point", "is_input", "is_output", "is_wrapper", "stages",
                 "outgoing", "estimate", "root_required", "root_computed", "vector_size", "_writes",
                 "producers", "node", "single_stage")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.f = node.index
        self.name = node.name
        self.dims = node.dimensions
        self.bytes_per_point = node.bytes_per_point
        self.is_input = node.is_input
        self.is_output = node.is_output
        self.is_wrapper = node.is_wrapper
        self.stages: list[AStage] = []
        self.outgoing: list[AEdge] = []
        self.estimate: Optional[SpanList] = (None if node.estimated_region is None
                                             else [(s.min, s.max) for s in node.estimated_region])
        self.root_required: SpanList = []
        self.root_computed: SpanList = []
        self.vector_size = 1
        self._writes: list[Optional[Callable[[Sequence[int], Sequence[int]], list[tuple[int, int]]]]] = \
            list(getattr(node, "_writes", [None] * len(node.stages)))
        self.producers: tuple[int, ...] = ()
        self.single_stage = len(node.stages) == 1

    def computed_from_required(self, required: Sequence[Span]) -> SpanList:
        """Adams2019's ``required_to_computed``: the region required united with the coordinates
        every update definition writes (pure loops over the required region, RVars over their
        whole range)."""
        computed = list(required)
        if self.single_stage:
            return computed
        for st, fn in zip(self.stages, self._writes):
            if fn is None:
                continue
            loops = st.loops_for(required)
            box = fn([a for a, _ in loops], [b for _, b in loops])
            computed = [(min(c[0], int(a)), max(c[1], int(b))) for c, (a, b) in zip(computed, box)]
        return computed


class AdamsDag:
    """The DAG in the featurizer's terms: nodes (Funcs), stages, edges, root bounds, and the
    schedule-independent features (``points_computed_minimum``, bytes at root)."""

    def __init__(self, dag: FunctionDAG, native_vector: Callable[[Stage], int]) -> None:
        self.dag = dag
        self.nodes: list[ANode] = [ANode(n) for n in dag.nodes]
        for n, an in zip(dag.nodes, self.nodes):
            for st in n.stages:
                an.stages.append(AStage(n.index, st.index, st, native_vector(st)))
            an.vector_size = max(s.native_vector for s in an.stages)
        for n, an in zip(dag.nodes, self.nodes):
            for st, ast in zip(n.stages, an.stages):
                # Adams2019 creates a stage's edges from a std::map keyed by producer name, and the
                # order matters where loads reach a producer along two paths (they count twice)
                for e in sorted(st.incoming_edges, key=lambda e: e.producer.name):
                    ae = AEdge(e, ast)
                    ast.incoming.append(ae)
                    self.nodes[e.producer.index].outgoing.append(ae)
            an.producers = tuple(dict.fromkeys(e.producer for a in an.stages for e in a.incoming))
        # Transitive dependencies (Stage::dependencies / downstream_of), producers first.
        deps: dict[int, frozenset[int]] = {}
        for an in self.nodes:
            for ast2 in an.stages:
                acc: set[int] = set()
                for ae2 in ast2.incoming:
                    acc.add(ae2.producer)
                    acc |= deps[ae2.producer]
                ast2.upstream = frozenset(acc)
            deps[an.f] = frozenset().union(*(a.upstream for a in an.stages)) if an.stages else frozenset()
        self.stage_list: list[AStage] = [st for an in self.nodes for st in an.stages]
        #: get_bounds memo shared by every loop nest built for this DAG (see loopnest.get_bounds)
        self.bounds_memo: dict[Any, Any] = {}
        #: chain templates (sizes and bounds of a stage's levels at a site), see loopnest.build_chain
        self.chain_memo: dict[Any, Any] = {}
        self._jac_mul: dict[tuple[int, int], tuple[Jac, Jac, Jac]] = {}
        self._classify: dict[tuple[int, int, int], tuple[Jac, int]] = {}
        self._invariant: dict[tuple[int, int], tuple[Jac, tuple[int, ...]]] = {}
        self._root_bounds()
        self._points_computed_minimum()
        #: featurization order (outputs first, each Func's stages last update first), as (f, s)
        self.order: list[tuple[int, int]] = [(st.node.index, st.index) for st in dag.featurization_order()]
        self.row: dict[tuple[int, int], int] = {k: i for i, k in enumerate(self.order)}

    def jac_mul(self, a: Jac, b: Jac) -> Jac:
        """Memoized :func:`jac_mul` (products of the DAG's Jacobians, kept alive here so their ids
        stay valid keys)."""
        k = (id(a), id(b))
        hit = self._jac_mul.get(k)
        if hit is None:
            hit = (a, b, jac_mul(a, b))
            self._jac_mul[k] = hit
        return hit[2]

    def classify_load(self, m: Jac, vli: int, producer_dim: int, dims: int) -> int:
        """Adams2019's classification of a load in the vectorised loop ``vli``: 0 broadcast,
        1 dense, 2/3/4 stride 2/3/4, 5 gather. ``producer_dim``: the producer's innermost storage
        dimension, or -2 when the producer is not scheduled yet (any dimension may be made dense)."""
        k = (id(m), vli, producer_dim)
        hit = self._classify.get(k)
        if hit is not None:
            return hit[1]
        vb = dl = s2 = s3 = s4 = True
        if vli >= 0:
            if producer_dim == -2:
                cnts = [0, 0, 0, 0, 0]
                for i in range(dims):
                    stride = jac_entry(m, i, vli)
                    if stride is not None and stride.denominator == 1 and 0 <= stride <= 4:
                        cnts[int(stride)] += 1
                vb = cnts[0] == dims
                dl = cnts[0] == dims - 1 and cnts[1] == 1
                s2 = cnts[0] == dims - 1 and cnts[2] == 1
                s3 = cnts[0] == dims - 1 and cnts[3] == 1
                s4 = cnts[0] == dims - 1 and cnts[4] == 1
            else:
                for i in range(dims):
                    stride = jac_entry(m, i, vli)
                    vb = vb and stride is not None and stride == 0
                    if i == producer_dim:
                        dl = dl and stride is not None and stride == 1
                        s2 = s2 and stride is not None and stride == 2
                        s3 = s3 and stride is not None and stride == 3
                        s4 = s4 and stride is not None and stride == 4
                    else:
                        z = stride is not None and stride == 0
                        dl = dl and z
                        s2 = s2 and z
                        s3 = s3 and z
                        s4 = s4 and z
        cat = 0 if vb else 1 if dl else 2 if s2 else 3 if s3 else 4 if s4 else 5
        self._classify[k] = (m, cat)
        return cat

    def invariant_loops(self, m: Jac, st: AStage) -> tuple[int, ...]:
        """Pure loops of ``st`` along which a load with Jacobian ``m`` does not move (its
        column is all zeros): the loads Adams2019 amortizes over an unrolled block."""
        k = (id(m), st.id)
        hit = self._invariant.get(k)
        if hit is not None:
            return hit[1]
        rows = len(m)
        out = []
        for idx in range(st.n_loops):
            if st.loops_rvar[idx]:
                continue
            if all((lambda v: v is not None and v == 0)(jac_entry(m, i, idx)) for i in range(rows)):
                out.append(idx)
        res = tuple(out)
        self._invariant[k] = (m, res)
        return res

    def stage(self, f: int, s: int) -> AStage:
        return self.nodes[f].stages[s]

    def _root_bounds(self) -> None:
        """``root.get_bounds(f)`` for every Func: schedule-independent."""
        for an in reversed(self.nodes):           # consumers (later in realization order) first
            req: Optional[SpanList] = None
            if an.is_output and an.estimate is not None:
                req = list(an.estimate)
            else:
                for e in an.outgoing:
                    fp = e.footprint(e.consumer.root_loops)
                    req = fp if req is None else [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(req, fp)]
            if req is None:
                req = list(an.estimate or [(0, 0)] * an.dims)
            an.root_required = req
            an.root_computed = an.computed_from_required(req)
            for st in an.stages:
                st.root_loops = st.loops_for(an.root_computed)

    def _points_computed_minimum(self) -> None:
        for an in reversed(self.nodes):
            for st in an.stages:
                n = 1
                for a, b in st.root_loops:
                    n *= b - a + 1
                pcm = float(n)
                if an.single_stage and not an.is_output:
                    inl = 0.0
                    for e in an.outgoing:
                        inl += e.consumer.pcm * e.calls
                    pcm = min(pcm, inl)
                st.pcm = pcm

    def bytes_at_root(self, f: int) -> float:
        an = self.nodes[f]
        b = float(an.bytes_per_point)
        for a, c in an.root_computed:
            b *= c - a + 1
        return b

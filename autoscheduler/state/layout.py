"""Storage layouts on CPU: :class:`Layout` (a Func's ``reorder_storage``) and :class:`Wrap` (a
consumer reads a producer through a copy stored in another order, Halide's ``producer.in_(consumer)``).

Which dimension of a buffer is contiguous decides whether a vectorised consumer's loads are dense
vector loads or gathers: ``C(i, j) = sum_k A(k, i) * B(j, k)`` vectorised along ``i`` gathers ``A``
(stride = A's row length) unless ``A`` is stored with its dimension 1 innermost. A Func's storage is
ours to choose (``Layout``); an input's is the user's, so a transposed copy (``Wrap``) computed once
at root is the way to make the reduction's many reads of it dense.

Both decisions are optional and do not move the slot, so traces recorded without them replay
unchanged:

- ``Layout(f, order)`` is accepted at the outer slot of ``f``'s pure stage (after ``InnerTile(f, 0)``,
  when ``f``'s own vector dimension, the default innermost storage dimension, is known), once per
  Func; ``f`` is computed at root or at a consumer's loop (the slot exists only then), is not an
  output (its storage is the user's buffer), and ``order`` is a permutation of its dimensions.
- ``Wrap(p, c, order)`` is accepted at the outer slot of any stage of consumer ``c`` (after the
  stage's inner decision: its vector dimension is known), or, for a Func ``p`` computed at root,
  at the outer slot of ``p``'s pure stage (after its Layout, when its own storage order is known),
  once per (p, c); ``p`` is a direct producer of ``c``, a pipeline input or a Func, which must then
  be computed at root (it is placed after ``c``; ``State._apply_place`` enforces it): the wrapper
  is computed at root and reads all of ``p``'s region that ``c`` needs. ``order`` is a permutation
  of ``p``'s dimensions.

The menu (``layout_options``) offers, besides the default (no decision, always offered through the
slot's own decisions): a Layout of ``f`` that puts innermost the dimension of ``f`` along which a
(scheduled, vectorised) consumer stage reads it densely, where that is not ``f``'s default innermost
dimension and that stage reads each element at least ``MIN_LAYOUT_REUSE`` times (``f``'s own
vectorised stores become strided: one strided pass for another, unless the reader makes many); a Wrap of an input read by a vectorised reduction stage densely along a dimension other
than the input's innermost (0) and reads each element at least ``MIN_WRAP_REUSE`` times (the copy
is a pass of its own); at a root Func's own slot (after its Layout, never before), a Wrap
for each vectorised reduction consumer that reads it densely along a dimension other than its
storage's innermost: where one Layout cannot serve two readers. At one slot Wraps are offered in
increasing producer (consumer, at a producer's slot) order only, so that two wraps never come in
two orders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from ..dag import Edge
from .decisions import WHERE_INLINE, WHERE_ROOT, Decision, IllegalDecisionError, Layout, Wrap

if TYPE_CHECKING:
    from .state import State

MAX_LAYOUT_OPTIONS = 2   # distinct innermost dimensions offered per Func (keeps the branching small)
# A Wrap is offered only for a consumer stage that reads each element of the producer's region at
# least this many times: the copy is itself one strided (gathering) pass over that region, which
# the cost model does not price (features/layout.py). GEMM operands are read 32-784 times;
# hist_eq's row histogram reads its luma twice per pixel, and its transposed copy of the luma (a
# 64-lane gather per vector) made the pipeline 1.7x slower (8.96 vs 5.16 ms), predicted 2.2x faster.
MIN_WRAP_REUSE = 8
# Likewise for a Layout, which makes the Func's own vectorised stores strided: hist_eq's luma stored
# transposed for the same histogram ran 1.8x slower than stored as computed (9.47 vs 5.28 ms).
MIN_LAYOUT_REUSE = 8


def _is_permutation(order: tuple[int, ...], dims: int) -> bool:
    return sorted(order) == list(range(dims))


def default_order(state: "State", f: int) -> tuple[int, ...]:
    """Func ``f``'s storage order without a Layout, innermost first: its pure stage's vector
    dimension first (what ``apply`` emits, as Adams2019 does), then the others; inputs and outputs
    keep the identity (their storage is the user's buffer)."""
    node = state.space.node(f)
    ident = tuple(range(len(node.args)))
    if node.is_input or node.is_output or state.space.gpu:
        return ident
    inner = state.inner(f, 0)
    v = None if inner is None else inner.vector_dim
    if v in (None, 0) or len(ident) < 2:
        return ident
    assert v is not None
    return (v,) + tuple(d for d in ident if d != v)


def storage_order(state: "State", f: int) -> tuple[int, ...]:
    """Func ``f``'s storage order, innermost first: its Layout, else ``default_order``."""
    lay = state.layout(f)
    return lay.order if lay is not None else default_order(state, f)


def read_order(state: "State", producer: int, consumer: int) -> tuple[int, ...]:
    """The storage order ``consumer`` reads ``producer`` in: a Wrap's copy, else the producer's own."""
    w = state.wraps().get((producer, consumer))
    return w.order if w is not None else storage_order(state, producer)


def apply_layout_decision(state: "State", d: Union[Layout, Wrap]) -> "State":
    """The state after an optional Layout / Wrap decision (the slot does not move)."""
    space = state.space
    if space.gpu:
        raise IllegalDecisionError(f"{d.kind} decisions are CPU-only (the GPU featurizer does not model "
                                   f"storage layouts): {d}")
    n = len(space.dag.nodes)
    if not 0 <= d.func < n:
        raise IllegalDecisionError(f"no Func number {d.func} (the pipeline has {n}): {d}")
    node = space.node(d.func)
    kind, f, s = state.slot if state.slot is not None else ("(none: the state is complete)", -1, -1)
    t = state._t.copy()
    if isinstance(d, Layout):
        if node.is_input:
            raise IllegalDecisionError(f"{node.name} is a pipeline input: its layout is the caller's buffer "
                                       f"(use Wrap to read it through a reordered copy): {d}")
        if node.is_output:
            raise IllegalDecisionError(f"output Func {node.name}: its layout is the user's output buffer, "
                                       f"not the schedule's: {d}")
        p = state.placement(d.func)
        if p is not None and p.where == WHERE_INLINE:
            raise IllegalDecisionError(f"Func {node.name} is inlined: it has no storage to lay out: {d}")
        if not _is_permutation(d.order, len(node.args)):
            raise IllegalDecisionError(f"Layout order {list(d.order)} is not a permutation of the "
                                       f"{len(node.args)} dimensions of Func {node.name}: {d}")
        if (kind, f, s) != ("outer", d.func, 0):
            raise IllegalDecisionError(f"the Layout of Func {node.name} comes right after its pure stage's "
                                       f"inner decision (the slot now is the {kind} decision of func {f} "
                                       f"stage {s}): {d}")
        if d.func in t.layout:
            raise IllegalDecisionError(f"Func {node.name} already has a Layout: {d}")
        t.layout[d.func] = d
        return state._child(d, state.slot, t)
    if not 0 <= d.consumer < n:
        raise IllegalDecisionError(f"no consumer Func number {d.consumer}: {d}")
    cname = space.node(d.consumer).name
    if not any(e.producer.index == d.func for st in space.node(d.consumer).stages for e in st.incoming_edges):
        raise IllegalDecisionError(f"{node.name} is not read directly by {cname}: nothing to wrap: {d}")
    if not _is_permutation(d.order, len(node.args)):
        raise IllegalDecisionError(f"Wrap order {list(d.order)} is not a permutation of the "
                                   f"{len(node.args)} dimensions of {node.name}: {d}")
    p = state.placement(d.func)
    if not node.is_input and p is not None and p.where != WHERE_ROOT:
        raise IllegalDecisionError(f"{node.name} is computed '{p.where}': only inputs and root Funcs are "
                                   f"wrapped (the copy is computed at root): {d}")
    at_producer = kind == "outer" and f == d.func and s == 0 and not node.is_input
    if not (kind == "outer" and f == d.consumer) and not at_producer:
        raise IllegalDecisionError(f"a Wrap for consumer {cname} comes after the inner decision of one of "
                                   f"its stages, or of the wrapped Func's pure stage (the slot now is the "
                                   f"{kind} decision of func {f}): {d}")
    if at_producer and (p is None or p.where != WHERE_ROOT):
        raise IllegalDecisionError(f"{node.name} is not computed at root: a wrapper of it would not be "
                                   f"either: {d}")
    if (d.func, d.consumer) in t.wraps:
        raise IllegalDecisionError(f"{node.name} is already wrapped for {cname}: {d}")
    t.wraps[(d.func, d.consumer)] = d
    return state._child(d, state.slot, t)


def dense_dim(edge: Edge, vector_dim: int) -> Optional[int]:
    """The producer dimension along which every load of ``edge`` moves by exactly 1 per step of the
    consumer's pure loop ``vector_dim`` (all other producer dimensions fixed): where the loads are
    dense if that dimension is innermost. None if the loads do not agree, are broadcasts, or are
    not affine."""
    st = edge.consumer
    j = next((k for k, l in enumerate(st.loops) if not l.rvar and l.pure_dim == vector_dim), None)
    if j is None:
        return None
    found: Optional[int] = None
    for lj in edge.load_jacobians:
        m = lj.matrix
        if not m or not m[0]:
            return None
        col = [row[j] for row in m]
        ones = [i for i, c in enumerate(col) if c is not None and c == 1]
        if len(ones) != 1 or any(c is None or (c != 0 and i != ones[0]) for i, c in enumerate(col)):
            return None
        if found is not None and found != ones[0]:
            return None
        found = ones[0]
    return found


def _reordered(first: int, dims: int) -> tuple[int, ...]:
    return (first,) + tuple(k for k in range(dims) if k != first)


def _producer_wraps(state: "State", f: int) -> list[Decision]:
    """Wraps of root Func ``f`` for its (already scheduled, vectorised) reduction consumers that read
    it densely along a dimension other than its storage's innermost one, offered at ``f``'s own
    slot, once its storage order is known. Two consumers that want ``f`` in different orders
    (ae_train_step's output adjoint: the dX GEMM vectorises along the batch, the dW GEMM along the
    features) get it from the Layout and a copy: measured 10.5 -> 8.6 ms there. At one slot Wraps
    come in increasing consumer order only."""
    p = state.placement(f)
    if p is None or p.where != WHERE_ROOT:
        return []
    node = state.space.node(f)
    cur = storage_order(state, f)[0]
    done = [c for q, c in state._t.wraps if q == f]
    out: list[Decision] = []
    seen: set[int] = set()
    for e in node.outgoing_edges:
        c, cs = e.consumer.node.index, e.consumer.index
        if c in seen or (done and c <= max(done)) or not e.consumer.rvar_loops:   # never inlined
            continue
        if e.reuse < MIN_WRAP_REUSE:
            continue
        inner = state.inner(c, cs)
        if inner is None or inner.vector_dim is None or inner.vector_width < 2:
            continue
        i = dense_dim(e, inner.vector_dim)
        if i is not None and i != cur:
            seen.add(c)
            out.append(Wrap(f, c, _reordered(i, len(node.args))))
    return out


def layout_options(state: "State", f: int, s: int) -> list[Decision]:
    """The optional Layout / Wrap decisions the CPU menu offers at the outer slot of stage
    (``f``, ``s``) (module doc); empty on GPU."""
    space = state.space
    if space.gpu:
        return []
    out: list[Decision] = []
    node = space.node(f)
    if s == 0 and f not in state._t.layout and not node.is_output and len(node.args) >= 2:
        cur = default_order(state, f)[0]
        want: list[int] = []
        for e in node.outgoing_edges:
            c, cs = e.consumer.node.index, e.consumer.index
            inner = state.inner(c, cs)
            if state.is_inlined(c) or inner is None or inner.vector_dim is None or inner.vector_width < 2:
                continue
            if state.wraps().get((f, c)) is not None:
                continue
            i = dense_dim(e, inner.vector_dim)
            if i is not None and i != cur and i not in want and e.reuse >= MIN_LAYOUT_REUSE:
                want.append(i)
        if not any(p == f for p, _ in state._t.wraps):   # a Layout comes before the Func's own Wraps
            out += [Layout(f, _reordered(i, len(node.args))) for i in want[:MAX_LAYOUT_OPTIONS]]
    if s == 0 and not node.is_input and not node.is_output and len(node.args) >= 2:
        out += _producer_wraps(state, f)
    st = space.stage(f, s)
    inner = state.inner(f, s)
    if st.rvar_loops and inner is not None and inner.vector_dim is not None and inner.vector_width >= 2:
        done = [p for p, c in state._t.wraps if c == f]
        for e in st.incoming_edges:
            p = e.producer
            if not p.is_input or len(p.args) < 2 or (done and p.index <= max(done)) or e.reuse < MIN_WRAP_REUSE:
                continue
            i = dense_dim(e, inner.vector_dim)
            if i is not None and i != 0:
                out.append(Wrap(p.index, f, _reordered(i, len(p.args))))
    return out

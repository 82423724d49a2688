"""The decision vocabulary of the search space (CPU and CUDA): small frozen dataclasses, JSON-serialisable.

A schedule is a replayable list of decisions made from the outputs back to the inputs (Adams2019's
order). Every non-input Func gets one :class:`Place` (inline, root, or at a tile loop of a consumer),
then, unless inlined, each of its stages (pure definition first, then each update) gets an inner
decision (:class:`InnerTile`, or :class:`Kernel` for the GEMM micro-kernel shape of a reduction) and
an :class:`OuterTile` (the tile / parallel task grid). Loops and dimensions are named by position
(Func argument index, loop level), never by Halide names, so a trace replays on a fresh build of the
same pipeline whatever names Halide chose for it.

On GPU targets (``target.has_gpu_feature()``) the same decisions take a GPU meaning (see
``state.py`` and ``plan.py``): a root Func's ``OuterTile(parallel=True)`` is a kernel whose outer tile
loops are ``gpu_blocks`` and whose register-tile loops inside a tile are ``gpu_threads``; a Func
computed at a consumer's block loop (shared memory) with ``parallel=True`` spreads its tiles over the
block's threads; a Func computed inside a thread is serial. :class:`RFactor` (CPU and GPU)
replaces the inner decision of a root Func's update stage by Halide's ``rfactor`` (on GPU optionally
with ``atomic()``).

On CPU, two optional decisions choose storage layouts (``layout.py``): :class:`Layout` (a Func's
``reorder_storage``, right after its pure stage's inner decision) and :class:`Wrap` (a consumer reads
a producer through a reordered copy, ``producer.in_(consumer)``, after one of the consumer's inner
decisions). Neither moves the slot, so traces without them replay unchanged.

``DECISION_KINDS`` is the one list of kinds; the featurizer, the records and the tests read it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

from ..errors import ScheduleError

# Loop levels of a stage's loop nest, innermost first (see ``plan.py``).
LEVEL_VECTOR = "vector"      # the vectorised part of the vector dimension (natural vector width)
LEVEL_UNROLL = "unroll"      # the unrolled register tile (product of extents <= UNROLL_LIMIT)
LEVEL_RVAR = "rvar"          # a reduction variable: always serial, in the order of its RDom
LEVEL_INNER = "inner"        # the loop over register tiles inside one outer tile (serial)
LEVEL_OUTER = "outer"        # a tile loop (serial), for a Func computed at a consumer's loop
LEVEL_PARALLEL = "parallel"  # the fused, parallel task loop of a root Func's outer tiles
LEVEL_THREAD = "thread"      # GPU: a gpu_threads loop (a tiled dimension's register tiles in a tile)
LEVEL_BLOCK = "block"        # GPU: a gpu_blocks loop (a root kernel's outer tile loop)
LEVELS = (LEVEL_VECTOR, LEVEL_UNROLL, LEVEL_RVAR, LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, LEVEL_THREAD,
          LEVEL_BLOCK)
# levels a producer may be computed at (on GPU only the innermost block / thread loop, see state.py)
SITE_LEVELS = (LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, LEVEL_THREAD, LEVEL_BLOCK)

WHERE_INLINE = "inline"
WHERE_ROOT = "root"
WHERE_AT = "at"
WHERES = (WHERE_INLINE, WHERE_ROOT, WHERE_AT)

UNROLL_LIMIT = 12  # Adams2019's kUnrollLimit: largest product of unrolled extents
GPU_UNROLL_LIMIT = 16  # Anderson2021's unroll limit on GPU (per-thread register tiles)


class IllegalDecisionError(ScheduleError):
    """A decision (from a trace, JSON, or a caller) that the search space does not allow here."""


@dataclass(frozen=True)
class LoopRef:
    """One loop of one stage: ``level`` is ``inner``, ``outer`` or ``parallel``; ``dim`` the Func
    argument index of the loop (-1 for the fused parallel loop)."""

    func: int
    stage: int
    level: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"func": self.func, "stage": self.stage, "level": self.level, "dim": self.dim}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "LoopRef":
        return LoopRef(int(d["func"]), int(d["stage"]), str(d["level"]), int(d["dim"]))


@dataclass(frozen=True)
class Place:
    """Where Func ``func`` (realization index) is computed: ``inline``, ``root`` or ``at`` the loop
    ``at`` of a consumer stage. ``store_at`` (single-stage Funcs only) stores it at an enclosing
    serial loop further out, so that Halide can slide the window over the loops in between."""

    func: int
    where: str
    at: Optional[LoopRef] = None
    store_at: Optional[LoopRef] = None
    kind: ClassVar[str] = "place"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "where": self.where,
                "at": None if self.at is None else self.at.to_dict(),
                "store_at": None if self.store_at is None else self.store_at.to_dict()}


@dataclass(frozen=True)
class InnerTile:
    """The innermost loops of one stage: the pure dimension ``vector_dim`` (Func argument index, or
    None) is vectorised ``vector_width`` wide and innermost; ``unroll`` = ((dim, factor), ...) is a
    small register tile unrolled around it (the vector dimension's factor counts vectors; product of
    the factors <= UNROLL_LIMIT). In a stage with RVars the RVars sit right outside the vector loop
    and nothing is unrolled (use :class:`Kernel` to unroll a register tile inside the RVars)."""

    func: int
    stage: int
    vector_dim: Optional[int]
    vector_width: int
    unroll: tuple[tuple[int, int], ...] = ()
    kind: ClassVar[str] = "inner"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "stage": self.stage, "vector_dim": self.vector_dim,
                "vector_width": self.vector_width, "unroll": [list(u) for u in self.unroll]}


@dataclass(frozen=True)
class Kernel:
    """The GEMM micro-kernel shape of a reduction stage: a register tile of pure dimensions (a vector
    of outputs, ``vector_width`` lanes times the vector dimension's factor, times a few rows of
    another dimension), unrolled, with the stage's RVar loops outside it (serial, in their order).
    Hand schedules of conv layers and matrix multiplies reach the machine's peak with this shape."""

    func: int
    stage: int
    vector_dim: int
    vector_width: int
    unroll: tuple[tuple[int, int], ...]
    kind: ClassVar[str] = "kernel"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "stage": self.stage, "vector_dim": self.vector_dim,
                "vector_width": self.vector_width, "unroll": [list(u) for u in self.unroll]}


@dataclass(frozen=True)
class OuterTile:
    """The tiling of one stage outside its inner loops: ``tiles`` = ((dim, extent), ...) splits each
    listed pure dimension into tiles of ``extent`` points (a multiple of its register tile; extent
    equal to the register tile makes the dimension's whole loop an outer loop). With ``parallel``
    (root Funcs only) the outer tile loops are fused into one parallel task loop.

    ``sub`` (CPU, parallel root stages only) = ((dim, extent), ...) adds a serial tile level inside
    each task: the listed dimensions (tiled or not) are cut into sub-tiles of ``extent`` points (a
    multiple of the register tile, dividing the task tile), whose loops producers may be computed
    and stored at. This is Adams2019's third tiling level, which stencil chains need: a task tile
    wide enough for few tasks, and producers computed per sub-tile small enough for the caches.

    ``rblock`` (CPU, the update of a root Func with a :class:`Kernel` and a parallel task
    grid) cuts the stage's outermost RVar into blocks of ``rblock`` steps and moves the block loop
    outside the register-tile loops of a task: every register tile of the task then runs one block
    of the reduction before the next block starts, so the block of the operand the tiles share (a
    GEMM's weights: rows of the vector dimension times the block) is read from the cache instead of
    streamed once per register tile. Measured on ae_forward's first layer (512 x 784 weights, 256
    images): 1.3-1.7 ms unblocked, 0.92-1.03 ms with blocks of 128. The loops inside the block loop
    are then no compute sites (their RVar range is the block)."""

    func: int
    stage: int
    tiles: tuple[tuple[int, int], ...] = ()
    parallel: bool = False
    sub: tuple[tuple[int, int], ...] = ()
    rblock: int = 0
    kind: ClassVar[str] = "outer"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "func": self.func, "stage": self.stage,
                             "tiles": [list(t) for t in self.tiles], "parallel": self.parallel}
        if self.sub:   # only when set: traces (and their hashes) without sub-tiles stay as they were
            d["sub"] = [list(t) for t in self.sub]
        if self.rblock:
            d["rblock"] = self.rblock
        return d


@dataclass(frozen=True)
class RFactor:
    """The update stage ``stage`` (>= 1) of a root Func, an associative reduction, computed by
    Halide's ``rfactor``: its RVar number ``rvar`` (index into the stage's RVars, innermost first) is
    split by ``factor`` and the inner part becomes a pure dimension ``u`` of an intermediate Func
    (``factor`` partial results, each reducing the rest of the domain serially), which the stage
    then combines. GPU: each partial result is one thread of a kernel of its own; the combination
    is serial (one thread per output point) or, with ``atomic``, parallel with atomic adds. CPU
    (``atomic`` not allowed): the partial results are vector lanes and parallel tasks, combined
    serially. Takes the place of the stage's inner and outer decisions (the stage is complete after
    it); see ``plan.RFactorPlan`` for the loops."""

    func: int
    stage: int
    rvar: int
    factor: int
    atomic: bool = False
    kind: ClassVar[str] = "rfactor"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "stage": self.stage, "rvar": self.rvar,
                "factor": self.factor, "atomic": self.atomic}


@dataclass(frozen=True)
class Layout:
    """CPU: Func ``func`` (computed at root or at a consumer's loop; never inlined, never an
    output, whose storage is the user's buffer) is stored in the order ``order``: a permutation of
    its argument indices, innermost first (Halide's ``reorder_storage``). Without it a Func is
    stored with its pure stage's vector dimension innermost. Optional, right after the Func's
    pure-stage inner decision (its vector dimension is then known), so traces without it replay
    unchanged; see ``layout.py``."""

    func: int
    order: tuple[int, ...]
    kind: ClassVar[str] = "layout"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "order": list(self.order)}


@dataclass(frozen=True)
class Wrap:
    """CPU: consumer Func ``consumer`` reads producer ``func`` (a pipeline input or a root Func)
    through a copy, Halide's ``producer.in_(consumer)``, computed at root and stored in the order
    ``order`` (argument indices of the producer, innermost first): a transposed copy that makes the
    consumer's vector loads along a non-innermost dimension of the producer dense. Optional, after
    the inner decision of any stage of the consumer; see ``layout.py``."""

    func: int
    consumer: int
    order: tuple[int, ...]
    kind: ClassVar[str] = "wrap"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "func": self.func, "consumer": self.consumer, "order": list(self.order)}


Decision = Union[Place, InnerTile, Kernel, OuterTile, RFactor, Layout, Wrap]
DECISION_TYPES: tuple[type, ...] = (Place, InnerTile, Kernel, OuterTile, RFactor, Layout, Wrap)
DECISION_KINDS: tuple[str, ...] = tuple(t.kind for t in DECISION_TYPES)  # type: ignore[attr-defined]
NON_PLACING_TYPES: tuple[type, ...] = (InnerTile, Kernel, OuterTile, RFactor, Layout, Wrap)
"""Decisions that place no Func: after one, every Func is computed where it was (what the features
derived from the parent state may reuse: ``State.parent_derived``)."""


def _pairs(v: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in v)


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """Inverse of ``decision.to_dict()``; a malformed entry raises IllegalDecisionError."""
    try:
        kind = d["kind"]
        if kind == "place":
            return Place(int(d["func"]), str(d["where"]),
                         None if d.get("at") is None else LoopRef.from_dict(d["at"]),
                         None if d.get("store_at") is None else LoopRef.from_dict(d["store_at"]))
        if kind == "inner":
            vd = d.get("vector_dim")
            return InnerTile(int(d["func"]), int(d["stage"]), None if vd is None else int(vd),
                             int(d["vector_width"]), _pairs(d.get("unroll", ())))
        if kind == "kernel":
            return Kernel(int(d["func"]), int(d["stage"]), int(d["vector_dim"]), int(d["vector_width"]),
                          _pairs(d["unroll"]))
        if kind == "outer":
            return OuterTile(int(d["func"]), int(d["stage"]), _pairs(d.get("tiles", ())),
                             bool(d.get("parallel", False)), _pairs(d.get("sub", ())), int(d.get("rblock", 0)))
        if kind == "rfactor":
            return RFactor(int(d["func"]), int(d["stage"]), int(d["rvar"]), int(d["factor"]),
                           bool(d.get("atomic", False)))
        if kind == "layout":
            return Layout(int(d["func"]), tuple(int(k) for k in d["order"]))
        if kind == "wrap":
            return Wrap(int(d["func"]), int(d["consumer"]), tuple(int(k) for k in d["order"]))
    except (KeyError, TypeError, ValueError) as e:
        raise IllegalDecisionError(f"malformed decision {d!r}: {e}") from None
    raise IllegalDecisionError(f"unknown decision kind {d.get('kind')!r}; known: {list(DECISION_KINDS)}")

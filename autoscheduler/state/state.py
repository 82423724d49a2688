"""The loop-nest search state: a point in the search space (CPU or CUDA), built decision by decision.

Decisions go from the outputs back to the inputs (reverse realization order, Adams2019's order):
each non-input Func gets a :class:`Place`, then, unless inlined, each of its stages an inner decision
(:class:`InnerTile` / :class:`Kernel`) and an :class:`OuterTile`. Because consumers are scheduled
before their producers, a producer's legal compute sites and its region at each of them are known when
it is placed, and its extents at its site are known when it is tiled.

Legality is decided here, never left to Halide:

- inputs get no decision; outputs are compute_root; only single-stage non-output Funcs are inlined;
- a Func is computed at root or at a loop that encloses every use of it: the common ancestors of
  every (non-inlined) consumer stage's loops, uses through inlined Funcs included; only the ``inner``,
  ``outer`` and ``parallel`` loops are sites (never a vector, unrolled or RVar loop);
- ``store_at`` (sliding window) only for single-stage Funcs whose larger regions never read an input
  further (Halide warms a window up by computing rows before the first), only at the site loop right
  outside the compute loop in the same consumer stage, never across a parallel loop nor along the
  consumer's vector dimension, and only where the Func's region really slides (Halide reads out of
  bounds when it "slides" a window that does not move), at most one Func per store loop (two
  windows sliding over one loop came out wrong); a sliding Func's tails are GuardWithIf (rounded-up
  rows would overwrite live rows of folded storage);
- RVars are never split, vectorised or parallelised and keep their order; only pure dimensions of a
  stage (an update's pure dimensions included) are tiled, vectorised, unrolled or parallelised;
  an update with RVars unrolls a register tile only as a :class:`Kernel` (RVars outside it);
- unrolled extents multiply to at most ``UNROLL_LIMIT``; outer tiles are multiples of the register
  tile; only root Funcs get a parallel task loop;
- :class:`RFactor` (CPU and GPU) only for a root Func's update that Halide can rfactor (an
  associative ``f(args) = f(args) op e``, ``gpu.reduction_problem``), a factor between 2 and the
  split RVar's extent, ``atomic`` on GPU only; it replaces the stage's inner and outer decisions,
  and its loops are no compute site (the producers it reads are read by the intermediate, at
  root). On CPU the intermediate's partial results are vector lanes and parallel tasks
  (``cpu_rfactor.py``); the menu offers it for small pure domains with a long RVar.

On GPU targets (``target.has_gpu_feature()``, see ``gpu.py`` for the menus and limits) also:

- a root Func's stage is a kernel: ``OuterTile(parallel=True)`` with one to three tiled dimensions
  (tile loops ``gpu_blocks``, the register-tile loops inside a tile ``gpu_threads``: at most
  MAX_THREADS threads, grid y / z at most 65535 blocks), or without tiles a single-thread kernel
  (``gpu_single_thread``); tiles without ``parallel`` would run on the host and are rejected;
- a Func is computed at a consumer's innermost block loop (block level, shared memory: its stages
  spread their tiles over the block's threads, ``parallel=True``, at least one thread loop, the
  kernel's threads within MAX_THREADS, the block's shared allocations within SHARED_MEMORY_BUDGET) or
  at its innermost thread loop or a serial loop inside the threads (thread level: serial loops
  only, registers / local memory); never at an outer block or thread loop (Halide rejects Funcs
  between block loops), never a sliding window;
- nothing is vectorised (vector width 1) and no CPU loop is parallel; unrolled extents multiply to
  at most GPU_UNROLL_LIMIT; RVars stay serial inside a thread unless the stage is an
  :class:`RFactor` (root Funcs' associative updates only; ``atomic`` for 32-bit additions).

What the search *offers* (``options()`` / ``children()``) is narrower than what is legal, as in
Adams2019: no compute site where the Func's region does not shrink from the site outside it or where
it would be computed more than RECOMPUTE_LIMIT x its root region; no inlining past
INLINE_CALL_LIMIT inlined calls per point (UNROLLED_INLINE_LIMIT counting unrolled copies); the
tilings of ``tilings.py``. ``apply`` (and so ``from_trace`` / ``from_json``) checks legality only,
so a trace may hold decisions the menu never offers (e.g. a Halide plugin's schedule replayed).

A state is immutable: ``apply(decision)`` and ``children()`` return new states.
"""

from __future__ import annotations

import functools
import json
import os
import random
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional, Sequence, Union

import halide as hl

from ..dag import Box, FunctionDAG, Node, Span, Stage, box_points
from ..errors import ScheduleError, TargetError
from ..ir import canonical_hash
from . import gpu as gpu_rules
from .decisions import (GPU_UNROLL_LIMIT, LEVEL_BLOCK, LEVEL_INNER, LEVEL_OUTER, LEVEL_PARALLEL, LEVEL_RVAR,
                        LEVEL_THREAD,
                        SITE_LEVELS, UNROLL_LIMIT, WHERE_AT, WHERE_INLINE, WHERE_ROOT, WHERES, Decision,
                        IllegalDecisionError, InnerTile, Kernel, LoopRef, OuterTile, Place, RFactor,
                        decision_from_dict)
from .decisions import NON_PLACING_TYPES, Layout, Wrap
from . import layout as layout_rules
from .plan import (GPU_BLOCK, GPU_KERNEL, GPU_SERIAL, GPU_SINGLE, MAX_GRID_YZ, TAIL_GUARD, TAIL_ROUND_UP,
                   StagePlan, base_names, plan_rfactor, plan_stage)
from .tilings import SUB_COUNTS, balanced_count, inner_options, outer_options, sub_options, two_row_kernels
from .cpu_rfactor import cpu_rfactor_options, plan_cpu_rfactor

FORMAT = "autoscheduler.state/1"
INLINE_CALL_LIMIT = 256   # Adams2019 rejects inlining chains that make this many calls per point
UNROLLED_INLINE_LIMIT = 64  # ... and we reject inlined calls x unrolled copies above this
RECOMPUTE_LIMIT = 8       # Adams2019 prunes placements that compute a Func 8x more often than at root

SLOT_PLACE = "place"
SLOT_INNER = "inner"
SLOT_OUTER = "outer"

Site = Optional[LoopRef]   # None: root


def _to_target(target: Union[str, Any, None]) -> Any:
    if target is None:
        return hl.get_host_target()
    if isinstance(target, str):
        if target in ("", "host"):
            return hl.get_host_target()
        if not hl.Target.validate_target_string(target):
            raise TargetError(f"bad target string '{target}': use 'host' or a Halide target such as "
                              "'x86-64-linux-avx2-fma'")
        return hl.Target(target)
    return target


class SearchSpace:
    """What every state of one search shares: the DAG, the target, the core count, and per-Func
    facts the decisions need (loop base names, vector widths, tail strategies)."""

    def __init__(self, dag: FunctionDAG, target: Union[str, Any, None] = None,
                 parallelism: Optional[int] = None) -> None:
        self.dag = dag
        self.target = _to_target(target)
        self.gpu = bool(self.target.has_gpu_feature())
        default = gpu_rules.GPU_DEFAULT_SMS if self.gpu else (os.cpu_count() or 1)
        self.parallelism = int(parallelism) if parallelism else default
        self.unroll_limit = GPU_UNROLL_LIMIT if self.gpu else UNROLL_LIMIT
        self.order: tuple[int, ...] = tuple(n.index for n in dag.adams_order() if not n.is_input)
        self._next_func = {f: (self.order[i + 1] if i + 1 < len(self.order) else None)
                           for i, f in enumerate(self.order)}
        self.bases: dict[int, list[str]] = {n.index: base_names(n) for n in dag.nodes if not n.is_input}
        self.vector_width: dict[int, int] = {st.id: self._natural_width(st) for st in dag.stages}
        sensitive = _input_sensitive(dag)
        self.tail: dict[int, str] = {
            n.index: TAIL_GUARD if (n.is_output or n.index in sensitive) else TAIL_ROUND_UP
            for n in dag.nodes if not n.is_input}
        self.stencil_above: set[int] = _stencil_above(dag)
        self.input_copies: frozenset[int] = frozenset(n.index for n in dag.nodes if _copies_an_input(n))
        self._hash: Optional[str] = None

    def _natural_width(self, st: Stage) -> int:
        if self.gpu:
            return 1   # nothing is vectorised on GPU (threads take the lanes)
        bits = max(8, st.narrowest_bits or 32)
        return max(1, int(self.target.natural_vector_size(hl.Int(bits))))

    @property
    def pipeline_hash(self) -> str:
        if self._hash is None:
            self._hash = canonical_hash(self.dag.ir)
        return self._hash

    def node(self, f: int) -> Node:
        return self.dag.nodes[f]

    def stage(self, f: int, s: int) -> Stage:
        return self.dag.nodes[f].stages[s]

    def pure_dims(self, f: int, s: int) -> list[int]:
        return [l.pure_dim for l in self.stage(f, s).pure_loops]


STENCIL_HALO = 64   # the largest footprint growth per consumer point that counts as a stencil


RBLOCK_MIN_EXTENT = 256   # shorter reductions: the register tiles' operand rows fit the caches unblocked
RBLOCK_TARGET = 128       # steps per block (ae_forward's first layer: 128 and 256 within noise, 64 no better)


@functools.lru_cache(maxsize=None)
def rblock_size(extent: int) -> int:
    """The block an RVar of ``extent`` steps is cut into (``OuterTile.rblock``), or 0 for none: the
    divisor of the extent in [64, 256] nearest ``RBLOCK_TARGET`` (no tail to guard), else the target."""
    if extent < RBLOCK_MIN_EXTENT:
        return 0
    divisors = [b for b in range(64, 257) if extent % b == 0]
    if divisors:
        return min(divisors, key=lambda b: (abs(b - RBLOCK_TARGET), b))
    return RBLOCK_TARGET


def _same_resolution(e: Any) -> bool:
    """Every dimension of the edge's footprint moves one for one with a consumer loop (or not at all)."""
    return all(lo.affine and hi.affine and lo.coeff in (0, 1) and hi.coeff in (0, 1) for lo, hi in e.bounds)


def is_stencil_edge(e: Any) -> bool:
    """The consumer reads the producer at its own resolution over a small window: 1 to STENCIL_HALO
    more points than it computes, one for one, in some dimension."""
    return _same_resolution(e) and any(lo.coeff == 1 and 1 <= hi.constant - lo.constant <= STENCIL_HALO
                                       for lo, hi in e.bounds)


def _stencil_above(dag: FunctionDAG) -> set[int]:
    """Funcs with a stencil above them at their own resolution: a pure stage (no RVars) reading a
    computed Func over a small window (1 to STENCIL_HALO more points than it computes, one for one
    in some dimension), directly or through producers read at the same resolution. Only those get
    sub-tiled task grids (``OuterTile.sub``): sub-tiles are what a stencil's producers are computed
    at. Elsewhere (matrix products, pointwise chains, the full-resolution side of a resampling, as
    bilateral_grid's output above its coarse grid: 29 -> 57 ms) the extra choices misled the beam."""
    direct: set[int] = set()
    for n in dag.nodes:
        for st in n.stages:
            if st.rvar_loops:
                continue
            for e in st.incoming_edges:
                if not e.producer.is_input and is_stencil_edge(e):
                    direct.add(n.index)
    memo: dict[int, bool] = {}

    def above(n: Node) -> bool:
        if n.index not in memo:
            memo[n.index] = False
            memo[n.index] = n.index in direct or any(
                above(e.producer) for st in n.stages for e in st.incoming_edges
                if not e.producer.is_input and _same_resolution(e))
        return memo[n.index]

    return {n.index for n in dag.nodes if not n.is_input and above(n)}


def _input_sensitive(dag: FunctionDAG) -> set[int]:
    """Funcs whose region, when it grows, makes some input buffer be read over a larger region:
    rounding their loops up (TailStrategy::RoundUp) could read past the end of an input."""
    memo: dict[int, bool] = {}

    def varies(e: Any) -> bool:
        st = e.consumer
        lb = st.loop_bounds
        grown = tuple(b if l.rvar else Span(b.min - 64, b.max + 64) for l, b in zip(st.loops, lb))
        return bool(e.footprint(lb) != e.footprint(grown))

    def sens(n: Node) -> bool:
        if n.index in memo:
            return memo[n.index]
        memo[n.index] = False
        hit = any(varies(e) and (e.producer.is_input or sens(e.producer))
                  for st in n.stages for e in st.incoming_edges)
        memo[n.index] = hit
        return hit

    return {n.index for n in dag.nodes if not n.is_input and sens(n)}


@dataclass
class _Tables:
    """The mutable-by-copy contents of a state (copied shallowly for each child)."""

    place: dict[int, Place] = field(default_factory=dict)
    region: dict[int, tuple[Box, tuple[Box, ...]]] = field(default_factory=dict)
    inner: dict[tuple[int, int], Union[InnerTile, Kernel]] = field(default_factory=dict)
    outer: dict[tuple[int, int], OuterTile] = field(default_factory=dict)
    plans: dict[tuple[int, int], StagePlan] = field(default_factory=dict)
    required: dict[tuple[int, Site], Box] = field(default_factory=dict)
    rfactor: dict[tuple[int, int], RFactor] = field(default_factory=dict)
    layout: dict[int, Layout] = field(default_factory=dict)                 # Func -> Layout
    wraps: dict[tuple[int, int], Wrap] = field(default_factory=dict)       # (producer, consumer) -> Wrap

    def copy(self) -> "_Tables":
        t = _Tables(dict(self.place), dict(self.region), dict(self.inner), dict(self.outer),
                    dict(self.plans), dict(self.required), dict(self.rfactor))
        t.layout, t.wraps = dict(self.layout), dict(self.wraps)
        return t


def _copies_an_input(node: Node) -> bool:
    """A single-stage, non-output Func whose one value is an input Func at its own pure args."""
    edges = node.stages[0].incoming_edges if len(node.stages) == 1 else []
    return (node.is_wrapper and not node.is_output and bool(edges)
            and all(e.producer.is_input for e in edges))


class State:
    """A (partial) schedule: the decisions made so far and what they imply.

    Introspection for the featurizer and the search: ``placement(f)``, ``plan(f, s)`` (loops with
    extents), ``region(f)`` / ``stage_bounds(f, s)`` at the Func's compute site, ``sites(f)``,
    ``path_to_site(f)``, ``stage_path(f, s)``, ``realizations(f)``, ``required_at(f, site)``.
    """

    __slots__ = ("space", "decisions", "slot", "_t", "derived", "parent_derived")

    def __init__(self, space: SearchSpace, decisions: tuple[Decision, ...],
                 slot: Optional[tuple[str, int, int]], tables: _Tables) -> None:
        self.space = space
        self.decisions = decisions
        self.slot = slot
        self._t = tables
        # what the features derived from this state, by name (``features.featurizer``: "features";
        # ``features.kernel_terms``: "factors"), and the parent's dict: a child differs from its
        # parent in one decision, so most of what was derived from the parent carries over
        self.derived: Optional[dict[str, Any]] = None
        self.parent_derived: Optional[dict[str, Any]] = None

    # ---------------------------------------------------------------- constructors
    @classmethod
    def initial(cls, dag: FunctionDAG, target: Union[str, Any, None] = None,
                parallelism: Optional[int] = None) -> "State":
        return cls.from_space(SearchSpace(dag, target, parallelism))

    @classmethod
    def from_space(cls, space: SearchSpace) -> "State":
        slot = (SLOT_PLACE, space.order[0], -1) if space.order else None
        return cls(space, (), slot, _Tables())

    @classmethod
    def from_trace(cls, dag: FunctionDAG, trace: Iterable[Union[Decision, dict[str, Any]]],
                   target: Union[str, Any, None] = None, parallelism: Optional[int] = None) -> "State":
        """Replay ``trace`` (decisions or their dicts) from the initial state; each is checked."""
        state = cls.initial(dag, target, parallelism)
        for d in trace:
            state = state.apply(decision_from_dict(d) if isinstance(d, dict) else d)
        return state

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "target": str(self.space.target),
                           "parallelism": self.space.parallelism, "pipeline": self.space.pipeline_hash,
                           "decisions": [d.to_dict() for d in self.decisions]})

    @classmethod
    def from_json(cls, dag: FunctionDAG, text: str, target: Union[str, Any, None] = None,
                  check_pipeline: bool = True) -> "State":
        """Rebuild a state from ``to_json`` text; the pipeline must hash the same unless
        ``check_pipeline`` is False (e.g. the same algorithm built at other sizes)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ScheduleError(f"state JSON does not parse: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ScheduleError(f"not a search-state JSON (expected format '{FORMAT}')")
        space = SearchSpace(dag, target if target is not None else data.get("target"),
                            data.get("parallelism"))
        if check_pipeline and data.get("pipeline") not in (None, space.pipeline_hash):
            raise ScheduleError("the state JSON was recorded for another pipeline (canonical hash differs); "
                                "pass check_pipeline=False to replay it on this one anyway")
        state = cls.from_space(space)
        for d in data.get("decisions", []):
            state = state.apply(decision_from_dict(d))
        return state

    # ---------------------------------------------------------------- progress
    @property
    def is_complete(self) -> bool:
        return self.slot is None

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, State) and self.decisions == other.decisions
                and str(self.space.target) == str(other.space.target))

    def __hash__(self) -> int:
        return hash(self.decisions)

    def __repr__(self) -> str:
        nxt = "complete" if self.slot is None else f"next {self.slot[0]} of func {self.slot[1]}"
        return f"State({len(self.decisions)} decisions, {nxt})"

    # ---------------------------------------------------------------- introspection
    def placement(self, f: int) -> Optional[Place]:
        return self._t.place.get(f)

    def is_inlined(self, f: int) -> bool:
        p = self._t.place.get(f)
        return p is not None and p.where == WHERE_INLINE

    def inner(self, f: int, s: int) -> Optional[Union[InnerTile, Kernel]]:
        return self._t.inner.get((f, s))

    def rfactor(self, f: int, s: int) -> Optional[RFactor]:
        """The RFactor decision of stage ``s`` of ``f``, None if the stage has none."""
        return self._t.rfactor.get((f, s))

    def outer(self, f: int, s: int) -> Optional[OuterTile]:
        return self._t.outer.get((f, s))

    def layout(self, f: int) -> Optional[Layout]:
        """The Layout decision of Func ``f`` (CPU), None if it has none."""
        return self._t.layout.get(f)

    def wraps(self) -> dict[tuple[int, int], Wrap]:
        """Every Wrap decision, keyed by (producer, consumer) (CPU); do not modify."""
        return self._t.wraps

    def plan(self, f: int, s: int) -> Optional[StagePlan]:
        return self._t.plans.get((f, s))

    def region(self, f: int) -> Box:
        """Region computed by one realization of Func ``f`` (per iteration of its compute site)."""
        return self._t.region[f][0]

    def stage_bounds(self, f: int, s: int) -> Box:
        """Loop spans (``stage.loops`` order) of one realization of stage ``s`` of ``f``."""
        return self._t.region[f][1][s]

    def site_loops(self, f: int, s: int) -> list[LoopRef]:
        """Loops of a scheduled stage a producer may be computed at, outermost first. On GPU: the
        innermost block loop, the innermost thread loop and the serial loops inside the threads
        (none for an RFactor stage)."""
        plan = self._t.plans[(f, s)]
        if plan.rfactor is not None:
            return []   # its producers are read by the rfactor intermediate, computed at root
        if plan.gpu:
            return self._gpu_site_loops(f, s, plan)
        out: list[LoopRef] = []
        for l in reversed(plan.loops):
            if l.level == LEVEL_RVAR:
                break   # loops inside a reduction block loop (``OuterTile.rblock``) see part of the RVar
            if l.level in SITE_LEVELS:
                out.append(LoopRef(f, s, l.level, -1 if l.level == LEVEL_PARALLEL else l.dim))
        return out

    def _gpu_site_loops(self, f: int, s: int, plan: StagePlan) -> list[LoopRef]:
        if plan.rfactor is not None:
            return []
        out: list[LoopRef] = []
        blocks = [l for l in plan.loops if l.level == LEVEL_BLOCK]
        threads = [l for l in plan.loops if l.level == LEVEL_THREAD]
        if blocks:
            out.append(LoopRef(f, s, LEVEL_BLOCK, blocks[0].dim))
        if threads:
            out.append(LoopRef(f, s, LEVEL_THREAD, threads[0].dim))
        serial = (LEVEL_INNER,) if plan.gpu in (GPU_KERNEL, GPU_BLOCK) else (LEVEL_INNER, LEVEL_OUTER)
        out.extend(LoopRef(f, s, l.level, l.dim) for l in reversed(plan.loops) if l.level in serial)
        return out

    # ---------------------------------------------------------------- GPU introspection
    def gpu_level(self, f: int) -> str:
        """Where a placed, non-inlined Func runs on GPU: ``root`` (its own kernels), ``block`` (at a
        kernel's block loop: shared memory) or ``thread`` (inside a thread: registers / local)."""
        p = self._t.place[f]
        if p.where != WHERE_AT:
            return "root"
        assert p.at is not None
        return "block" if p.at.level == LEVEL_BLOCK else "thread"

    def kernel_members(self, ref: LoopRef) -> list[StagePlan]:
        """Plans of the kernel whose innermost block loop is ``ref``: the root stage and the
        (tiled) stages of the Funcs computed at that loop."""
        plans = [self._t.plans[(ref.func, ref.stage)]]
        for g, p in self._t.place.items():
            if p.where == WHERE_AT and p.at == ref:
                for s in range(len(self.space.node(g).stages)):
                    plan = self._t.plans.get((g, s))
                    if plan is not None:
                        plans.append(plan)
        return plans

    def shared_bytes(self, ref: LoopRef, extra: int = 0) -> int:
        """Bytes of the Funcs stored at block loop ``ref`` (shared memory), plus ``extra``."""
        total = extra
        for g, p in self._t.place.items():
            if p.where == WHERE_AT and p.at == ref and g in self._t.region:
                total += box_points(self._t.region[g][0]) * self.space.node(g).bytes_per_point
        return total

    def enclosing_iterations(self, f: int) -> int:
        """How many times Func ``f``'s compute site is entered: the product of every loop (GPU
        block and thread loops included) outside and at the site, up to the root."""
        p = self._t.place.get(f)
        if p is None or p.where != WHERE_AT:
            return 1
        assert p.at is not None
        plan = self._t.plans[(p.at.func, p.at.stage)]
        at = plan.loops.index(plan.loop(p.at.level, p.at.dim))
        n = 1
        for l in plan.loops[at:]:
            n *= max(l.extent, 1)
        return n * self.enclosing_iterations(p.at.func)

    def path_to_site(self, f: int) -> tuple[LoopRef, ...]:
        """The loops enclosing Func ``f``'s compute site, outermost first (empty at root)."""
        p = self._t.place[f]
        if p.where != WHERE_AT:
            return ()
        assert p.at is not None
        loops = self.site_loops(p.at.func, p.at.stage)
        return self.path_to_site(p.at.func) + tuple(loops[:loops.index(p.at) + 1])

    def stage_path(self, f: int, s: int) -> tuple[LoopRef, ...]:
        return self.path_to_site(f) + tuple(self.site_loops(f, s))

    def loop_extent(self, ref: LoopRef) -> int:
        plan = self._t.plans[(ref.func, ref.stage)]
        return plan.loop(ref.level, ref.dim).extent

    def realizations(self, f: int) -> int:
        """How many times Func ``f`` is computed (product of the loop extents around its site)."""
        n = 1
        for ref in self.path_to_site(f):
            n *= self.loop_extent(ref)
        return n

    def consumer_stages(self, f: int) -> list[tuple[int, int]]:
        """(func, stage) of every non-inlined stage that uses ``f``, through inlined Funcs too."""
        out: list[tuple[int, int]] = []
        for e in self.space.node(f).outgoing_edges:
            c = e.consumer.node.index
            if self.is_inlined(c):
                subs = self.consumer_stages(c)
            else:
                subs = [(c, e.consumer.index)]
            for st in subs:
                if st not in out:
                    out.append(st)
        return out

    def sites(self, f: int) -> list[LoopRef]:
        """Loops Func ``f`` may be computed at: those enclosing every use (outermost first)."""
        node = self.space.node(f)
        if node.is_output:
            return []
        paths = [self.stage_path(c, s) for c, s in self.consumer_stages(f)]
        if not paths:
            return []
        common: list[LoopRef] = []
        for refs in zip(*paths):
            if any(r != refs[0] for r in refs):
                break
            common.append(refs[0])
        return common

    def non_placing_change(self) -> Optional[tuple[int, int]]:
        """The Funcs the last decision decided, when it places no Func (``NON_PLACING_TYPES``): a
        Wrap's producer and consumer, else the Func twice. None after a Place or at the start.
        What was derived from the parent (``parent_derived``) and reads neither holds here too."""
        if not self.decisions:
            return None
        last = self.decisions[-1]
        if isinstance(last, Wrap):
            return (last.func, last.consumer)
        return (last.func, last.func) if isinstance(last, NON_PLACING_TYPES) else None

    def inline_calls(self, f: int, known: Optional[dict[int, dict[tuple[int, int], int]]] = None
                     ) -> dict[tuple[int, int], int]:
        """Calls to ``f`` per point of each non-inlined consumer stage if ``f`` were inlined.
        ``known``: the calls of inlined consumers already worked out (the featurizer walks Funcs
        consumers first and passes what it has, instead of recursing through them again)."""
        total: dict[tuple[int, int], int] = {}
        for e in self.space.node(f).outgoing_edges:
            c = e.consumer.node.index
            if self.is_inlined(c):
                via = known.get(c) if known is not None else None
                for key, n in (via if via is not None else self.inline_calls(c, known)).items():
                    total[key] = total.get(key, 0) + e.calls * n
            else:
                key = (c, e.consumer.index)
                total[key] = total.get(key, 0) + e.calls
        return total

    def _unrolled(self, f: int, s: int) -> int:
        inner = self._t.inner.get((f, s))
        n = 1
        for _, k in (inner.unroll if inner is not None else ()):
            n *= k
        return n

    def _inline_fits(self, f: int) -> bool:
        """Adams2019's code-size prune (at most INLINE_CALL_LIMIT inlined calls per point of a
        consumer stage), tightened for unrolled stages: at most UNROLLED_INLINE_LIMIT inlined calls
        times unrolled copies (inlined loads times unrolled vectors is what makes LLVM slow)."""
        new = self.inline_calls(f)
        if not new:
            return True
        total: dict[tuple[int, int], int] = {}
        for q, p in self._t.place.items():
            if p.where == WHERE_INLINE:
                for key, n in self.inline_calls(q).items():
                    total[key] = total.get(key, 0) + n
        for key, n in new.items():
            calls, copies = total.get(key, 0) + n, self._unrolled(*key)
            if calls > INLINE_CALL_LIMIT or (copies > 1 and calls * copies > UNROLLED_INLINE_LIMIT):
                return False
        return True

    # ---------------------------------------------------------------- bounds
    def required_at(self, f: int, site: Site) -> Box:
        """Region of ``f`` that one iteration of loop ``site`` (None: the whole pipeline) needs,
        at the estimates. Consumers must be scheduled; the first tile stands for every tile."""
        key = (f, site)
        hit = self._t.required.get(key)
        if hit is not None:
            return hit
        node = self.space.node(f)
        req: Optional[list[Span]] = list(node.estimated_region) if (node.is_output and node.estimated_region) else None
        for e in node.outgoing_edges:
            st = e.consumer
            c = st.node.index
            if self.is_inlined(c):
                loops = st.loop_for_region(self.required_at(c, site))
            elif site is not None and site.func == c:
                if site.stage != st.index:
                    raise AssertionError(f"stage {st.name} is not inside loop {site}")
                loops = self._loop_box_at(site)
            else:
                _, per_stage = st.node.stage_regions(self.required_at(c, site))
                loops = per_stage[st.index]
            fp = e.footprint(loops)
            req = list(fp) if req is None else [a.union(b) for a, b in zip(req, fp)]
        if req is None:
            req = list(node.estimated_region or node.region_required)
        out = tuple(req)
        self._t.required[key] = out
        return out

    def _loop_box_at(self, ref: LoopRef) -> Box:
        """Loop spans of stage (ref.func, ref.stage) for one iteration of loop ``ref``."""
        plan = self._t.plans[(ref.func, ref.stage)]
        bounds = self._t.region[ref.func][1][ref.stage]
        st = self.space.stage(ref.func, ref.stage)
        at = plan.loops.index(plan.loop(ref.level, ref.dim))
        out: list[Span] = []
        for j, l in enumerate(st.loops):
            b = bounds[j]
            if l.rvar:
                out.append(b)
                continue
            mine = [(i, lp) for i, lp in enumerate(plan.loops) if lp.covers_dim(l.pure_dim)]
            if not any(i >= at for i, _ in mine):
                out.append(b)
                continue
            size = 1
            for i, lp in mine:
                if i < at:
                    size *= max(lp.tile_extent, 1)
            out.append(Span(b.min, min(b.max, b.min + size - 1)))
        return tuple(out)

    # ---------------------------------------------------------------- decisions
    def apply(self, d: Decision) -> "State":
        """The state after decision ``d``; raises IllegalDecisionError if it is not legal here."""
        if isinstance(d, (Layout, Wrap)):   # optional; they do not move the slot (``layout.py``)
            return layout_rules.apply_layout_decision(self, d)
        if self.slot is None:
            raise IllegalDecisionError(f"the state is complete; no decision expected, got {d}")
        kind, f, s = self.slot
        if isinstance(d, Place):
            if kind != SLOT_PLACE or d.func != f:
                raise IllegalDecisionError(f"expected the {kind} decision of func {f} stage {s}, got {d}")
            return self._apply_place(d)
        if isinstance(d, (InnerTile, Kernel)):
            if kind != SLOT_INNER or d.func != f or d.stage != s:
                raise IllegalDecisionError(f"expected the {kind} decision of func {f} stage {s}, got {d}")
            return self._apply_inner(d)
        if isinstance(d, RFactor):
            if kind != SLOT_INNER or d.func != f or d.stage != s:
                raise IllegalDecisionError(f"expected the {kind} decision of func {f} stage {s}, got {d}")
            return self._apply_rfactor(d)
        if isinstance(d, OuterTile):
            if kind != SLOT_OUTER or d.func != f or d.stage != s:
                raise IllegalDecisionError(f"expected the {kind} decision of func {f} stage {s}, got {d}")
            return self._apply_outer(d)
        raise IllegalDecisionError(f"not a decision: {d!r}")

    def _next_place_slot(self, f: int) -> Optional[tuple[str, int, int]]:
        nxt = self.space._next_func[f]
        return None if nxt is None else (SLOT_PLACE, nxt, -1)

    def _child(self, d: Decision, slot: Optional[tuple[str, int, int]], t: _Tables) -> "State":
        child = State(self.space, self.decisions + (d,), slot, t)
        if self.derived is None:
            self.derived = {}         # shared with the children: what is derived later shows there too
        child.parent_derived = self.derived
        return child

    def _apply_place(self, d: Place) -> "State":
        f = d.func
        node = self.space.node(f)
        if d.where not in WHERES:
            raise IllegalDecisionError(f"unknown placement '{d.where}'; one of {list(WHERES)}")
        if node.is_output and d.where != WHERE_ROOT:
            raise IllegalDecisionError(f"output Func {node.name} must be compute_root")
        if d.where != WHERE_AT and (d.at is not None or d.store_at is not None):
            raise IllegalDecisionError(f"a '{d.where}' placement takes no loop: {d}")
        if d.where == WHERE_INLINE and len(node.stages) != 1:
            raise IllegalDecisionError(f"Func {node.name} has update stages and cannot be inlined")
        if d.where != WHERE_ROOT and any(p == f for p, _ in self._t.wraps):
            raise IllegalDecisionError(f"Func {node.name} is read through a wrapper (Wrap) computed at root: it "
                                       f"must be compute_root too, not '{d.where}': {d}")
        site: Site = None
        if d.where == WHERE_AT:
            sites = self.sites(f)
            if d.at is None or d.at not in sites:
                raise IllegalDecisionError(
                    f"Func {node.name} cannot be computed at {d.at}: not a loop enclosing all its uses "
                    f"(legal: {sites})")
            site = d.at
            if d.store_at is not None and self.space.gpu:
                raise IllegalDecisionError(f"Func {node.name} cannot be stored at {d.store_at}: no sliding "
                                           "windows on GPU targets")
            if d.store_at is not None:
                why = self._sliding_problem(f, d.at, d.store_at)
                if why:
                    raise IllegalDecisionError(f"Func {node.name} cannot be stored at {d.store_at}: {why}")
        t = self._t.copy()
        t.place[f] = d
        if d.where == WHERE_INLINE:
            return self._child(d, self._next_place_slot(f), t)
        child = self._child(d, (SLOT_INNER, f, 0), t)
        req = child.required_at(f, site)
        computed, loops = node.stage_regions(req)
        t.region[f] = (computed, tuple(loops))
        if self.space.gpu and site is not None:
            why = self._gpu_place_problem(f, site, computed, loops)
            if why:
                raise IllegalDecisionError(f"Func {node.name} cannot be computed at {site}: {why}")
        return child

    def _gpu_place_problem(self, f: int, site: LoopRef, computed: Box, loops: Sequence[Box]) -> str:
        """Why Func ``f`` may not be computed at GPU site ``site`` with this region ('' if it may)."""
        node = self.space.node(f)
        nbytes = box_points(computed) * node.bytes_per_point
        if site.level == LEVEL_BLOCK:
            for st, box in zip(node.stages, loops):
                if not any(box[j].extent >= 2 for j, l in enumerate(st.loops) if not l.rvar):
                    return (f"at block level a Func is computed by the block's threads, and stage {st.name} "
                            "has no pure loop of extent >= 2 there")
            used = self.shared_bytes(site, nbytes)
            if used > gpu_rules.SHARED_MEMORY_BUDGET:
                return (f"the block's shared memory would hold {used} bytes > "
                        f"{gpu_rules.SHARED_MEMORY_BUDGET} (SHARED_MEMORY_BUDGET)")
        elif nbytes > gpu_rules.LOCAL_MEMORY_LIMIT:
            return f"each thread would allocate {nbytes} bytes > {gpu_rules.LOCAL_MEMORY_LIMIT} of local memory"
        return ""

    def _sliding_problem(self, f: int, at: LoopRef, store: LoopRef) -> str:
        """Why Func ``f`` computed at ``at`` may not be stored at ``store`` ('' if it may)."""
        if self.space.gpu:
            return "no sliding windows on GPU targets"
        if len(self.space.node(f).stages) != 1:
            return "sliding windows need a single-stage Func"
        if (store.func, store.stage) != (at.func, at.stage):
            return "store and compute loops must belong to the same consumer stage"
        loops = self.site_loops(at.func, at.stage)
        if at not in loops or store not in loops or loops.index(store) != loops.index(at) - 1:
            return "the store loop must be the site loop right outside the compute loop"
        if at.level == LEVEL_PARALLEL:
            return "storage outside a parallel loop would be shared between threads"
        inner = self._t.inner.get((at.func, at.stage))
        if inner is not None and inner.vector_dim == at.dim and inner.vector_width > 1:
            return "the window would slide along the consumer's vector dimension"
        if self.required_at(f, store) == self.required_at(f, at):
            return "its region does not move along the compute loop (nothing to slide)"
        if any(p.store_at == store for g, p in self._t.place.items() if g != f):
            return "another Func already slides over this loop (Halide then gets both windows wrong)"
        if self.space.tail[f] != TAIL_ROUND_UP:
            return ("a larger region of it reads its input buffers further, and Halide warms a sliding "
                    "window up by computing rows before the first one")
        return ""

    def _extents(self, f: int, s: int) -> dict[int, int]:
        st = self.space.stage(f, s)
        bounds = self._t.region[f][1][s]
        return {l.pure_dim: max(bounds[j].extent, 1) for j, l in enumerate(st.loops) if not l.rvar}

    def _check_unroll(self, d: Union[InnerTile, Kernel], dims: Sequence[int]) -> None:
        seen: set[int] = set()
        prod = 1
        for dim, k in d.unroll:
            if dim not in dims or dim in seen:
                raise IllegalDecisionError(f"unroll of dimension {dim} which is not a (distinct) pure loop "
                                           f"of the stage (pure dims {list(dims)}): {d}")
            if k < 2:
                raise IllegalDecisionError(f"unroll factors must be >= 2: {d}")
            seen.add(dim)
            prod *= k
        limit = self.space.unroll_limit
        if prod > limit:
            raise IllegalDecisionError(f"unrolled extents multiply to {prod} > {limit}: {d}")

    def _apply_inner(self, d: Union[InnerTile, Kernel]) -> "State":
        f, s = d.func, d.stage
        st = self.space.stage(f, s)
        dims = self.space.pure_dims(f, s)
        has_r = bool(st.rvar_loops)
        if d.vector_dim is not None and d.vector_dim not in dims:
            raise IllegalDecisionError(f"dimension {d.vector_dim} is not a pure loop of {st.name} "
                                       f"(pure dims {dims}); RVars are never vectorised")
        if d.vector_width < 1:
            raise IllegalDecisionError(f"vector width must be >= 1: {d}")
        if self.space.gpu and d.vector_width != 1:
            raise IllegalDecisionError(f"nothing is vectorised on a GPU target (threads take the lanes); "
                                       f"vector_width must be 1: {d}")
        self._check_unroll(d, dims)
        if isinstance(d, Kernel):
            if not has_r:
                raise IllegalDecisionError(f"a Kernel needs a stage with RVars; {st.name} has none")
            if d.vector_dim is None or not d.unroll:
                raise IllegalDecisionError(f"a Kernel needs a vector dimension and a register tile: {d}")
        elif has_r and d.unroll:
            raise IllegalDecisionError(f"{st.name} has RVars: unrolling a register tile around them "
                                       "is the Kernel decision")
        t = self._t.copy()
        t.inner[(f, s)] = d
        return self._child(d, (SLOT_OUTER, f, s), t)

    def _apply_rfactor(self, d: RFactor) -> "State":
        f, s = d.func, d.stage
        node = self.space.node(f)
        st = self.space.stage(f, s)
        if not self.space.gpu and d.atomic:
            raise IllegalDecisionError(f"atomic() is for GPU targets only: on CPU the partial results of "
                                       f"an rfactor are combined serially (use atomic=False): {d}")
        if self._t.place[f].where != WHERE_ROOT:
            raise IllegalDecisionError(f"only root Funcs' updates are rfactored (the intermediate is computed "
                                       f"at root: a kernel of its own on GPU): {d}")
        op, why = gpu_rules.reduction_problem(node, st)
        if why:
            raise IllegalDecisionError(f"{st.name} cannot be rfactored: {why}")
        rext = self.rvar_extents(f, s)
        if not 0 <= d.rvar < len(rext):
            raise IllegalDecisionError(f"{st.name} has {len(rext)} RVars; no RVar number {d.rvar}: {d}")
        if not 2 <= d.factor <= rext[d.rvar]:
            raise IllegalDecisionError(f"rfactor factor {d.factor} must be between 2 and the RVar's extent "
                                       f"{rext[d.rvar]}: {d}")
        if d.atomic:
            why = gpu_rules.atomic_problem(node, st, op)
            if why:
                raise IllegalDecisionError(f"{st.name} cannot combine its partial results with atomic(): {why}")
        t = self._t.copy()
        t.rfactor[(f, s)] = d
        bounds = self._t.region[f][1][s]
        t.plans[(f, s)] = plan_rfactor(node, st, d, bounds) if self.space.gpu else plan_cpu_rfactor(
            node, st, d, bounds, self.space.vector_width[st.id], self.space.parallelism)
        slot = (SLOT_INNER, f, s + 1) if s + 1 < len(node.stages) else self._next_place_slot(f)
        return self._child(d, slot, t)

    def _register(self, inner: Union[InnerTile, Kernel]) -> dict[int, int]:
        dims = self.space.pure_dims(inner.func, inner.stage)
        u = dict(inner.unroll)
        return {d: u.get(d, 1) * (inner.vector_width if d == inner.vector_dim else 1) for d in dims}

    def _apply_outer(self, d: OuterTile) -> "State":
        f, s = d.func, d.stage
        st = self.space.stage(f, s)
        dims = self.space.pure_dims(f, s)
        inner = self._t.inner[(f, s)]
        reg = self._register(inner)
        seen: set[int] = set()
        for dim, size in d.tiles:
            if dim not in dims or dim in seen:
                raise IllegalDecisionError(f"tile of dimension {dim} which is not a (distinct) pure loop of "
                                           f"{st.name} (pure dims {dims}); RVars are never tiled")
            if size < 1 or size % reg[dim] != 0:
                raise IllegalDecisionError(f"tile extent {size} of dimension {dim} is not a multiple of its "
                                           f"register tile {reg[dim]}")
            seen.add(dim)
        if d.parallel:
            if self._t.place[f].where != WHERE_ROOT and not self.space.gpu:
                raise IllegalDecisionError(f"only root Funcs get parallel task loops: {d}")
            if not d.tiles:
                raise IllegalDecisionError(f"a parallel OuterTile needs at least one tiled dimension: {d}")
        if d.sub:
            self._check_sub(d, dims, reg)
        if d.rblock:
            self._check_rblock(d, inner)
        mode = self._gpu_mode(d) if self.space.gpu else ""
        t = self._t.copy()
        t.outer[(f, s)] = d
        node = self.space.node(f)
        # a sliding window's storage may be folded: rounding its loops up would overwrite live rows
        tail = TAIL_GUARD if self._t.place[f].store_at is not None else self.space.tail[f]
        plan = plan_stage(node, st, self.space.bases[f], inner, d, tail, self._t.region[f][1][s], mode)
        if mode:
            self._check_gpu_plan(d, plan)
        t.plans[(f, s)] = plan
        slot = (SLOT_INNER, f, s + 1) if s + 1 < len(node.stages) else self._next_place_slot(f)
        return self._child(d, slot, t)

    def rvar_extents(self, f: int, s: int) -> list[int]:
        """Extents of stage ``s`` of ``f``'s RVars at its compute site, innermost first."""
        st = self.space.stage(f, s)
        return [max(b.extent, 1) for l, b in zip(st.loops, self._t.region[f][1][s]) if l.rvar]

    def rblock_extent(self, f: int, s: int) -> int:
        """Extent of the outermost RVar of stage ``s`` of ``f`` (the one ``OuterTile.rblock`` cuts)."""
        rext = self.rvar_extents(f, s)
        return rext[-1] if rext else 0

    def _check_rblock(self, d: OuterTile, inner: Union[InnerTile, Kernel]) -> None:
        """Reduction blocks (``OuterTile.rblock``): CPU, a Kernel update of a root Func with a
        parallel task grid; blocks of at least 2 steps, fewer than the RVar's extent."""
        f = d.func
        if self.space.gpu or not d.parallel or not isinstance(inner, Kernel) or \
                self._t.place[f].where != WHERE_ROOT:
            raise IllegalDecisionError(f"reduction blocks belong to the Kernel update of a root Func with "
                                       f"parallel tasks, on CPU: {d}")
        ext = self.rblock_extent(f, d.stage)
        if not 2 <= d.rblock < ext:
            raise IllegalDecisionError(f"reduction block {d.rblock} must be at least 2 and below the "
                                       f"outermost RVar's extent {ext}: {d}")

    def _check_sub(self, d: OuterTile, dims: Sequence[int], reg: dict[int, int]) -> None:
        """Sub-tiles (``OuterTile.sub``): CPU, parallel root stages; each a multiple of the register
        tile that divides the task tile (or is smaller than the extent of an untiled dimension)."""
        if self.space.gpu or not d.parallel:
            raise IllegalDecisionError(f"sub-tiles are a serial level inside the parallel tasks of a root "
                                       f"stage on CPU: {d}")
        tiles = dict(d.tiles)
        extents = self._extents(d.func, d.stage)
        seen: set[int] = set()
        for dim, size in d.sub:
            if dim not in dims or dim in seen:
                raise IllegalDecisionError(f"sub-tile of dimension {dim} which is not a (distinct) pure loop "
                                           f"(pure dims {list(dims)}): {d}")
            seen.add(dim)
            span = tiles.get(dim, extents[dim])
            if size < 1 or size % reg[dim] != 0 or size >= span or (dim in tiles and span % size != 0):
                raise IllegalDecisionError(
                    f"sub-tile extent {size} of dimension {dim} must be a multiple of its register tile "
                    f"{reg[dim]}, smaller than {'its task tile' if dim in tiles else 'its extent'} {span}"
                    f"{' and divide it' if dim in tiles else ''}: {d}")

    def _gpu_mode(self, d: OuterTile) -> str:
        """The GPU context of the stage ``d`` tiles (``plan.GPU_*``), or IllegalDecisionError."""
        level = self.gpu_level(d.func)
        name = self.space.stage(d.func, d.stage).name
        if level == "root":
            if d.parallel:
                if len(d.tiles) > gpu_rules.MAX_GPU_DIMS:
                    raise IllegalDecisionError(f"a GPU kernel has at most {gpu_rules.MAX_GPU_DIMS} block "
                                               f"dimensions; {len(d.tiles)} tiled: {d}")
                return GPU_KERNEL
            if d.tiles:
                raise IllegalDecisionError(f"root stage {name} on a GPU target: its outer tiles must be the "
                                           f"kernel's gpu_blocks (parallel=True); serial tiles would run on "
                                           f"the host: {d}")
            return GPU_SINGLE
        if level == "block":
            if not d.parallel or not d.tiles:
                raise IllegalDecisionError(f"{name} is computed at a block loop (shared memory) by the block's "
                                           f"threads: it needs parallel=True and tiled dimensions: {d}")
            if len(d.tiles) > gpu_rules.MAX_GPU_DIMS:
                raise IllegalDecisionError(f"at most {gpu_rules.MAX_GPU_DIMS} thread dimensions; "
                                           f"{len(d.tiles)} tiled: {d}")
            return GPU_BLOCK
        if d.parallel:
            raise IllegalDecisionError(f"{name} is computed inside a GPU thread: its loops are serial "
                                       f"(no gpu_blocks / gpu_threads inside a thread): {d}")
        return GPU_SERIAL

    def _check_gpu_plan(self, d: OuterTile, plan: StagePlan) -> None:
        threads = plan.threads
        if plan.gpu == GPU_KERNEL:
            if gpu_rules.total_threads(threads) > gpu_rules.MAX_THREADS:
                raise IllegalDecisionError(f"{gpu_rules.total_threads(threads)} threads per block > "
                                           f"{gpu_rules.MAX_THREADS}: {d}")
            if any(b > MAX_GRID_YZ for b in plan.blocks[1:]):
                raise IllegalDecisionError(f"grid {plan.blocks}: CUDA allows at most {MAX_GRID_YZ} blocks in "
                                           f"the y and z dimensions: {d}")
        elif plan.gpu == GPU_BLOCK:
            if not threads:
                raise IllegalDecisionError(f"a Func at block level needs at least one thread loop (a tile "
                                           f"larger than its register tile): {d}")
            at = self._t.place[d.func].at
            assert at is not None
            merged = gpu_rules.kernel_threads(self.kernel_members(at) + [plan])
            if gpu_rules.total_threads(merged) > gpu_rules.MAX_THREADS:
                raise IllegalDecisionError(f"the kernel would launch {merged} = {gpu_rules.total_threads(merged)} "
                                           f"threads per block > {gpu_rules.MAX_THREADS}: {d}")

    # ---------------------------------------------------------------- search
    def _inline_and_root(self, f: int) -> list[Decision]:
        """The placements every target offers first: root only for an output; otherwise inline (a
        single-stage Func whose inlined calls stay within the limits) and root."""
        node = self.space.node(f)
        if node.is_output:
            return [Place(f, WHERE_ROOT)]
        opts: list[Decision] = []
        if len(node.stages) == 1 and self._inline_fits(f):
            opts.append(Place(f, WHERE_INLINE))
        opts.append(Place(f, WHERE_ROOT))
        return opts

    def _only_inlined_consumers(self, f: int) -> bool:
        """Every Func that reads ``f`` is inlined (all of them are placed: consumers come first)."""
        for e in self.space.node(f).outgoing_edges:
            p = self.placement(e.consumer.node.index)
            if p is None or p.where != WHERE_INLINE:
                return False
        return True

    def options(self) -> list[Decision]:
        """The legal next decisions this search offers (empty when complete)."""
        if self.slot is None:
            return []
        kind, f, s = self.slot
        node = self.space.node(f)
        if self.space.gpu:
            return self._gpu_options(kind, f, s)
        if kind == SLOT_PLACE:
            opts = self._inline_and_root(f)
            if node.is_output or any(p == f for p, _ in self._t.wraps):   # a wrapped Func stays at root
                return [d for d in opts if isinstance(d, Place) and d.where == WHERE_ROOT]
            if f in self.space.input_copies and not self._only_inlined_consumers(f):
                # A plain copy of an input (the Func a boundary condition wraps around an ImageParam)
                # whose consumer is computed somewhere (the clamp copies it again there) only adds a
                # pass over memory: inlined, multi_output ran 16-22%, bilateral_grid 5-7% and
                # stencil_chain 3-4% faster (two A/Bs), each predicted slower. Where every consumer is inlined the
                # copy is the only one and can pay: unsharp's, inlined, ran 2.7x slower.
                inline: list[Decision] = [d for d in opts if isinstance(d, Place) and d.where == WHERE_INLINE]
                if inline:
                    return inline
            # Adams2019's prunes: skip a site where the region does not shrink from the site outside
            # it, or where the Func would be computed more than RECOMPUTE_LIMIT x its root region.
            sites = self.sites(f)
            prev = self.required_at(f, None)
            minimum = box_points(node.stage_regions(prev)[0])
            runs = 1
            for i, ref in enumerate(sites):
                runs *= self.loop_extent(ref)
                req = self.required_at(f, ref)
                shrinks, prev = req != prev, req
                if not shrinks or runs * box_points(node.stage_regions(req)[0]) > RECOMPUTE_LIMIT * max(minimum, 1):
                    continue
                opts.append(Place(f, WHERE_AT, ref))
                if i > 0 and not self._sliding_problem(f, ref, sites[i - 1]):
                    opts.append(Place(f, WHERE_AT, ref, store_at=sites[i - 1]))
            return opts
        st = self.space.stage(f, s)
        dims = self.space.pure_dims(f, s)
        extents = self._extents(f, s)
        if kind == SLOT_INNER:
            inner = list(inner_options(f, s, dims, extents, self.space.vector_width[st.id], node.is_output,
                                       bool(st.rvar_loops)))
            # An update vectorises the dimension its pure stage did: that dimension is stored
            # innermost (``reorder_storage``), and vectors across another one are gathers and
            # scatters (an ae_forward layer ran 5x slower than with no register tile at all).
            first = self._t.inner.get((f, 0))
            if s > 0 and first is not None and first.vector_dim in dims:
                inner = [d for d in inner if d.vector_dim == first.vector_dim] or inner
            if s == 0 and len(node.stages) > 1:
                # ... so the pure stage picks a dimension every update can vectorise too (max_filter's
                # log-doubling scan stored rows innermost and then gathered columns: 8x slower)
                shared = set(dims).intersection(*(self.space.pure_dims(f, u) for u in range(1, len(node.stages))))
                inner = [d for d in inner if d.vector_dim in shared] or inner
            chosen: list[Decision] = list(inner)
            return chosen + self._cpu_rfactor_options(f, s)
        reg = self._register(self._t.inner[(f, s)])
        root = self._t.place[f].where == WHERE_ROOT
        tiles: list[Decision] = list(outer_options(f, s, dims, extents, reg, root, self.space.parallelism,
                                                   sub=f in self.space.stencil_above))
        tiles += self._rblock_options(f, s, tiles)
        return tiles + layout_rules.layout_options(self, f, s)   # optional Layout / Wrap (``layout.py``)

    def _root_outer_slot(self, f: int, s: int) -> Optional[tuple[list[int], dict[int, int], dict[int, int]]]:
        """(pure dims, extents, register tile per dim) of stage (f, s) when the state is at its outer
        slot and ``f`` is root, else None: what the refinements' extra grid menus start from."""
        if self.slot != (SLOT_OUTER, f, s) or self._t.place[f].where != WHERE_ROOT:
            return None
        return self.space.pure_dims(f, s), self._extents(f, s), self._register(self._t.inner[(f, s)])

    def fusion_grid_options(self, f: int, s: int, task_factor: int = 64) -> list[OuterTile]:
        """At ``f``'s outer slot (``s``): parallel task grids with up to ``task_factor`` x
        ``parallelism`` tasks (the menu's 16x, Adams2019's rule, is for a Func computed alone: with
        its root producers computed per task, smaller tasks keep them in cache). For
        ``refine.refine_fusion``."""
        at = self._root_outer_slot(f, s)
        if at is None:
            return []
        dims, extents, reg = at
        return [d for d in outer_options(f, s, dims, extents, reg, True, self.space.parallelism,
                                         task_factor=task_factor) if d.parallel]

    def sub_grid_options(self, f: int, s: int, n_max: int = 48) -> list[OuterTile]:
        """At ``f``'s outer slot (``s``): the parallel task grids of the menu with sub-tiles, up to
        ``n_max`` spread over all of them, and strips one register tile wide (the menu itself
        sub-tiles only the grids with the fewest tasks, and never in strips: both are for
        ``refine.refine_sites``, which places a producer in them; in the beam they only crowded out
        better choices)."""
        at = self._root_outer_slot(f, s)
        if at is None:
            return []
        dims, extents, reg = at
        grids = [d.tiles for d in outer_options(f, s, dims, extents, reg, True, self.space.parallelism)
                 if d.parallel and d.tiles]
        return sub_options(f, s, dims, extents, reg, grids, n_grids=len(grids), n_max=n_max, strips=True)

    def balanced_grid(self, d: OuterTile) -> Optional[OuterTile]:
        """At ``d``'s slot, a root stage's parallel task grid ``d`` (without sub-tiles) with each
        task as few register tiles long as still makes as many tasks (``tilings.balanced_count``),
        when that differs from ``d``; else None. For ``refine.refine_balance``."""
        at = self._root_outer_slot(d.func, d.stage)
        if at is None or not d.parallel or not d.tiles or d.sub:
            return None
        _, extents, reg = at
        tiles = []
        for dim, t in d.tiles:
            r = reg.get(dim, 1)
            if t % r:
                return None
            tiles.append((dim, balanced_count(-(-extents[dim] // r), t // r) * r))
        out = replace(d, tiles=tuple(tiles))
        return None if out == d else out

    def sub_size_options(self, f: int, s: int, grid: Sequence[tuple[int, int]]) -> list[OuterTile]:
        """At ``f``'s outer slot (``s``): the task grid ``grid`` with every sub-tile size of the
        menu's (``tilings.SUB_COUNTS`` register tiles per dimension, not a spread of three), for
        ``refine.refine_sub_tiles``, which re-sizes the sub-tiles producers are computed in."""
        at = self._root_outer_slot(f, s)
        if at is None:
            return []
        dims, extents, reg = at
        return sub_options(f, s, dims, extents, reg, [tuple(grid)], n_grids=1, n_max=10_000,
                           sizes=len(SUB_COUNTS))

    def two_row_tile_options(self, f: int, s: int, vector_dim: int, vector_width: int) -> list[InnerTile]:
        """At ``f``'s inner slot (``s``): register tiles over two non-vector dimensions with the given
        vector, the shapes a reduction's kernel may take (``tilings.two_row_kernels``), as pure-stage
        tiles. Not in the beam's menu (offered to every pure stage they misled it: a pointwise
        stage is priced before the reduction computed in its tile is placed); for
        ``refine.refine_kernels``, which prices them with the reduction in place."""
        if self.slot != (SLOT_INNER, f, s) or vector_dim not in self.space.pure_dims(f, s):
            return []
        dims, extents = self.space.pure_dims(f, s), self._extents(f, s)
        return [InnerTile(k.func, k.stage, k.vector_dim, k.vector_width, k.unroll)
                for k in two_row_kernels(f, s, dims, extents, vector_dim, vector_width)]

    def _rblock_options(self, f: int, s: int, tiles: Sequence[Decision]) -> list[Decision]:
        """The parallel task grids of a Kernel update of a root Func again, with the
        outermost RVar in blocks (``OuterTile.rblock``), when that RVar is long enough for a block
        of the operand the register tiles share to outlast its reuse (``rblock_size``)."""
        inner = self._t.inner.get((f, s))
        if not isinstance(inner, Kernel) or self._t.place[f].where != WHERE_ROOT:
            return []
        size = rblock_size(self.rblock_extent(f, s))
        if not size:
            return []
        return [replace(d, rblock=size) for d in tiles if isinstance(d, OuterTile) and d.parallel]

    def _cpu_rfactor_options(self, f: int, s: int) -> list[Decision]:
        """RFactor choices of a root Func's update on CPU (``cpu_rfactor.cpu_rfactor_options``)."""
        st = self.space.stage(f, s)
        if s == 0 or not st.rvar_loops or self._t.place[f].where != WHERE_ROOT:
            return []
        rext = self.rvar_extents(f, s)
        pure = 1
        for e in self._extents(f, s).values():
            pure *= e
        return list(cpu_rfactor_options(f, s, self.space.node(f), st, pure, rext, self.space.vector_width[st.id],
                                        self.space.parallelism))

    def _site_iterations(self, ref: LoopRef) -> int:
        """Iterations of loop ``ref`` and of every loop around it (GPU block and thread loops too)."""
        plan = self._t.plans[(ref.func, ref.stage)]
        at = plan.loops.index(plan.loop(ref.level, ref.dim))
        n = 1
        for l in plan.loops[at:]:
            n *= max(l.extent, 1)
        return n * self.enclosing_iterations(ref.func)

    def _gpu_options(self, kind: str, f: int, s: int) -> list[Decision]:
        """The GPU menu (``gpu.py``): the same placements as on CPU (no sliding windows, sites with
        a legal GPU region, at most 4 KB per thread at thread level, recompute at most
        GPU_RECOMPUTE_LIMIT x), per-thread register tiles (and RFactor), kernel / block / serial tilings."""
        node = self.space.node(f)
        if kind == SLOT_PLACE:
            opts = self._inline_and_root(f)
            if node.is_output:
                return opts
            prev = self.required_at(f, None)
            minimum = box_points(node.stage_regions(prev)[0])
            for ref in self.sites(f):
                req = self.required_at(f, ref)
                shrinks, prev = req != prev, req
                computed, loops = node.stage_regions(req)
                points = box_points(computed)
                if not shrinks or self._site_iterations(ref) * points > gpu_rules.GPU_RECOMPUTE_LIMIT * max(minimum, 1):
                    continue
                if ref.level != LEVEL_BLOCK and points * node.bytes_per_point > 8 * gpu_rules.REGISTER_BYTES:
                    continue
                if self._gpu_place_problem(f, ref, computed, loops):
                    continue
                opts.append(Place(f, WHERE_AT, ref))
            return opts
        st = self.space.stage(f, s)
        dims = self.space.pure_dims(f, s)
        extents = self._extents(f, s)
        level = self.gpu_level(f)
        if kind == SLOT_INNER:
            out: list[Decision] = list(gpu_rules.inner_options(f, s, dims, extents, bool(st.rvar_loops),
                                                               level == "block"))
            if s > 0 and level == "root" and st.rvar_loops:
                rext = self.rvar_extents(f, s)
                pure = 1
                for d in dims:
                    pure *= extents[d]
                out.extend(gpu_rules.rfactor_options(f, s, node, st, pure, rext))
            return out
        inner = self._t.inner[(f, s)]
        reg = self._register(inner)
        cand: list[OuterTile]
        if level == "root":
            cand = gpu_rules.kernel_options(f, s, dims, extents, reg, self.space.parallelism)
        elif level == "block":
            at = self._t.place[f].at
            assert at is not None
            cand = gpu_rules.block_options(f, s, dims, extents, reg,
                                           gpu_rules.kernel_threads(self.kernel_members(at)))
        else:
            cand = outer_options(f, s, dims, extents, reg, False, 1)
        ok: list[Decision] = []
        for tile in cand:
            try:
                self._check_gpu_plan(tile, plan_stage(node, st, self.space.bases[f], inner, tile,
                                                      self.space.tail[f], self._t.region[f][1][s],
                                                      self._gpu_mode(tile)))
            except IllegalDecisionError:
                continue
            ok.append(tile)
        return ok

    def children(self) -> list["State"]:
        """Every state one legal decision further (Adams2019's ``generate_children``)."""
        return [self.apply(d) for d in self.options()]


def children(state: State) -> list[State]:
    return state.children()


def initial_state(dag: FunctionDAG, target: Union[str, Any, None] = None,
                  parallelism: Optional[int] = None) -> State:
    return State.initial(dag, target, parallelism)


def random_state(dag: FunctionDAG, target: Union[str, Any, None] = None,
                 rng: Union[random.Random, Any, int, None] = None,
                 parallelism: Optional[int] = None) -> State:
    """A complete legal state drawn by a uniform choice among the options at every step.
    ``rng``: a ``random.Random``, a ``numpy.random.Generator``, or a seed."""
    if rng is None or isinstance(rng, int):
        rng = random.Random(rng)
    state = State.initial(dag, target, parallelism)
    while not state.is_complete:
        opts = state.options()
        if isinstance(rng, random.Random):
            k = rng.randrange(len(opts))
        else:
            k = int(rng.integers(len(opts)))
        state = state.apply(opts[k])
    return state

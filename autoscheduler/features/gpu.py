"""GPU schedule features of search states (CUDA targets), and the analytic fallback cost over them.

One row of ``NUM_GPU_FEATURES`` floats per stage, in ``dag.featurization_order()`` (as the CPU
featurizer), named and ordered by ``GPU_FEATURE_NAMES``. In the spirit of Anderson2021 (its 73
features are not reproduced one for one, so its ``gpu.weights`` do not apply): per stage, the kernel
shape (blocks, threads per block, the stage's own threads, warps, lane utilisation, serial points per
thread), an occupancy estimate (active blocks and warps per SM from threads, shared memory and the
per-SM limits), where every load and store goes (global / shared / registers, by where the producer
is computed), the coalescing of global loads and stores (the stride, in the producer's storage, of
one step of the innermost thread dimension: a warp's 32 lanes touch 32-byte sectors, efficiency =
bytes used / bytes moved), shared-memory bank conflicts, and Adams-like compute / memory terms
(points computed with recompute, arithmetic from the DAG's op histograms with inlined Funcs folded
in, unique bytes read from global memory, bytes allocated).

Conventions and approximations (documented, tested against hand-computed cases in
``tests/test_cuda_states.py``):

- Loads through inlined Funcs are the inlined Func's loads, with their Jacobians composed; their
  arithmetic counts in the consumer, per call.
- A producer not placed yet is assumed global (computed at root), as a stage not tiled yet is
  featurized with the first tiling the search would offer (``provisional`` = 1): rows of partial
  states are comparable between siblings.
- Coalescing is computed for stages with their own thread loops (kernels, block level, RFactor
  kernels); for stages serial inside a thread it is taken as ``THREAD_LEVEL_EFFICIENCY``.
- An RFactor stage's row describes its three kernels: the intermediate's update (the reduction,
  threads along the split RVar), plus the partial results written and read back.

Incremental: a child state differs from its parent by one decision, which changes only the rows
of the Funcs in the same kernel as the decided Func and of the stages reading it; rows of a state
are cached (LRU) by its decision trace and a child recomputes only those rows.

``GpuAnalyticCost`` is the cost the search uses on CUDA targets while the learned model has no GPU
weights (see its docstring).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import numpy as np

from ..dag import FunctionDAG, Node, Stage, box_points
from ..state import Decision, InnerTile, LoopRef, OuterTile, Place, SearchSpace, State
from ..state import gpu as gpu_rules
from ..state.decisions import LEVEL_BLOCK, LEVEL_RVAR, LEVEL_THREAD, LEVEL_UNROLL, WHERE_AT, WHERE_INLINE
from ..state.plan import GPU_BLOCK, GPU_KERNEL, GPU_SERIAL, GPU_SINGLE, StagePlan, plan_stage

GPU_FEATURE_NAMES: tuple[str, ...] = (
    # work
    "points_computed",           # iterations of the stage's innermost body (padding, recompute included)
    "points_minimum",            # points of the stage at root at the estimates (no recompute)
    "recompute_factor",          # points_computed / points_minimum
    "ops_per_point",             # arithmetic per point (op histogram rows Add..Select; inlined Funcs folded in)
    "ops_total",
    "inlined_calls",             # calls to inlined Funcs per point
    # kernel shape
    "num_kernels",               # kernels the stage launches (root stage 1, RFactor 3, else 0)
    "num_blocks",                # blocks of the kernel the stage runs in
    "threads_per_block",         # launched: per CUDA dimension the max over the kernel's thread loops
    "stage_threads",             # threads per block running the stage (all of the kernel's inside a thread)
    "warps_per_block",           # of the stage's threads
    "warp_lane_utilization",     # stage_threads / (32 * warps_per_block)
    "block_thread_utilization",  # stage_threads / threads_per_block
    "points_per_thread",         # serial points of this stage per thread
    "unrolled_points",           # register tile (unrolled) per thread
    "rvar_serial_extent",        # serial reduction steps per point
    "thread_dims",
    "block_dims",
    "innermost_thread_extent",
    # occupancy
    "active_blocks_per_sm",
    "active_warps_per_sm",       # resident warps per SM: limits (threads, shared memory) and warps launched
    "occupancy",                 # active_warps_per_sm / 64
    "waves",                     # blocks / (SMs * active blocks per SM)
    "wave_efficiency",           # waves / ceil(waves) (1 below one wave: see total_threads)
    "total_threads",             # blocks * threads_per_block
    # storage of the Func
    "mem_global",
    "mem_shared",
    "mem_register",
    "bytes_allocated",           # one realization of the Func
    "shared_bytes_per_block",    # the kernel's shared memory per block
    "register_bytes_per_thread",  # the Func's allocation per thread when computed inside a thread
    # loads (whole pipeline run)
    "global_loads",
    "shared_loads",
    "register_loads",
    "global_load_bytes",
    "shared_load_bytes",
    "register_load_bytes",
    "global_load_efficiency",    # bytes used / bytes moved in 32-byte sectors, warp along innermost threads
    "global_load_transactions",  # sectors moved
    "shared_bank_conflict",      # mean bank-conflict degree of shared loads (1: none)
    "global_footprint_bytes",    # unique global bytes read per realization x realizations (DRAM traffic)
    "innermost_thread_stride",   # mean |stride| (elements) of global loads per step of the innermost thread
    # stores
    "global_store_bytes",
    "shared_store_bytes",
    "register_store_bytes",
    "global_store_efficiency",
    "global_store_transactions",
    # reductions, misc
    "rfactor",
    "rfactor_factor",
    "atomic",
    "single_thread",
    "inlined",
    "working_set_per_thread",    # bytes one thread reads for this stage (footprints of its loads)
    "provisional",               # 1: featurized with the first tiling offered (stage not tiled yet)
)
NUM_GPU_FEATURES = len(GPU_FEATURE_NAMES)
_F = {n: i for i, n in enumerate(GPU_FEATURE_NAMES)}

# The modelled GPU (an H100-class part; constants of the analytic cost and of the occupancy estimate).
WARP = 32
SECTOR = 32                      # bytes per global memory transaction sector
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32
SHARED_PER_SM = 228 * 1024
THREAD_LEVEL_EFFICIENCY = 0.25   # coalescing assumed for loads of stages serial inside a thread
FP32_LANES_PER_SM = 128
CLOCK_HZ = 1.7e9
DRAM_BYTES_PER_S = 3.0e12
L2_BYTES_PER_S = 8.0e12
SHARED_BYTES_PER_SM_CYCLE = 128.0
LAUNCH_S = 3e-6
GLOBAL_LATENCY_CYCLES = 400.0
_OP_ROWS = slice(4, 19)          # Add .. Select in the 24-row op histogram


class GpuInputs(NamedTuple):
    """Inputs a GPU cost network takes: ``pipeline`` [S, 40, 7], ``schedule`` [B, S, NUM_GPU_FEATURES]
    (float32 arrays) and ``num_sms`` (the search's parallelism)."""

    pipeline: Any
    schedule: Any
    num_sms: int


@dataclass(frozen=True)
class _Access:
    """One distinct load of a (non-inlined) producer per point of a stage."""

    producer: int
    count: float
    bytes: int
    jacobian: tuple[tuple[Optional[float], ...], ...]   # [producer dim][stage loop]


def _compose(outer: Sequence[Sequence[Optional[Fraction]]], inner: Sequence[Sequence[Optional[Fraction]]],
             n_loops: int) -> tuple[tuple[Optional[Fraction], ...], ...]:
    """J[i][j] = sum_k outer[i][k] * inner[k][j] (outer: producer x inlined loops; inner: inlined
    Func dims x stage loops); None where any term is unknown."""
    out = []
    for row in outer:
        new: list[Optional[Fraction]] = []
        for j in range(n_loops):
            acc: Optional[Fraction] = Fraction(0)
            for k, a in enumerate(row):
                if k >= len(inner):
                    break
                b = inner[k][j] if j < len(inner[k]) else Fraction(0)
                if a == 0 or b == 0:
                    continue
                if a is None or b is None or acc is None:
                    acc = None
                    break
                acc += a * b
            new.append(acc)
        out.append(tuple(new))
    return tuple(out)


class GpuFeaturizer:
    """GPU schedule features of states of one (CUDA) search space; see the module doc.

    ``features(state)`` -> float64 [S, NUM_GPU_FEATURES]; ``batch(states)`` -> float32 [B, S, NF];
    ``pipeline`` -> float32 [S, 40, 7]; ``network_inputs(states)`` -> :class:`GpuInputs`."""

    names = GPU_FEATURE_NAMES

    def __init__(self, space: Union[SearchSpace, State, FunctionDAG], target: Any = None,
                 parallelism: Optional[int] = None, max_cache: int = 4096) -> None:
        if isinstance(space, State):
            space = space.space
        elif isinstance(space, FunctionDAG):
            space = SearchSpace(space, target if target is not None else "host-cuda", parallelism)
        if not space.gpu:
            raise ValueError(f"GpuFeaturizer needs a GPU target, got {space.target}")
        self._space = weakref.ref(space)
        self.dag = space.dag
        self.sms = space.parallelism
        self.stages = self.dag.featurization_order()
        self.num_stages = len(self.stages)
        self.row = {(st.node.index, st.index): i for i, st in enumerate(self.stages)}
        self.pipeline = (np.stack([st.features.matrix() for st in self.stages]).astype(np.float32)
                         if self.stages else np.zeros((0, 40, 7), np.float32))
        self._ops = {(st.node.index, st.index): float(st.features.op_histogram[_OP_ROWS].sum())
                     for st in self.stages}
        self._cache: "OrderedDict[tuple[Decision, ...], np.ndarray]" = OrderedDict()
        self._reach: dict[tuple[int, int], tuple[int, ...]] = {}
        self._acc_cache: dict[tuple[Any, ...], tuple[list[_Access], float, float]] = {}
        self._prov_cache: dict[tuple[Any, ...], StagePlan] = {}
        self.max_cache = max_cache
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ public
    def features(self, state: State) -> np.ndarray:
        key = state.decisions
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit.copy()
        parent = self._cache.get(key[:-1]) if key else None
        if parent is not None:
            rows = parent.copy()
            for f in self._affected(state, key[-1]):
                for s in range(len(self.dag.nodes[f].stages)):
                    rows[self.row[(f, s)]] = self._stage_row(state, f, s)
        else:
            rows = np.zeros((self.num_stages, NUM_GPU_FEATURES), np.float64)
            for (f, s), i in self.row.items():
                rows[i] = self._stage_row(state, f, s)
        self.misses += 1
        self._cache[key] = rows
        if len(self._cache) > self.max_cache:
            self._cache.popitem(last=False)
        return rows.copy()

    def batch(self, states: Sequence[State]) -> np.ndarray:
        out = np.zeros((len(states), self.num_stages, NUM_GPU_FEATURES), np.float32)
        for b, st in enumerate(states):
            out[b] = self.features(st)
        return out

    def network_inputs(self, states: Sequence[State]) -> GpuInputs:
        return GpuInputs(self.pipeline, self.batch(states), self.sms)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._acc_cache.clear()
        self._prov_cache.clear()

    # ------------------------------------------------------------------ what a decision touches
    def _kernel_root(self, state: State, f: int) -> Optional[int]:
        p = state.placement(f)
        while p is not None and p.where == WHERE_AT:
            assert p.at is not None
            f = p.at.func
            p = state.placement(f)
        if p is None or p.where == WHERE_INLINE:
            return None
        return f

    def _affected(self, state: State, d: Decision) -> set[int]:
        """Funcs whose rows may change with decision ``d``: the decided Func; with a Place, the
        stages reading it (through inlined Funcs) and, at block level, its kernel (shared memory);
        with an OuterTile of a root or block-level Func, its kernel (threads per block)."""
        g = d.func
        out = {g}
        kernel_wide = False
        if isinstance(d, Place):
            kernel_wide = d.where == WHERE_AT and d.at is not None and d.at.level == LEVEL_BLOCK
        elif isinstance(d, OuterTile):
            kernel_wide = state.gpu_level(g) != "thread"
        if kernel_wide:
            root = self._kernel_root(state, g)
            if root is not None:
                memo: dict[int, Optional[int]] = {}
                for f in list(state._t.place):
                    if f not in memo:
                        memo[f] = self._kernel_root(state, f)
                    if memo[f] == root:
                        out.add(f)
        if isinstance(d, Place):
            todo = [g]
            while todo:
                q = todo.pop()
                for e in self.dag.nodes[q].outgoing_edges:
                    c = e.consumer.node.index
                    if c not in out:
                        out.add(c)
                        if state.is_inlined(c):
                            todo.append(c)
        return {f for f in out if not self.dag.nodes[f].is_input}

    # ------------------------------------------------------------------ one stage
    def _plan(self, state: State, f: int, s: int) -> tuple[Optional[StagePlan], bool]:
        """The stage's plan, or a provisional one (the first tiling offered) when it is placed but
        not tiled yet; (None, False) when it is not placed or inlined."""
        plan = state.plan(f, s)
        if plan is not None:
            return plan, False
        p = state.placement(f)
        if p is None or p.where == WHERE_INLINE or f not in state._t.region:
            return None, False
        space = state.space
        node, st = space.node(f), space.stage(f, s)
        dims = space.pure_dims(f, s)
        bounds = state.stage_bounds(f, s)
        extents = {l.pure_dim: max(bounds[j].extent, 1) for j, l in enumerate(st.loops) if not l.rvar}
        inner = state.inner(f, s) or InnerTile(f, s, None, 1, ())
        u = dict(inner.unroll)
        reg = {d: u.get(d, 1) for d in dims}
        level = state.gpu_level(f)
        kt = gpu_rules.kernel_threads(state.kernel_members(p.at)) if level == "block" and p.at is not None else ()
        key = (f, s, p, inner, bounds, kt)
        hit = self._prov_cache.get(key)
        if hit is not None:
            return hit, True
        cand: list[OuterTile]
        if level == "root":
            cand = gpu_rules.kernel_options(f, s, dims, extents, reg, space.parallelism)
        elif level == "block":
            assert p.at is not None
            cand = gpu_rules.block_options(f, s, dims, extents, reg, kt)
        else:
            cand = [OuterTile(f, s, (), False)]
        if not cand:
            cand = [OuterTile(f, s, (), False)]
        o = cand[0]
        mode = (GPU_KERNEL if o.parallel else GPU_SINGLE) if level == "root" else \
            (GPU_BLOCK if o.parallel else GPU_SERIAL)
        plan = plan_stage(node, st, space.bases[f], inner, o, space.tail[f], bounds, mode)
        if len(self._prov_cache) > 100_000:
            self._prov_cache.clear()
        self._prov_cache[key] = plan
        return plan, True

    def _inlinable(self, st: Stage) -> tuple[int, ...]:
        """Single-stage non-input Funcs reachable from ``st`` through single-stage Funcs (the ones
        whose inlining changes the stage's loads)."""
        key = (st.node.index, st.index)
        hit = self._reach.get(key)
        if hit is not None:
            return hit
        seen: list[int] = []
        todo = [st]
        while todo:
            cur = todo.pop()
            for e in cur.incoming_edges:
                q = e.producer
                if not q.is_input and len(q.stages) == 1 and q.index not in seen:
                    seen.append(q.index)
                    todo.append(q.stages[0])
        out = tuple(sorted(seen))
        self._reach[key] = out
        return out

    def _accesses(self, state: State, st: Stage) -> tuple[list[_Access], float, float]:
        """Loads per point of stage ``st`` from non-inlined producers (through inlined ones),
        the arithmetic of the inlined Funcs per point, and the inlined calls per point."""
        reach = self._inlinable(st)
        key = (st.node.index, st.index, tuple(q for q in reach if state.is_inlined(q)))
        hit = self._acc_cache.get(key)
        if hit is None:
            hit = self._accesses_uncached(state, st)
            self._acc_cache[key] = hit
        return hit

    def _accesses_uncached(self, state: State, st: Stage) -> tuple[list[_Access], float, float]:
        out: list[_Access] = []
        ops = 0.0
        calls = 0.0
        n_loops = len(st.loops)

        def visit(stage: Stage, scale: float, jac: Optional[tuple[tuple[Optional[Fraction], ...], ...]]) -> None:
            nonlocal ops, calls
            for e in stage.incoming_edges:
                q = e.producer
                if not q.is_input and state.is_inlined(q.index):
                    k = scale * e.calls
                    calls += k
                    ops += k * self._ops[(q.index, 0)]
                    for lj in e.load_jacobians[:1] or ():
                        m = lj.matrix if jac is None else _compose(lj.matrix, jac, n_loops)
                        visit(q.stages[0], k, m)
                    continue
                nb = max(q.bytes_per_point // max(len(q.output_types), 1), 1) if q.output_types else 4
                for lj in e.load_jacobians:
                    m = lj.matrix if jac is None else _compose(lj.matrix, jac, n_loops)
                    fm = tuple(tuple(None if c is None else float(c) for c in r) for r in m)
                    out.append(_Access(q.index, scale * lj.count, nb, fm))

        visit(st, 1.0, None)
        return out, ops, calls

    def _storage(self, state: State, q: int) -> tuple[str, list[int]]:
        """Memory ('global', 'shared', 'register') and allocation extents of producer ``q``."""
        node = self.dag.nodes[q]
        if node.is_input:
            box = node.estimated_region or node.region_required
            return "global", [max(b.extent, 1) for b in box]
        p = state.placement(q)
        if p is None or q not in state._t.region:
            return "global", [max(b.extent, 1) for b in (node.estimated_region or node.region_required)]
        ext = [max(b.extent, 1) for b in state.region(q)]
        if p.where == WHERE_AT:
            return ("shared" if state.gpu_level(q) == "block" else "register"), ext
        return "global", ext

    @staticmethod
    def _sectors(stride: Optional[float], nbytes: int) -> float:
        """32-byte sectors a warp's load touches (32 lanes, ``stride`` elements apart)."""
        if stride is None:
            return float(WARP)
        if stride == 0:
            return max(1.0, nbytes / SECTOR)
        return float(min(WARP, max(1.0, math.ceil(WARP * stride * nbytes / SECTOR))))

    def _kernel_stage(self, state: State, f: int) -> Optional[tuple[int, int]]:
        """(func, stage) of the root stage whose kernel computes the non-root Func ``f``."""
        p = state.placement(f)
        while p is not None and p.where == WHERE_AT:
            assert p.at is not None
            g = p.at.func
            pg = state.placement(g)
            if pg is None or pg.where != WHERE_AT:
                return (g, p.at.stage)
            p = pg
        return None

    def _kernel_of_root(self, state: State, f: int, s: int, plan: StagePlan) -> tuple[list[StagePlan], int]:
        """Member plans and shared bytes per block of the kernel of root stage (f, s)."""
        blocks = [l for l in plan.loops if l.level == LEVEL_BLOCK]
        if not blocks or state.plan(f, s) is None:
            return [plan], 0
        ref = LoopRef(f, s, LEVEL_BLOCK, blocks[0].dim)
        return state.kernel_members(ref), state.shared_bytes(ref)

    @staticmethod
    def _address_stride(jac: Sequence[Sequence[Optional[float]]], shift: Sequence[float],
                        ext: Sequence[int]) -> Optional[float]:
        """|elements| between the addresses neighbouring threads load (None: not affine)."""
        total = 0.0
        mult = 1
        for i, row in enumerate(jac):
            acc = 0.0
            for j, sh in enumerate(shift):
                if sh == 0 or j >= len(row):
                    continue
                c = row[j]
                if c is None:
                    return None
                acc += c * sh
            total += acc * mult
            mult *= ext[i] if i < len(ext) else 1
        return abs(total)

    def _loop_shift(self, state: State, f: int, s: int, st: Stage, work: StagePlan, level: str
                    ) -> Optional[list[float]]:
        """Per loop of stage ``st``: how far neighbouring threads (CUDA x) are apart; None where
        unknown (no thread loop of its own and no known relation to the kernel's threads)."""
        plan = state.plan(f, s)
        if plan is not None and plan.rfactor is not None:
            k = plan.rfactor.rvar_index
            rv = [j for j, l in enumerate(st.loops) if l.rvar]
            out = [0.0] * len(st.loops)
            out[rv[k]] = 1.0
            return out
        if work.threads:
            t0 = next(l for l in work.loops if l.level == LEVEL_THREAD)
            step = 1
            for l in work.loops:
                if l.dim == t0.dim and l.level == LEVEL_UNROLL:
                    step *= l.extent
            return [float(step) if (not l.rvar and l.pure_dim == t0.dim) else 0.0 for l in st.loops]
        if level != "thread":
            return None
        dims = self._func_shift(state, f, 0)
        if dims is None:
            return None
        return [0.0 if l.rvar else dims[l.pure_dim] for l in st.loops]

    def _func_shift(self, state: State, f: int, depth: int) -> Optional[list[float]]:
        """Per dimension of thread-level Func ``f``: how far its region moves between neighbouring
        threads, through the Jacobian of its use by the stage it is computed in."""
        p = state.placement(f)
        if p is None or p.where != WHERE_AT or p.at is None or depth > 16:
            return None
        c, cs = p.at.func, p.at.stage
        cplan = state.plan(c, cs)
        if cplan is None:
            return None
        cst = self.dag.nodes[c].stages[cs]
        if cplan.threads:
            t0 = next(l for l in cplan.loops if l.level == LEVEL_THREAD)
            step = 1
            for l in cplan.loops:
                if l.dim == t0.dim and l.level == LEVEL_UNROLL:
                    step *= l.extent
            cshift = [float(step) if (not l.rvar and l.pure_dim == t0.dim) else 0.0 for l in cst.loops]
        else:
            cdims = self._func_shift(state, c, depth + 1)
            if cdims is None:
                return None
            cshift = [0.0 if l.rvar else cdims[l.pure_dim] for l in cst.loops]
        edge = next((e for e in self.dag.nodes[f].outgoing_edges if e.consumer is cst), None)
        if edge is None or not edge.load_jacobians:
            return None
        out: list[float] = []
        for row in edge.load_jacobians[0].matrix:
            acc = 0.0
            for j, sh in enumerate(cshift):
                if sh == 0 or j >= len(row):
                    continue
                c_ = row[j]
                if c_ is None:
                    return None
                acc += float(c_) * sh
            out.append(acc)
        return out

    def _block_box(self, state: State, f: int, s: int, plan: StagePlan, provisional: bool, level: str
                   ) -> tuple[Optional[tuple[Any, ...]], int]:
        """The stage's loop box for one block of its kernel, and how many blocks run (None: the
        stage is not in a kernel with block loops, or not planned yet)."""
        if provisional or plan.rfactor is not None:
            return None, 1
        if level == "root":
            blocks = [l for l in plan.loops if l.level == LEVEL_BLOCK]
            if not blocks:
                return None, 1
            ref = LoopRef(f, s, LEVEL_BLOCK, blocks[0].dim)
            return state._loop_box_at(ref), max(math.prod(plan.blocks), 1)
        ks = self._kernel_stage(state, f)
        kplan = state.plan(*ks) if ks is not None else None
        if ks is None or kplan is None or not kplan.blocks:
            return None, 1
        bl = next(l for l in kplan.loops if l.level == LEVEL_BLOCK)
        ref = LoopRef(ks[0], ks[1], LEVEL_BLOCK, bl.dim)
        req = state.required_at(f, ref)
        _, loops = self.dag.nodes[f].stage_regions(req)
        return loops[s], max(math.prod(kplan.blocks), 1)

    def _stage_row(self, state: State, f: int, s: int) -> np.ndarray:
        row = np.zeros(NUM_GPU_FEATURES, np.float64)
        node = self.dag.nodes[f]
        st = node.stages[s]
        p = state.placement(f)
        if p is None:
            return row
        if p.where == WHERE_INLINE:
            row[_F["inlined"]] = 1.0
            return row
        plan, provisional = self._plan(state, f, s)
        if plan is None:
            return row
        rf = plan.rfactor
        work = rf.intm[1] if rf is not None else plan
        iters = state.enclosing_iterations(f)
        per_real = math.prod(max(l.extent, 1) for l in work.loops)
        points = float(iters * per_real)
        minimum = float(max(st.points, 1))
        accesses, inl_ops, inl_calls = self._accesses(state, st)
        ops_pp = self._ops[(f, s)] + inl_ops
        level = state.gpu_level(f)

        # kernel shape
        if level == "root":
            if rf is not None:
                members, shared = [work], 0
            else:
                members, shared = self._kernel_of_root(state, f, s, plan)
            root_plan: Optional[StagePlan] = work
            launches = 3.0 if rf is not None else 1.0
        else:
            ks = self._kernel_stage(state, f)
            root_plan = state.plan(*ks) if ks is not None else None
            members, shared = self._kernel_of_root(state, ks[0], ks[1], root_plan) if (
                ks is not None and root_plan is not None) else ([], 0)
            launches = 0.0
        blocks = math.prod(root_plan.blocks) if root_plan is not None and root_plan.blocks else 1
        kthreads = gpu_rules.kernel_threads(members)
        tpb = max(gpu_rules.total_threads(kthreads), 1)
        # threads running the stage: its own thread loops; every thread of the kernel inside a thread
        own = max(gpu_rules.total_threads(work.threads), 1) if level != "thread" else tpb
        warps = math.ceil(own / WARP)
        kwarps = math.ceil(tpb / WARP)
        unrolled = math.prod(l.extent for l in work.loops if l.level == LEVEL_UNROLL) or 1
        rser = math.prod(l.extent for l in work.loops if l.level == LEVEL_RVAR) or 1
        active = min(MAX_BLOCKS_PER_SM, MAX_WARPS_PER_SM // max(kwarps, 1) or 1,
                     (SHARED_PER_SM // shared) if shared else MAX_BLOCKS_PER_SM)
        active = max(active, 1)
        waves = blocks / (self.sms * active)
        row[_F["points_computed"]] = points
        row[_F["points_minimum"]] = minimum
        row[_F["recompute_factor"]] = points / minimum
        row[_F["ops_per_point"]] = ops_pp
        row[_F["ops_total"]] = ops_pp * points
        row[_F["inlined_calls"]] = inl_calls
        row[_F["num_kernels"]] = launches
        row[_F["num_blocks"]] = blocks
        row[_F["threads_per_block"]] = tpb
        row[_F["stage_threads"]] = own
        row[_F["warps_per_block"]] = warps
        row[_F["warp_lane_utilization"]] = own / (warps * WARP)
        row[_F["block_thread_utilization"]] = own / tpb if tpb else 1.0
        row[_F["points_per_thread"]] = points / max(blocks * own, 1)
        row[_F["unrolled_points"]] = unrolled
        row[_F["rvar_serial_extent"]] = rser
        row[_F["thread_dims"]] = len(work.threads)
        row[_F["block_dims"]] = len(work.blocks)
        row[_F["innermost_thread_extent"]] = work.threads[0] if work.threads else 1
        resident = min(active * kwarps, MAX_WARPS_PER_SM, math.ceil(blocks * kwarps / self.sms))
        row[_F["active_blocks_per_sm"]] = active
        row[_F["active_warps_per_sm"]] = resident
        row[_F["occupancy"]] = resident / MAX_WARPS_PER_SM
        row[_F["waves"]] = waves
        row[_F["wave_efficiency"]] = waves / math.ceil(waves) if waves >= 1 else 1.0
        row[_F["total_threads"]] = blocks * tpb

        mem, _ = self._storage(state, f)
        row[_F["mem_" + mem]] = 1.0
        alloc = box_points(state.region(f)) * node.bytes_per_point if f in state._t.region else 0
        row[_F["bytes_allocated"]] = alloc
        row[_F["shared_bytes_per_block"]] = shared
        row[_F["register_bytes_per_thread"]] = alloc if mem == "register" else 0.0

        # loads: neighbouring threads (CUDA x) differ by ``shift`` in the stage's loop coordinates
        shift = self._loop_shift(state, f, s, st, work, level)
        tile = {l.dim: l.extent for l in work.loops if l.level == LEVEL_UNROLL}
        tile_loops = {j: tile[l.pure_dim] for j, l in enumerate(st.loops) if not l.rvar and l.pure_dim in tile}
        lonely = own == 1 and tpb == 1          # one thread: every load is its own transaction
        loads = {"global": 0.0, "shared": 0.0, "register": 0.0}
        lbytes = dict(loads)
        useful = moved = sectors_total = 0.0
        conflict_w = conflict_n = 0.0
        stride_sum = stride_n = 0.0
        for a in accesses:
            qmem, ext = self._storage(state, a.producer)
            # register-tile reuse: an access that does not vary along an unrolled loop is loaded once
            reuse = 1.0
            for j, u in tile_loops.items():
                if all(r[j] == 0 for r in a.jacobian if j < len(r)):
                    reuse /= u
            n = a.count * points * reuse
            loads[qmem] += n
            lbytes[qmem] += n * a.bytes
            stride = None if shift is None else self._address_stride(a.jacobian, shift, ext)
            if qmem == "global":
                if lonely:
                    sectors = 1.0
                    lanes = 1.0
                elif shift is None:
                    sectors = WARP * a.bytes / SECTOR / THREAD_LEVEL_EFFICIENCY
                    lanes = float(WARP)
                else:
                    sectors = self._sectors(stride, a.bytes)
                    lanes = float(WARP)
                    if stride is not None:
                        stride_sum += stride * n
                        stride_n += n
                useful += n * a.bytes
                moved += n / lanes * sectors * SECTOR
                sectors_total += n / lanes * sectors
            elif qmem == "shared" and stride is not None:
                words = max(1, int(round(stride * a.bytes / 4))) if stride else 0
                conflict_w += n * (math.gcd(words, WARP) if words else 1)
                conflict_n += n
        # unique global bytes (DRAM): what one block reads (caches serve the rest), times the blocks
        footprint = 0.0
        ws = 0.0
        bounds = state.stage_bounds(f, s)
        block_box, block_count = self._block_box(state, f, s, plan, provisional, level)
        for e in st.incoming_edges:
            q = e.producer
            if not q.is_input and state.is_inlined(q.index):
                continue
            qmem, _ = self._storage(state, q.index)
            ws += box_points(e.footprint(bounds)) * q.bytes_per_point
            if qmem == "global":
                if block_box is not None:
                    footprint += box_points(e.footprint(block_box)) * q.bytes_per_point * block_count
                else:
                    footprint += box_points(e.footprint(bounds)) * q.bytes_per_point * iters
        row[_F["global_loads"]] = loads["global"]
        row[_F["shared_loads"]] = loads["shared"]
        row[_F["register_loads"]] = loads["register"]
        row[_F["global_load_bytes"]] = lbytes["global"]
        row[_F["shared_load_bytes"]] = lbytes["shared"]
        row[_F["register_load_bytes"]] = lbytes["register"]
        row[_F["global_load_efficiency"]] = min(1.0, useful / moved) if moved else 1.0
        row[_F["global_load_transactions"]] = sectors_total
        row[_F["shared_bank_conflict"]] = conflict_w / conflict_n if conflict_n else 1.0
        row[_F["global_footprint_bytes"]] = footprint
        row[_F["innermost_thread_stride"]] = stride_sum / stride_n if stride_n else 0.0
        row[_F["working_set_per_thread"]] = ws * iters / max(blocks * own, 1)

        # stores: one per point of the pure loops
        nbytes = max(node.bytes_per_point, 1)
        stores = float(iters * math.prod(max(l.extent, 1) for l in plan.loops if l.level != LEVEL_RVAR))
        if rf is not None:
            # the partial results: written by the intermediate, read back by the combining stage
            partial = float(math.prod(max(l.extent, 1) for l in rf.intm[0].loops)) * nbytes
            row[_F["global_load_bytes"]] += partial
            row[_F["global_footprint_bytes"]] += partial
            row[_F["global_load_transactions"]] += partial / SECTOR
            stores += partial / nbytes
        row[_F[f"{mem}_store_bytes"]] = stores * nbytes
        if mem == "global":
            if rf is not None:
                seff = 1.0
            elif lonely:
                seff = min(1.0, nbytes / SECTOR)
            elif shift is not None and f in state._t.region:
                own_ext = [max(b.extent, 1) for b in state.region(f)]
                ident = tuple(tuple(1.0 if (not l.rvar and l.pure_dim == d) else 0.0 for l in st.loops)
                              for d in range(len(node.args)))
                sstride = self._address_stride(ident, shift, own_ext)
                seff = min(1.0, WARP * nbytes / (self._sectors(sstride, nbytes) * SECTOR))
            else:
                seff = THREAD_LEVEL_EFFICIENCY
            row[_F["global_store_efficiency"]] = seff
            row[_F["global_store_transactions"]] = stores * nbytes / seff / SECTOR
        else:
            row[_F["global_store_efficiency"]] = 1.0
        if rf is not None:
            row[_F["rfactor"]] = 1.0
            row[_F["rfactor_factor"]] = rf.factor
            row[_F["atomic"]] = 1.0 if rf.atomic else 0.0
        row[_F["single_thread"]] = 1.0 if plan.gpu == GPU_SINGLE else 0.0
        row[_F["provisional"]] = 1.0 if provisional else 0.0
        return row


# ---------------------------------------------------------------------------- analytic cost

class GpuAnalyticCost:
    """The search's cost on CUDA targets until a learned GPU model ships (the shipped weights are
    CPU-only Adams2019 features): a roofline over the GPU features, in milliseconds, summed over
    the stages decided so far. It was written from the hardware model, not fitted to measurements
    (no GPU was available when it was written), so it ranks schedules by first principles only.

    Per stage (constants at the top of this module, an H100-class part with ``parallelism`` SMs):

    - compute: ``ops_total / (SMs * 128 lanes * clock * u)``, ``u`` = warp lane utilisation x block
      thread utilisation x tail-wave efficiency x min(1, lanes of the warps launched / (SMs * 128))
      x min(1, 2 * occupancy) (latency hiding needs about half the warps resident);
    - memory: unique global bytes / DRAM bandwidth + global bytes moved in sectors (coalescing) / L2
      bandwidth + shared bytes x bank-conflict degree / shared bandwidth, stores likewise, slowed by
      min(1, 2 * occupancy) as well;
    - a serial floor: points per thread x (ops per point + global loads per point x latency /
      resident warps) cycles, which dominates single-thread kernels and starved grids;
    - ``max(compute, memory, serial) + kernels launched x 3 us``.
    """

    def __init__(self, parallelism: int = gpu_rules.GPU_DEFAULT_SMS) -> None:
        self.parallelism = parallelism
        self.source = "analytic GPU roofline (autoscheduler.features.gpu.GpuAnalyticCost)"

    TERMS = ("compute", "dram", "l2", "shared", "serial", "launch")
    """The roofline's per-stage terms (ms), in the order ``stage_terms`` returns them."""

    def stage_terms(self, rows: np.ndarray) -> np.ndarray:
        """The terms of each feature row (any leading shape) -> [..., 6] ms, zero for unscheduled
        stages; ``combine_terms`` makes the cost of them. Kept apart so that a learned model can
        rescale each term (``cost_model.gpu_model``)."""
        r = np.asarray(rows, dtype=np.float64)

        def c(name: str) -> np.ndarray:
            return r[..., _F[name]]

        sms = float(self.parallelism)
        scheduled = (c("points_computed") > 0).astype(np.float64)
        occ = np.clip(2.0 * c("occupancy"), 0.05, 1.0)
        warps = np.ceil(np.maximum(c("threads_per_block"), 1.0) / WARP) * np.maximum(c("num_blocks"), 1.0)
        launched = np.clip(warps * WARP / (sms * FP32_LANES_PER_SM), 1e-6, 1.0)
        util = (np.clip(c("warp_lane_utilization"), 1e-3, 1.0) * np.clip(c("block_thread_utilization"), 1e-3, 1.0)
                * np.clip(c("wave_efficiency"), 1e-3, 1.0) * launched * occ)
        compute = c("ops_total") / (sms * FP32_LANES_PER_SM * CLOCK_HZ * util)
        shared_bw = sms * SHARED_BYTES_PER_SM_CYCLE * CLOCK_HZ
        dram = c("global_footprint_bytes") / DRAM_BYTES_PER_S / occ
        l2 = (c("global_load_transactions") + c("global_store_transactions")) * SECTOR / L2_BYTES_PER_S / occ
        shared = (c("shared_load_bytes") * c("shared_bank_conflict") + c("shared_store_bytes")) / shared_bw / occ
        per_point_loads = c("global_loads") / np.maximum(c("points_computed"), 1.0)
        resident = np.maximum(c("active_warps_per_sm"), 1.0)
        serial = c("points_per_thread") * (np.maximum(c("ops_per_point"), 1.0)
                                           + per_point_loads * GLOBAL_LATENCY_CYCLES / resident) / CLOCK_HZ
        launch = c("num_kernels") * LAUNCH_S
        return np.stack([compute, dram, l2, shared, serial, launch], axis=-1) * (1e3 * scheduled)[..., None]

    @staticmethod
    def combine_terms(terms: np.ndarray) -> np.ndarray:
        """max(compute, memory, serial) + launches, per stage (ms)."""
        t = np.asarray(terms, dtype=np.float64)
        memory = t[..., 1] + t[..., 2] + t[..., 3]
        return np.maximum(np.maximum(t[..., 0], memory), t[..., 4]) + t[..., 5]

    def stage_cost_rows(self, rows: np.ndarray) -> np.ndarray:
        """Cost (ms) of each feature row (any leading shape)."""
        return self.combine_terms(self.stage_terms(rows))

    def predict(self, states: Sequence[State]) -> np.ndarray:
        if not states:
            return np.zeros(0)
        fz = gpu_featurizer_for(states[0])
        return np.array([float(self.stage_cost_rows(fz.features(s)).sum()) for s in states])

    def cost_fn(self, dag: Any = None) -> Callable[[Sequence[State]], np.ndarray]:
        def fn(states: Sequence[State]) -> np.ndarray:
            return self.predict(states)
        return fn

    def stage_costs(self, dag: FunctionDAG, state: State) -> dict[str, float]:
        fz = gpu_featurizer_for(state)
        costs = self.stage_cost_rows(fz.features(state))
        return {st.name: float(c) for st, c in zip(fz.stages, costs)}


_FEATURIZERS: "weakref.WeakKeyDictionary[SearchSpace, GpuFeaturizer]" = weakref.WeakKeyDictionary()


def gpu_featurizer_for(space: Union[SearchSpace, State]) -> GpuFeaturizer:
    """The (cached) GPU featurizer of a search space; states of one search share it and its cache."""
    sp = space.space if isinstance(space, State) else space
    fz = _FEATURIZERS.get(sp)
    if fz is None:
        fz = GpuFeaturizer(sp)
        _FEATURIZERS[sp] = fz
    return fz


def gpu_features(state: State) -> np.ndarray:
    """[S, NUM_GPU_FEATURES] float64 GPU schedule features in ``dag.featurization_order()``."""
    return gpu_featurizer_for(state).features(state)


__all__ = ["GPU_FEATURE_NAMES", "NUM_GPU_FEATURES", "GpuFeaturizer", "GpuInputs", "GpuAnalyticCost",
           "gpu_featurizer_for", "gpu_features"]

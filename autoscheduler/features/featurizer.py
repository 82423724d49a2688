"""Incremental Adams2019 schedule features for search states, and the cost network's inputs.

A state's Adams2019 loop nest has one root child per stage of every Func computed at the root; a
Func computed at a consumer's loop lives inside that consumer's root child. Every schedule feature
of a stage depends only on its root child (a "group": the root stage's own decisions, the decisions
of every Func computed or stored inside it, the Funcs inlined into it, the Funcs not yet scheduled
whose consumers all live inside it) and on a few facts about the producers it reads from outside
(input, computed at the root with which storage dimension, or not scheduled yet), except four
root-level sums (working sets at the root and of root Funcs) and the features of inlined Funcs,
which add up over groups. So features are cached per group, keyed by exactly those things
(``Featurizer._group_key``); a child state recomputes only the group its decision touched (and, for a
decision that changes a root Func's storage dimension, the groups that read it), then the root-level
sums are patched in with numpy. Halide's Adams2019 memoizes per root child in the same way
(``features_cache`` keyed by ``hash_of_producers_stored_at_root``).

Building every group's key was itself most of the cost (ae_train_step, a 30 s search: 320,000 keys
for 29,800 states, 5.7 s, and the group analysis 2.9 s, against 3.6 s of actual featurization). So
each featurized state keeps what was derived from it (``State.derived["features"]``: the analysis, each
group's result and the Funcs its key reads), and a child made from it starts from that
(``State.parent_derived``): after a decision that places no Func (a tiling, a layout, a wrap,
an rfactor), the groups are the parent's, and a group whose key reads none of the decision's Funcs
has the parent's result without a key; the others go through the cache as before. A Place decision,
a state whose parent was never featurized (a replayed trace) or ``incremental=False`` take the full
path.

Partial states: a Func not placed yet is "unscheduled" (no features, a zero row; it is assumed
computed at the deepest common loop of its consumers, as Adams2019 does, except that a consumer
inlined into several root children puts it at the root, where Adams2019 uses whichever of that
consumer's innermost loops it visited last); a Func placed but whose stage has no inner decision yet
is featurized with the first vector dimension the search would offer and no unroll; a stage
without its outer decision is untiled and, at the root, not yet parallelised (Adams2019's
optimistic task count applies). Our decisions are finer than Adams2019's two per Func, so these
intermediate states have no Adams2019 counterpart; complete states do.

Cost: a cache miss builds the group's loop nest (level sizes and bounds memoized per DAG) and runs
``compute_features`` on it; a hit costs the group's key. ``bench/state_bench.py`` measures the rate.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np

from ..dag import FunctionDAG
from ..state import Kernel, SearchSpace, State
from ..state.decisions import WHERE_AT, WHERE_ROOT
from .adams_dag import AdamsDag
from .cpu_rfactor import rfactor_chain
from .layout import layout_key, wrapped_dims
from .loopnest import (F_BYTES_AT_PRODUCTION, F_BYTES_AT_ROOT, F_INLINED_CALLS, F_INNER_PARALLELISM,
                       F_INNERMOST_BYTES_AT_ROOT, F_INNERMOST_PURE_LOOP_EXTENT, F_NATIVE_VECTOR_SIZE,
                       F_NUM_SCALARS, F_NUM_VECTORS, F_OUTER_PARALLELISM, F_PC_MINIMUM, F_VECTOR_SIZE,
                       F_WORKING_SET_AT_PRODUCTION, F_WORKING_SET_AT_REALIZATION, F_WORKING_SET_AT_ROOT, LN, NF,
                       ChainSpec, GroupContext, build_chain, featurize_group, get_sites, store_features)

if TYPE_CHECKING:
    from .gpu import GpuFeaturizer, GpuInputs

NUM_SCHEDULE_FEATURES = NF
GroupId = tuple[int, int]


class AdamsInputs(NamedTuple):
    """What :class:`cost_model.AdamsNet` takes: ``pipeline`` [S, 40, 7], ``schedule`` [B, S, 39]
    (torch float32), and ``num_cores`` (the search's parallelism)."""

    pipeline: Any
    schedule: Any
    num_cores: int


@dataclass
class _GroupResult:
    rows: np.ndarray          # featurization rows of the stages featurized here
    block: np.ndarray         # [len(rows), 39]
    ws: float                 # what this root child adds to the root's working set
    bap_root: float           # bytes_at_production of a root Func's pure stage (group (R, 0)), else 0
    inlined: list[tuple[int, float, float, float, float, float, float, float]]
    inlined_vdim: dict[int, int]


class _Memo(NamedTuple):
    """What one featurizer derived from one state (``State.derived["features"]``): its analysis, and per
    group the result and the Funcs the group's cache key reads (``Featurizer._group_key``)."""

    owner: "Featurizer"
    an: "_Analysis"
    groups: dict[GroupId, tuple[_GroupResult, set[int]]]


class _Analysis:
    """Which group every Func belongs to in one state."""

    __slots__ = ("stage_group", "members", "unsched", "inl_in_group", "inl_calls", "root_funcs", "group_order",
                 "placed_root")

    def __init__(self) -> None:
        self.stage_group: dict[tuple[int, int], GroupId] = {}
        self.members: dict[GroupId, list[int]] = {}
        self.unsched: dict[GroupId, list[int]] = {}
        self.inl_in_group: dict[GroupId, list[int]] = {}
        self.inl_calls: dict[int, dict[tuple[int, int], int]] = {}
        self.root_funcs: list[int] = []
        self.group_order: list[GroupId] = []
        self.placed_root: set[int] = set()


class Featurizer:
    """Schedule features (Adams2019's 39 per stage) of states of one search space.

    ``features(state)`` -> float64 [S, 39] in ``dag.featurization_order()`` (rows of stages not
    scheduled yet are zero, and contribute exactly 0 to AdamsNet's prediction);
    ``batch(states)`` -> float32 [B, S, 39]; ``pipeline`` -> float32 [S, 40, 7] (the DAG's pipeline
    features, same stage order); ``network_inputs(states)`` -> :class:`AdamsInputs`.
    """

    def __init__(self, space: Union[SearchSpace, State, FunctionDAG], target: Any = None,
                 parallelism: Optional[int] = None, max_cache: int = 200_000, incremental: bool = True) -> None:
        if isinstance(space, State):
            space = space.space
        elif isinstance(space, FunctionDAG):
            space = SearchSpace(space, target, parallelism)
        # No strong reference to the space: ``featurizer_for`` caches featurizers in a
        # WeakKeyDictionary keyed by it.
        self._space = weakref.ref(space)
        self.dag = space.dag
        self.order: tuple[int, ...] = tuple(space.order)
        self.vector_width: dict[int, int] = dict(space.vector_width)
        self.target = str(space.target)
        vw = self.vector_width
        self.ad = AdamsDag(space.dag, lambda st: vw[st.id])
        self.parallelism = space.parallelism
        self.num_stages = len(self.ad.order)
        self.row = self.ad.row
        self.pipeline = np.stack([st.features.matrix() for st in self.dag.featurization_order()]).astype(
            np.float32) if self.num_stages else np.zeros((0, 40, 7), np.float32)
        self.max_cache = max_cache
        self._cache: dict[Any, _GroupResult] = {}
        self.hits = 0
        self.misses = 0
        self.reused = 0          # groups taken from the parent's memo (no key built)
        self.incremental = incremental
        self._bytes_at_root = [self.ad.bytes_at_root(n.f) for n in self.ad.nodes]
        self._sdim_memo: list[Any] = [None, {}]      # (state, {Func: default storage dim})

    @property
    def space(self) -> Optional[SearchSpace]:
        """The search space this featurizer was made for (None once it has been freed)."""
        return self._space()

    # ------------------------------------------------------------------ public API
    def features(self, state: State) -> np.ndarray:
        """[S, 39] float64 schedule features of ``state`` (zeros for stages not scheduled yet)."""
        out = np.zeros((self.num_stages, NF), dtype=np.float64)
        self._fill(state, out)
        return out

    def batch(self, states: Sequence[State]) -> np.ndarray:
        """[B, S, 39] float32 schedule features of ``states`` (all of this search space)."""
        out = np.zeros((len(states), self.num_stages, NF), dtype=np.float64)
        for b, s in enumerate(states):
            self._fill(s, out[b])
        return out.astype(np.float32)

    def network_inputs(self, states: Sequence[State]) -> AdamsInputs:
        """AdamsNet's inputs for a batch of states: ``net(*inputs)`` predicts their runtimes."""
        import torch
        return AdamsInputs(torch.from_numpy(self.pipeline), torch.from_numpy(self.batch(states)), self.parallelism)

    def loop_nest(self, state: State) -> str:
        """Adams2019's loop nest of ``state`` as this featurizer models it, in the format of the
        plugin's ``LoopNest::dump`` (at ``HL_DEBUG_AUTOSCHEDULE=2``) without its ``c`` and ``t``
        marks: the root's Funcs, then its children, last first."""
        an = self._analyze(state)
        names = [n.name for n in self.ad.nodes]
        lines = [f"realize: {names[R]}" for R in an.root_funcs]
        for gid in reversed(an.group_order):
            _, top = self._build_group(state, an, gid)
            lines.extend(top.describe(names, ""))
        self._sdim_memo[0] = None
        return "\n".join(lines)

    def groups(self, state: State) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
        """The root children of ``state``'s loop nest in loop-nest order, each as (root stage,
        stages whose features depend only on it): its own stage, the stages of every Func computed
        inside it, and Funcs inlined only inside it. ``loop_nest`` prints them last first."""
        an = self._analyze(state)
        out: list[tuple[tuple[int, int], list[tuple[int, int]]]] = []
        inl_groups: dict[int, set[GroupId]] = {}
        for g, fs in an.inl_in_group.items():
            for f in fs:
                inl_groups.setdefault(f, set()).add(g)
        for gid in an.group_order:
            stages = [gid]
            for f in an.members.get(gid, []):
                stages.extend((f, s) for s in range(len(self.ad.nodes[f].stages)))
            stages.extend((f, 0) for f in an.inl_in_group.get(gid, []) if inl_groups[f] == {gid})
            out.append((gid, stages))
        return out

    def clear_cache(self) -> None:
        """Forget every cached group featurization and bounds (results do not change)."""
        self._cache.clear()
        self.ad.bounds_memo.clear()
        self.ad.chain_memo.clear()

    # ------------------------------------------------------------------ analysis
    def _analyze(self, state: State) -> _Analysis:
        ad = self.ad
        an = _Analysis()
        unsched_loc: dict[int, Optional[GroupId]] = {}
        inl_groups: dict[int, set[GroupId]] = {}
        for f in self.order:
            p = state.placement(f)
            node = ad.nodes[f]
            if p is None:
                locs: set[Optional[GroupId]] = set()
                for e in node.outgoing:
                    c = e.consumer.f
                    if c in unsched_loc:
                        locs.add(unsched_loc[c])
                    elif c in inl_groups:
                        locs.update(inl_groups[c])
                    else:
                        locs.add(an.stage_group.get((c, e.consumer.s)))
                g = next(iter(locs)) if len(locs) == 1 else None
                unsched_loc[f] = g
                if g is not None:
                    an.unsched.setdefault(g, []).append(f)
            elif p.where == WHERE_ROOT:
                an.root_funcs.append(f)
                an.placed_root.add(f)
                for s in range(len(node.stages) - 1, -1, -1):
                    gid = (f, s)
                    an.stage_group[gid] = gid
                    an.group_order.append(gid)
            elif p.where == WHERE_AT:
                assert p.at is not None
                g2 = an.stage_group[(p.at.func, p.at.stage)]
                for s in range(len(node.stages)):
                    an.stage_group[(f, s)] = g2
                an.members.setdefault(g2, []).append(f)
            else:
                # consumers are analysed first: their calls are known, no recursion through them
                calls = state.inline_calls(f, an.inl_calls)
                an.inl_calls[f] = calls
                gs = set()
                for k in calls:
                    gs.add(an.stage_group[k])
                inl_groups[f] = gs
                for g3 in sorted(gs):
                    an.inl_in_group.setdefault(g3, []).append(f)
        return an

    def storage_dim(self, state: State, f: int) -> int:
        """The innermost storage dimension of Func ``f``: its pure stage's vector dimension
        (what ``apply`` reorders storage by), 0 when it is not vectorised; a Layout's innermost."""
        lay = state.layout(f)
        if lay is not None:
            return lay.order[0]
        inn = state.inner(f, 0)
        if inn is not None:
            return 0 if inn.vector_dim is None else inn.vector_dim
        memo = self._sdim_memo
        if memo[0] is not state:
            memo[0] = state
            memo[1].clear()
        hit = memo[1].get(f)
        if hit is None:
            vd = self._default_vector_dim(state, f, 0)
            hit = 0 if vd is None else vd
            memo[1][f] = hit
        return hit

    def _default_vector_dim(self, state: State, f: int, s: int) -> Optional[int]:
        """The first vector dimension the search would offer (``tilings.inner_options``)."""
        st = self.ad.stage(f, s)
        dims = [st.pure_dims[i] for i in range(st.n_loops) if st.loops_pure[i] and not st.loops_rvar[i]]
        if not dims:
            return None
        if self.ad.nodes[f].is_output and 0 in dims:
            return 0
        width = self.vector_width[st.id]
        try:
            bounds = state.stage_bounds(f, s)
        except KeyError:
            return dims[0]
        ext = {st.pure_dims[i]: bounds[i].extent for i in range(st.n_loops) if not st.loops_rvar[i]}
        for d in dims:
            if ext.get(d, 0) >= width:
                return d
        return dims[0]

    def _group_key(self, state: State, an: _Analysis, gid: GroupId) -> tuple[tuple[Any, ...], set[int]]:
        """The group's cache key, and the Funcs it reads: those inside the group and every producer
        its readers read (a decision on any other Func leaves the key, so the features, as they were)."""
        R, sR = gid
        ad = self.ad
        # _force_parallel reads the pure stage's OuterTile: two states with the same decisions for
        # this stage but a parallel / serial pure stage featurize it differently
        parts: list[Any] = [gid, state.inner(R, sR), state.outer(R, sR), state.rfactor(R, sR),
                            self._force_parallel(state, R, sR)]
        inside = {R}
        if sR != 0:
            parts.append(self.storage_dim(state, R))
        for f in an.members.get(gid, ()):
            inside.add(f)
            n = len(ad.nodes[f].stages)
            parts.append((f, state.placement(f), tuple((state.inner(f, s), state.outer(f, s)) for s in range(n))))
            if state.inner(f, 0) is None:
                parts.append(self.storage_dim(state, f))
        us = an.unsched.get(gid, ())
        parts.append(tuple(us))
        inside.update(us)
        for f in an.inl_in_group.get(gid, ()):
            inside.add(f)
            calls = an.inl_calls[f]
            parts.append((f, tuple(sorted((k, v) for k, v in calls.items() if an.stage_group[k] == gid))))
        ext: list[Any] = []
        readers = [R] + list(an.members.get(gid, ())) + list(an.inl_in_group.get(gid, ()))
        seen: set[int] = set()
        for f in readers:
            for p in ad.nodes[f].producers:
                if p in inside or p in seen:
                    continue
                seen.add(p)
                if ad.nodes[p].is_input:
                    continue
                if p in an.placed_root:
                    ext.append((p, self.storage_dim(state, p)))
                else:
                    ext.append((p, -1))
        parts.append(tuple(ext))
        parts.append(layout_key(state, inside, readers))
        return tuple(parts), inside | seen

    # ------------------------------------------------------------------ group featurization
    def _spec(self, state: State, f: int, s: int, cuts: set[tuple[str, int]], force_parallel: bool) -> ChainSpec:
        inn = state.inner(f, s)
        out = state.outer(f, s)
        width = self.vector_width[self.ad.stage(f, s).id]
        rfc = rfactor_chain(state, self.ad.stage(f, s)) if inn is None else None
        if rfc is not None:     # CPU RFactor: the intermediate's update (``features/cpu_rfactor.py``)
            return ChainSpec(None, width, {}, {}, bool(rfc.par), cuts, self.storage_dim(state, f), rfactor=rfc)
        if inn is None:
            vd = self._default_vector_dim(state, f, s)
            unroll: dict[int, int] = {}
            kernel = False
        else:
            vd = inn.vector_dim
            width = inn.vector_width
            unroll = dict(inn.unroll)
            kernel = isinstance(inn, Kernel)
        tiles = dict(out.tiles) if out is not None else {}
        parallel = bool(out.parallel and out.tiles) if out is not None else False
        return ChainSpec(vd, width, unroll, tiles, parallel, cuts, self.storage_dim(state, f), kernel,
                         force_parallel_level=force_parallel and not parallel,
                         sub=dict(out.sub) if out is not None else None,
                         rblock=out.rblock if out is not None else 0)

    def _force_parallel(self, state: State, f: int, s: int) -> bool:
        """Adams2019 parallelises all stages of a root Func with one task grid: a stage whose own
        (decided) outer decision leaves it untiled still gets a parallel level, of one task per
        loop, when the Func's pure stage is parallel."""
        if s == 0:
            return False
        o = state.outer(f, s)
        if o is None or o.tiles or o.parallel:
            return False
        p = state.placement(f)
        o0 = state.outer(f, 0)
        return p is not None and p.where == WHERE_ROOT and o0 is not None and o0.parallel

    def _build_group(self, state: State, an: _Analysis, gid: GroupId) -> tuple[GroupContext, LN]:
        ad = self.ad
        R, sR = gid
        root = LN(-1, None, [])
        ctx = GroupContext(ad, root, self.parallelism)
        members = an.members.get(gid, [])
        cuts: dict[tuple[int, int], set[tuple[str, int]]] = {}
        for f in members:
            p = state.placement(f)
            assert p is not None and p.at is not None
            cuts.setdefault((p.at.func, p.at.stage), set()).add((p.at.level, p.at.dim))
            if p.store_at is not None:
                cuts.setdefault((p.store_at.func, p.store_at.stage), set()).add((p.store_at.level, p.store_at.dim))
        refs: dict[tuple[int, int], dict[tuple[str, int], LN]] = {}
        innermost: dict[tuple[int, int], LN] = {}
        spec = self._spec(state, R, sR, cuts.get(gid, set()), self._force_parallel(state, R, sR))
        r = refs.setdefault(gid, {})
        top, inner = build_chain(ctx, root, R, sR, spec, r)
        root.children.append(top)
        root.store_at.append(R)
        innermost[gid] = inner
        for f in members:
            p = state.placement(f)
            assert p is not None and p.at is not None
            site = refs[(p.at.func, p.at.stage)][(p.at.level, p.at.dim)]
            store = site if p.store_at is None else refs[(p.store_at.func, p.store_at.stage)][
                (p.store_at.level, p.store_at.dim)]
            n = len(ad.nodes[f].stages)
            for s in range(n - 1, -1, -1):
                sp = self._spec(state, f, s, cuts.get((f, s), set()), False)
                rr = refs.setdefault((f, s), {})
                t2, i2 = build_chain(ctx, site, f, s, sp, rr)
                site.children.append(t2)
                innermost[(f, s)] = i2
            store.store_at.append(f)
        for f in an.inl_in_group.get(gid, []):
            for k, ncalls in an.inl_calls[f].items():
                if an.stage_group[k] == gid:
                    innermost[k].inlined.append((f, ncalls))
        return ctx, top

    def _featurize_group(self, state: State, an: _Analysis, gid: GroupId) -> _GroupResult:
        ad = self.ad
        R, sR = gid
        ctx, top = self._build_group(state, an, gid)
        root = ctx.root
        get_sites(ctx, root, None, None)
        # Funcs not scheduled yet whose consumers are all in this group: deepest common loop
        for f in an.unsched.get(gid, []):
            loop: Optional[LN] = None
            for e in ad.nodes[f].outgoing:
                cs = ctx.sites.get((e.consumer.f, e.consumer.s))
                if cs is None:
                    continue
                l = cs.innermost if cs.innermost is not None else cs.compute
                if l is None:
                    continue
                loop = l if loop is None else _deepest_common_ancestor(loop, l)
            if loop is None:
                loop = root
            for st in ad.nodes[f].stages:
                site = ctx.site(f, st.s)
                site.compute = site.store = loop
        # producers outside the group: inputs and root Funcs (scheduled or not)
        for f in [R] + an.members.get(gid, []) + an.inl_in_group.get(gid, []):
            for p in ad.nodes[f].producers:
                site = ctx.site(p, 0)
                if site.compute is not None:
                    continue
                site.compute = site.store = root
                if p in an.placed_root:
                    site.vector_dim = self.storage_dim(state, p)
        readers = [R] + an.members.get(gid, []) + an.inl_in_group.get(gid, [])
        for p, dim in wrapped_dims(state, readers).items():
            if (p, 0) in ctx.sites and ctx.sites[(p, 0)].compute is root:
                ctx.sites[(p, 0)].vector_dim = dim     # the reader loads the copy, in its order
        store_features(ctx, root, R, 1, only_stage=sR)
        ws = featurize_group(ctx, top)
        keys = [k for k in ctx.features if k in self.row and (k[0] not in an.inl_calls)]
        rows = np.array([self.row[k] for k in keys], dtype=np.intp)
        block = np.array([ctx.features[k] for k in keys], dtype=np.float64).reshape(len(keys), NF)
        for j, (f, s) in enumerate(keys):
            node = ad.nodes[f]
            block[j, F_BYTES_AT_ROOT] = self._bytes_at_root[f]
            v = self.storage_dim(state, f)
            ise = 1
            if 0 <= v < node.dims:
                a, b = node.root_computed[v]
                ise = b - a + 1
            block[j, F_INNERMOST_BYTES_AT_ROOT] = float(node.bytes_per_point * ise)
            block[j, F_PC_MINIMUM] = node.stages[s].pcm
        bap = ctx.features[(R, 0)][F_BYTES_AT_PRODUCTION] if sR == 0 and (R, 0) in ctx.features else 0.0
        inl_vdim = {f: ctx.sites[(f, 0)].vector_dim for f in an.inl_in_group.get(gid, []) if (f, 0) in ctx.sites}
        return _GroupResult(rows, block, ws, bap, list(ctx.inlined_visits), inl_vdim)

    # ------------------------------------------------------------------ assembly
    def _fill(self, state: State, out: np.ndarray) -> None:
        try:
            self._fill_unsafe(state, out)
        finally:
            self._sdim_memo[0] = None       # hold no state (and so no space) past the call

    def _fill_unsafe(self, state: State, out: np.ndarray) -> None:
        sp = state.space
        if sp is not self._space() and (sp.dag is not self.dag or sp.parallelism != self.parallelism
                                        or str(sp.target) != self.target):
            raise ValueError("this Featurizer was built for another pipeline, target or parallelism; "
                             "use featurizer_for(state)")
        pd = state.parent_derived if self.incremental else None
        memo = pd.get("features") if pd is not None else None
        changed = state.non_placing_change() if memo is not None else None
        prev: Optional[dict[GroupId, tuple[_GroupResult, set[int]]]] = None
        dirty = dirty2 = -1
        if memo is not None and memo.owner is self and changed is not None:
            an = memo.an          # placements unchanged: the same groups, members and inlined calls
            prev = memo.groups
            dirty, dirty2 = changed
        else:
            an = self._analyze(state)
        cache = self._cache
        results: list[_GroupResult] = []
        groups: dict[GroupId, tuple[_GroupResult, set[int]]] = {}
        for gid in an.group_order:
            old = prev.get(gid) if prev is not None else None
            if old is not None and dirty not in old[1] and dirty2 not in old[1]:
                self.reused += 1
                groups[gid] = old
                results.append(old[0])
                continue
            key, reads = self._group_key(state, an, gid)
            hit = cache.get(key)
            if hit is None:
                self.misses += 1
                hit = self._featurize_group(state, an, gid)
                if len(cache) >= self.max_cache:
                    cache.clear()
                cache[key] = hit
            else:
                self.hits += 1
            groups[gid] = (hit, reads)
            results.append(hit)
        if self.incremental:
            if state.derived is None:
                state.derived = {}
            state.derived["features"] = _Memo(self, an, groups)
        total = 0.0
        for res in results:
            out[res.rows] = res.block
            total += res.ws + res.bap_root
        row = self.row
        ad = self.ad
        for R in an.root_funcs:
            for st in ad.nodes[R].stages:
                k = row[(R, st.s)]
                out[k, F_WORKING_SET_AT_REALIZATION] = total
                out[k, F_WORKING_SET_AT_PRODUCTION] = total
        # inlined Funcs: summed over every innermost loop they are inlined into, in loop-nest order
        if an.inl_calls:
            # per inlined Func: [calls, vectors, scalars, native, vector size, innermost pure
            # extent, outer parallelism] in Python floats (numpy scalar updates cost more here)
            inl: dict[int, list[float]] = {}
            vdim: dict[int, int] = {}
            for res in results:
                for (g, calls, nv, ns, native, vsize, iple, par) in res.inlined:
                    a = inl.get(g)
                    if a is None:
                        inl[g] = [calls, nv, ns, native, vsize, iple, par]
                        continue
                    a[0] += calls
                    a[1] += nv
                    a[2] += ns
                    a[3] = native
                    a[4] = min(a[4], native) if a[4] > 0 else vsize
                    a[5] = min(a[5], iple) if a[5] > 0 else iple
                    a[6] = par
                vdim.update(res.inlined_vdim)
            for g, a in inl.items():
                ft = np.zeros(NF, dtype=np.float64)
                ft[F_INLINED_CALLS], ft[F_NUM_VECTORS], ft[F_NUM_SCALARS] = a[0], a[1], a[2]
                ft[F_NATIVE_VECTOR_SIZE], ft[F_VECTOR_SIZE] = a[3], a[4]
                ft[F_INNERMOST_PURE_LOOP_EXTENT], ft[F_OUTER_PARALLELISM] = a[5], a[6]
                ft[F_INNER_PARALLELISM] = 1.0
                node = ad.nodes[g]
                ft[F_BYTES_AT_ROOT] = self._bytes_at_root[g]
                v = vdim.get(g, -1)
                ise = 1
                if 0 <= v < node.dims:
                    lo, hi = node.root_computed[v]
                    ise = hi - lo + 1
                ft[F_INNERMOST_BYTES_AT_ROOT] = float(node.bytes_per_point * ise)
                ft[F_PC_MINIMUM] = node.stages[0].pcm
                ft[F_WORKING_SET_AT_ROOT] = total
                out[row[(g, 0)]] = ft
        for res in results:
            out[res.rows, F_WORKING_SET_AT_ROOT] = total


def _deepest_common_ancestor(a: LN, b: LN) -> LN:
    if a.is_root:
        return a
    if b.is_root:
        return b
    if a is b:
        return a
    while a.depth > b.depth:
        assert a.parent is not None
        a = a.parent
    while b.depth > a.depth:
        assert b.parent is not None
        b = b.parent
    while True:
        assert a.parent is not None and b.parent is not None
        a = a.parent
        b = b.parent
        if a is b:
            return a


# ---------------------------------------------------------------------------- module-level API

_FEATURIZERS: "weakref.WeakKeyDictionary[SearchSpace, Featurizer]" = weakref.WeakKeyDictionary()


def featurizer_for(space: Union[SearchSpace, State]) -> Union[Featurizer, "GpuFeaturizer"]:
    """The (cached) featurizer of a search space; states of one search share it and its cache.
    GPU targets get the GPU feature set (``features/gpu.py``: :class:`GpuFeaturizer`)."""
    sp = space.space if isinstance(space, State) else space
    if sp.gpu:
        from .gpu import gpu_featurizer_for
        return gpu_featurizer_for(sp)
    fz = _FEATURIZERS.get(sp)
    if fz is None:
        fz = Featurizer(sp)
        _FEATURIZERS[sp] = fz
    return fz


def schedule_features(state: State) -> np.ndarray:
    """[S, 39] float64 Adams2019 schedule features of ``state`` in ``dag.featurization_order()``."""
    return featurizer_for(state).features(state)


def pipeline_features(space: Union[SearchSpace, State]) -> np.ndarray:
    """[S, 40, 7] float32 pipeline features (the DAG's op histograms and access patterns)."""
    return featurizer_for(space).pipeline


def network_inputs(states: Sequence[State]) -> Union[AdamsInputs, "GpuInputs"]:
    """AdamsNet inputs for a batch of states of one search space (``GpuInputs`` on GPU targets)."""
    if not states:
        raise ValueError("network_inputs needs at least one state")
    return featurizer_for(states[0]).network_inputs(states)


def featurize_states(states: Iterable[State]) -> np.ndarray:
    """[B, S, 39] float32 schedule features of states of one search space."""
    lst = list(states)
    if not lst:
        raise ValueError("featurize_states needs at least one state")
    return featurizer_for(lst[0]).batch(lst)


__all__ = ["Featurizer", "AdamsInputs", "featurizer_for", "schedule_features", "pipeline_features",
           "network_inputs", "featurize_states", "NUM_SCHEDULE_FEATURES"]

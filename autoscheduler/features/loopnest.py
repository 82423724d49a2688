"""Adams2019's loop-nest tree, built from our search state, and ``LoopNest::compute_features``.

Our state describes each stage with at most four kinds of loops (``state.plan``): an outer tile
level (serial, or fused into one parallel task loop at the root), the inner loops (one per pure
dimension, RVars innermost when nothing is unrolled), an unrolled register tile (RVars just outside
it), and the vector loop. Adams2019's ``LoopNest`` is a chain of *levels* per stage, each level
holding a size for every loop of the stage. The chain of a stage is built here as

    [outer level] -> [inner level, cut below every loop a producer is computed or stored at]
                  -> [unrolled level, with the RVars] -> [vector level]

where a level of all-ones sizes is dropped unless it is the level just above the vector level
(Adams2019's original compute site, whose bounds are a single representative vector), a level a
producer is computed or stored at, or a parallel task level. Sizes are in Adams2019's units: the
vectorised dimension counts vectors in every level above the vector level. Bounds of a level are
the region one iteration of it covers, computed exactly as Adams2019 does: the level just above the
vector level covers one vector in the middle of the stage's range at its compute site, every other
level the middle tile of its parent split by its sizes (``ceil(extent / size)``).

``compute_features`` is a line-by-line port of ``LoopNest::compute_features`` (Halide
``src/autoschedulers/adams2019/LoopNest.cpp``), run on one root child (a "group") at a time; the
root-level parts that mix groups (working set at root, inlined Funcs, bytes at root) are done by
the caller (``featurizer.py``). Two places follow our schedule rather than Adams2019's model:

* ``unrolled_loop_extent`` is the register tile's extent when our plan unrolls it (``InnerTile`` /
  ``Kernel`` unroll), else 1; Adams2019 derives it from its bounds' "constant extent" flags, which
  mostly agrees with what its ``apply`` unrolls, but not for updates split with GuardWithIf tails
  (it then reports an unrolled level its schedule does not unroll);
* a root Func's stage whose own outer decision leaves it serial gets a parallel level of one task
  when the Func's pure stage is parallel (``ChainSpec.force_parallel_level``): Adams2019
  parallelises all stages of a Func with one task grid, so such a stage is "parallel" in its model
  (task bytes of the whole stage instead of the optimistic estimate for a not-yet-parallelised one).

A CPU RFactor stage has no Adams2019 counterpart: its chain (``_rfactor_template``) models the
intermediate's update, the stage's reduction with partial results as vector lanes and parallel
tasks on the split RVar's loop (see ``features/cpu_rfactor.py`` for what is approximated).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

from cost_model.features_layout import NUM_SCHEDULE_FEATURES
from cost_model.features_layout import SCHEDULE_FEATURE_INDEX as _FI

from .adams_dag import EMPTY_MAX, EMPTY_MIN, AdamsDag, AEdge, AStage, Jac, SpanList, ceil_div

NF = NUM_SCHEDULE_FEATURES
# feature indices, from the one source of truth (cost_model.features_layout)
F_NUM_REALIZATIONS = _FI["num_realizations"]
F_NUM_PRODUCTIONS = _FI["num_productions"]
F_PC_PER_REALIZATION = _FI["points_computed_per_realization"]
F_PC_PER_PRODUCTION = _FI["points_computed_per_production"]
F_PC_TOTAL = _FI["points_computed_total"]
F_PC_MINIMUM = _FI["points_computed_minimum"]
F_INNERMOST_LOOP_EXTENT = _FI["innermost_loop_extent"]
F_INNERMOST_PURE_LOOP_EXTENT = _FI["innermost_pure_loop_extent"]
F_UNROLLED_LOOP_EXTENT = _FI["unrolled_loop_extent"]
F_INNER_PARALLELISM = _FI["inner_parallelism"]
F_OUTER_PARALLELISM = _FI["outer_parallelism"]
F_BYTES_AT_REALIZATION = _FI["bytes_at_realization"]
F_BYTES_AT_PRODUCTION = _FI["bytes_at_production"]
F_BYTES_AT_ROOT = _FI["bytes_at_root"]
F_INNERMOST_BYTES_AT_REALIZATION = _FI["innermost_bytes_at_realization"]
F_INNERMOST_BYTES_AT_PRODUCTION = _FI["innermost_bytes_at_production"]
F_INNERMOST_BYTES_AT_ROOT = _FI["innermost_bytes_at_root"]
F_INLINED_CALLS = _FI["inlined_calls"]
F_UNIQUE_BYTES_READ_PER_REALIZATION = _FI["unique_bytes_read_per_realization"]
F_UNIQUE_LINES_READ_PER_REALIZATION = _FI["unique_lines_read_per_realization"]
F_ALLOCATION_BYTES_READ_PER_REALIZATION = _FI["allocation_bytes_read_per_realization"]
F_WORKING_SET = _FI["working_set"]
F_VECTOR_SIZE = _FI["vector_size"]
F_NATIVE_VECTOR_SIZE = _FI["native_vector_size"]
F_NUM_VECTORS = _FI["num_vectors"]
F_NUM_SCALARS = _FI["num_scalars"]
F_SCALAR_LOADS_PER_VECTOR = _FI["scalar_loads_per_vector"]
F_VECTOR_LOADS_PER_VECTOR = _FI["vector_loads_per_vector"]
F_SCALAR_LOADS_PER_SCALAR = _FI["scalar_loads_per_scalar"]
F_BYTES_AT_TASK = _FI["bytes_at_task"]
F_INNERMOST_BYTES_AT_TASK = _FI["innermost_bytes_at_task"]
F_UNIQUE_BYTES_READ_PER_VECTOR = _FI["unique_bytes_read_per_vector"]
F_UNIQUE_LINES_READ_PER_VECTOR = _FI["unique_lines_read_per_vector"]
F_UNIQUE_BYTES_READ_PER_TASK = _FI["unique_bytes_read_per_task"]
F_UNIQUE_LINES_READ_PER_TASK = _FI["unique_lines_read_per_task"]
F_WORKING_SET_AT_TASK = _FI["working_set_at_task"]
F_WORKING_SET_AT_PRODUCTION = _FI["working_set_at_production"]
F_WORKING_SET_AT_REALIZATION = _FI["working_set_at_realization"]
F_WORKING_SET_AT_ROOT = _FI["working_set_at_root"]


Bound = tuple[SpanList, SpanList, list[SpanList]]   # (required, computed, loops per stage)
Entry = tuple[int, int, Optional[tuple[str, int]]]  # (stage loop index, size, cut key)


class LN:
    """One level of Adams2019's loop nest (``LoopNest``); ``f == -1`` is the root."""

    __slots__ = ("f", "st", "size", "children", "inlined", "store_at", "innermost", "parallel", "vector_dim",
                 "vli", "bounds", "parent", "depth", "unrolled", "key", "vsize", "task_pure")

    def __init__(self, f: int, st: Optional[AStage], size: list[int]) -> None:
        self.f = f
        self.st = st
        self.size = size
        self.children: list[LN] = []
        self.inlined: list[tuple[int, int]] = []
        self.store_at: list[int] = []
        self.innermost = False
        self.parallel = False
        self.vector_dim = -1
        self.vli = -1
        self.bounds: dict[int, Bound] = {}
        self.parent: Optional[LN] = None
        self.depth = 0
        self.unrolled = False   # this level is our unrolled register tile
        # (Func, stage, spans of one iteration of this level): all get_bounds(f) depend on
        self.key: Any = None
        self.vsize = 0          # vector width of this stage's chain
        # loops counted as parallel tasks when not all-pure (an rfactor's partial results: RFactorChain)
        self.task_pure: Optional[tuple[bool, ...]] = None

    @property
    def is_root(self) -> bool:
        return self.f < 0

    def describe(self, names: Sequence[str], prefix: str = "") -> list[str]:
        """Lines in the format of Adams2019's ``LoopNest::dump``, without its ``c`` (constant extent)
        and ``t`` (tileable) marks; ``names[f]`` is Func ``f``'s name."""
        out: list[str] = []
        if not self.is_root:
            assert self.st is not None
            sizes = " ".join(f"{s}v" if (self.innermost and i == self.vli) else str(s)
                             for i, s in enumerate(self.size))
            tail = " *" if self.innermost else (" p" if self.parallel else "")
            head = f"{names[self.f]} {sizes}" if sizes else names[self.f]
            out.append(f"{prefix}{head} ({self.vli}, {self.vector_dim}){tail}")
            prefix += " "
        for f in self.store_at:
            out.append(f"{prefix}realize: {names[f]}")
        for c in reversed(self.children):
            out.extend(c.describe(names, prefix))
        for f, n in self.inlined:
            out.append(f"{prefix}inlined: {names[f]} {n}")
        return out


class Site:
    """``LoopNest::Sites`` of one stage."""

    __slots__ = ("compute", "store", "produce", "innermost", "task", "inlined", "vector_dim")

    def __init__(self) -> None:
        self.compute: Optional[LN] = None
        self.store: Optional[LN] = None
        self.produce: Optional[LN] = None
        self.innermost: Optional[LN] = None
        self.task: Optional[LN] = None
        self.inlined = False
        # vector dim of the produce node (for producers scheduled in other groups: no node here)
        self.vector_dim = -1

    @property
    def scheduled(self) -> bool:
        return self.produce is not None or self.vector_dim >= 0


class GroupContext:
    """Everything ``compute_features`` needs while featurizing one group."""

    def __init__(self, ad: AdamsDag, root: LN, parallelism: int) -> None:
        self.ad = ad
        self.root = root
        self.P = parallelism
        self.sites: dict[tuple[int, int], Site] = {}
        self.features: dict[tuple[int, int], list[float]] = {}
        # inlined Funcs: per visit (f, calls*subinstances, calls*num_vectors, calls*num_scalars,
        # consumer native vector, consumer vector size, consumer innermost pure extent, parallelism)
        self.inlined_visits: list[tuple[int, float, float, float, float, float, float, float]] = []

    def feat(self, key: tuple[int, int]) -> list[float]:
        v = self.features.get(key)
        if v is None:
            v = [0.0] * NF
            self.features[key] = v
        return v

    def site(self, f: int, s: int) -> Site:
        key = (f, s)
        v = self.sites.get(key)
        if v is None:
            v = Site()
            self.sites[key] = v
        return v


def input_dim(site: Site) -> int:
    """An input's innermost storage dimension as its reader sees it: 0 (the caller's buffer),
    unless the reader loads a reordered copy of it (``Wrap``: ``site.vector_dim`` set)."""
    return site.vector_dim if site.vector_dim >= 0 else 0


# ----------------------------------------------------------------------------------- bounds

def get_bounds(ctx: GroupContext, X: LN, f: int) -> Bound:
    """``LoopNest::get_bounds``: the region of Func ``f`` one iteration of level ``X`` needs."""
    b = X.bounds.get(f)
    if b is not None:
        return b
    an = ctx.ad.nodes[f]
    if X.is_root:
        b = (an.root_required, an.root_computed, [st.root_loops for st in an.stages])
        X.bounds[f] = b
        return b
    memo = ctx.ad.bounds_memo
    mk = (X.key, f)
    b = memo.get(mk)
    if b is not None:
        X.bounds[f] = b
        return b
    st = X.st
    assert st is not None
    req: Optional[SpanList] = None
    for e in an.outgoing:
        cs = e.consumer
        if not (cs is st or cs.f in st.upstream):
            continue
        cb = get_bounds(ctx, X, cs.f)
        fp = e.footprint(cb[2][cs.s])
        if req is None:
            req = fp
        else:
            req = [(a[0] if a[0] < c[0] else c[0], a[1] if a[1] > c[1] else c[1]) for a, c in zip(req, fp)]
    if req is None:
        req = [(EMPTY_MIN, EMPTY_MAX)] * an.dims
    comp = an.computed_from_required(req)
    b = (req, comp, [s.loops_for(comp) for s in an.stages])
    X.bounds[f] = b
    if len(memo) > 400_000:
        memo.clear()
    memo[mk] = b
    return b


def _extent(span: tuple[int, int]) -> int:
    return span[1] - span[0] + 1


# ----------------------------------------------------------------------------------- chains

class ChainSpec:
    """What our state says about one stage: vector dim and width, unroll factors, outer tiles,
    whether the outer tiles are one parallel loop, and the loops producers are computed / stored
    at (keys ``(level, dim)`` as in ``LoopRef``)."""

    __slots__ = ("vector_dim", "width", "unroll", "tiles", "parallel", "cuts", "storage_dim", "kernel",
                 "force_parallel_level", "rfactor", "sub", "rblock")

    def __init__(self, vector_dim: Optional[int], width: int, unroll: dict[int, int], tiles: dict[int, int],
                 parallel: bool, cuts: set[tuple[str, int]], storage_dim: int, kernel: bool = False,
                 force_parallel_level: bool = False, rfactor: Optional["RFactorChain"] = None,
                 sub: Optional[dict[int, int]] = None, rblock: int = 0) -> None:
        self.vector_dim = vector_dim
        self.width = width
        self.unroll = unroll
        self.tiles = tiles
        self.parallel = parallel
        self.cuts = cuts
        self.storage_dim = storage_dim
        self.kernel = kernel
        self.force_parallel_level = force_parallel_level
        self.rfactor = rfactor
        self.sub = sub or {}
        self.rblock = rblock


# one level of a chain template: (sizes, parallel, cut key, unrolled, own bound, memo key, innermost)
LevelT = tuple[list[int], bool, Optional[tuple[str, int]], bool, Bound, Any, bool]


def build_chain(ctx: GroupContext, site: LN, f: int, s: int, spec: ChainSpec,
                refs: dict[tuple[str, int], LN]) -> tuple[LN, LN]:
    """Build the levels of stage ``(f, s)`` computed at level ``site``; fills ``refs`` with the
    level each cut loop ends. Returns (top level, innermost level). The levels' sizes and bounds
    depend only on the site's bounds and the spec, so they are memoized per DAG."""
    ad = ctx.ad
    st = ad.nodes[f].stages[s]
    mk = (site.key, f, s, spec.vector_dim, spec.width, tuple(sorted(spec.unroll.items())),
          tuple(sorted(spec.tiles.items())), spec.parallel, frozenset(spec.cuts), spec.storage_dim,
          spec.force_parallel_level, spec.rfactor, tuple(sorted(spec.sub.items())), spec.rblock)
    memo = ad.chain_memo
    tmpl = memo.get(mk)
    if tmpl is None:
        tmpl = (_chain_template if spec.rfactor is None else _rfactor_template)(ctx, site, f, s, spec)
        if len(memo) > 200_000:
            memo.clear()
        memo[mk] = tmpl
    levels, vli, v = tmpl
    parent = site
    first: Optional[LN] = None
    node = site
    for sizes, par, cut, unr, bound, key, innermost in levels:
        node = LN(f, st, sizes)
        node.parallel = par
        node.unrolled = unr
        node.innermost = innermost
        node.vector_dim = spec.storage_dim
        node.vli = vli
        node.bounds[f] = bound
        node.key = key
        node.vsize = v
        if par and spec.rfactor is not None:
            node.task_pure = spec.rfactor.task_pure
        node.parent = parent
        node.depth = parent.depth + 1
        if first is None:
            first = node
        else:
            parent.children.append(node)
        if cut is not None:
            refs[cut] = node
        parent = node
    assert first is not None
    return first, node


def _chain_template(ctx: GroupContext, site: LN, f: int, s: int,
                    spec: ChainSpec) -> tuple[list[LevelT], int, int]:
    ad = ctx.ad
    an = ad.nodes[f]
    st = an.stages[s]
    site_bound = get_bounds(ctx, site, f)
    full = site_bound[2][s]
    n = st.n_loops
    ext = [_extent(sp) for sp in full]
    vd = spec.vector_dim
    v = spec.width if vd is not None else 1
    vli = -1
    if vd is not None and v > 1 and an.dims:
        for i in range(n):
            if not st.loops_rvar[i] and st.pure_dims[i] == vd:
                vli = i
                break
        if vli < 0:
            v = 1
    has_unroll = bool(spec.unroll)
    # entries innermost first: (loop index, size, tag, cut key)
    groups: list[tuple[str, list[Entry]]] = []
    unit: list[int] = [1] * n
    pure_idx = [i for i in range(n) if st.loops_pure[i] and not st.loops_rvar[i]]
    rvar_idx = [i for i in range(n) if st.loops_rvar[i] or not st.loops_pure[i]]
    for i in pure_idx:
        d = st.pure_dims[i]
        unit[i] = spec.unroll.get(d, 1) * (v if i == vli else 1)
    # a reduction block (``OuterTile.rblock``): the outermost RVar's block loop is a level of its own
    # between the register-tile loops and the sub-tiles; the RVars' level holds one block of it
    r_ext = list(ext)
    block: list[Entry] = []
    r_loops = [i for i in range(n) if st.loops_rvar[i]]
    if spec.rblock and r_loops:
        last = r_loops[-1]
        r_ext[last] = min(spec.rblock, max(ext[last], 1))
        block.append((last, ceil_div(max(ext[last], 1), spec.rblock), None))
    # unrolled level (with the RVars when anything is unrolled)
    if has_unroll:
        ents: list[Entry] = [(i, spec.unroll[st.pure_dims[i]], None) for i in pure_idx
                             if st.pure_dims[i] in spec.unroll]
        ents.sort(key=lambda t: 0 if t[0] == vli else 1)
        ents += [(i, r_ext[i], None) for i in rvar_idx]
        groups.append(("U", ents))
    inner: list[Entry] = []
    if not has_unroll:
        inner += [(i, r_ext[i], None) for i in rvar_idx]
    for i in pure_idx:
        d = st.pure_dims[i]
        t = spec.sub.get(d, spec.tiles.get(d))
        if t is not None:
            if t == unit[i]:
                continue
            inner.append((i, t // unit[i], ("inner", d)))
        else:
            inner.append((i, ceil_div(max(ext[i], 1), unit[i]), ("inner", d)))
    if inner or not has_unroll:
        groups.append(("I", inner))
    if block:
        groups.append(("R", block))
    if spec.sub:    # the serial sub-tile level inside a task (``OuterTile.sub``)
        sub_ents: list[Entry] = []
        for i in pure_idx:
            d = st.pure_dims[i]
            if d in spec.sub:
                span = spec.tiles[d] if d in spec.tiles else max(ext[i], 1)
                sub_ents.append((i, ceil_div(span, spec.sub[d]), ("outer", d)))
        groups.append(("S", sub_ents))
    outer: list[Entry] = [(i, ceil_div(max(ext[i], 1), spec.tiles[st.pure_dims[i]]), ("outer", st.pure_dims[i]))
                          for i in pure_idx if st.pure_dims[i] in spec.tiles]
    if spec.parallel:
        par_ents: list[Entry] = [(i, sz, None) for i, sz, _ in outer]
        groups.append(("P", par_ents))
    elif outer:
        groups.append(("O", outer))
    elif spec.force_parallel_level:
        groups.append(("P", []))
    # segments, innermost first
    segs: list[tuple[str, list[Entry], Optional[tuple[str, int]]]] = []
    for tag, ents in groups:
        if tag == "P":
            segs.append((tag, ents, ("parallel", -1)))
            continue
        # a producer computed at loop l sits inside l: l and the loops outside it form one level,
        # the loops inside it the next one down
        cur: list[Entry] = []
        cur_cut: Optional[tuple[str, int]] = None
        for ent in ents:
            if ent[2] is not None and ent[2] in spec.cuts:
                if cur:
                    segs.append((tag, cur, cur_cut))
                cur = []
                cur_cut = ent[2]
            cur.append(ent)
        if cur or (tag == "I" and not has_unroll and not ents):
            segs.append((tag, cur, cur_cut))
    # decide which segments are levels
    keep: list[tuple[list[int], bool, Optional[tuple[str, int]], bool]] = []   # sizes, parallel, cut, unrolled
    for k, (tag, ents, cut) in enumerate(segs):
        sizes = [1] * n
        for i, sz, _ in ents:
            sizes[i] = sizes[i] * sz
        is_l1 = k == 0
        carries = cut is not None and cut in spec.cuts
        if not (is_l1 or carries or tag == "P") and all(x == 1 for x in sizes):
            continue
        keep.append((sizes, tag == "P", cut if carries else None, tag == "U"))
    if not keep:
        keep.append(([1] * n, False, None, False))
    keep.reverse()      # outermost first
    return _level_bounds(site_bound, f, s, full, keep, vli, v), vli, v


def _level_bounds(site_bound: Bound, f: int, s: int, full: SpanList,
                  keep: list[tuple[list[int], bool, Optional[tuple[str, int]], bool]], vli: int,
                  v: int) -> list[LevelT]:
    """The level templates of a stage's chain from its levels (``keep``: sizes, parallel, cut,
    unrolled; outermost first), with the bounds of one iteration of each level (module doc) and
    the vector level (width ``v`` at stage loop ``vli``) when there is one."""
    n = len(full)
    ext = [_extent(sp) for sp in full]
    out: list[LevelT] = []
    parent_span = list(full)
    for k, (sizes, par, cut, unr) in enumerate(keep):
        is_l1 = k == len(keep) - 1
        spans: list[tuple[int, int]] = []
        if is_l1:
            for i in range(n):
                lo = full[i][0]
                if i == vli:
                    nv = ceil_div(ext[i], v)
                    a = lo + v * (nv // 2)
                    spans.append((a, a + v - 1))
                else:
                    a = lo + ext[i] // 2
                    spans.append((a, a))
        else:
            for i in range(n):
                pe = parent_span[i][1] - parent_span[i][0] + 1
                sz = sizes[i]
                e = ceil_div(pe, sz)
                a = parent_span[i][0] + (sz // 2) * e
                spans.append((a, a + e - 1))
        loops = list(site_bound[2])
        loops[s] = spans
        out.append((sizes, par, cut, unr, (site_bound[0], site_bound[1], loops), (f, s, tuple(spans)),
                    is_l1 and vli < 0))
        parent_span = spans
    if vli >= 0:
        vsize = [1] * n
        vsize[vli] = v
        vspans = list(parent_span)
        vspans[vli] = (parent_span[vli][0], parent_span[vli][0])
        loops = list(site_bound[2])
        loops[s] = vspans
        out.append((vsize, False, None, False, (site_bound[0], site_bound[1], loops), (f, s, tuple(vspans)), True))
    return out


class RFactorChain(NamedTuple):
    """A CPU RFactor stage as its chain models it (``features/cpu_rfactor.py`` builds it from the
    state): the split RVar is stage loop ``ri``; ``factor`` partial results, ``width`` of them per
    vector (1: not vectorised); the parallel loop runs over ``tasks`` groups of partial results
    (``par == "u"``), over the pure stage loop ``par_idx`` (``par == "pure"``), or is absent ("");
    ``task_pure``: the stage's ``loops_pure`` with ``ri`` counted as pure (it holds the tasks)."""

    ri: int
    factor: int
    width: int
    par: str
    par_idx: int
    tasks: int
    task_pure: tuple[bool, ...]


def _rfactor_template(ctx: GroupContext, site: LN, f: int, s: int,
                      spec: ChainSpec) -> tuple[list[LevelT], int, int]:
    """The chain of a CPU RFactor stage, featurized as its intermediate's update (the reduction):
    the split RVar's loop stands for the partial results ``u`` and the part ``r_o`` each reduces.
    Levels, outermost first: the parallel task level (``u``'s outer part, or a pure loop), the
    serial level (``r_o`` times the serial part of ``u``, the other RVars, the pure loops), and the
    vector level (``width`` lanes of ``u`` on the split RVar's loop, whose loads are then classified
    along the RVar: dense where the RVar walks a producer's innermost storage dimension)."""
    rc = spec.rfactor
    assert rc is not None
    site_bound = get_bounds(ctx, site, f)
    full = site_bound[2][s]
    n = len(full)
    ext = [_extent(sp) for sp in full]
    ri = rc.ri
    u_outer = rc.factor // rc.width if rc.width > 1 else rc.factor
    serial = [max(e, 1) for e in ext]
    serial[ri] = ceil_div(max(ext[ri], 1), rc.factor) * (1 if rc.par == "u" else u_outer)
    keep: list[tuple[list[int], bool, Optional[tuple[str, int]], bool]] = []
    if rc.par:
        sizes = [1] * n
        if rc.par == "u":
            sizes[ri] = rc.tasks
        else:
            sizes[rc.par_idx] = serial[rc.par_idx]
            serial[rc.par_idx] = 1
        keep.append((sizes, True, None, False))
    keep.append((serial, False, None, False))
    vli = ri if rc.width > 1 else -1
    return _level_bounds(site_bound, f, s, full, keep, vli, rc.width), vli, rc.width


# ----------------------------------------------------------------------------------- sites

def get_sites(ctx: GroupContext, X: LN, task: Optional[LN], parent: Optional[LN]) -> None:
    """``LoopNest::get_sites``."""
    if task is None and not X.is_root:
        task = X
    for c in X.children:
        get_sites(ctx, c, task, X)
    if parent is not None and X.f != parent.f:
        assert X.st is not None
        s = ctx.site(X.f, X.st.s)
        s.compute = parent
        s.produce = X
        s.task = task
        s.vector_dim = X.vector_dim
    for f in X.store_at:
        for st in ctx.ad.nodes[f].stages:
            ctx.site(f, st.s).store = X
    for f, _ in X.inlined:
        s = ctx.site(f, 0)
        s.inlined = True
        s.compute = s.store = s.produce = s.innermost = X
        s.task = task
        s.vector_dim = X.vector_dim
    if X.innermost:
        assert X.st is not None
        ctx.site(X.f, X.st.s).innermost = X


def set_working_set_at_task(ctx: GroupContext, X: LN, ws: float) -> None:
    for c in X.children:
        set_working_set_at_task(ctx, c, ws)
        assert c.st is not None
        ctx.feat((c.f, c.st.s))[F_WORKING_SET_AT_TASK] = ws


# ----------------------------------------------------------------------------------- features

def store_features(ctx: GroupContext, X: LN, f: int, subinstances: int, only_stage: int = -1) -> None:
    """The ``store_at`` part of ``compute_features``: Func ``f`` is stored at level ``X``
    (``only_stage``: just that stage, for a root Func whose other stages are other groups)."""
    ad = ctx.ad
    an = ad.nodes[f]
    bounds = get_bounds(ctx, X, f)
    for st in an.stages:
        if only_stage >= 0 and st.s != only_stage:
            continue
        feat = ctx.feat((f, st.s))
        site = ctx.sites[(f, st.s)]
        produce = site.produce
        assert produce is not None
        feat[F_NUM_REALIZATIONS] = float(subinstances)
        pcr = 1.0
        nv = float(subinstances)
        ns = float(subinstances)
        vectorized = False
        loops = bounds[2][st.s]
        vs = produce.vsize if produce.vli >= 0 else st.native_vector
        for i in range(st.n_loops):
            extent = loops[i][1] - loops[i][0] + 1
            pcr *= extent
            if i == produce.vli:
                nv *= extent // vs
                ns *= extent % vs
                vectorized = True
            else:
                nv *= extent
                ns *= extent
        if not vectorized:
            nv = 0.0
        feat[F_PC_PER_REALIZATION] = pcr
        feat[F_NUM_VECTORS] = nv
        feat[F_NUM_SCALARS] = ns
        feat[F_PC_TOTAL] = pcr * subinstances
        b = float(an.bytes_per_point)
        for sp in bounds[1]:
            b *= sp[1] - sp[0] + 1
        feat[F_BYTES_AT_REALIZATION] = b
        ise = 1
        v = produce.vector_dim
        if v >= 0 and an.dims > 0:
            sp = bounds[1][v]
            ise = sp[1] - sp[0] + 1
        feat[F_INNERMOST_BYTES_AT_REALIZATION] = float(an.bytes_per_point * ise)
        if not X.is_root:
            feat[F_BYTES_AT_TASK] = b
            feat[F_INNERMOST_BYTES_AT_TASK] = float(an.bytes_per_point * ise)


def compute_features(ctx: GroupContext, X: LN, instances: int, parallelism: int, parent: LN) -> float:
    """``LoopNest::compute_features`` for a non-root level ``X``; returns the working set it adds
    to its parent's (``*working_set += working_set_here``)."""
    ad = ctx.ad
    nodes = ad.nodes
    feats = ctx.features
    sites = ctx.sites
    P = ctx.P
    st = X.st
    assert st is not None
    Xf = X.f
    an = nodes[Xf]
    key = (Xf, st.s)
    working_set_here = 0.0
    loop_instances = 1
    parallel_tasks = 1
    in_impure = False
    size = X.size
    Xpar = X.parallel
    count_tasks = P > 1 and (Xpar or parent.f < 0)
    loops_pure = st.loops_pure if X.task_pure is None else X.task_pure
    for idx in range(len(size) - 1, -1, -1):
        i = size[idx]
        loop_instances *= i
        if loops_pure[idx] and not in_impure:
            if count_tasks and (Xpar or parallel_tasks < P):
                parallel_tasks *= i
                if not Xpar and parallel_tasks > P * 8:
                    parallel_tasks = P * 8
        elif i != 1:
            in_impure = True
    subinstances = instances * loop_instances
    for f in X.store_at:
        store_features(ctx, X, f, subinstances)

    subparallelism = parallel_tasks * parallelism
    feat = feats.get(key)
    if feat is None:
        feat = [0.0] * NF
        feats[key] = feat
    innermost = X.innermost
    if innermost:
        vli = X.vli
        vs = float(size[vli]) if 0 <= vli < len(size) else 1.0
        feat[F_VECTOR_SIZE] = vs
        if vs == 1:
            feat[F_NUM_SCALARS] += feat[F_NUM_VECTORS]
            feat[F_NUM_VECTORS] = 0.0
    else:
        ile = 1.0
        iple = 1.0
        rv = st.loops_rvar
        for idx in range(st.n_loops):
            ile *= size[idx]
            if not rv[idx]:
                iple *= size[idx]
        feat[F_INNERMOST_LOOP_EXTENT] = ile
        feat[F_INNERMOST_PURE_LOOP_EXTENT] = iple

    at_task = parent.f < 0
    at_production = parent.f != Xf
    at_pure_production = at_production and st.s == 0
    bpp_x = an.bytes_per_point

    if at_task:
        if Xpar:
            bounds = get_bounds(ctx, X, Xf)
            bat = float(bpp_x)
            ise = 1
            args = an.node.args
            sloops = st.stage.loops
            for i in range(an.dims):
                outer = 1
                for l in range(st.n_loops):
                    if sloops[l].var == args[i]:
                        outer = size[l]
                        break
                sp = bounds[1][i]
                extent = (sp[1] - sp[0] + 1) // outer
                bat *= extent
                if i == X.vector_dim:
                    ise = extent
            feat[F_BYTES_AT_TASK] = bat
            feat[F_INNERMOST_BYTES_AT_TASK] = float(bpp_x * ise)
        else:
            feat[F_BYTES_AT_TASK] = (feat[F_BYTES_AT_REALIZATION] + P - 1) / P
            feat[F_INNERMOST_BYTES_AT_TASK] = min(feat[F_BYTES_AT_TASK], feat[F_INNERMOST_BYTES_AT_REALIZATION])
        ubt = 0.0
        ult = 0.0
        pending: list[AEdge] = list(st.incoming)
        done: set[int] = set()
        while pending:
            e = pending.pop()
            pf = e.producer
            if pf in done:
                continue
            done.add(pf)
            pn = nodes[pf]
            site = sites[(pf, 0)]
            if site.store is not None and site.store.f < 0:
                b = get_bounds(ctx, X, pf)
                nbytes = pn.bytes_per_point
                lines = 1
                max_extent = 1
                sched = site.produce is not None or site.vector_dim >= 0
                vdim = input_dim(site) if pn.is_input else site.vector_dim if sched else -1
                req = b[0]
                for i in range(pn.dims):
                    extent = req[i][1] - req[i][0] + 1
                    if extent > max_extent:
                        max_extent = extent
                    nbytes *= extent
                    if i != vdim:
                        lines *= extent
                if not pn.is_input and not sched:
                    lines //= max_extent
                ubt += nbytes
                ult += lines
            elif site.produce is not None:
                for pst in pn.stages:
                    pending.extend(pst.incoming)
        feat[F_UNIQUE_BYTES_READ_PER_TASK] = ubt
        feat[F_UNIQUE_LINES_READ_PER_TASK] = ult

    if at_production:
        feat[F_NUM_PRODUCTIONS] = float(instances)
        feat[F_INNER_PARALLELISM] = float(parallel_tasks)
        feat[F_OUTER_PARALLELISM] = float(parallelism)
        feat[F_NATIVE_VECTOR_SIZE] = float(st.native_vector)
        comp = get_bounds(ctx, parent, Xf)[1]
        bap = float(bpp_x)
        for sp in comp:
            bap *= sp[1] - sp[0] + 1
        feat[F_BYTES_AT_PRODUCTION] = bap
        ise = 1
        if X.vector_dim >= 0 and an.dims > 0:
            sp = comp[X.vector_dim]
            ise = sp[1] - sp[0] + 1
        feat[F_INNERMOST_BYTES_AT_PRODUCTION] = float(bpp_x * ise)

    for c in X.children:
        working_set_here += compute_features(ctx, c, subinstances, subparallelism, X)
    if X.store_at:
        for f in X.store_at:
            working_set_here += feats[(f, 0)][F_BYTES_AT_PRODUCTION]
        for f in X.store_at:
            for st2 in nodes[f].stages:
                feats[(f, st2.s)][F_WORKING_SET_AT_REALIZATION] = working_set_here
    for c in X.children:
        if c.f != Xf:
            assert c.st is not None
            feats[(c.f, c.st.s)][F_WORKING_SET_AT_PRODUCTION] = working_set_here
    if at_task:
        set_working_set_at_task(ctx, X, working_set_here)
    if at_production:
        feat[F_WORKING_SET] = working_set_here
    if innermost:
        # Faithful to the schedule: unrolled when this stage's register tile is (our Kernel /
        # InnerTile unroll) -- which is exactly when Adams2019's apply would unroll it.
        if parent.unrolled and parent.f == Xf:
            feat[F_UNROLLED_LOOP_EXTENT] = feat[F_INNERMOST_PURE_LOOP_EXTENT]
        else:
            feat[F_UNROLLED_LOOP_EXTENT] = 1.0

    if not (innermost or at_production):
        return working_set_here

    # memory dependencies (at the innermost level and at the production level)
    bytes_loaded = 0
    lines_loaded = 0
    allocation_bytes_loaded = 0
    num_dense = num_bcast = num_gathers = num_s2 = num_s3 = num_s4 = num_loads = 0.0
    csite = sites[key]
    consumer_store_site = parent if innermost else csite.store
    assert consumer_store_site is not None
    consumer_instances = instances if innermost else int(feat[F_NUM_REALIZATIONS])
    unrolled = feat[F_UNROLLED_LOOP_EXTENT] > 1
    vli = X.vli
    pending_st: list[AStage] = [st]
    jacobians: list[tuple[Jac, int, int]] = []   # (matrix, count, producer)
    done2: set[int] = set()
    while pending_st:
        p = pending_st.pop()
        for e in p.incoming:
            pf = e.producer
            pn = nodes[pf]
            site = sites[(pf, 0)]
            scheduled = pn.is_input or site.produce is not None or site.vector_dim >= 0
            if innermost:
                if e.consumer is st:
                    for m, cnt in e.jacobians:
                        jacobians.append((m, cnt, pf))
                else:
                    cf = e.consumer.f
                    new: list[tuple[Jac, int, int]] = []
                    for j1 in jacobians:
                        if j1[2] == cf:
                            for m2, c2 in e.jacobians:
                                new.append((ad.jac_mul(m2, j1[0]), c2 * j1[1], pf))
                        else:
                            new.append(j1)
                    jacobians = new
            if site.inlined:
                pending_st.append(pn.stages[0])
                continue
            if innermost:
                pid = (input_dim(site) if pn.is_input else site.vector_dim) if scheduled else -2
                for m, cnt, jp in jacobians:
                    if jp != pf:
                        continue
                    nld = float(cnt)
                    cat = ad.classify_load(m, vli, pid, pn.dims)
                    if unrolled:
                        amort = 1
                        for idx in ad.invariant_loops(m, st):
                            amort *= parent.size[idx]
                        nld /= amort
                    num_loads += nld
                    if cat == 0:
                        num_bcast += nld
                    elif cat == 1:
                        num_dense += nld
                    elif cat == 2:
                        num_s2 += nld
                    elif cat == 3:
                        num_s3 += nld
                    elif cat == 4:
                        num_s4 += nld
                    else:
                        num_gathers += nld
            if pf in done2:
                continue
            done2.add(pf)
            pcs = site.compute
            pss = site.store
            assert pcs is not None and pss is not None
            req = get_bounds(ctx, consumer_store_site, pf)[0]
            comp = get_bounds(ctx, pcs, pf)[1]
            sreq = get_bounds(ctx, pss, pf)[0]
            bpp = pn.bytes_per_point
            footprint = bpp
            compute_footprint = bpp
            store_footprint = bpp
            line_fp = 1
            store_line_fp = 1
            max_e = max_se = 1
            pvd = site.vector_dim if (site.produce is not None or site.vector_dim >= 0) else -1
            is_input = pn.is_input
            for i in range(pn.dims):
                p_ = req[i]
                cp = comp[i]
                sp = sreq[i]
                extent = p_[1] - p_[0] + 1
                se = sp[1] - sp[0] + 1
                if extent > max_e:
                    max_e = extent
                if se > max_se:
                    max_se = se
                footprint *= extent
                compute_footprint *= cp[1] - cp[0] + 1
                store_footprint *= se
                if not ((is_input and i == input_dim(site)) or i == pvd):
                    line_fp *= extent
                    store_line_fp *= se
            if not scheduled:
                line_fp //= max_e
                store_line_fp //= max_se
            sipc = 1
            if scheduled and not is_input and consumer_instances:
                pfeat = feats.get((pf, 0))
                if pfeat is not None and pfeat[F_NUM_REALIZATIONS]:
                    psi = int(pfeat[F_NUM_REALIZATIONS])
                    if psi > consumer_instances:
                        sipc = psi // consumer_instances
            allocation_bytes_loaded += compute_footprint
            if sipc > 1:
                bytes_loaded += store_footprint
                lines_loaded += store_line_fp
            else:
                bytes_loaded += footprint
                lines_loaded += line_fp

    if at_production:
        feat[F_ALLOCATION_BYTES_READ_PER_REALIZATION] = float(allocation_bytes_loaded)
        feat[F_UNIQUE_BYTES_READ_PER_REALIZATION] = float(bytes_loaded)
        feat[F_UNIQUE_LINES_READ_PER_REALIZATION] = float(lines_loaded)
        if not at_pure_production:
            feat[F_UNIQUE_BYTES_READ_PER_REALIZATION] += feat[F_BYTES_AT_PRODUCTION]
            feat[F_UNIQUE_LINES_READ_PER_REALIZATION] += (feat[F_BYTES_AT_PRODUCTION]
                                                          / feat[F_INNERMOST_BYTES_AT_PRODUCTION])
            feat[F_ALLOCATION_BYTES_READ_PER_REALIZATION] += feat[F_BYTES_AT_PRODUCTION]

    if innermost:
        npr = feat[F_NUM_PRODUCTIONS]
        feat[F_PC_PER_PRODUCTION] = subinstances / npr if npr else 0.0
        feat[F_VECTOR_LOADS_PER_VECTOR] = num_dense + 2 * num_s2 + 3 * num_s3 + 4 * num_s4
        feat[F_SCALAR_LOADS_PER_VECTOR] = num_bcast + feat[F_VECTOR_SIZE] * num_gathers
        feat[F_SCALAR_LOADS_PER_SCALAR] = num_loads
        if st.s > 0:
            feat[F_VECTOR_LOADS_PER_VECTOR] += 1
            feat[F_SCALAR_LOADS_PER_SCALAR] += 1
        feat[F_UNIQUE_BYTES_READ_PER_VECTOR] = float(bytes_loaded)
        feat[F_UNIQUE_LINES_READ_PER_VECTOR] = float(lines_loaded)
        for g, calls in X.inlined:
            ctx.inlined_visits.append((g, float(calls * subinstances), calls * feat[F_NUM_VECTORS],
                                       calls * feat[F_NUM_SCALARS], float(st.native_vector), feat[F_VECTOR_SIZE],
                                       feat[F_INNERMOST_PURE_LOOP_EXTENT], float(parallelism)))
    return working_set_here


def featurize_group(ctx: GroupContext, top: LN) -> float:
    """Run ``compute_features`` on one root child; returns what it adds to the root's working set."""
    return compute_features(ctx, top, 1, 1, ctx.root)



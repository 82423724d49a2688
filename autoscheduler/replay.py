"""Replay a schedule Halide's Adams2019 picked as a decision trace of our search state.

``replay(dag, cpp_source, target, parallelism)`` reads the plugin's C++ schedule source
(``baselines.search(...).cpp_source``: ``split``, ``reorder``, ``vectorize``, ``parallel`` /
``fuse``, ``unroll``, ``compute_root`` / ``compute_at``, ``store_at``, ``store_in``,
``reorder_storage``) and maps it, Func by Func from the outputs back (the order our decisions are
made in), onto our decisions (``Replay.trace``; ``State.from_trace`` rebuilds ``Replay.state``):

* **placement**: ``compute_root`` -> root; no schedule at all -> inline; ``compute_at(F, v)`` ->
  the legal site of our state whose enclosing loops iterate each dimension of ``F``'s stage as
  often as Adams2019's loops at and outside ``v`` do (ties, from loops of extent 1: a loop of the
  same kind -- parallel, outer tile, inner -- then the innermost); ``store_at`` likewise, where our
  state allows a sliding window;
* **inner decision**: the vectorised variable gives the vector dimension and width; the unrolled
  variables (all in Adams2019's level just above the vector) give the register tile
  (:class:`~autoscheduler.state.Kernel` in a stage with RVars: Adams2019 also keeps the RVars
  outside the unrolled loops); if a producer is computed inside those loops, the stage is replayed
  without unrolling (our unrolled loops are no compute sites, the same loops not unrolled are);
* **outer decision**: the variables fused into the ``parallel`` loop give a parallel task grid, the
  tile extent of each of its dimensions being what its first split leaves inside; without a parallel
  loop, a dimension split into two tiling variables gives a serial outer tile. A root Func with one
  register tile per dimension gets a parallel loop of one task, as Adams2019 gives it (invisible in
  the source, where a loop of extent 1 is not printed).

Variables declared from a Func's loops (``Var x(f.get_schedule().dims()[0].var)``) are matched by
position, not by name: Halide names unnamed Vars ``v123`` from a per-process counter.

What our vocabulary cannot say is recorded per stage in ``Replay.notes`` (and the stage listed in
``Replay.inexact``); the nearest legal decision is used instead:

* a dimension tiled at more than two levels (Adams2019 adds a tile level for each producer it
  computes inside a consumer at a new granularity; we have one outer and one inner loop per
  dimension), or tiled serially under a parallel loop;
* a producer computed inside a consumer's RVar loop (our sites are outside RVars), or inside part of
  a tile level in a loop order ours does not have (our inner loops nest in the stage's dimension
  order), or at a consumer whose own loops were approximated;
* a sliding window our state does not allow: storage more than one site loop outside the compute
  loop, at a loop of another Func, along the consumer's vector dimension, or across a parallel loop;
* an outer tile that is not a multiple of the register tile; a split or vectorised RVar.

``store_in``, tail strategies and ``reorder_storage`` need no decision (our ``apply`` derives the
storage order from the vector dimension, as Adams2019 does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .dag import FunctionDAG
from .errors import ScheduleError
from .state import (Decision, IllegalDecisionError, InnerTile, Kernel, LoopRef, OuterTile, Place, State)
from .state.decisions import LEVEL_PARALLEL, WHERE_AT, WHERE_INLINE, WHERE_ROOT


class ReplayError(ScheduleError):
    """The schedule source cannot be parsed, or names Funcs the pipeline does not have."""


# ------------------------------------------------------------------------------- parsing

@dataclass
class StageSchedule:
    """The scheduling calls on one stage of one Func, as written in the C++ source."""

    func: int
    stage: int
    splits: list[tuple[str, str, str, int]] = field(default_factory=list)
    vectorize: list[str] = field(default_factory=list)
    unroll: list[str] = field(default_factory=list)
    parallel: list[str] = field(default_factory=list)
    fuses: list[tuple[str, str, str]] = field(default_factory=list)
    reorder: Optional[list[str]] = None      # innermost first


@dataclass
class FuncSchedule:
    """Everything the source says about one Func (realization index ``func``)."""

    func: int
    compute_root: bool = False
    compute_at: Optional[tuple[int, str]] = None     # (consumer Func index, variable)
    store_at: Optional[tuple[int, str]] = None
    stages: dict[int, StageSchedule] = field(default_factory=dict)


_FUNC = re.compile(r"^(?:Func|auto)\s+(\w+)\s*=\s*pipeline\.get_func\((\d+)\)$")
_DIM_VAR = re.compile(r"^R?Var\s+(\w+)\((\w+)(?:\.update\((\d+)\))?\.get_schedule\(\)\.dims\(\)\[(\d+)\]\.var\)$")
_HEAD = re.compile(r"^(\w+)(?:\.update\((\d+)\))?$")


def _statements(cpp: str) -> list[str]:
    text = re.sub(r"//[^\n]*", "", cpp)
    out = []
    for raw in text.split(";"):
        s = " ".join(raw.split())
        if s:
            out.append(s)
    return out


def _calls(s: str) -> tuple[str, list[tuple[str, str]]]:
    """``head.a(x).b(y, z)`` -> ("head", [("a", "x"), ("b", "y, z")]) with balanced parentheses."""
    s = re.sub(r"\s*\.\s*", ".", s)
    i = 0
    n = len(s)
    while i < n and (s[i].isalnum() or s[i] == "_"):
        i += 1
    head = s[:i]
    if s.startswith(".update(", i):
        j = s.index(")", i)
        head = s[:j + 1]
        i = j + 1
    calls = []
    while i < n:
        if s[i] != ".":
            raise ReplayError(f"cannot parse schedule statement near '{s[i:i + 40]}'")
        j = i + 1
        while j < n and (s[j].isalnum() or s[j] == "_"):
            j += 1
        name = s[i + 1:j]
        if j >= n or s[j] != "(":
            raise ReplayError(f"cannot parse schedule statement near '{s[i:i + 40]}'")
        depth = 0
        k = j
        while k < n:
            if s[k] == "(":
                depth += 1
            elif s[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        calls.append((name, s[j + 1:k].strip()))
        i = k + 1
    return head, calls


def _args(text: str) -> list[str]:
    return [a.strip() for a in text.replace("{", "").replace("}", "").split(",") if a.strip()]


def parse_cpp_schedule(cpp: str, dim_vars: Optional[dict[str, tuple[int, int, int]]] = None
                       ) -> dict[int, FuncSchedule]:
    """Parse Adams2019's C++ schedule source into per-Func schedules (keyed by realization index).

    ``dim_vars`` (filled if given): each variable declared as a Func's loop
    (``Var x(f.get_schedule().dims()[k].var)``) -> (Func index, stage, k). The names themselves
    (Halide's ``v123`` for unnamed Vars) differ from build to build of the same pipeline.
    """
    funcs: dict[str, int] = {}
    out: dict[int, FuncSchedule] = {}
    for stmt in _statements(cpp):
        m = _FUNC.match(stmt)
        if m:
            funcs[m.group(1)] = int(m.group(2))
            out.setdefault(int(m.group(2)), FuncSchedule(int(m.group(2))))
            continue
        m = _DIM_VAR.match(stmt)
        if m:
            if m.group(2) not in funcs:
                raise ReplayError(f"variable declared from an unknown Func: {stmt[:80]}")
            if dim_vars is not None:
                st = 0 if m.group(3) is None else int(m.group(3)) + 1
                dim_vars[m.group(1)] = (funcs[m.group(2)], st, int(m.group(4)))
            continue
        if stmt.startswith(("Var ", "RVar ", "using ", "#", "auto pipeline")) or stmt in ("{", "}"):
            continue
        head, calls = _calls(stmt)
        hm = _HEAD.match(head)
        if hm is None or hm.group(1) not in funcs:
            raise ReplayError(f"schedule statement on an unknown Func: {stmt[:80]}")
        f = funcs[hm.group(1)]
        s = 0 if hm.group(2) is None else int(hm.group(2)) + 1
        fs = out.setdefault(f, FuncSchedule(f))
        ss = fs.stages.setdefault(s, StageSchedule(f, s))
        for name, arg in calls:
            a = _args(arg)
            if name == "split":
                ss.splits.append((a[0], a[1], a[2], int(a[3])))
            elif name == "vectorize":
                ss.vectorize.append(a[0])
            elif name == "unroll":
                ss.unroll.append(a[0])
            elif name == "parallel":
                ss.parallel.append(a[0])
            elif name == "fuse":
                ss.fuses.append((a[0], a[1], a[2]))
            elif name == "reorder":
                ss.reorder = a
            elif name == "compute_root":
                fs.compute_root = True
            elif name in ("compute_at", "store_at"):
                if a[0] not in funcs:
                    raise ReplayError(f"{name} on an unknown Func '{a[0]}'")
                site = (funcs[a[0]], a[1])
                if name == "compute_at":
                    fs.compute_at = site
                else:
                    fs.store_at = site
            elif name in ("store_in", "reorder_storage", "store_root", "compute_inline"):
                continue
            else:
                raise ReplayError(f"unsupported scheduling call '.{name}(...)' in: {stmt[:80]}")
    return out


# ------------------------------------------------------------------------------- variables

def _clean(name: str) -> str:
    return name.replace("$", "_")


@dataclass
class _Var:
    loop: int          # index into stage.loops
    extent: int


class _StageVars:
    """The variables of one stage after the source's splits and fuses, with their extents."""

    def __init__(self, state: State, f: int, s: int, ss: Optional[StageSchedule]) -> None:
        st = state.space.stage(f, s)
        bounds = state.stage_bounds(f, s)
        self.stage = st
        self.vars: dict[str, _Var] = {}
        self.chains: list[list[str]] = []
        self.problems: list[str] = []
        for i, l in enumerate(st.loops):
            name = _clean(l.var)
            self.vars[name] = _Var(i, max(bounds[i].extent, 1))
            self.chains.append([name])
        self.fused: dict[str, list[str]] = {}
        self.roles: dict[str, str] = {}     # variable -> parallel / outer / inner / unroll / vector
        if ss is None:
            self.order = [_clean(l.var) for l in st.loops]
            return
        order = [_clean(l.var) for l in st.loops]
        for old, outer, inner, factor in ss.splits:
            if old not in self.vars:
                raise ReplayError(f"split of unknown variable '{old}' in {st.name}")
            v = self.vars[old]
            if st.loops[v.loop].rvar:
                self.problems.append(f"RVar {old} is split (RVars are never split in our search space)")
            chain = self.chains[v.loop]
            p = chain.index(old)
            chain[p:p + 1] = [outer, inner]
            self.vars[outer] = _Var(v.loop, -(-v.extent // factor))
            self.vars[inner] = _Var(v.loop, factor)
            q = order.index(old)
            order[q:q + 1] = [inner, outer]
        for inner, outer, fused in ss.fuses:
            parts = self.fused.pop(inner, [inner]) + self.fused.pop(outer, [outer])
            self.fused[fused] = parts
        self.order = list(ss.reorder) if ss.reorder is not None else order

    def parts(self, name: str) -> list[str]:
        return self.fused.get(name, [name])

    def enclosing(self, var: str) -> Optional[list[int]]:
        """Iterations of each stage loop enclosing a producer computed at ``var`` (inclusive)."""
        if var not in self.order and var not in self.fused:
            return None
        counts = [1] * len(self.stage.loops)
        names = self.order
        idx = names.index(var) if var in names else -1
        outside = names[idx:] if idx >= 0 else []
        if idx < 0:
            outside = [var]
        for n in outside:
            for p in self.parts(n):
                v = self.vars.get(p)
                if v is not None:
                    counts[v.loop] *= v.extent
        return counts


def _our_enclosing(state: State, ref: LoopRef) -> list[int]:
    st = state.space.stage(ref.func, ref.stage)
    plan = state.plan(ref.func, ref.stage)
    outer = state.outer(ref.func, ref.stage)
    assert plan is not None
    bounds = state.stage_bounds(ref.func, ref.stage)
    counts = [1] * len(st.loops)
    dim_loop = {l.pure_dim: i for i, l in enumerate(st.loops) if not l.rvar}
    rv_loop = {i2: i for i, l in enumerate(st.loops) if l.rvar
               for i2, rv in enumerate(st.definition.rvars) if rv.var == l.var}
    at = plan.loops.index(plan.loop(ref.level, ref.dim))
    tiles = dict(outer.tiles) if outer is not None else {}
    for l in plan.loops[at:]:
        if l.level == LEVEL_PARALLEL:
            for d in l.fused:
                i = dim_loop[d]
                counts[i] *= -(-max(bounds[i].extent, 1) // tiles[d])
        elif l.dim >= 0:
            counts[dim_loop[l.dim]] *= l.extent
        elif l.rvar >= 0 and l.rvar in rv_loop:
            counts[rv_loop[l.rvar]] *= l.extent
    return counts


def _distance(a: list[int], b: list[int]) -> float:
    return sum(abs(math.log(max(x, 1) / max(y, 1))) for x, y in zip(a, b))


# ------------------------------------------------------------------------------- replay

@dataclass
class Replay:
    """A replayed schedule: the trace, the state it builds, and what could not be expressed."""

    trace: list[Decision]
    state: State
    notes: list[str] = field(default_factory=list)
    inexact: set[tuple[int, int]] = field(default_factory=set)

    @property
    def exact(self) -> bool:
        return not self.inexact


def replay(dag: FunctionDAG, cpp_source: str, target: Union[str, Any, None] = None,
           parallelism: Optional[int] = None) -> Replay:
    """Map Adams2019's C++ schedule source onto a decision trace of our state (see module doc)."""
    dim_vars: dict[str, tuple[int, int, int]] = {}
    sched = parse_cpp_schedule(cpp_source, dim_vars)
    state = State.initial(dag, target, parallelism)
    space = state.space
    rename: dict[str, str] = {}
    for ident, (df, ds, k) in dim_vars.items():
        loops = space.stage(df, ds).loops if ds < len(space.node(df).stages) else ()
        if k >= len(loops):
            raise ReplayError(f"variable {ident} is loop {k} of a stage with {len(loops)} loops")
        rename[ident] = _clean(loops[k].var)
    for fs0 in sched.values():
        _rename(fs0, rename)
    used: dict[int, set[str]] = {}      # Func -> its variables other Funcs are computed / stored at
    for fs0 in sched.values():
        for site in (fs0.compute_at, fs0.store_at):
            if site is not None:
                used.setdefault(site[0], set()).add(_clean(site[1]))
    trace: list[Decision] = []
    notes: list[str] = []
    inexact: set[tuple[int, int]] = set()
    stage_vars: dict[tuple[int, int], _StageVars] = {}

    def note(f: int, s: int, msg: str) -> None:
        notes.append(f"{space.stage(f, s).name}: {msg}")
        inexact.add((f, s))

    def push(d: Decision) -> None:
        nonlocal state
        state = state.apply(d)
        trace.append(d)

    for f in space.order:
        node = space.node(f)
        fs = sched.get(f, FuncSchedule(f))
        n_stages = len(node.stages)
        # ---- placement
        place: Place
        if fs.compute_root or node.is_output:
            place = Place(f, WHERE_ROOT)
        elif fs.compute_at is None and not fs.stages:
            if n_stages == 1 and not node.is_output:
                place = Place(f, WHERE_INLINE)
            else:
                place = Place(f, WHERE_ROOT)
                note(f, 0, "no schedule given but cannot be inlined; computed at root")
        elif fs.compute_at is None:
            place = Place(f, WHERE_ROOT)
        else:
            place = _match_site(state, stage_vars, f, fs, note, inexact)
        try:
            push(place)
        except IllegalDecisionError as e:
            if place.store_at is not None:
                note(f, 0, f"sliding window illegal in our state ({e}); stored where computed")
                place = Place(f, place.where, place.at)
                try:
                    push(place)
                except IllegalDecisionError as e2:
                    note(f, 0, f"placement {place} is illegal here ({e2}); computed at root")
                    push(Place(f, WHERE_ROOT))
            else:
                note(f, 0, f"placement {place} is illegal here ({e}); computed at root")
                push(Place(f, WHERE_ROOT))
        if state.is_inlined(f):
            continue
        # ---- tiling, per stage
        for s in range(n_stages):
            ss = fs.stages.get(s)
            sv = _StageVars(state, f, s, ss)
            stage_vars[(f, s)] = sv
            for p in sv.problems:
                note(f, s, p)
            inner, outer = _tiling(state, f, s, sv, ss, lambda m, s=s: note(f, s, m), used.get(f, set()))
            try:
                push(inner)
            except IllegalDecisionError as e:
                note(f, s, f"inner decision {inner} illegal ({e}); not unrolled")
                vd = inner.vector_dim
                push(InnerTile(f, s, vd, inner.vector_width, ()))
                outer = OuterTile(f, s, (), outer.parallel and bool(outer.tiles))
                outer = _fit_outer(state, f, s, outer, lambda m, s=s: note(f, s, m))
            try:
                push(outer)
            except IllegalDecisionError as e:
                note(f, s, f"outer decision {outer} illegal ({e}); untiled")
                push(OuterTile(f, s, (), False))
    return Replay(trace, state, notes, inexact)


def _rename(fs: FuncSchedule, rename: dict[str, str]) -> None:
    """Use this build's loop names for the variables the source declared from Funcs' loops."""
    def r(n: str) -> str:
        return rename.get(n, n)
    if fs.compute_at is not None:
        fs.compute_at = (fs.compute_at[0], r(fs.compute_at[1]))
    if fs.store_at is not None:
        fs.store_at = (fs.store_at[0], r(fs.store_at[1]))
    for ss in fs.stages.values():
        ss.splits = [(r(a), r(b), r(c), k) for a, b, c, k in ss.splits]
        ss.vectorize = [r(a) for a in ss.vectorize]
        ss.unroll = [r(a) for a in ss.unroll]
        ss.parallel = [r(a) for a in ss.parallel]
        ss.fuses = [(r(a), r(b), r(c)) for a, b, c in ss.fuses]
        if ss.reorder is not None:
            ss.reorder = [r(a) for a in ss.reorder]


def _match_site(state: State, stage_vars: dict[tuple[int, int], _StageVars], f: int, fs: FuncSchedule,
                note: Any, inexact: set[tuple[int, int]]) -> Place:
    """The legal site (and storage level) whose enclosing loops best match the source's."""
    assert fs.compute_at is not None
    cf, var = fs.compute_at
    sites = state.sites(f)
    best: Optional[tuple[float, int, LoopRef]] = None
    best_rank: tuple[float, int, int] = (math.inf, 0, 0)
    for k, ref in enumerate(sites):
        if ref.func != cf:
            continue
        sv = stage_vars.get((ref.func, ref.stage))
        if sv is None:
            continue
        want = sv.enclosing(_clean(var))
        if want is None:
            continue
        d = _distance(want, _our_enclosing(state, ref))
        # Ties come from loops of extent 1: prefer a loop of the same kind as the source's (the
        # parallel loop, an outer tile loop, an inner loop), then the innermost (Adams2019 computes
        # at the innermost loop of one of its levels).
        role = sv.roles.get(_clean(var), "inner")
        kind = LEVEL_PARALLEL if role == "parallel" else ("outer" if role == "outer" else "inner")
        rank = (round(d, 9), 0 if ref.level == kind else 1, -k)
        if best is None or rank < best_rank:
            best = (d, k, ref)
            best_rank = rank
    if best is None:
        note(f, 0, f"compute_at({cf}, {var}) matches no legal site; computed at root")
        return Place(f, WHERE_ROOT)
    site = best[2]
    k_site = best[1]
    if best[0] > 0:
        sv0 = stage_vars[(site.func, site.stage)]
        want0 = sv0.enclosing(_clean(var)) or []
        loops = state.space.stage(site.func, site.stage).loops
        if any(w > 1 and loops[i].rvar for i, w in enumerate(want0)):
            why = "it is computed inside the consumer's RVar loop (our sites are outside RVars)"
        elif (site.func, site.stage) in inexact:
            why = "the consumer's own loops could not be replayed exactly"
        else:
            why = "it is computed inside part of a tile level in a loop order ours does not have"
        note(f, 0, f"compute_at({cf}, {var}): {why}; nearest site {site}")
    store: Optional[LoopRef] = None
    if fs.store_at is not None and fs.store_at != fs.compute_at:
        sf, svar = fs.store_at
        sv = stage_vars.get((sf, site.stage)) if sf == site.func else None
        want = sv.enclosing(_clean(svar)) if sv is not None else None
        if want is None:
            note(f, 0, f"store_at({sf}, {svar}): stored at a loop of another Func than it is computed at "
                       f"(ours: a loop of the same consumer stage); stored where computed")
        elif len(state.space.node(f).stages) != 1:
            note(f, 0, f"store_at({sf}, {svar}): sliding window of a Func with updates; stored where computed")
        else:
            cands = [(r, _distance(want, _our_enclosing(state, r))) for r in sites[:k_site]
                     if r.func == sf and r.stage == site.stage]
            exact = [r for r, d in cands if d == 0]
            if not exact:
                note(f, 0, f"store_at({sf}, {svar}): no loop of ours encloses the same iterations; "
                           "stored where computed")
            elif sites.index(exact[-1]) != k_site - 1:
                note(f, 0, f"store_at({sf}, {svar}): {k_site - sites.index(exact[-1])} loops outside the compute "
                           "loop (ours: the loop right outside it); stored where computed")
            else:
                store = exact[-1]
    return Place(f, WHERE_AT, site, store)


def _tiling(state: State, f: int, s: int, sv: _StageVars, ss: Optional[StageSchedule],
            note: Any, used_sites: set[str]) -> tuple[Union[InnerTile, Kernel], OuterTile]:
    st = sv.stage
    width_default = state.space.vector_width[st.id]
    has_rvars = bool(st.rvar_loops)
    if ss is None:
        return InnerTile(f, s, None, width_default, ()), OuterTile(f, s, (), False)
    vec = set(ss.vectorize)
    unr = set(ss.unroll)
    par: set[str] = set()
    for p in ss.parallel:
        par.update(sv.parts(p))
    vd: Optional[int] = None
    width = width_default
    unroll: dict[int, int] = {}
    tiles: dict[int, int] = {}
    any_parallel = False
    if unr & used_sites:
        # Adams2019 computes a producer inside its unrolled level; our unrolled loops are no compute
        # sites, but the same loops without the unroll are.
        note("a producer is computed inside the unrolled loops; replayed without unrolling")
        unr = set()
    for i, l in enumerate(st.loops):
        chain = sv.chains[i]
        if l.rvar:
            continue
        d = l.pure_dim
        rest = list(chain)
        if rest and rest[-1] in vec:
            vd = d
            width = sv.vars[rest[-1]].extent
            sv.roles[rest[-1]] = "vector"
            rest = rest[:-1]
        u = [n for n in rest if n in unr]
        if u:
            if len(u) > 1 or rest[-1] != u[0]:
                note(f"dimension {d} is unrolled at more than the innermost level")
            unroll[d] = sv.vars[u[-1]].extent
            for n in u:
                sv.roles[n] = "unroll"
            rest = [n for n in rest if n not in unr]
        for n in rest:
            sv.roles[n] = "inner"
        parallel_here = bool(rest) and rest[0] in par
        if parallel_here:
            any_parallel = True
            sv.roles[rest[0]] = "parallel"
            below = 1
            for n in chain[1:]:
                below *= sv.vars[n].extent
            tiles[d] = below
            if len(rest) > 2:
                note(f"dimension {d} is tiled at {len(rest) - 1} levels under the parallel loop")
        elif len(rest) >= 2:
            sv.roles[rest[0]] = "outer"
            below = 1
            for n in chain[chain.index(rest[0]) + 1:]:
                below *= sv.vars[n].extent
            tiles[d] = below
            if len(rest) > 2:
                note(f"dimension {d} is tiled at {len(rest)} levels")
    if any_parallel:
        for d in list(tiles):
            i = next(i for i, l in enumerate(st.loops) if not l.rvar and l.pure_dim == d)
            if sv.chains[i][0] not in par:
                note(f"dimension {d} is tiled serially under a parallel loop")
                del tiles[d]
    for v in vec:
        if v in sv.vars and st.loops[sv.vars[v].loop].rvar:
            note("an RVar is vectorised")
    if vd is None:
        width = width_default
    if has_rvars and unroll:
        if vd is None:
            note("unrolled without a vector dimension in a stage with RVars")
            unroll = {}
    if vd is not None and width < 1:
        width = width_default
    un = tuple(sorted((d, k) for d, k in unroll.items() if k > 1))
    inner: Union[InnerTile, Kernel]
    if has_rvars and un:
        assert vd is not None
        inner = Kernel(f, s, vd, width, un)
    else:
        inner = InnerTile(f, s, vd, width, un)
    placed = state.placement(f)
    if (not any_parallel and not tiles and s == 0 and state.space.parallelism > 1
            and placed is not None and placed.where == WHERE_ROOT):
        # Adams2019 parallelises every root Func it can; a Func of a single register tile per
        # dimension gets a parallel loop of one task (invisible in the source: extent 1).
        reg = {d: dict(un).get(d, 1) * (width if d == vd else 1) for d in (l.pure_dim for l in st.pure_loops)}
        ext = {l.pure_dim: sv.vars[_clean(l.var)].extent for l in st.pure_loops}
        if reg and all(ext[d] <= reg[d] for d in reg):
            tiles = dict(reg)
            any_parallel = True
    outer = OuterTile(f, s, tuple(sorted(tiles.items())), any_parallel)
    outer = _fit_outer(state, f, s, outer, note, inner)
    return inner, outer


def _fit_outer(state: State, f: int, s: int, outer: OuterTile, note: Any,
               inner: Optional[Union[InnerTile, Kernel]] = None) -> OuterTile:
    """Round tile extents up to multiples of the register tile (our outer tiles must be)."""
    inn = inner if inner is not None else state.inner(f, s)
    if inn is None:
        return outer
    reg: dict[int, int] = {}
    u = dict(inn.unroll)
    for l in state.space.stage(f, s).pure_loops:
        d = l.pure_dim
        reg[d] = u.get(d, 1) * (inn.vector_width if d == inn.vector_dim else 1)
    tiles = []
    for d, t in outer.tiles:
        r = reg.get(d, 1)
        if t % r:
            t2 = -(-t // r) * r
            note(f"tile {t} of dimension {d} is not a multiple of its register tile {r}; using {t2}")
            t = t2
        tiles.append((d, t))
    par = outer.parallel and bool(tiles)
    return OuterTile(f, s, tuple(tiles), par)


# ------------------------------------------------------------------------------- loop-nest dumps

def normalize_loop_nest_dump(text: str) -> list[str]:
    """Lines of an Adams2019 ``LoopNest::dump`` without the marks our model does not track
    (``c``: extent known at compile time, ``t``: tileable), Func names without ``$n`` suffixes."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        toks = raw.strip().split(" ")
        if toks[0] in ("realize:", "inlined:"):
            toks[1] = _base_name(toks[1])
            out.append(" " * indent + " ".join(toks))
            continue
        kept = [_base_name(toks[0])]
        for t in toks[1:]:
            if t == "t":
                continue
            if re.fullmatch(r"\d+v?c", t):
                t = t[:-1]
            kept.append(t)
        out.append(" " * indent + " ".join(kept))
    return out


def _base_name(name: str) -> str:
    """A Func name without Halide's uniquifying ``$n`` suffixes and ``lambda_n`` counters (they
    depend on what else the process built)."""
    return re.sub(r"^lambda_\d+", "lambda", re.sub(r"\$\d+", "", name))


def root_children(text: str) -> tuple[list[str], list[list[str]]]:
    """Split a (normalized) dump into the root's ``realize:`` lines and one block of lines per root
    child (a stage computed at the root with everything computed inside it), in dump order."""
    lines = normalize_loop_nest_dump(text)
    realize: list[str] = []
    blocks: list[list[str]] = []
    for l in lines:
        if not l.startswith(" "):
            if l.startswith("realize:"):
                realize.append(l)
            else:
                blocks.append([l])
        elif blocks:
            blocks[-1].append(l)
    return realize, blocks


__all__ = ["FuncSchedule", "StageSchedule", "Replay", "ReplayError", "parse_cpp_schedule", "replay",
           "normalize_loop_nest_dump", "root_children"]

"""Turn a complete search state into Halide scheduling: Python schedule source, applied, printed.

The source follows the toolkit's convention (``autoscheduler.schedules``): it runs with ``hl`` and
``pipeline`` in scope, names Funcs ``pipeline.get_func(i)`` (realization order), makes Vars by name
and takes RVars from ``pipeline.get_func(i).rvars(update)[k]``. It is meant to be read and pasted:
one block per Func, outputs first (the order decisions are made in).

Notes on the Halide calls emitted:

- ``compute_at(consumer, var)`` / ``store_at`` use Halide's stage wildcard (the loop ``var`` of any
  stage of the consumer; Halide injects the producer only where it is used). Explicit stage indices
  (``hl.LoopLevel(f, v, stage)``) fail Halide's validity check for split loops, and the search state
  never computes a producer at a loop of one stage when another stage of the same consumer uses it.
- Tails: GuardWithIf for outputs and for Funcs whose larger region would read an input buffer
  further; RoundUp elsewhere (cheaper, and legal because only intermediate allocations grow). No
  ``Func.bound``: the schedule works at any size, including sizes smaller than a tile. An output's
  pure stage is also specialized for sizes of at least one tile, where its splits are ShiftInwards
  (constant tiles, ``_constant_tiles_condition``) but for its parallel task split of a non-vector
  dimension, which stays guarded (``_guarded_task_splits``).
- Non-output Funcs vectorised along a dimension other than their first store that dimension
  innermost (``reorder_storage``), as Adams2019 does, unless a Layout decision says otherwise; a
  Wrap is ``producer.in_(consumer)`` computed at root with its own ``reorder_storage``, emitted
  after every Func's block (``_wrap_source``).
- ``never_partition`` on the loops that hold other Funcs' realizations and on the loops of
  non-vector dimensions (see ``_unpartitioned_loops``): without it, peeling GuardWithIf tails copies
  whole compute_at subtrees and a random schedule of camera_pipe took minutes to compile.
- ``store_in(hl.MemoryType.Stack)`` on CPU for a Func computed inside another Func's loops whose
  allocation there is under ``STACK_BYTES`` (``stack_funcs``; Adams2019's rule): a guarded tile
  gives its producers variable sizes, which Halide would malloc and free once per tile.
- Halide-generated names (``v123`` Vars, ``lambda_4`` Funcs) differ between builds of the same
  pipeline: such Vars are taken from ``Func.args()`` and such Funcs named by realization index, so the
  source is the same text for every build.
- GPU targets: ``gpu_blocks`` / ``gpu_threads`` on the loops the plan labels (innermost first, so
  the innermost is CUDA's x), ``gpu_single_thread()`` for a root stage without tiles,
  ``store_in(hl.MemoryType.GPUShared)`` for a Func computed at a block loop (a Func computed inside
  a thread keeps Halide's default there: registers / local memory); an RFactor stage is
  ``split(r, r_o, r_i, factor).rfactor(r_i, u)`` on the update, the intermediate compute_root with
  its own two kernels, and the update (``atomic()`` first when asked) combining the partial results.
  Every Func is fetched with ``pipeline.get_func(i)`` before anything is scheduled: rfactor adds a
  Func and shifts later realization indices. On CPU the same split + rfactor, with the
  intermediate's partial results vectorised and parallel (``vectorize`` / ``parallel`` where GPU
  states get ``gpu_blocks`` / ``gpu_threads``, see ``plan.RFactorPlan``) and stored innermost
  (``reorder_storage``). ``schedule_source(state, gpu=False)`` drops the GPU
  labels (same loops, serial), for checking a GPU schedule's structure by running it on the CPU.
"""

from __future__ import annotations

import keyword
import re
from typing import Any, Optional

import halide as hl

from .dag import box_points
from .errors import ScheduleError
from .ir import strip_suffix
from .loop_nest import loop_nest
from .schedules import apply_source, pipeline_funcs
from .state import State, StagePlan
from .state.decisions import LEVEL_BLOCK, LEVEL_THREAD, WHERE_AT, WHERE_INLINE, LoopRef
from .state.plan import GPU_SINGLE
from .state.layout import storage_order

_RESERVED = {"hl", "pipeline"}

STACK_BYTES = 64_000
"""A Func computed inside another's loops whose allocation there is smaller than this is stored
in ``hl.MemoryType.Stack`` on CPU (Adams2019's rule). Why: Halide heap-allocates every allocation
whose size is not a compile-time constant, and a producer inside a guarded tile (a GuardWithIf
split, the guarded parallel task split of an output) has a variable size, so it was malloc'd and
freed once per tile: xnor_conv_b8's pick made 41,235 heap allocations per run (profiler), and
ran 3.98 ms against 3.71 with the same loops and these Funcs on the stack (interleaved). ``Stack`` keeps a constant size
on the stack and reuses one buffer for a variable size (Halide's pseudostack: it grows, never
shrinks within a call, and moves to the heap past 16 KB in total)."""


def allocation_bytes(state: State, f: int) -> int:
    """Bytes of one allocation of Func ``f`` computed at a loop: the region one realization
    computes (``State.region``, what ``State.shared_bytes`` sums for GPU blocks), or with a
    ``store_at`` the region needed per iteration of the storage loop."""
    p = state.placement(f)
    assert p is not None and p.at is not None
    box = state.region(f) if p.store_at is None else state.required_at(f, p.store_at)
    return box_points(box) * state.space.node(f).bytes_per_point


def stack_funcs(state: State) -> set[int]:
    """The Funcs of a CPU state to store in ``hl.MemoryType.Stack``: computed inside another
    Func's loops, with one allocation under ``STACK_BYTES``."""
    if state.space.gpu:
        return set()
    return {f for f in state.space.order if (p := state.placement(f)) is not None and p.where == WHERE_AT
            and allocation_bytes(state, f) < STACK_BYTES}


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit():
        s = "_" + s
    if keyword.iskeyword(s) or s in _RESERVED:
        s += "_"
    return s


class _Names:
    """Python identifiers of the Funcs, Vars and RVars the source mentions."""

    def __init__(self, state: State) -> None:
        space = state.space
        self.space = space
        self.var_decls: dict[str, str] = {}      # Halide Var name -> identifier (declared at the top)
        self.rvar_decls: dict[str, str] = {}     # RVars made by rfactor splits (declared at the top)
        for f in space.order:
            node = space.node(f)
            bases = space.bases[f]
            for d, a in enumerate(node.args):
                if bases[d] == a:
                    self.var_decls[a] = a
            plans = [state.plan(f, s) for s in range(len(node.stages))]
            for plan in plans:
                if plan is None:
                    continue
                rf = plan.rfactor
                # RVars the plan splits: rfactor's, and a reduction block's (``OuterTile.rblock``)
                split_rvars: set[str] = {rv.var for rv in space.stage(f, plan.stage).definition.rvars}
                if rf is not None:
                    self.rvar_decls[rf.outer] = rf.outer
                    self.rvar_decls[rf.inner] = rf.inner
                    self.var_decls[rf.var] = rf.var
                    split_rvars.add(rf.inner)
                for sub in [plan] + (list(rf.intm) if rf is not None else []):
                    for sp in sub.splits:
                        for n in (sp.outer, sp.inner):
                            if sp.old in split_rvars:
                                self.rvar_decls[n] = n
                            elif n not in node.args:
                                self.var_decls[n] = n
                for _, _, fused in plan.fuses:
                    self.var_decls[fused] = fused
        taken = set(self.var_decls.values()) | _RESERVED
        for f in space.order:
            taken.update(b for b in space.bases[f])
        self.rvar_ids: dict[tuple[int, int, int], str] = {}
        for f in space.order:
            for s, st in enumerate(space.node(f).stages):
                for k, rv in enumerate(st.definition.rvars):
                    ident = _ident(strip_suffix(rv.var))
                    while ident in taken:
                        ident += "_r"
                    self.rvar_ids[(f, s, k)] = ident
        taken |= set(self.rvar_ids.values())
        self.func: dict[int, str] = {}
        for f in space.order:
            name = strip_suffix(space.node(f).name)
            # Halide-generated names count per process (lambda_7, f12): number them by index instead
            name = re.sub(r"^(lambda_|f)\d+$", lambda m: f"{m.group(1)}{f}", name)
            ident = _ident(name)
            if ident in taken:
                ident = f"{ident}_{f}"
            while ident in taken:
                ident += "_"
            taken.add(ident)
            self.func[f] = ident

    def var(self, f: int, name: str) -> str:
        """Identifier of Halide Var ``name`` inside the block of Func ``f``."""
        node = self.space.node(f)
        if name in node.args:
            d = node.args.index(name)
            b = self.space.bases[f][d]
            return name if b == name else b
        if name in self.var_decls:
            return self.var_decls[name]
        return self.rvar_decls[name]


def _loop_expr(state: State, names: _Names, ref: LoopRef) -> str:
    """The Var of a consumer's loop, as the compute_at / store_at argument."""
    plan = state.plan(ref.func, ref.stage)
    assert plan is not None
    var = plan.loop(ref.level, ref.dim).var
    node = state.space.node(ref.func)
    if var in node.args and state.space.bases[ref.func][node.args.index(var)] != var:
        return f"{names.func[ref.func]}.args()[{node.args.index(var)}]"  # auto-named: differs per build
    return names.var_decls[var]


def _stage_calls(state: State, names: _Names, plan: StagePlan, rv_stage: Optional[int] = None,
                 gpu: bool = True) -> list[str]:
    """The scheduling calls of one stage; ``rv_stage``: the Func stage whose RVars the plan uses
    (an rfactor intermediate's plans use the rfactored stage's); ``gpu``: emit the GPU labels."""
    f = plan.func
    k_stage = plan.stage if rv_stage is None else rv_stage
    st_rvars = state.space.stage(f, k_stage).definition.rvars
    rv = {st_rvars[k].var: names.rvar_ids[(f, k_stage, k)] for k in range(len(st_rvars))}

    def v(name: str) -> str:
        return rv[name] if name in rv else names.var(f, name)

    calls = []
    if plan.rfactor is not None and plan.rfactor.atomic and rv_stage is None:
        calls.append(".atomic()")
    for sp in plan.splits:
        calls.append(f".split({v(sp.old)}, {v(sp.outer)}, {v(sp.inner)}, {sp.factor}, "
                     f"hl.TailStrategy.{sp.tail})")
    if plan.order:
        calls.append(f".reorder({', '.join(v(n) for n in plan.order)})")
    for inner, outer, fused in plan.fuses:
        calls.append(f".fuse({v(inner)}, {v(outer)}, {v(fused)})")
    if plan.parallel is not None:
        calls.append(f".parallel({v(plan.parallel)})")
    if plan.vectorize is not None:
        calls.append(f".vectorize({v(plan.vectorize[0])})")
    for n in plan.unroll:
        calls.append(f".unroll({v(n)})")
    if gpu and plan.gpu_blocks:
        calls.append(f".gpu_blocks({', '.join(v(n) for n in plan.gpu_blocks)})")
    if gpu and plan.gpu_threads:
        calls.append(f".gpu_threads({', '.join(v(n) for n in plan.gpu_threads)})")
    if gpu and plan.gpu == GPU_SINGLE:
        calls.append(".gpu_single_thread()")
    if rv_stage is not None or plan.rfactor is not None:
        return calls    # rfactor's fixed kernels: few loops, nothing to hold
    held = _unpartitioned_loops(state, plan)
    if held:
        calls.append(f".never_partition([{', '.join(v(n) for n in held)}])")
    return calls


def _unpartitioned_loops(state: State, plan: StagePlan) -> list[str]:
    """Loops Halide must not partition: those enclosing another Func's realization and those of
    dimensions other than the vector one. Partitioning peels GuardWithIf tails off a loop by copying
    its body, realizations inside included, at every level: code size (and LLVM's time) grows
    exponentially with the depth of compute_at nests and the number of split dimensions. Tails are
    still peeled off the vector dimension's loop (a predicated steady state would be slow); other
    dimensions keep a scalar branch per iteration, which costs next to nothing."""
    innermost: Optional[int] = None
    for f in state.space.order:
        p = state.placement(f)
        if p is None or p.where != WHERE_AT:
            continue
        for ref in (p.at, p.store_at):
            if ref is not None and (ref.func, ref.stage) == (plan.func, plan.stage):
                i = plan.index_of(plan.loop(ref.level, ref.dim).var)
                innermost = i if innermost is None else min(innermost, i)
    vec = plan.loops[0].dim if plan.vectorize is not None else -2
    keep = {l.var for l in plan.loops if l.level in ("inner", "outer", "parallel") and l.dim != vec}
    if innermost is not None:
        keep |= {l.var for l in plan.loops[innermost:]}
    return [l.var for l in plan.loops if l.var in keep and l.level not in (LEVEL_BLOCK, LEVEL_THREAD)]


def _describe_place(state: State, names: "_Names", f: int) -> str:
    p = state.placement(f)
    assert p is not None
    if p.where != WHERE_AT:
        return f"compute_{p.where}"
    assert p.at is not None
    space = state.space

    def loop_name(ref: LoopRef) -> str:
        plan = state.plan(ref.func, ref.stage)
        assert plan is not None
        stage = names.func[ref.func] + (f".update({ref.stage - 1})" if ref.stage else "")
        var = plan.loop(ref.level, ref.dim).var
        if var in space.node(ref.func).args:
            var = space.bases[ref.func][space.node(ref.func).args.index(var)]
        return f"{stage} loop {var}"

    text = f"computed at {loop_name(p.at)}"
    if p.store_at is not None:
        text += f", stored at {loop_name(p.store_at)}"
    return text


def schedule_source(state: State, gpu: bool = True) -> str:
    """Python schedule source of a complete state (see the module doc for its conventions).
    ``gpu=False`` (GPU states): the same loops without GPU labels or shared-memory storage."""
    if not state.is_complete:
        raise ScheduleError(f"cannot emit a schedule for an incomplete state ({state!r})")
    space = state.space
    names = _Names(state)
    on_stack = stack_funcs(state)
    out = [f"# Schedule from autoscheduler.state: {state.num_decisions} decisions, target "
           f"{space.target}, parallelism {space.parallelism}"]
    for f in space.order:
        out.append(f"{names.func[f]} = pipeline.get_func({f})")
    for name in sorted(names.var_decls):
        out.append(f"{names.var_decls[name]} = hl.Var({name!r})")
    for name in sorted(names.rvar_decls):
        out.append(f"{names.rvar_decls[name]} = hl.RVar({name!r})")
    for f in space.order:
        node = space.node(f)
        h = names.func[f]
        p = state.placement(f)
        assert p is not None
        out.append("")
        out.append(f"# {h}: {_describe_place(state, names, f)}")
        if p.where == WHERE_INLINE:
            out.append(f"{h}.compute_inline()")
            continue
        auto = [d for d, a in enumerate(node.args) if space.bases[f][d] != a]
        if auto:
            idents = [space.bases[f][d] if d in auto else "_" for d in range(len(node.args))]
            out.append(f"{', '.join(idents)}{',' if len(idents) == 1 else ''} = {h}.args()")
        if p.where == WHERE_AT:
            assert p.at is not None
            out.append(f"{h}.compute_at({names.func[p.at.func]}, {_loop_expr(state, names, p.at)})")
            if gpu and p.at.level == LEVEL_BLOCK:
                out.append(f"{h}.store_in(hl.MemoryType.GPUShared)")
            elif f in on_stack:
                out.append(f"{h}.store_in(hl.MemoryType.Stack)")
            if p.store_at is not None:
                out.append(f"{h}.store_at({names.func[p.store_at.func]}, "
                           f"{_loop_expr(state, names, p.store_at)})")
        elif not node.is_output:
            out.append(f"{h}.compute_root()")
        order = storage_order(state, f)
        if state.layout(f) is not None or list(order) != list(range(len(node.args))):
            out.append(f"{h}.reorder_storage({', '.join(names.var(f, node.args[d]) for d in order)})")
        for s, st in enumerate(node.stages):
            plan = state.plan(f, s)
            assert plan is not None
            rvars = st.definition.rvars
            named = set(plan.order) | {sp.old for sp in plan.splits}
            if rvars and (plan.rfactor is not None or any(rv.var in named for rv in rvars)):
                ids = [names.rvar_ids[(f, s, k)] for k in range(len(rvars))]
                out.append(f"{', '.join(ids)}{',' if len(ids) == 1 else ''} = {h}.rvars({s - 1})")
            if plan.rfactor is not None:
                out.extend(_rfactor_source(state, names, f, s, plan, gpu))
                continue
            calls = _stage_calls(state, names, plan, gpu=gpu)
            if not calls:
                continue
            head = h if s == 0 else f"{h}.update({s - 1})"
            cond = _constant_tiles_condition(state, names, f, s, plan)
            if cond:
                fast = f"_{h}_tiled"
                out.append(f"# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded")
                out.append(f"{fast} = {h}.specialize({cond})")
                guarded = _guarded_task_splits(state, plan)    # calls start with the splits, in order
                out.extend(_chain(fast, [c if i in guarded else
                                         c.replace("hl.TailStrategy.GuardWithIf", "hl.TailStrategy.ShiftInwards")
                                         for i, c in enumerate(calls)]))
            out.extend(_chain(head, calls))
    out.extend(_wrap_source(state, names))
    return "\n".join(out) + "\n"


def _wrap_source(state: State, names: "_Names") -> list[str]:
    """Source of the Wrap decisions: ``producer.in_(consumer)`` computed at root, stored in the
    Wrap's order, its innermost storage dimension vectorised (GuardWithIf: the copy may read an
    input, which must not be read past its region) and, innermost first, the other dimensions in
    storage order, the outermost parallel. The wrapper's Vars come from ``args()`` (an input's
    Func has Halide-made ``_0, _1`` names), so the text is the same on every build."""
    space = state.space
    out: list[str] = []
    taken = set(names.func.values()) | set(names.var_decls.values()) | set(names.rvar_ids.values())
    for (p, c), w in sorted(state.wraps().items()):
        node = space.node(p)
        src = names.func[p] if p in names.func else f"pipeline.get_func({p})"
        stem = names.func.get(p) or _ident(strip_suffix(node.name))
        ident = f"_{stem}_in_{names.func[c]}"
        while ident in taken:
            ident += "_"
        taken.add(ident)
        dims = [f"{ident}_d{k}" for k in range(len(node.args))]
        vec = f"{ident}_v"
        width = max([space.vector_width[st.id] for st in node.stages] or [1])
        out.append("")
        out.append(f"# {names.func[c]} reads {strip_suffix(node.name)} through a copy at root, stored in "
                   f"the order {list(w.order)} (innermost first)")
        out.append(f"{ident} = {src}.in_({names.func[c]})")
        out.append(f"{', '.join(dims)}{',' if len(dims) == 1 else ''} = {ident}.args()")
        out.append(f"{vec} = hl.Var({vec!r})")
        first = dims[w.order[0]]
        calls = [".compute_root()", f".reorder_storage({', '.join(dims[k] for k in w.order)})"]
        if width > 1:
            calls += [f".split({first}, {first}, {vec}, {width}, hl.TailStrategy.GuardWithIf)",
                      f".vectorize({vec})"]
            loops = [vec] + [dims[k] for k in w.order]
        else:
            loops = [dims[k] for k in w.order]
        calls.append(f".reorder({', '.join(loops)})")
        if len(dims) > 1 and space.parallelism > 1:
            calls.append(f".parallel({dims[w.order[-1]]})")
        out.extend(_chain(ident, calls))
    return out


def _rfactor_source(state: State, names: "_Names", f: int, s: int, plan: StagePlan, gpu: bool) -> list[str]:
    """Source of an RFactor stage: split + rfactor, the intermediate's two stages (GPU: kernels;
    CPU: vectorised and parallel over the partial results), the combining stage."""
    rf = plan.rfactor
    assert rf is not None
    h = names.func[f]
    rvars = [rv.var for rv in state.space.stage(f, s).definition.rvars]
    r = names.rvar_ids[(f, s, rvars.index(rf.rvar))]
    intm = f"_{h}_rf{s}"
    head = f"{h}.update({s - 1})"
    out = [f"# {head}: rfactor over {rf.factor} partial results"
           f"{', combined with atomic adds' if rf.atomic else ''}",
           f"{intm} = {head}.split({r}, {names.rvar_decls[rf.outer]}, {names.rvar_decls[rf.inner]}, {rf.factor}, "
           f"hl.TailStrategy.GuardWithIf).rfactor({names.rvar_decls[rf.inner]}, {names.var_decls[rf.var]})",
           f"{intm}.compute_root()"]
    if rf.storage:      # CPU: the partial results stored innermost, so that their vectors are dense
        out.append(f"{intm}.reorder_storage({', '.join(names.var(f, n) for n in rf.storage)})")
    for stage_head, calls in ((intm, _stage_calls(state, names, rf.intm[0], rv_stage=s, gpu=gpu)),
                              (f"{intm}.update(0)", _stage_calls(state, names, rf.intm[1], rv_stage=s, gpu=gpu)),
                              (head, _stage_calls(state, names, plan, gpu=gpu))):
        if calls:       # a CPU combining stage without pure loops has nothing to schedule
            out += _chain(stage_head, calls)
    return out


def _chain(head: str, calls: list[str]) -> list[str]:
    if len(calls) == 1:
        return [head + calls[0]]
    return [f"({head}"] + [f"    {c}" for c in calls[:-1]] + [f"    {calls[-1]})"]


TASK_OVERLAP = 0.25
"""Share of a dimension the last ShiftInwards task recomputes from which an output that hosts other
Funcs gets its task split guarded anyway (``_guarded_task_splits``)."""


def _guarded_task_splits(state: State, plan: StagePlan) -> set[int]:
    """Indices in ``plan.splits`` of an output's parallel task splits over a dimension other than the
    vector one that keep GuardWithIf in the constant-tile specialization.

    ShiftInwards there makes the last task overlap the one before it: two cores compute and write
    the same rows at once. ``x + y`` over 350 x 250 in tasks of 72 rows ran 25.9 us against 5.0
    guarded, over 1024 x 1000 in tasks of 600 rows 165 vs 97 us; a guard on a serial row loop
    costs next to nothing there. But a guard also gives the Funcs computed inside the task a
    variable extent: conv_layer (56 rows in tasks of 8, no tail) ran 2.07 vs 0.88 ms guarded. So
    the split is guarded where nothing is computed inside the output, or where the last task at
    the estimates would recompute at least ``TASK_OVERLAP`` of the dimension (xnor_conv_b8: a
    batch of 8 in tasks of 6 images computes 12; guarded 5.34 vs 6.46 ms). The vector dimension
    keeps ShiftInwards: a guarded vector tail is scalarised in every task of the last column."""
    if plan.parallel is None:
        return set()
    f = plan.func
    node = state.space.node(f)
    hosts = any(p is not None and any(r is not None and r.func == f for r in (p.at, p.store_at))
                for p in (state.placement(g) for g in state.space.order))
    into = {plan.parallel}
    for inner, outer, fused in reversed(plan.fuses):
        if fused in into:
            into |= {inner, outer}
    vec = plan.loops[0].dim if plan.vectorize is not None else -1
    region = state.region(f)
    out: set[int] = set()
    for i, sp in enumerate(plan.splits):
        if sp.outer not in into or sp.tail != "GuardWithIf" or sp.old not in node.args:
            continue
        d = node.args.index(sp.old)
        if d == vec:
            continue
        extent = max(1, region[d].extent)
        overlap = -(-extent // sp.factor) * sp.factor - extent
        if not hosts or overlap >= TASK_OVERLAP * extent:
            out.add(i)
    return out


def _constant_tiles_condition(state: State, names: "_Names", f: int, s: int, plan: StagePlan) -> str:
    """The condition under which an output's pure stage may split with ShiftInwards, or "".

    GuardWithIf tails keep an output correct at any size, but every unrolled iteration of a tile
    then carries a guard and the producers computed inside a tile get a variable extent, so their
    register tiles are not kept in registers: a conv layer ran 3-4x slower than with constant tiles.
    ShiftInwards (shift the last tile back inside the output) gives constant tiles, legal only when
    each split dimension is at least one tile wide; ``specialize`` on the output's extents keeps the
    guarded schedule for smaller outputs. Not for updates (ShiftInwards would recompute a reduction
    step twice) nor for outputs a sliding window is stored in (the shifted tile would break it)."""
    node = state.space.node(f)
    if s != 0 or not node.is_output:
        return ""
    if any(p is not None and p.store_at is not None and p.store_at.func == f
           for p in (state.placement(g) for g in state.space.order)):
        return ""
    need: dict[int, int] = {}
    for sp in plan.splits:
        if sp.tail == "GuardWithIf" and sp.old in node.args:
            d = node.args.index(sp.old)
            need[d] = max(need.get(d, 0), sp.factor)
    if not need:
        return ""
    buf = f"{names.func[f]}.output_buffer()" if len(node.output_types) == 1 else \
        f"{names.func[f]}.output_buffers()[0]"
    return " & ".join(f"({buf}.dim({d}).extent() >= {k})" for d, k in sorted(need.items()))


def check_pipeline(state: State, pipeline: hl.Pipeline) -> None:
    """The pipeline must have the state's Funcs, in the same realization order, with the same
    dimensions and stages (names may differ: Halide numbers repeated and generated names per build)."""
    funcs = pipeline_funcs(pipeline)
    nodes = state.space.dag.nodes
    if len(funcs) != len(nodes):
        raise ScheduleError(f"the pipeline has {len(funcs)} Funcs, the state was built for {len(nodes)}: "
                            "apply it to the same algorithm")
    for f, node in enumerate(nodes):
        if funcs[f].dimensions() != node.dimensions or (
                not node.is_input and funcs[f].num_update_definitions() != len(node.stages) - 1):
            raise ScheduleError(f"Func {f} ({funcs[f].name()}) differs from the state's ({node.name}) in "
                                "dimensions or stages: apply it to the same algorithm")


def apply_state(state: State, pipeline: hl.Pipeline, source: Optional[str] = None) -> str:
    """Schedule the pipeline's Funcs as ``state`` says; returns the source that was applied."""
    check_pipeline(state, pipeline)
    src = schedule_source(state) if source is None else source
    apply_source(src, pipeline)
    return src


def state_loop_nest(state: State, pipeline: hl.Pipeline) -> str:
    """Apply ``state`` to the (unscheduled) pipeline and return Halide's loop nest printout."""
    apply_state(state, pipeline)
    return loop_nest(pipeline)


def apply(state: State, outputs: Any) -> str:
    """Apply ``state`` to the user's output Funcs (a Func, a list of Funcs, or an hl.Pipeline)."""
    if isinstance(outputs, hl.Pipeline):
        p = outputs
    else:
        p = hl.Pipeline(outputs if isinstance(outputs, list) else [outputs])
    return apply_state(state, p)

"""The CUDA part of the search space: limits, the reduction test behind RFactor, and the GPU menus.

``state.py`` decides legality (and calls the helpers here); this module holds the constants it
checks against and the menus ``State.options`` offers on GPU targets (as ``tilings.py`` does on CPU):

- **Kernels** (root Funcs, ``OuterTile(parallel=True)``): one to three tiled dimensions; each tile's
  register-tile loops are ``gpu_threads`` and the tile loops ``gpu_blocks``. Thread tilings are
  powers of two with the innermost thread dimension a warp multiple where the extent allows (one
  warp-wide row of threads reads consecutive addresses), at most ``MAX_THREADS`` threads, and the
  menu prefers grids with at least two blocks per SM (Anderson2021's rule), least lane and padding
  wastage first.
- **Block level** (a Func computed at the kernel's innermost block loop, stored in shared memory):
  its tiles are spread over the block's threads so that the kernel's threads per dimension (CUDA's
  x, y, z: the maximum over the kernel's thread loops) stay within ``MAX_THREADS``.
- **Thread level** (a Func computed inside a thread: registers / local memory): serial loops only.
- **RFactor**: large associative reductions (``f(x..) = f(x..) op e`` with op one of + * min max and
  ``e`` not reading ``f``) over small pure domains, as Li2018 does on GPU.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Optional, Sequence, Union

from ..dag import Node, Stage
from ..ir import nodes as ir
from ..ir.schema import CallType
from .decisions import GPU_UNROLL_LIMIT, InnerTile, Kernel, OuterTile, RFactor
from .plan import MAX_GRID_YZ, StagePlan

GPU_DEFAULT_SMS = 132          # default ``parallelism`` on GPU targets: SMs of an H100 / H200 (SXM)
MAX_THREADS = 1024             # threads per block (CUDA)
MAX_GPU_DIMS = 3               # gpu_blocks / gpu_threads dimensions per stage
WARP = 32
SHARED_MEMORY_LIMIT = 48 * 1024      # bytes of shared memory per block (without opting in to more)
# What the search lets a block's shared allocations add up to, as the state estimates them: Halide's
# own allocations ran past the estimate. On an H200, 30 of the 35 CUDA schedules that failed to run
# (29 launches refused with CUDA_ERROR_INVALID_VALUE) were estimated above 32 KB, against 7 of 251
# correct ones sampled (data/gpu_samples.jsonl.gz); every bundled workload's pick is within 32 KB.
SHARED_MEMORY_BUDGET = 32 * 1024
LOCAL_MEMORY_LIMIT = 512 * 1024      # bytes of local memory per thread (CUDA's limit)
REGISTER_BYTES = 512                 # menu: thread-level allocations above this spill to local memory
GPU_RECOMPUTE_LIMIT = 10             # Anderson2021 prunes placements that recompute 10x the minimum
RFACTOR_MIN_REDUCTION = 256          # menu: reductions at least this long per output point ...
RFACTOR_MAX_PURE = 4096              # ... over pure domains at most this large (Li2018's GPU rule)
RFACTOR_FACTORS = (64, 256, 1024, 4096)
MAX_KERNEL_OPTIONS = 24
MAX_BLOCK_OPTIONS = 12
MAX_INNER_OPTIONS = 10

REDUCTION_OPS: dict[type, str] = {ir.Add: "add", ir.Mul: "mul", ir.Min: "min", ir.Max: "max"}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


# ------------------------------------------------------------------------------------------ reductions

def _calls_func(e: ir.Expr, name: str) -> bool:
    if isinstance(e, ir.Call) and e.call_type == CallType.Halide and e.name == name:
        return True
    return any(_calls_func(c, name) for c in e.children())


def _is_self_call(e: ir.Expr, node: Node) -> bool:
    if not (isinstance(e, ir.Call) and e.call_type == CallType.Halide and e.name == node.func.name):
        return False
    return (len(e.args) == len(node.args)
            and all(isinstance(a, ir.Variable) and a.name == v for a, v in zip(e.args, node.args)))


def reduction_problem(node: Node, stage: Stage) -> tuple[str, str]:
    """(op, '') for an update that Halide can rfactor: ``f(args) = f(args) op e`` (op + * min max,
    either operand order), one value, the left-hand side exactly the Func's pure Vars, no RDom
    predicate, ``e`` not reading ``f``; else ('', why not)."""
    d = stage.definition
    if d.is_init or not d.rvars:
        return "", "it is not an update with RVars"
    if len(d.values) != 1:
        return "", "it stores a Tuple"
    if d.predicate is not None and not (isinstance(d.predicate, (ir.UIntImm, ir.IntImm)) and d.predicate.value):
        return "", "its RDom has a predicate"
    if len(d.args) != len(node.args) or not all(isinstance(a, ir.Variable) and a.name == v
                                               for a, v in zip(d.args, node.args)):
        return "", "its left-hand side is not the Func's pure Vars (each point must reduce on its own)"
    v = d.values[0]
    lets: list[ir.Expr] = []
    while isinstance(v, ir.Let):        # CSE'd terms: the reduction is the body
        lets.append(v.value)
        v = v.body
    op = REDUCTION_OPS.get(type(v))
    if op is None:
        return "", "its value is not f(args) + - * min max of something"
    a, b = v.a, v.b  # type: ignore[attr-defined]
    other = b if _is_self_call(a, node) else a if _is_self_call(b, node) else None
    if other is None:
        return "", "its value does not combine f(args) with a new term"
    if _calls_func(other, node.func.name) or any(_calls_func(e, node.func.name) for e in lets):
        return "", "the reduced term reads the Func itself (a scan, not a reduction)"
    return op, ""


def atomic_problem(node: Node, stage: Stage, op: str) -> str:
    """Why the combining stage of an RFactor cannot use ``atomic()`` ('' if it can): an addition of
    a 32-bit float or integer (CUDA's native atomicAdd)."""
    if op != "add":
        return "only additions are combined with atomics here"
    t = node.output_types[0]
    if t.bits != 32:
        return f"atomic adds need a 32-bit type, the Func stores {t.bits}-bit values"
    return ""


def rvar_extents(stage: Stage) -> list[int]:
    return [max(b.extent, 1) for l, b in zip(stage.loops, stage.loop_bounds) if l.rvar]


# ------------------------------------------------------------------------------------------ threads

def kernel_threads(plans: Iterable[StagePlan]) -> tuple[int, ...]:
    """Threads per CUDA dimension (x first) of a kernel made of ``plans``: Halide launches the
    maximum, over the kernel's thread loops, of each dimension's extent."""
    out: list[int] = []
    for p in plans:
        for k, e in enumerate(p.threads):
            if k < len(out):
                out[k] = max(out[k], e)
            else:
                out.append(e)
    return tuple(out)


def total_threads(threads: Sequence[int]) -> int:
    return math.prod(threads) if threads else 1


# ------------------------------------------------------------------------------------------ menus

def inner_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int],
                  has_rvars: bool, need_threads: bool = False) -> list[Union[InnerTile, Kernel]]:
    """Per-thread register tiles: nothing, or 2 / 4 (x 2 / 4) points of one or two dimensions,
    unrolled (the innermost dimension last: unrolling it spreads a warp's reads). A stage with RVars
    unrolls only as a :class:`Kernel` (its RVars outside the register tile). ``need_threads`` (block
    level): leave some dimension at least two register tiles long, to spread over threads."""
    out: list[Union[InnerTile, Kernel]] = [InnerTile(func, stage, None, 1, ())]
    cand = [d for d in dims if extents[d] >= 2]
    order = cand[1:] + cand[:1]
    tiles: list[tuple[tuple[int, int], ...]] = []
    for d in order:
        for k in (2, 4):
            if k <= extents[d]:
                tiles.append(((d, k),))
    for a, b in itertools.combinations(order, 2):
        for ka, kb in ((2, 2), (4, 2), (2, 4), (4, 4)):
            if ka <= extents[a] and kb <= extents[b] and ka * kb <= GPU_UNROLL_LIMIT:
                tiles.append(tuple(sorted(((a, ka), (b, kb)))))
    if need_threads:
        tiles = [t for t in tiles if any(_ceil_div(extents[d], dict(t).get(d, 1)) >= 2 for d in dims)]
    for t in tiles[:MAX_INNER_OPTIONS - 1]:
        out.append(Kernel(func, stage, t[0][0], 1, t) if has_rvars else InnerTile(func, stage, None, 1, t))
    return out


def _thread_choices(units: int, innermost: bool) -> list[int]:
    """Threads along one dimension of ``units`` register tiles."""
    top = _pow2_at_least(units)
    if innermost:
        if units >= WARP:
            return [t for t in (32, 64, 128, 256) if t <= top]
        return [top] + ([top // 2] if top >= 4 else [])
    return [t for t in (1, 2, 4, 8, 16) if t <= top]


def _spread(values: list, n: int) -> list:
    if len(values) <= n:
        return values
    idx = sorted({round(i * (len(values) - 1) / (n - 1)) for i in range(n)})
    return [values[i] for i in idx]


def tiled_dims(dims: Sequence[int], extents: dict[int, int]) -> list[int]:
    """The (at most three) dimensions a GPU stage tiles: the innermost one and the largest others."""
    if not dims:
        return []
    rest = sorted(dims[1:], key=lambda d: (-extents[d], d))[:MAX_GPU_DIMS - 1]
    return [dims[0]] + [d for d in dims[1:] if d in rest]


def kernel_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int],
                   reg: dict[int, int], sms: int) -> list[OuterTile]:
    """Block x thread tilings of a root stage (see the module doc); a stage without pure loops of
    extent > 1 is a single-thread kernel (``OuterTile((), False)``)."""
    chosen = [d for d in tiled_dims(dims, extents) if extents[d] > 1 or d == dims[0]]
    if not chosen or all(extents[d] <= 1 for d in chosen):
        return [OuterTile(func, stage, (), False)]
    units = {d: _ceil_div(extents[d], reg[d]) for d in chosen}
    per_dim = [_thread_choices(units[d], k == 0) for k, d in enumerate(chosen)]
    scored: list[tuple[tuple[float, ...], tuple[tuple[int, int], ...]]] = []
    for threads in itertools.product(*per_dim):
        n = math.prod(threads)
        if n > MAX_THREADS:
            continue
        blocks = [_ceil_div(units[d], t) for d, t in zip(chosen, threads)]
        if any(b > MAX_GRID_YZ for b in blocks[1:]):
            continue
        nb = math.prod(blocks)
        pad = math.prod(b * t for b, t in zip(blocks, threads)) / math.prod(units.values())
        lanes = n / (_ceil_div(n, WARP) * WARP)
        short = max(0.0, math.log2(2 * sms / nb)) if nb < 2 * sms else 0.0
        tiles = tuple((d, t * reg[d]) for d, t in zip(chosen, threads))
        scored.append(((round(short, 3), round(pad / lanes, 3), -n), tiles))
    scored.sort()
    keep = [t for _, t in scored]
    if not keep:
        return [OuterTile(func, stage, (), False)]
    best = keep[:MAX_KERNEL_OPTIONS // 2]
    rest = _spread(keep[MAX_KERNEL_OPTIONS // 2:], MAX_KERNEL_OPTIONS - len(best))
    return [OuterTile(func, stage, t, True) for t in best + rest]


def block_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int],
                  reg: dict[int, int], kernel: Sequence[int]) -> list[OuterTile]:
    """Thread tilings of a stage computed at a block loop (shared memory): the region's register
    tiles spread over threads, the kernel's threads (``kernel``, per CUDA dimension) kept within
    MAX_THREADS, matching the kernel's thread shape first (no extra threads)."""
    chosen = [d for d in tiled_dims(dims, extents) if extents[d] > 1]
    if not chosen:
        return []
    units = {d: _ceil_div(extents[d], reg[d]) for d in chosen}
    per_dim = [[t for t in (1, 2, 4, 8, 16, 32, 64, 128, 256) if t <= _pow2_at_least(units[d])]
               for d in chosen]
    scored: list[tuple[tuple[float, ...], tuple[tuple[int, int], ...]]] = []
    for threads in itertools.product(*per_dim):
        mine = tuple(t for t in threads if t > 1)
        if not mine:
            continue
        merged = [max(a, b) for a, b in itertools.zip_longest(kernel, mine, fillvalue=1)]
        if len(merged) > MAX_GPU_DIMS or total_threads(merged) > MAX_THREADS:
            continue
        extra = total_threads(merged) / max(total_threads(kernel), 1)
        idle = total_threads(merged) / total_threads(mine)
        serial = math.prod(_ceil_div(units[d], t) for d, t in zip(chosen, threads))
        tiles = tuple((d, t * reg[d]) for d, t in zip(chosen, threads))
        scored.append(((round(extra, 3), round(serial * idle, 3)), tiles))
    scored.sort()
    keep = [t for _, t in scored]
    best = keep[:MAX_BLOCK_OPTIONS // 2]
    rest = _spread(keep[MAX_BLOCK_OPTIONS // 2:], MAX_BLOCK_OPTIONS - len(best))
    return [OuterTile(func, stage, t, True) for t in best + rest]


def rfactor_options(func: int, stage: int, node: Node, st: Stage, pure_points: int,
                    rvar_ext: Sequence[int]) -> list[RFactor]:
    """RFactor choices for a root update (module doc): the longest RVar (and the innermost one, for
    coalesced reads) split by power-of-two factors of at most half its extent."""
    op, why = reduction_problem(node, st)
    if why or pure_points > RFACTOR_MAX_PURE or math.prod(rvar_ext) < RFACTOR_MIN_REDUCTION:
        return []
    atomic_ok = not atomic_problem(node, st, op)
    longest = max(range(len(rvar_ext)), key=lambda k: (rvar_ext[k], -k))
    out: list[RFactor] = []
    for k in sorted({longest, 0}):
        for f in RFACTOR_FACTORS:
            if 2 * f > rvar_ext[k] and f != RFACTOR_FACTORS[0]:
                continue
            if f >= rvar_ext[k]:
                continue
            out.append(RFactor(func, stage, k, f, False))
            if atomic_ok:
                out.append(RFactor(func, stage, k, f, True))
    return out


__all__ = ["GPU_DEFAULT_SMS", "MAX_THREADS", "MAX_GPU_DIMS", "WARP", "SHARED_MEMORY_LIMIT", "SHARED_MEMORY_BUDGET",
           "LOCAL_MEMORY_LIMIT",
           "REGISTER_BYTES", "GPU_RECOMPUTE_LIMIT", "reduction_problem", "atomic_problem", "kernel_threads",
           "total_threads", "inner_options", "kernel_options", "block_options", "rfactor_options", "tiled_dims",
           "rvar_extents"]

"""Which inner and outer tilings ``State.children`` offers for one stage (the search's menu).

These are heuristics that keep the number of children manageable; legality is checked in
``state.py`` and does not depend on them (a trace may use tilings this menu never offers).
"""

from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence, Union

from .decisions import UNROLL_LIMIT, InnerTile, Kernel, OuterTile

ROW_FACTORS = (2, 3, 4, 6, 8)        # unrolled rows of a register tile
VECTOR_FACTORS = (1, 2, 4)           # vectors per register tile along the vector dimension
TWO_ROW_FACTORS = (2, 3, 4)          # rows per dimension of a two-dimensional reduction register tile
MAX_PER_DIM = 8                      # tile sizes offered per dimension
MAX_OUTER = 24                       # outer tilings offered per stage
MAX_TASK_FACTOR = 16                 # tasks between parallelism and 16x parallelism (Adams2019)
MAX_IDLE_WASTAGE = 1.2
SUB_GRIDS = 4                        # task grids (the fewest tasks) offered with sub-tiles
SUB_SIZES = 3                        # sub-tile sizes per dimension
MAX_SUB = 16                         # sub-tiled task grids offered per stage
SUB_COUNTS = (2, 4, 8, 16, 32)       # register tiles per sub-tile along a dimension


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _spread(values: Sequence[int], n: int) -> list[int]:
    """At most ``n`` of the sorted ``values``, evenly spaced, first and last included."""
    if len(values) <= n:
        return list(values)
    idx = sorted({round(i * (len(values) - 1) / (n - 1)) for i in range(n)})
    return [values[i] for i in idx]


def tile_counts(units: int) -> list[int]:
    """Candidate counts of register tiles per outer tile along a dimension of ``units`` register
    tiles: powers of two, 3 x powers of two, and the divisors of ``units`` nearest to the powers of
    two, below ``units``; a count whose padding would waste more than 1/7 is dropped unless it
    divides ``units``."""
    if units <= 1:
        return [1]
    divisors = [k for k in range(1, units + 1) if units % k == 0]
    cands: set[int] = set()
    p = 1
    while p < units:
        cands.add(p)
        cands.add(min(divisors, key=lambda k: (abs(math.log(k / p)), k)))
        p *= 2
    q = 3
    while q < units:
        cands.add(q)
        q *= 2
    ok = [k for k in sorted(cands)
          if k < units and (units % k == 0 or _ceil_div(units, k) * k * 7 <= units * 8)]
    return _spread(ok, MAX_PER_DIM)


def inner_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int], width: int,
                  is_output: bool, has_rvars: bool) -> list[Union[InnerTile, Kernel]]:
    """Vector dimension x register tile choices. Outputs vectorise their innermost (stride-1)
    dimension; other Funcs any dimension at least one vector wide (all of them if none is). The
    vector is the natural ``width``, narrowed to the power of two that covers a smaller extent (a
    64-lane vector over a 3-wide region only costs compile time)."""
    if not dims:
        return [InnerTile(func, stage, None, width, ())]
    if is_output and 0 in dims:
        vec_dims = [0]
    else:
        vec_dims = [d for d in dims if extents[d] >= width] or list(dims)
    out: list[Union[InnerTile, Kernel]] = []
    for v in vec_dims:
        w = min(width, _pow2_at_least(extents[v]))
        out.append(InnerTile(func, stage, v, w, ()))
        rows: list[tuple[Optional[int], int]] = [(None, 1)]
        rows += [(d, k) for d in dims if d != v for k in ROW_FACTORS if k <= extents[d]]
        for m in VECTOR_FACTORS:
            if m > 1 and (w == 1 or extents[v] < m * w):
                continue
            for d2, k in rows:
                if m * k > UNROLL_LIMIT or (m == 1 and d2 is None):
                    continue
                unroll = tuple(sorted(([(v, m)] if m > 1 else []) + ([(d2, k)] if d2 is not None else [])))
                out.append(Kernel(func, stage, v, w, unroll) if has_rvars
                           else InnerTile(func, stage, v, w, unroll))
        if has_rvars:
            out += two_row_kernels(func, stage, dims, extents, v, w)
    return out


def two_row_kernels(func: int, stage: int, dims: Sequence[int], extents: dict[int, int], v: int,
                     w: int) -> list[Union[InnerTile, Kernel]]:
    """Reduction register tiles over two non-vector dimensions (a 2x2 block of a pooled conv's
    outputs, say: Adams2019 unrolls such small consumer windows). Each dimension takes a factor of
    2 to 4 that it can hold, the vector dimension one or two vectors, all within the unroll limit."""
    out: list[Union[InnerTile, Kernel]] = []
    others = [d for d in dims if d != v]
    pairs = [(a, b) for i, a in enumerate(others) for b in others[i + 1:]]
    for (d2, d3), k2, k3, m in itertools.product(pairs, TWO_ROW_FACTORS, TWO_ROW_FACTORS, (1, 2)):
        if k2 > extents[d2] or k3 > extents[d3] or m * k2 * k3 > UNROLL_LIMIT:
            continue
        if m > 1 and (w == 1 or extents[v] < m * w):
            continue
        unroll = tuple(sorted(([(v, m)] if m > 1 else []) + [(d2, k2), (d3, k3)]))
        out.append(Kernel(func, stage, v, w, unroll))
    return out


def balanced_count(units: int, k: int) -> int:
    """The fewest register tiles per tile that still cut ``units`` register tiles into as many
    tiles as ``k`` per tile does (``refine.refine_balance``: even parallel tasks)."""
    return _ceil_div(units, _ceil_div(units, k))


def outer_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int],
                  reg: dict[int, int], parallel_root: bool, parallelism: int,
                  sub: bool = False, task_factor: int = MAX_TASK_FACTOR) -> list[OuterTile]:
    """Outer tilings. A root Func (with parallelism > 1) gets task grids with between
    ``parallelism`` and ``task_factor`` (16) x as many tasks, least idle-core wastage first (Adams2019's rule; the
    grids closest to ``parallelism`` when none fits, serial when nothing splits); a Func computed at
    a consumer's loop gets no tiling or serial tilings of one or two dimensions. With ``sub``, a root
    Func's grids are also offered with sub-tiles (``sub_options``)."""
    per_dim: dict[int, list[Optional[int]]] = {}
    for d in dims:
        units = _ceil_div(max(extents[d], 1), reg[d])
        per_dim[d] = [None] + [k * reg[d] for k in tile_counts(units) if k * reg[d] < extents[d]]
    combos: list[tuple[tuple[int, int], ...]] = []
    for choice in itertools.product(*(per_dim[d] for d in dims)):
        tiles = tuple((d, t) for d, t in zip(dims, choice) if t is not None)
        if tiles:
            combos.append(tiles)

    def tasks(tiles: tuple[tuple[int, int], ...]) -> int:
        return _tasks(tiles, extents)

    if parallel_root and parallelism > 1:
        p = parallelism
        fit = [c for c in combos if p <= tasks(c) <= task_factor * p]
        if fit:
            def wastage(c: tuple[tuple[int, int], ...]) -> float:
                n = tasks(c)
                return _ceil_div(n, p) / (n / p)
            fit.sort(key=lambda c: (wastage(c), tasks(c), c))
            best = wastage(fit[0])
            keep = [c for c in fit if wastage(c) <= max(best, MAX_IDLE_WASTAGE)]
            keep.sort(key=lambda c: (tasks(c), c))
            chosen = [keep[i] for i in _spread_indices(len(keep), MAX_OUTER)]
        else:
            some = [c for c in combos if tasks(c) >= 2]
            some.sort(key=lambda c: (abs(math.log(tasks(c) / p)), c))
            chosen = some[:4]
        if chosen:
            out = [OuterTile(func, stage, c, True) for c in chosen]
            return out + (sub_options(func, stage, dims, extents, reg, chosen) if sub else [])
        return [OuterTile(func, stage, (), False)]
    small = [c for c in combos if len(c) <= 2 and tasks(c) > 1]
    small.sort(key=lambda c: (len(c), tasks(c), c))
    chosen = [small[i] for i in _spread_indices(len(small), MAX_OUTER - 1)]
    return [OuterTile(func, stage, (), False)] + [OuterTile(func, stage, c, False) for c in chosen]


def sub_options(func: int, stage: int, dims: Sequence[int], extents: dict[int, int], reg: dict[int, int],
                grids: Sequence[tuple[tuple[int, int], ...]], n_grids: int = SUB_GRIDS,
                n_max: int = MAX_SUB, strips: bool = False, sizes: int = SUB_SIZES) -> list[OuterTile]:
    """Task grids with a serial sub-tile level inside each task (``OuterTile.sub``): for the
    ``SUB_GRIDS`` grids with the fewest (largest) tasks, sub-tiles of the innermost dimension or of
    the two innermost ones, ``SUB_SIZES`` sizes each (``SUB_COUNTS`` register tiles: sub-tiles of
    cache size, at least two per task). At most ``n_max`` of them, evenly spread. ``n_grids`` and
    ``n_max`` widen the choice, ``strips`` adds strips one register tile wide of the innermost
    dimension (for ``State.sub_grid_options``), ``sizes`` the sizes per dimension."""
    sub_dims = [d for d in dims if extents[d] > 1][:2]
    combos: list[tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = []
    for grid in sorted(grids, key=lambda g: _tasks(g, extents))[:n_grids]:
        tiles = dict(grid)
        per_dim: dict[int, list[int]] = {}
        for d in sub_dims:
            span = tiles.get(d, extents[d])
            units = span // reg[d] if d in tiles else _ceil_div(span, reg[d])
            ks = [k for k in SUB_COUNTS if k < units and (d not in tiles or units % k == 0)]
            per_dim[d] = _spread(ks, sizes)
        # one dimension: only the innermost (a sub-tile of the outer one alone is what computing
        # at its register-tile loop already does, with a taller tile: nothing new, and it misled
        # the model on unsharp and bilateral_grid)
        choices: list[tuple[tuple[int, int], ...]] = (
            [((sub_dims[0], k * reg[sub_dims[0]]),) for k in per_dim[sub_dims[0]]] if sub_dims else [])
        if sub_dims and strips:
            # a strip one register tile wide, all of the task's other loops inside it
            d0 = sub_dims[0]
            if tiles.get(d0, extents[d0]) > reg[d0]:      # a task tile is a multiple of the register tile
                choices.append(((d0, reg[d0]),))
        if len(sub_dims) == 2:
            a, b = sub_dims
            choices += [((a, ka * reg[a]), (b, kb * reg[b])) for ka in per_dim[a] for kb in per_dim[b]]
        combos += [(_tasks(grid, extents), grid, c) for c in choices]
    picked = [combos[i] for i in _spread_indices(len(combos), n_max)]
    return [OuterTile(func, stage, grid, True, tuple(sorted(sub))) for _, grid, sub in picked]


def _tasks(tiles: Sequence[tuple[int, int]], extents: dict[int, int]) -> int:
    n = 1
    for d, t in tiles:
        n *= _ceil_div(extents[d], t)
    return n


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _spread_indices(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})

"""Hand-written schedules that reach most of this machine's fp32 peak, and a benchmark against baselines.

The schedules are Python schedule source (run with ``hl`` and ``pipeline`` in scope, like every other
schedule in the toolkit), produced by generator functions that read the pipeline: its Funcs, their
definitions (``autoscheduler.ir``) and their estimated regions (``autoscheduler.dag``), so that tile sizes
fit the estimated extents. ``HAND[name](pipeline) -> source`` for every workload covered here.

What makes them fast (measured here, see docs/hand_schedules.md):

- The GEMM micro-kernel: the reduction Func is computed at a tile of a consumer (a global wrapper
  ``f.in_()`` when it has several consumers) so that the tile is a constant-size stack allocation that
  LLVM keeps in registers; inside the tile, the RVar loop sits outside the unrolled register tile
  (pure dim vectorised x another pure dim unrolled), so every load feeds V*vt*nt lanes of FMAs.
- Constant tile extents: ShiftInwards (not GuardWithIf) on the tile splits, plus ``bound`` on the
  wrapper, whenever the estimated extents are at least one tile. With GuardWithIf the tile extent is a
  ``min(...)``, LLVM cannot promote the accumulators, and they round-trip through memory each step
  (2-3x slower); GuardWithIf is only used below one tile (small sizes, tests).
- Packing the vector operand: a wrapper of it (``A.in_(f)``) computed at the outer (parallel) tile loop
  gives a contiguous panel, transposed through ``reorder_storage`` where the operand's vector
  dimension is not its innermost (dX = W^T dA): no power-of-two strides in the inner loop.
- ``rfactor`` for the scalar loss sums (parallel rows, 16-lane vector partials); the bias gradients
  are column sums vectorised across the output dimension.

Benchmark (``python bench/hand_schedules.py``): per workload at default sizes, root, Adams2019 (p=2 and
p=16, the faster), PyTorch and the hand schedule, all timed in this process (min of repeats), the hand
schedule checked against compute_root's output; % of peak against ``bench/peak.py`` measured beside
each row. Other processes may share the two cores, which wall-clock numbers cannot see past, so the
hand schedule, Adams2019's schedule and PyTorch are also timed on one core (``HL_NUM_THREADS=1``, one
torch thread, CPU time) against the one-task peak: the "one core" columns. Writes
``bench/results/hand_schedules.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import halide as hl  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler import baselines, schedules  # noqa: E402
from autoscheduler.measure.timing import compare  # noqa: E402
from autoscheduler.dag import FunctionDAG  # noqa: E402
from autoscheduler.errors import ToolkitError  # noqa: E402
from autoscheduler.ir import nodes as ir  # noqa: E402
from autoscheduler.timing import time_callable, time_pipeline  # noqa: E402

VECTOR = 16  # float32 lanes of AVX-512; the tiles below are in units of it

# ----------------------------------------------------------------------------- conv_layer

CONV_PRELUDE = '''\
import re as _re
_F = {}
_i = 0
while True:  # every Func up front, by name without the $n suffixes a rebuild adds
    try:
        _f = pipeline.get_func(_i)
    except Exception:
        break
    _F[_re.sub(r"\\$\\d+", "", _f.name())] = _f
    _i += 1
V = 16
G = hl.TailStrategy.GuardWithIf
S = hl.TailStrategy.ShiftInwards
conv, relu = _F["conv"], _F["relu"]
c, x, y, n = relu.args()
rci, rkx, rky = conv.rvars(0)
co, ci, xo, xi, yo, yi, t = [hl.Var(v) for v in ("co", "ci", "xo", "xi", "yo", "yi", "t")]
'''


def _region(pipeline: hl.Pipeline, name: str) -> list[int]:
    """Estimated extents of the Func whose name (without $n suffixes) is ``name``."""
    import re
    dag = FunctionDAG.from_pipeline(pipeline)
    for node in dag.nodes:
        if re.sub(r"\$\d+", "", node.name) == name:
            return [s.extent for s in node.region_computed]
    raise ToolkitError(f"no Func named '{name}' in the pipeline")


def conv_tile(co: int) -> tuple[int, int, int]:
    """(vectors of output channels, x, y) of the register tile: 24 of the 32 zmm registers."""
    vt = max(1, min(4, co // VECTOR))
    xt, yt = {4: (3, 2), 3: (4, 2), 2: (6, 2), 1: (12, 2)}[vt]
    return vt, xt, yt


def conv_layer_source(pipeline: hl.Pipeline) -> str:
    """The 3x3 conv + bias + ReLU (``conv_layer``, ``conv_layer_b8``) as a register-tiled micro-kernel.

    ``relu`` is tiled (V*vt output channels) x xt x yt; ``conv`` (init and update) is computed per tile
    with the RVars (ci, kx, ky) outside the unrolled, vectorised register tile; the filter is repacked
    once into (co, ci, kx, ky) order so the ci loop walks it contiguously; tiles of (y, n) in parallel.
    Below one tile of estimated extent it falls back to GuardWithIf tiles and no repacking.
    """
    co, width, height, _ = _region(pipeline, "relu")
    vt, xt, yt = conv_tile(co)
    fast = co >= VECTOR * vt and width >= xt and height >= yt
    tail = "S" if fast else "G"
    lines = [CONV_PRELUDE,
             f"# register tile: {VECTOR * vt} channels x {xt} x {yt} outputs; "
             f"{'constant tiles (ShiftInwards)' if fast else 'small extents: GuardWithIf tails'}",
             f"relu.split(c, co, ci, V * {vt}, {tail}).split(x, xo, xi, {xt}, {tail})"
             f".split(y, yo, yi, {yt}, {tail})",
             "relu.reorder(ci, xi, yi, xo, yo, n, co).vectorize(ci, V).unroll(ci).unroll(xi).unroll(yi)",
             "relu.fuse(yo, n, t).parallel(t)",
             "conv.compute_at(relu, xo).vectorize(c, V, G).unroll(c).unroll(x).unroll(y)",
             "conv.update().reorder(c, x, y, rci, rkx, rky, n).vectorize(c, V, G).unroll(c).unroll(x).unroll(y)"]
    if fast:
        lines += [f"conv.bound_extent(c, V * {vt}).bound_extent(x, {xt}).bound_extent(y, {yt})",
                  "fw = _F['filter_im'].in_(conv)  # filter repacked to (co, ci, kx, ky)",
                  "f0, f1, f2, f3 = fw.args()",
                  "fw.compute_root().reorder_storage(f0, f3, f1, f2).vectorize(f0, V, G).parallel(f2)"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- xnor_conv

XNOR_PRELUDE = CONV_PRELUDE.split("conv, relu = ")[0] + '''\
pool, pop = _F["pool"], _F["xnor_popcount"]
c, x, y, n = pool.args()
rw, rkx, rky = pop.rvars(0)
co, ci, xo, xi, t = [hl.Var(v) for v in ("co", "ci", "xo", "xi", "t")]


def _channel_sum(f, lanes):
    """f(c) += g(c, r0, r1, r2): lanes of c innermost, inside the reduction loops (contiguous reads),
    blocks of 8 vectors of channels in parallel."""
    cc = f.args()[0]
    cp, cb, cco, cci = hl.Var("cp"), hl.Var("cb"), hl.Var("cco"), hl.Var("cci")
    r0, r1, r2 = f.rvars(0)
    f.compute_root().vectorize(cc, lanes, G)
    f.update().split(cc, cp, cb, 8 * lanes, G).split(cb, cco, cci, lanes, G)
    f.update().reorder(cci, cco, r0, r1, r2, cp).vectorize(cci).parallel(cp)
'''


def xnor_conv_source(pipeline: hl.Pipeline) -> str:
    """XNOR-Net block: the xnor/popcount convolution as an integer micro-kernel, the rest vectorised.

    ``xnor_popcount`` is computed per tile of the pooled output (V*vt channels x px pooled columns, so
    V*vt x 2px x 2 popcount accumulators) with the RVars (words, kx, ky) outside the unrolled tile and
    the packed weight bits repacked per channel tile; scaling, ReLU and the 2x2 max-pool are inlined
    into ``pool``. The per-channel BatchNorm sums keep the channel vector innermost inside the pixel
    loops; ``bin_norm`` is computed once at root for its two consumers.
    """
    co, pw, ph, _ = _region(pipeline, "pool")
    vt, px = max(1, min(2, co // VECTOR)), 3
    fast = co >= VECTOR * vt and pw >= px
    tail = "S" if fast else "G"
    lines = [XNOR_PRELUDE,
             f"# popcount tile: {VECTOR * vt} channels x {2 * px} x 2 outputs "
             f"({'constant tiles' if fast else 'small extents: GuardWithIf tails'})",
             f"pool.split(c, co, ci, V * {vt}, {tail}).split(x, xo, xi, {px}, {tail}).reorder(ci, xi, xo, y, n, co)",
             "pool.vectorize(ci, V).unroll(ci).unroll(xi).fuse(y, n, t).parallel(t)",
             "pop.compute_at(pool, xo).vectorize(c, V, G).unroll(c).unroll(x).unroll(y)",
             "pop.update().reorder(c, x, y, rw, rkx, rky, n).vectorize(c, V, G).unroll(c).unroll(x).unroll(y)",
             "wb = _F['weight_bits']",
             "wb.compute_root().vectorize(wb.args()[0], V, G).parallel(wb.args()[3])",
             "wb.update().vectorize(wb.args()[0], V, G).parallel(wb.args()[3])",
             "_channel_sum(_F['alpha_sum'], V)",
             "_channel_sum(_F['bn_sum'], 8)  # float64",
             "_channel_sum(_F['bn_sumsq'], 8)",
             "for f in (_F['alpha'], _F['bn_scale']):",
             "    f.compute_root().vectorize(f.args()[0], 8, G)",
             "nm = _F['bin_norm']",
             "nm.compute_root().vectorize(nm.args()[0], V, G).parallel(nm.args()[2])",
             "ab = _F['abs_sum']",
             "ab.compute_root().vectorize(ab.args()[0], V, G).parallel(ab.args()[1])",
             "ab.update().parallel(ab.args()[1])",
             "k = _F['bin_k']",
             "k.compute_root().vectorize(k.args()[0], V, G).parallel(k.args()[1])",
             "ac = _F['act_bits']",
             "ac.compute_root().parallel(ac.args()[2])",
             "ac.update().parallel(ac.args()[2])"]
    if fast:
        lines += ["wp = wb.in_(pop).compute_at(pool, co)  # weight bits of one channel tile, contiguous",
                  "wp.vectorize(wp.args()[0], V, G)"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- dense networks

DENSE_PRELUDE = '''\
V = 16
G = hl.TailStrategy.GuardWithIf
S = hl.TailStrategy.ShiftInwards
_F = []
while True:  # every Func up front: rfactor and in_() add Funcs and shift later realization indices
    try:
        _F.append(pipeline.get_func(len(_F)))
    except Exception:
        break


def _mm(f, vt, nt, packs, extents, fast, outer_a):
    """f(a, b) = init; f(a, b) += A(a, r) * B(r, b) (one or more such updates) as a GEMM micro-kernel.

    f is computed per (V*vt) x nt tile of its global wrapper, init and updates in registers with r
    outside the unrolled tile; each A is packed into a contiguous panel at the outer tile loop."""
    a, b = f.args()
    ao, ai, bo, bi = hl.Var(a.name() + "o"), hl.Var(a.name() + "i"), hl.Var(b.name() + "o"), hl.Var(b.name() + "i")
    tail = S if fast else G
    w = f.in_()
    w.compute_root().bound(a, 0, extents[0]).bound(b, 0, extents[1])
    w.split(a, ao, ai, V * vt, tail).split(b, bo, bi, nt, tail)
    outer, inner = (ao, bo) if outer_a else (bo, ao)
    w.reorder(ai, bi, inner, outer).parallel(outer).vectorize(ai, V, G)
    f.compute_at(w, inner).vectorize(a, V, G).unroll(a).unroll(b)
    for u in range(f.num_update_definitions()):
        r = f.rvars(u)[0]
        f.update(u).reorder(a, b, r).vectorize(a, V, G).unroll(a).unroll(b)
    if not fast:
        return
    for index, transposed in packs:
        p = _F[index].in_(f)
        p0, p1 = p.args()
        p.compute_at(w, outer)
        if transposed:  # A(r, a): store it as (a, r)
            p.reorder_storage(p1, p0).reorder(p1, p0).vectorize(p1, V, G)
        else:
            p.vectorize(p0, V, G)


def _pointwise(f):
    a = f.args()
    f.compute_root()
    if len(a) >= 1:
        f.vectorize(a[0], V, G)
    if len(a) >= 2:
        f.parallel(a[-1])


def _column_sum(f):
    """f(a) += g(a, r): vectorised across a."""
    a = f.args()[0]
    f.compute_root().vectorize(a, V, G)
    for u in range(f.num_update_definitions()):
        f.update(u).vectorize(a, V, G)


def _scalar_sum(f):
    """f() += term(rx, ry): rfactor into (16 lanes of rx) x ry partial sums, ry in parallel."""
    rx, ry = f.rvars(0)
    rxo, rxi = hl.RVar(rx.name() + "o"), hl.RVar(rx.name() + "i")
    u, v = hl.Var("u"), hl.Var("v")
    f.compute_root()
    intm = f.update().split(rx, rxo, rxi, V, G).rfactor([(rxi, v), (ry, u)])
    intm.compute_root().vectorize(v).parallel(u)
    intm.update().reorder(v, rxo, u).vectorize(v).parallel(u)
'''


def _walk(e: Any) -> Iterator[Any]:
    if e is None:
        return
    yield e
    for c in e.children():
        yield from _walk(c)


def _var_names(e: Any) -> set[str]:
    return {x.name for x in _walk(e) if isinstance(x, ir.Variable)}


def _core(e: Any) -> Any:
    """The arithmetic under Lets and the true side of Selects (propagate_adjoints' bounds guards)."""
    while True:
        if isinstance(e, ir.Select):
            e = e.true_value
        elif isinstance(e, ir.Let):
            e = e.body
        else:
            return e


def _sum_terms(e: Any) -> list[Any]:
    e = _core(e)
    if isinstance(e, ir.Add):
        return _sum_terms(e.a) + _sum_terms(e.b)
    return [e]


def matmul_operands(f: ir.Func, update: ir.Definition) -> list[tuple[str, bool]] | None:
    """For ``f(a, b) += sum_k A_k(.., ..) * B_k(.., ..)`` over one RVar r (propagate_adjoints merges the
    dX of layers sharing an input into one such sum): per product, the name of the operand indexed
    by a and r and whether it is transposed (A(r, a) rather than A(a, r)); None for any other shape."""
    if len(f.args) != 2 or len(update.rvars) != 1 or len(update.values) != 1:
        return None
    terms = _sum_terms(update.values[0])
    own = [t for t in terms if isinstance(t, ir.Call) and t.name == f.name]
    products = [t for t in terms if t not in own]
    if len(own) != 1 or not products or not all(isinstance(t, ir.Mul) for t in products):
        return None
    a, r = f.args[0], update.rvars[0].var
    found = []
    for prod in products:
        calls = [_core(t) for t in (prod.a, prod.b)]
        if not all(isinstance(c, ir.Call) and c.is_func_call and len(c.args) == 2 for c in calls):
            return None
        natural = [c for c in calls if a in _var_names(c.args[0]) and r in _var_names(c.args[1])]
        transposed = [c for c in calls if r in _var_names(c.args[0]) and a in _var_names(c.args[1])]
        if natural:
            found.append((natural[0].name, False))
        elif transposed:
            found.append((transposed[0].name, True))
        else:
            return None
    return found


def matmul_tile(m: int, n: int) -> tuple[int, int]:
    """(vectors along a, unrolled b) of the register tile: 3 x 8 (24 accumulators) when it fits."""
    vt = 3
    while vt > 1 and VECTOR * vt > m:
        vt -= 1
    return vt, 8 if n >= 8 else max(1, n)


def dense_source(pipeline: hl.Pipeline, cores: int | None = None) -> str:
    """Schedule every stage of a dense network (forward, or a training step from propagate_adjoints).

    Walks the Funcs in realization order and schedules by shape: a 2-D Func whose updates are each one
    product summed over one RVar is a matmul (forward layer, dX or dW) and gets the micro-kernel; a 1-D
    Func with a reduction is a column sum (bias gradient); a 0-D Func summed over two RVars is a loss
    total (rfactor); a pure Func that only forwards another Func's value is inlined; every other Func is
    computed at root, vectorised and parallel.
    """
    cores = cores or os.cpu_count() or 1
    dag = FunctionDAG.from_pipeline(pipeline)
    funcs = schedules.pipeline_funcs(pipeline)
    outputs = {f.name() for f in pipeline.outputs()}
    index = {node.name: node.index for node in dag.nodes}
    lines = [DENSE_PRELUDE]
    for node, func in zip(dag.nodes, funcs):
        if schedules.is_input_wrapper(func):
            continue
        f, i = node.func, node.index
        tag = f"  # {node.name}"
        if f.updates:
            operands = [matmul_operands(f, u) for u in f.updates]
            if all(op is not None for op in operands):
                m, n = (s.extent for s in node.region_computed)
                vt, nt = matmul_tile(m, n)
                fast = m >= VECTOR * vt and n >= nt
                packs = [(index[name], tr) for op in operands if op is not None for name, tr in op]
                outer_a = -(-m // (VECTOR * vt)) >= 2 * cores  # enough panels to share out
                lines.append(f"_mm(_F[{i}], {vt}, {nt}, {packs}, {[m, n]}, {fast}, {outer_a}){tag}")
            elif f.dimensions == 1 and all(len(u.rvars) == 1 for u in f.updates):
                lines.append(f"_column_sum(_F[{i}]){tag}")
            elif f.dimensions == 0 and len(f.updates) == 1 and len(f.updates[0].rvars) == 2:
                lines.append(f"_scalar_sum(_F[{i}]){tag}")
            else:
                lines.append(f"_F[{i}].compute_root(){tag}")
            continue
        init = f.init.values[0] if f.init is not None else None
        if isinstance(init, ir.Call) and init.is_func_call and node.name not in outputs:
            continue  # a plain copy of another Func: left inline
        lines.append(f"_pointwise(_F[{i}]){tag}")
    return "\n".join(lines) + "\n"


HAND: dict[str, Callable[[hl.Pipeline], str]] = {
    "conv_layer": conv_layer_source,
    "conv_layer_b8": conv_layer_source,
    "ae_forward": dense_source,
    "ae_train_step": dense_source,
    "vae_train_step": dense_source,
    "xnor_conv": xnor_conv_source,
}


def hand_source(name: str, pipeline: hl.Pipeline) -> str:
    try:
        return HAND[name](pipeline)
    except KeyError:
        raise ToolkitError(f"no hand schedule for '{name}'; have {sorted(HAND)}") from None


# ----------------------------------------------------------------------------- benchmark


def _close(out: list[np.ndarray], ref: list[np.ndarray], spec: Any) -> bool:
    return compare(out, ref, spec.rtol, spec.atol, spec.mismatch_fraction) is None


def run_source(spec: Any, sizes: dict[str, int], inputs: dict[str, Any], source: str | Callable[[hl.Pipeline], str],
               target: hl.Target, repeats: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Apply a schedule to a fresh build, time it (min of repeats) and return its outputs."""
    built = spec.build(**sizes)
    p = built.pipeline()
    src = source(p) if callable(source) else source
    schedules.apply_source(src, p)
    row: dict[str, Any] = dict(time_pipeline(built, p, inputs, target, repeats=repeats))
    out = halide_pipelines.realize(built, inputs, target, pipeline=p)
    return row, out


def torch_ms(spec: Any, sizes: dict[str, int], inputs: dict[str, Any], repeats: int) -> dict[str, float] | None:
    fn = spec.torch_runner(inputs, **sizes)
    if fn is None:
        return None
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    return time_callable(fn, repeats=repeats)


def bench_workload(name: str, target: hl.Target, repeats: int, search_timeout: float, adams: bool,
                   single_core: bool = True, rounds: int = 3) -> dict[str, Any]:
    """Time root, the hand schedule, Adams2019 and PyTorch at default sizes; every row carries the peak
    measured right beside it (``peak_beside``): other processes come and go on the shared cores, so
    a row's % of peak is its rate over what the same cores gave at about the same moment. Under
    changing load this is still approximate; the one-core CPU-time columns are not affected."""
    import peak
    spec = halide_pipelines.get(name)
    sizes = spec.sizes()
    inputs = spec.make_inputs(0, **sizes)
    binary = "xnor" in spec.tags and name != "bwn_conv"
    kernel = peak.binary_peak_gops if binary else peak.fp32_peak_gflops

    def peak_now() -> float:
        return max(kernel(target) for _ in range(2))

    res: dict[str, Any] = {"pipeline": name, "sizes": sizes, "rows": {}, "peak_kind": "binary" if binary else "fp32"}
    root, reference = run_source(spec, sizes, inputs, schedules.root_source, target, max(2, repeats // 3))
    res["rows"]["root"] = root
    root["peak_beside"] = peak_now()

    # the hand schedule: rounds of (peak, timing) on one compiled pipeline; the fastest time against
    # the highest peak of those rounds (each the least disturbed of its kind: a conservative ratio)
    built = spec.build(**sizes)
    p = built.pipeline()
    res["hand_source"] = HAND[name](p)
    schedules.apply_source(res["hand_source"], p)
    hand: dict[str, Any] = {}
    flops = spec.flops(**sizes) or 0.0
    peaks_seen = []
    for _ in range(rounds):
        peaks_seen.append(peak_now())
        timing: dict[str, Any] = dict(time_pipeline(built, p, inputs, target, repeats=repeats))
        if not hand or timing["min_ms"] < hand["min_ms"]:
            hand = timing
    hand["peak_beside"] = max(peaks_seen)
    out = halide_pipelines.realize(built, inputs, target, pipeline=p)
    hand["correct"] = _close(out, reference, spec)
    res["rows"]["hand"] = hand

    adams_source = None
    if adams:
        found_rows = []
        for par in (os.cpu_count() or 1, 16):
            try:
                found = baselines.search(spec.build(**sizes).pipeline(), "Adams2019", {"parallelism": par},
                                         target, spec=(name, sizes), timeout_s=search_timeout,
                                         time_repeats=repeats)
                row: dict[str, Any] = dict(found.extra["timing"])
                row["peak_beside"] = peak_now()  # the worker times the schedule last, just before this
                row["correct"] = _close(found.extra["outputs"], reference, spec)
                row["parallelism"] = par
                row["search_s"] = found.search_time_s
                row["python_source"] = found.python_source
                found_rows.append(row)
            except ToolkitError as e:
                res["rows"][f"Adams2019(p={par})"] = {"error": str(e)}
        if found_rows:
            res["rows"]["Adams2019"] = min(found_rows, key=lambda r: r["min_ms"])
            adams_source = res["rows"]["Adams2019"]["python_source"]
    pk = peak_now()
    t = torch_ms(spec, sizes, inputs, repeats)
    if t is not None:
        res["rows"]["PyTorch"] = dict(t, peak_beside=pk)
    for row in res["rows"].values():
        if flops and "min_ms" in row:
            row["gflops"] = flops / (row["min_ms"] * 1e-3) / 1e9
            row["pct_peak"] = 100.0 * row["gflops"] / row["peak_beside"]
    core = core_efficiency_subprocess(name, adams_source) if single_core else None
    if core is not None:
        res["single_core"] = core
        for other, key in (("Adams2019", "adams_cpu_ms"), ("PyTorch", "torch_cpu_ms")):
            if key in core:
                res[f"single_core_hand_over_{other}"] = core["hand_cpu_ms"] / core[key]
    rows = res["rows"]
    for other in ("Adams2019", "PyTorch", "root"):
        if other in rows and "min_ms" in rows[other]:
            res[f"hand_over_{other}"] = rows["hand"]["min_ms"] / rows[other]["min_ms"]
    return res


def _cpu_ms(fn: Callable[[], Any], repeats: int) -> float:
    """CPU time of one call (ms), min of repeats, each stretched to at least 0.2 s of CPU."""
    fn()
    t0 = time.process_time()
    fn()
    inner = max(1, int(0.2 / max(time.process_time() - t0, 1e-4)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - t0) / inner)
    return best * 1e3


def core_efficiency(name: str, adams_source: str | None = None, repeats: int = 7) -> dict[str, float]:
    """One core's view, robust to other processes time-slicing the cores: with ``HL_NUM_THREADS=1``
    (set by the caller before Halide starts its thread pool) and one torch thread, the CPU time of
    the hand schedule, of Adams2019's schedule (its Python translation) and of PyTorch, min of
    repeats, against ``bench/peak.py`` with one task (best of 5)."""
    import peak
    target = hl.get_jit_target_from_environment()
    spec = halide_pipelines.get(name)
    sizes = spec.sizes()
    inputs = spec.make_inputs(0, **sizes)
    from halide_pipelines.spec import output_buffers

    def halide_ms(source: str | Callable[[hl.Pipeline], str]) -> float:
        built = spec.build(**sizes)
        p = built.pipeline()
        schedules.apply_source(source(p) if callable(source) else source, p)
        keep = built.bind_inputs(inputs)
        p.compile_jit(target)
        bufs = output_buffers(built)
        ms = _cpu_ms(lambda: p.realize(bufs, target), repeats)
        del keep
        return ms

    res: dict[str, float] = {}
    if adams_source:
        # First build of this process, as in the search worker: the translated source names the
        # Vars propagate_adjoints made (v8, ...), which a process's later builds number differently.
        try:
            res["adams_cpu_ms"] = halide_ms(adams_source)
        except ToolkitError:
            pass
    res["hand_cpu_ms"] = halide_ms(HAND[name])
    fn = spec.torch_runner(inputs, **sizes)
    if fn is not None:
        import torch
        torch.set_num_threads(1)
        res["torch_cpu_ms"] = _cpu_ms(fn, repeats)
    binary = "xnor" in spec.tags and name != "bwn_conv"
    kernel = peak.binary_peak_gops if binary else peak.fp32_peak_gflops
    res["peak_per_core"] = max(kernel(target, tasks=1) for _ in range(5))
    flops = spec.flops(**sizes) or 0.0
    res["rate_per_core"] = flops / res["hand_cpu_ms"] / 1e6
    res["pct_core_peak"] = 100.0 * res["rate_per_core"] / res["peak_per_core"]
    return res


def core_efficiency_subprocess(name: str, adams_source: str | None) -> dict[str, float] | None:
    """:func:`core_efficiency` in a fresh process (Halide reads HL_NUM_THREADS once, at its first run)."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--core-efficiency", name]
        if adams_source:
            path = Path(tmp) / "adams.py"
            path.write_text(adams_source)
            cmd += ["--adams-source", str(path)]
        proc = subprocess.run(cmd, env=dict(os.environ, HL_NUM_THREADS="1"), capture_output=True, text=True,
                              timeout=1200)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def print_header() -> None:
    print("# all cores, wall clock (min of repeats)                                         | one core, CPU time")
    print(f"{'workload':15s} {'root ms':>9s} {'Adams ms':>9s} {'torch ms':>9s} {'hand ms':>9s} "
          f"{'peak':>6s} {'%peak':>6s} {'hand/Adams':>10s} {'hand/torch':>10s} | {'hand ms':>8s} {'%peak':>6s} "
          f"{'hand/Adams':>10s} {'hand/torch':>10s}  ok")


def print_row(res: dict[str, Any]) -> None:
    rows = res["rows"]

    def ms(key: str) -> str:
        r = rows.get(key)
        return f"{r['min_ms']:9.3f}" if r and "min_ms" in r else f"{'-':>9s}"

    h = rows["hand"]
    pct = f"{h['pct_peak']:5.0f}%" if "pct_peak" in h else f"{'-':>6s}"
    ra = f"{res['hand_over_Adams2019']:10.2f}" if "hand_over_Adams2019" in res else f"{'-':>10s}"
    rt = f"{res['hand_over_PyTorch']:10.2f}" if "hand_over_PyTorch" in res else f"{'-':>10s}"
    core = res.get("single_core") or {}

    def ratio(key: str) -> str:
        return f"{res[key]:10.2f}" if key in res else f"{'-':>10s}"

    one_ms = f"{core['hand_cpu_ms']:8.3f}" if core else f"{'-':>8s}"
    one_pct = f"{core['pct_core_peak']:5.0f}%" if core else f"{'-':>6s}"
    pk = f"{h['peak_beside']:6.0f}" if "peak_beside" in h else f"{'-':>6s}"
    print(f"{res['pipeline']:15s} {ms('root')} {ms('Adams2019')} {ms('PyTorch')} {ms('hand')} {pk} {pct} "
          f"{ra} {rt} | {one_ms} {one_pct} {ratio('single_core_hand_over_Adams2019')} "
          f"{ratio('single_core_hand_over_PyTorch')}  {'yes' if h.get('correct') else 'NO'}")


def main() -> int:
    import peak
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated workloads (default: all with a hand schedule)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--search-timeout", type=float, default=400.0)
    ap.add_argument("--no-adams", action="store_true", help="skip the Adams2019 searches")
    ap.add_argument("--no-single-core", action="store_true", help="skip the one-core CPU-time measurement")
    ap.add_argument("--core-efficiency", default="", help=argparse.SUPPRESS)  # the subprocess of it
    ap.add_argument("--adams-source", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "hand_schedules.json"))
    args = ap.parse_args()
    if args.core_efficiency:
        adams_src = Path(args.adams_source).read_text() if args.adams_source else None
        print(json.dumps(core_efficiency(args.core_efficiency, adams_src)))
        return 0
    names = [n for n in args.only.split(",") if n] or list(HAND)
    target = hl.get_jit_target_from_environment()
    # Other processes may share the cores: the peak is measured again beside every row.
    peaks = {"fp32_gflops": max(peak.fp32_peak_gflops(target) for _ in range(5)),
             "binary_gops": max(peak.binary_peak_gops(target) for _ in range(5))}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# peaks at start (bench/peak.py, all cores): fp32 {peaks['fp32_gflops']:.1f} GFLOP/s, binary "
          f"{peaks['binary_gops']:.1f} Gop/s; {os.cpu_count()} cores, load average {load:.1f}; target {target}")
    print("# %peak: over the peak measured beside the row; 'one core': HL_NUM_THREADS=1, CPU time, "
          "Adams2019's schedule and PyTorch (1 thread) timed the same way")
    print_header()
    results = []
    for name in names:
        t0 = time.perf_counter()
        res = bench_workload(name, target, args.repeats, args.search_timeout, not args.no_adams,
                             not args.no_single_core)
        res["bench_s"] = time.perf_counter() - t0
        results.append(res)
        print_row(res)
        sys.stdout.flush()
    out = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "target": str(target),
                       "load_average_at_start": load},
           "peaks": peaks, "halide": "21.0.0", "results": results,
           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"# wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

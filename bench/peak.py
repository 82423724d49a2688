"""The machine's measured peak, by Halide microkernels, so every benchmark row can say "% of peak".

fp32: independent FMA chains (vector width x accumulators per task) in parallel tasks, enough of them to
hide the FMA latency on every core. Binary: xnor + popcount + add on 32-bit words, counted as 64 binary
ops per word (32 bit-products and 32 additions), the same convention as the XNOR workloads' op counts.
"""

from __future__ import annotations

import os
import time

import halide as hl


def _time_best(fn, repeats: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fp32_peak_gflops(target: hl.Target | None = None, tasks: int | None = None) -> float:
    t = target or hl.get_jit_target_from_environment()
    lanes = t.natural_vector_size(hl.Float(32))
    accs, steps = 12, 20000
    tasks = tasks or 4 * (os.cpu_count() or 1)
    v, j, k = hl.Var("v"), hl.Var("j"), hl.Var("k")
    r = hl.RDom([(0, steps)])
    f = hl.Func("fma_peak")
    f[v, j, k] = hl.cast(hl.Float(32), v + j + k) * hl.f32(1e-6)
    # The addend depends on r only (one scalar per step, shared by every accumulator), so the inner
    # body is one vector FMA per accumulator; the accumulators stay in registers because the
    # reduction loop sits outside the unrolled (v, j) tile.
    f[v, j, k] = f[v, j, k] * hl.f32(0.9999) + hl.cast(hl.Float(32), r.x) * hl.f32(1e-9)
    f.update(0).reorder(v, j, r.x, k).vectorize(v).unroll(j).parallel(k)
    f.bound(v, 0, lanes).bound(j, 0, accs).vectorize(v)
    p = hl.Pipeline(f)
    p.compile_jit(t)
    buf = hl.Buffer(hl.Float(32), [lanes, accs, tasks])
    seconds = _time_best(lambda: p.realize(buf, t))
    return 2.0 * lanes * accs * tasks * steps / seconds / 1e9


def binary_peak_gops(target: hl.Target | None = None, tasks: int | None = None) -> float:
    t = target or hl.get_jit_target_from_environment()
    lanes = t.natural_vector_size(hl.UInt(32))
    accs, steps = 8, 20000
    tasks = tasks or 4 * (os.cpu_count() or 1)
    v, j, k = hl.Var("v"), hl.Var("j"), hl.Var("k")
    r = hl.RDom([(0, steps)])
    a = hl.cast(hl.UInt(32), (v * 2654435761 + j * 40503 + r.x))
    f = hl.Func("popcount_peak")
    f[v, j, k] = hl.cast(hl.UInt(32), k)
    f[v, j, k] = f[v, j, k] + hl.popcount(~(f[v, j, k] ^ a))
    f.update(0).reorder(v, j, r.x, k).vectorize(v).unroll(j).parallel(k)
    f.bound(v, 0, lanes).bound(j, 0, accs).vectorize(v)
    p = hl.Pipeline(f)
    p.compile_jit(t)
    buf = hl.Buffer(hl.UInt(32), [lanes, accs, tasks])
    seconds = _time_best(lambda: p.realize(buf, t))
    return 64.0 * lanes * accs * tasks * steps / seconds / 1e9


if __name__ == "__main__":
    print(f"fp32 peak: {fp32_peak_gflops():.1f} GFLOP/s; binary peak: {binary_peak_gops():.1f} Gop/s")

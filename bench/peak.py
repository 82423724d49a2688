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


def _register_kernel(name: str, t: hl.Target, typ: hl.Type, accs: int, steps: int, tasks: int,
                     step_fn) -> tuple[hl.Pipeline, hl.Buffer]:
    """acc[v, j, k] updated ``steps`` times; (v vectorised x j unrolled) accumulators live in registers
    (store_in Register at the task loop), so the inner body is pure arithmetic, no loads or stores."""
    lanes = t.natural_vector_size(typ)
    v, j, k = hl.Var("v"), hl.Var("j"), hl.Var("k")
    r = hl.RDom([(0, steps)])
    acc = hl.Func(f"{name}_acc")
    acc[v, j, k] = hl.cast(typ, v + j + k)
    acc[v, j, k] = step_fn(acc[v, j, k], r.x, v, j)
    out = hl.Func(name)
    out[v, j, k] = acc[v, j, k]
    out.bound(v, 0, lanes).bound(j, 0, accs).vectorize(v).unroll(j).parallel(k)
    acc.compute_at(out, k).store_in(hl.MemoryType.Register).vectorize(v).unroll(j)
    acc.update(0).reorder(v, j, r.x).vectorize(v).unroll(j)
    p = hl.Pipeline(out)
    p.compile_jit(t)
    return p, hl.Buffer(typ, [lanes, accs, tasks])


def fp32_peak_gflops(target: hl.Target | None = None, tasks: int | None = None) -> float:
    t = target or hl.get_jit_target_from_environment()
    accs, steps = 24, 20000
    tasks = tasks or 4 * (os.cpu_count() or 1)
    # One vector FMA per accumulator per step; the addend depends on the step only (a broadcast).
    p, buf = _register_kernel("fma_peak", t, hl.Float(32), accs, steps, tasks,
                              lambda a, s, v, j: a * hl.f32(0.9999) + hl.cast(hl.Float(32), s) * hl.f32(1e-9))
    seconds = _time_best(lambda: p.realize(buf, t))
    return 2.0 * buf.dim(0).extent() * accs * tasks * steps / seconds / 1e9


def binary_peak_gops(target: hl.Target | None = None, tasks: int | None = None) -> float:
    t = target or hl.get_jit_target_from_environment()
    accs, steps = 16, 20000
    tasks = tasks or 4 * (os.cpu_count() or 1)
    # xnor + popcount + add of 32-bit words: 64 binary ops per lane per step.
    p, buf = _register_kernel(
        "popcount_peak", t, hl.UInt(32), accs, steps, tasks,
        lambda a, s, v, j: a + hl.popcount(~(a ^ hl.cast(hl.UInt(32), s * 40503 + j))))
    seconds = _time_best(lambda: p.realize(buf, t))
    return 64.0 * buf.dim(0).extent() * accs * tasks * steps / seconds / 1e9


if __name__ == "__main__":
    print(f"fp32 peak: {fp32_peak_gflops():.1f} GFLOP/s; binary peak: {binary_peak_gops():.1f} Gop/s")

"""Halide's ``bilateral_grid`` app: splat into a 3-D grid, blur it, slice it back out.

The grid (cells of ``S_SIGMA`` x ``S_SIGMA`` pixels, ``1 / r_sigma`` intensity bins, 2 channels: the
value sum and the count) is built by an RDom scatter whose bin index depends on the data; it is then
blurred with a 5-tap [1 4 6 4 1] filter in z, x and y, sampled trilinearly at every pixel and
normalised. Float32; the reference adds each cell's 64 samples in the RDom's order (r.x innermost).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, image_param, lerp, scalar_param, span

S_SIGMA = 8
TAPS = (1, 4, 6, 4, 1)


def _blur5(sample: Callable[[int], Any], const: Callable[[int], Any]) -> Any:
    e = sample(-2)
    for i, w in enumerate(TAPS[1:], start=-1):
        e = e + (sample(i) * const(w) if w != 1 else sample(i))
    return e


def build(width: int, height: int) -> BuiltPipeline:
    x, y, z, c = hl.Var("x"), hl.Var("y"), hl.Var("z"), hl.Var("c")
    s = S_SIGMA
    inp = image_param(hl.Float(32), "input", [width, height])
    r_sigma = scalar_param(hl.Float(32), "r_sigma", 0.1)
    clamped = hl.BoundaryConditions.repeat_edge(inp)

    r = hl.RDom([hl.Range(0, s), hl.Range(0, s)], "r")
    val = hl.clamp(clamped[x * s + r.x - s // 2, y * s + r.y - s // 2], 0.0, 1.0)
    zi = hl.i32(val * (1.0 / r_sigma) + 0.5)
    histogram = hl.Func("histogram")
    histogram[x, y, z, c] = hl.f32(0)
    histogram[x, y, zi, c] += hl.select(c == 0, val, hl.f32(1))

    blurz, blurx, blury = hl.Func("blurz"), hl.Func("blurx"), hl.Func("blury")
    blurz[x, y, z, c] = _blur5(lambda d: histogram[x, y, z + d, c], hl.f32)
    blurx[x, y, z, c] = _blur5(lambda d: blurz[x + d, y, z, c], hl.f32)
    blury[x, y, z, c] = _blur5(lambda d: blurx[x, y + d, z, c], hl.f32)

    v = hl.clamp(inp[x, y], 0.0, 1.0)
    zv = v * (1.0 / r_sigma)
    zs = hl.i32(zv)
    zf = zv - hl.f32(zs)
    xf = hl.f32(x % s) / s
    yf = hl.f32(y % s) / s
    xi, yi = x // s, y // s
    interpolated = hl.Func("interpolated")
    interpolated[x, y, c] = hl.lerp(
        hl.lerp(hl.lerp(blury[xi, yi, zs, c], blury[xi + 1, yi, zs, c], xf),
                hl.lerp(blury[xi, yi + 1, zs, c], blury[xi + 1, yi + 1, zs, c], xf), yf),
        hl.lerp(hl.lerp(blury[xi, yi, zs + 1, c], blury[xi + 1, yi, zs + 1, c], xf),
                hl.lerp(blury[xi, yi + 1, zs + 1, c], blury[xi + 1, yi + 1, zs + 1, c], xf), yf),
        zf)
    out = hl.Func("bilateral_grid")
    out[x, y] = interpolated[x, y, 0] / interpolated[x, y, 1]
    set_output_estimates(out, [width, height])
    return BuiltPipeline(outputs=[out], inputs={"input": inp, "r_sigma": r_sigma},
                         output_shapes=[[width, height]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    # A smooth ramp plus noise, slightly outside [0, 1] so the clamps matter.
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    img = 0.5 * (xx + yy) + rng.normal(0, 0.15, size=(height, width))
    return {"input": np.clip(img, -0.05, 1.05).astype(np.float32), "r_sigma": 0.1}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    f = np.float32
    s = S_SIGMA
    img = inp["input"]
    inv = f(1) / f(inp["r_sigma"])
    nz = int(f(1) * inv + f(0.5)) + 2  # bins the slice can touch: [0, nz)
    # Grid cells [gx0, gx1) x [gy0, gy1), bins [-2, nz + 2): enough for the blurs' +-2 taps.
    gx0, gx1 = -4, (width - 1) // s + 6
    gy0, gy1 = -4, (height - 1) // s + 6
    gxs, gys = span(gx0, gx1), span(gy0, gy1)
    hist = np.zeros((2, nz + 4, gy1 - gy0, gx1 - gx0), dtype=f)
    src = Grid(img, boundary="edge")
    yy, xx = np.meshgrid(np.arange(gy1 - gy0), np.arange(gx1 - gx0), indexing="ij")
    for ry in range(s):
        for rx in range(s):
            val = np.clip(src(gxs * s + rx - s // 2, gys * s + ry - s // 2), f(0), f(1))
            zi = (val * inv + f(0.5)).astype(np.int32)
            np.add.at(hist[0], (zi + 2, yy, xx), val)
            np.add.at(hist[1], (zi + 2, yy, xx), f(1))

    def blur(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis] - 4
        tap = [np.take(a, np.arange(d, d + n), axis=axis) for d in range(5)]
        out = tap[0]
        for d in range(1, 5):
            out = out + (tap[d] * f(TAPS[d]) if TAPS[d] != 1 else tap[d])
        return out

    bz = blur(hist, 1)          # bins [0, nz)
    bx = blur(bz, 3)            # cells x [gx0 + 2, gx1 - 2)
    by = blur(bx, 2)            # cells y [gy0 + 2, gy1 - 2)
    ox, oy = gx0 + 2, gy0 + 2

    v = np.clip(img, f(0), f(1))
    zv = v * inv
    zs = zv.astype(np.int32)
    zf = zv - zs.astype(f)
    X, Y = np.meshgrid(np.arange(width), np.arange(height), indexing="xy")
    xf = (X % s).astype(f) / f(s)
    yf = (Y % s).astype(f) / f(s)
    xi, yi = X // s - ox, Y // s - oy

    def at(ch: int, dx: int, dy: int, dz: int) -> np.ndarray:
        return by[ch, zs + dz, yi + dy, xi + dx]

    def interp(ch: int) -> np.ndarray:
        return lerp(lerp(lerp(at(ch, 0, 0, 0), at(ch, 1, 0, 0), xf), lerp(at(ch, 0, 1, 0), at(ch, 1, 1, 0), xf), yf),
                    lerp(lerp(at(ch, 0, 0, 1), at(ch, 1, 0, 1), xf), lerp(at(ch, 0, 1, 1), at(ch, 1, 1, 1), xf), yf),
                    zf)

    return [(interp(0) / interp(1)).astype(f)]


BILATERAL_GRID = register(PipelineSpec(
    name="bilateral_grid",
    description="Halide app bilateral_grid: RDom scatter into a grid, 5-tap blurs in z/x/y, trilinear slice",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=1e-4, atol=1e-5, tags=("classic",)))

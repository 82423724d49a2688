"""Halide's ``local_laplacian`` app: local Laplacian filtering on Gaussian / Laplacian pyramids.

A remapping curve (a LUT Func) is applied to the luminance at ``levels`` intensity levels; each
remapped image gets a Gaussian pyramid (1 3 3 1 downsampling) and a Laplacian pyramid (bilinear
upsampling); the output Laplacian pyramid interpolates between the two processed levels nearest the
input pyramid's value; it is collapsed and colour is reintroduced. ``pyramid_levels`` (J) pyramid
levels: 8 at the benchmark size, as in the app. uint16 in and out.

The reference evaluates every stage on exactly the coordinate ranges Halide's bounds inference would
need (the pyramids read outside the image; only the input is clamped). Float32 as in Halide, so the
final truncation to uint16 can differ by one where a value lands next to an integer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, f32, image_param, scalar_param, span

LUMA = (0.299, 0.587, 0.114)
EPS = 0.01

x, y, c, k = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("k")


def _downsample(f: Any, name: str, extra: tuple) -> Any:
    downx, downy = hl.Func(f"{name}_downx"), hl.Func(f"{name}_downy")
    downx[(x, y, *extra)] = (f[(2 * x - 1, y, *extra)] + 3.0 * (f[(2 * x, y, *extra)] + f[(2 * x + 1, y, *extra)])
                             + f[(2 * x + 2, y, *extra)]) / 8.0
    downy[(x, y, *extra)] = (downx[(x, 2 * y - 1, *extra)]
                             + 3.0 * (downx[(x, 2 * y, *extra)] + downx[(x, 2 * y + 1, *extra)])
                             + downx[(x, 2 * y + 2, *extra)]) / 8.0
    return downy


def _upsample(f: Any, name: str, extra: tuple) -> Any:
    upx, upy = hl.Func(f"{name}_upx"), hl.Func(f"{name}_upy")
    upx[(x, y, *extra)] = 0.25 * f[(x // 2 - 1 + 2 * (x % 2), y, *extra)] + 0.75 * f[(x // 2, y, *extra)]
    upy[(x, y, *extra)] = 0.25 * upx[(x, y // 2 - 1 + 2 * (y % 2), *extra)] + 0.75 * upx[(x, y // 2, *extra)]
    return upy


def build(width: int, height: int, pyramid_levels: int) -> BuiltPipeline:
    J = pyramid_levels
    inp = image_param(hl.UInt(16), "input", [width, height, 3])
    levels = scalar_param(hl.Int(32), "levels", 8)
    alpha = scalar_param(hl.Float(32), "alpha", 1.0)
    beta = scalar_param(hl.Float(32), "beta", 1.0)

    remap = hl.Func("remap")
    fx = hl.f32(x) / 256.0
    remap[x] = alpha * fx * hl.exp(-fx * fx / 2.0)
    clamped = hl.BoundaryConditions.repeat_edge(inp)
    floating = hl.Func("floating")
    floating[x, y, c] = clamped[x, y, c] / 65535.0
    gray = hl.Func("gray")
    gray[x, y] = f32(LUMA[0]) * floating[x, y, 0] + f32(LUMA[1]) * floating[x, y, 1] + f32(LUMA[2]) * floating[x, y, 2]

    # Processed Gaussian pyramids, one per intensity level k.
    level = k * (1.0 / (levels - 1))
    idx = hl.clamp(hl.i32(gray[x, y] * hl.f32(levels - 1) * 256.0), 0, (levels - 1) * 256)
    g_pyr = [hl.Func("gPyramid_0")]
    g_pyr[0][x, y, k] = beta * (gray[x, y] - level) + level + remap[idx - 256 * k]
    for j in range(1, J):
        g_pyr.append(_downsample(g_pyr[j - 1], f"gPyramid_{j}", (k,)))

    l_pyr: list[Any] = [None] * J
    l_pyr[J - 1] = g_pyr[J - 1]
    for j in range(J - 2, -1, -1):
        l_pyr[j] = hl.Func(f"lPyramid_{j}")
        l_pyr[j][x, y, k] = g_pyr[j][x, y, k] - _upsample(g_pyr[j + 1], f"lPyramid_{j}", (k,))[x, y, k]

    in_pyr = [hl.Func("inGPyramid_0")]
    in_pyr[0][x, y] = gray[x, y]
    for j in range(1, J):
        in_pyr.append(_downsample(in_pyr[j - 1], f"inGPyramid_{j}", ()))

    out_l: list[Any] = []
    for j in range(J):
        lv = in_pyr[j][x, y] * hl.f32(levels - 1)
        li = hl.clamp(hl.i32(lv), 0, levels - 2)
        lf = lv - hl.f32(li)
        f = hl.Func(f"outLPyramid_{j}")
        f[x, y] = (1.0 - lf) * l_pyr[j][x, y, li] + lf * l_pyr[j][x, y, li + 1]
        out_l.append(f)

    out_g: list[Any] = [None] * J
    out_g[J - 1] = out_l[J - 1]
    for j in range(J - 2, -1, -1):
        out_g[j] = hl.Func(f"outGPyramid_{j}")
        out_g[j][x, y] = _upsample(out_g[j + 1], f"outGPyramid_{j}", ())[x, y] + out_l[j][x, y]

    color = hl.Func("color")
    color[x, y, c] = out_g[0][x, y] * (floating[x, y, c] + f32(EPS)) / (gray[x, y] + f32(EPS))
    out = hl.Func("local_laplacian")
    out[x, y, c] = hl.u16(hl.clamp(color[x, y, c], 0.0, 1.0) * 65535.0)
    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(outputs=[out], inputs={"input": inp, "levels": levels, "alpha": alpha, "beta": beta},
                         output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int, pyramid_levels: int) -> dict:
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = 0.3 + 0.4 * np.sin(6 * xx + 3 * yy)[None] * np.array([1.0, 0.8, 0.6])[:, None, None]
    img = np.clip(base + rng.normal(0, 0.08, size=(3, height, width)), 0, 1)
    return {"input": (img * 65535).astype(np.uint16), "levels": 8, "alpha": 1.0, "beta": 1.0}


# ---- numpy reference ------------------------------------------------------------------------------

Interval = tuple[int, int]  # [lo, hi)
F = np.float32


def _up_needs(iv: Interval) -> Interval:
    lo, hi = iv
    return lo // 2 - 1, (hi - 1) // 2 + 2


def _down_needs(iv: Interval) -> Interval:
    lo, hi = iv
    return 2 * lo - 1, 2 * (hi - 1) + 3


def _np_down(g: Grid, xiv: Interval, yiv: Interval) -> Grid:
    X, Y = span(*xiv), span(*yiv)
    rows = span(*_down_needs(yiv))
    dx = (g(2 * X - 1, rows) + F(3) * (g(2 * X, rows) + g(2 * X + 1, rows)) + g(2 * X + 2, rows)) / F(8)
    h = Grid(dx, xiv[0], int(rows[0]))
    dy = (h(X, 2 * Y - 1) + F(3) * (h(X, 2 * Y) + h(X, 2 * Y + 1)) + h(X, 2 * Y + 2)) / F(8)
    return Grid(dy, xiv[0], yiv[0])


def _np_up(g: Grid, xiv: Interval, yiv: Interval) -> np.ndarray:
    X, Y = span(*xiv), span(*yiv)
    rows = span(*_up_needs(yiv))
    ux = F(0.25) * g(X // 2 - 1 + 2 * (X % 2), rows) + F(0.75) * g(X // 2, rows)
    h = Grid(ux, xiv[0], int(rows[0]))
    return F(0.25) * h(X, Y // 2 - 1 + 2 * (Y % 2)) + F(0.75) * h(X, Y // 2)


def reference(inp: dict, width: int, height: int, pyramid_levels: int) -> list[np.ndarray]:
    J = pyramid_levels
    L = int(inp["levels"])
    alpha, beta = F(inp["alpha"]), F(inp["beta"])

    # Coordinate ranges per level: A for the output-side pyramids, B (wider) for the Gaussian ones.
    def ranges(n: int) -> tuple[list[Interval], list[Interval]]:
        a = [(0, n)]
        for _ in range(1, J):
            a.append(_up_needs(a[-1]))
        b: list[Interval] = [a[J - 1]] * J
        for j in range(J - 2, -1, -1):
            d = _down_needs(b[j + 1])
            b[j] = (min(a[j][0], d[0]), max(a[j][1], d[1]))
        return a, b

    ax, bx = ranges(width)
    ay, by = ranges(height)

    src = Grid(inp["input"], boundary="edge")
    floating = src(span(*bx[0]), span(*by[0])).astype(F) / F(65535)
    gray_a = F(LUMA[0]) * floating[0] + F(LUMA[1]) * floating[1] + F(LUMA[2]) * floating[2]
    gray = Grid(gray_a, bx[0][0], by[0][0])

    def remap(i: np.ndarray) -> np.ndarray:
        fx = i.astype(F) / F(256)
        return alpha * fx * np.exp(-fx * fx / F(2))

    idx = np.clip((gray_a * F(L - 1) * F(256)).astype(np.int32), 0, (L - 1) * 256)
    g0 = np.empty((L,) + gray_a.shape, dtype=F)
    for kk in range(L):
        level = F(kk) * (F(1) / F(L - 1))
        g0[kk] = beta * (gray_a - level) + level + remap(idx - 256 * kk)
    g_pyr = [Grid(g0, bx[0][0], by[0][0])]
    in_pyr = [gray]
    for j in range(1, J):
        g_pyr.append(_np_down(g_pyr[j - 1], bx[j], by[j]))
        in_pyr.append(_np_down(in_pyr[j - 1], bx[j], by[j]))

    def on_a(g: Grid, j: int) -> np.ndarray:
        return g(span(*ax[j]), span(*ay[j]))

    out_l = []
    for j in range(J):
        lp = on_a(g_pyr[j], j)
        if j < J - 1:
            lp = lp - _np_up(g_pyr[j + 1], ax[j], ay[j])
        lv = on_a(in_pyr[j], j) * F(L - 1)
        li = np.clip(lv.astype(np.int32), 0, L - 2)
        lf = lv - li.astype(F)
        lo = np.take_along_axis(lp, li[None], axis=0)[0]
        hi = np.take_along_axis(lp, li[None] + 1, axis=0)[0]
        out_l.append((F(1) - lf) * lo + lf * hi)

    out_g = Grid(out_l[J - 1], ax[J - 1][0], ay[J - 1][0])
    for j in range(J - 2, -1, -1):
        out_g = Grid(_np_up(out_g, ax[j], ay[j]) + out_l[j], ax[j][0], ay[j][0])

    xs, ys = span(0, width), span(0, height)
    fl = Grid(floating, bx[0][0], by[0][0])(xs, ys)
    color = out_g(xs, ys)[None] * (fl + F(EPS)) / (gray(xs, ys)[None] + F(EPS))
    return [(np.clip(color, F(0), F(1)) * F(65535)).astype(np.uint16)]


LOCAL_LAPLACIAN = register(PipelineSpec(
    name="local_laplacian",
    description="Halide app local_laplacian: remapped Gaussian/Laplacian pyramids (J levels), collapse, uint16",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560, "pyramid_levels": 8},
    test_sizes={"width": 40, "height": 32, "pyramid_levels": 4},
    rtol=0, atol=1, mismatch_fraction=1e-3, tags=("classic",), default_schedule_ok=False))

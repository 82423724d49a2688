"""Halide's ``harris`` app: Harris corner response of an RGB float image.

Luminance through ``repeat_edge``, Sobel derivatives (scaled by 1/12), the structure tensor's three
products, 3x3 box sums of each, then ``det - 0.04 * trace^2``. Float32; the reference evaluates the
same sums in the same order, so only rounding (fused multiply-adds) differs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, f32, image_param, span

LUMA = (0.299, 0.587, 0.114)
K = 0.04
# (dx, dy, weight) taps of the Sobel derivatives, in the order they are summed.
IX_TAPS = ((-1, -1, -1 / 12), (1, -1, 1 / 12), (-1, 0, -2 / 12), (1, 0, 2 / 12), (-1, 1, -1 / 12), (1, 1, 1 / 12))
IY_TAPS = ((-1, -1, -1 / 12), (-1, 1, 1 / 12), (0, -1, -2 / 12), (0, 1, 2 / 12), (1, -1, -1 / 12), (1, 1, 1 / 12))
BOX = tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1))


def _taps(sample: Callable[[int, int], Any], taps: tuple, const: Callable[[float], Any]) -> Any:
    e = None
    for dx, dy, w in taps:
        term = sample(dx, dy) * const(w)
        e = term if e is None else e + term
    return e


def _box(sample: Callable[[int, int], Any]) -> Any:
    e = None
    for dx, dy in BOX:
        e = sample(dx, dy) if e is None else e + sample(dx, dy)
    return e


def build(width: int, height: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    inp = image_param(hl.Float(32), "input", [width, height, 3])
    in_b = hl.BoundaryConditions.repeat_edge(inp)
    gray = hl.Func("gray")
    gray[x, y] = f32(LUMA[0]) * in_b[x, y, 0] + f32(LUMA[1]) * in_b[x, y, 1] + f32(LUMA[2]) * in_b[x, y, 2]
    ix, iy = hl.Func("Ix"), hl.Func("Iy")
    ix[x, y] = _taps(lambda dx, dy: gray[x + dx, y + dy], IX_TAPS, f32)
    iy[x, y] = _taps(lambda dx, dy: gray[x + dx, y + dy], IY_TAPS, f32)
    ixx, iyy, ixy = hl.Func("Ixx"), hl.Func("Iyy"), hl.Func("Ixy")
    ixx[x, y] = ix[x, y] * ix[x, y]
    iyy[x, y] = iy[x, y] * iy[x, y]
    ixy[x, y] = ix[x, y] * iy[x, y]
    def box_sum(name: str, f: Any) -> Any:
        s = hl.Func(name)
        s[x, y] = _box(lambda dx, dy: f[x + dx, y + dy])
        return s

    sxx, syy, sxy = box_sum("Sxx", ixx), box_sum("Syy", iyy), box_sum("Sxy", ixy)
    det, trace = hl.Func("det"), hl.Func("trace")
    det[x, y] = sxx[x, y] * syy[x, y] - sxy[x, y] * sxy[x, y]
    trace[x, y] = sxx[x, y] + syy[x, y]
    out = hl.Func("harris")
    out[x, y] = det[x, y] - f32(K) * trace[x, y] * trace[x, y]
    set_output_estimates(out, [width, height])
    return BuiltPipeline(outputs=[out], inputs={"input": inp}, output_shapes=[[width, height]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {"input": rng.uniform(0.0, 1.0, size=(3, height, width)).astype(np.float32)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    f = np.float32
    img = Grid(inp["input"], boundary="edge")
    xs2, ys2 = span(-2, width + 2), span(-2, height + 2)
    rgb = img(xs2, ys2)
    gray = Grid(f(LUMA[0]) * rgb[0] + f(LUMA[1]) * rgb[1] + f(LUMA[2]) * rgb[2], -2, -2)
    xs1, ys1 = span(-1, width + 1), span(-1, height + 1)
    ix = _taps(lambda dx, dy: gray(xs1 + dx, ys1 + dy), IX_TAPS, f)
    iy = _taps(lambda dx, dy: gray(xs1 + dx, ys1 + dy), IY_TAPS, f)
    xs0, ys0 = span(0, width), span(0, height)
    def box_sum(products: np.ndarray) -> np.ndarray:
        g = Grid(products, -1, -1)
        return _box(lambda dx, dy: g(xs0 + dx, ys0 + dy))

    sxx, syy, sxy = box_sum(ix * ix), box_sum(iy * iy), box_sum(ix * iy)
    det = sxx * syy - sxy * sxy
    trace = sxx + syy
    return [(det - f(K) * trace * trace).astype(f)]


HARRIS = register(PipelineSpec(
    name="harris", description="Halide app harris: Sobel structure tensor, 3x3 sums, det - k*trace^2",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=1e-4, atol=1e-7, tags=("classic",)))

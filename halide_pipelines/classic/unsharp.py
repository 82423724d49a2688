"""Halide's ``unsharp`` app: gaussian blur of the luminance, sharpen, and scale the colour image.

The 7-tap gaussian kernel (sigma 1.5) is a Func of its own, as in the app; the input is read through
``repeat_edge``. Float32 throughout, so the reference matches within float tolerance (Halide's exp
and possible fused multiply-adds differ from numpy in the last bits).
"""

from __future__ import annotations

import math

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, f32, image_param, span

SIGMA = 1.5
RADIUS = 3
LUMA = (0.299, 0.587, 0.114)


def build(width: int, height: int) -> BuiltPipeline:
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    inp = image_param(hl.Float(32), "input", [width, height, 3])
    kernel = hl.Func("kernel")
    kernel[x] = hl.exp(hl.f32(-x * x) / f32(2 * SIGMA * SIGMA)) / f32(math.sqrt(2 * math.pi) * SIGMA)
    bounded = hl.BoundaryConditions.repeat_edge(inp)
    gray = hl.Func("gray")
    gray[x, y] = (f32(LUMA[0]) * bounded[x, y, 0] + f32(LUMA[1]) * bounded[x, y, 1]
                  + f32(LUMA[2]) * bounded[x, y, 2])
    blur_y = hl.Func("blur_y")
    e = kernel[0] * gray[x, y]
    for i in range(1, RADIUS + 1):
        e = e + kernel[i] * (gray[x, y - i] + gray[x, y + i])
    blur_y[x, y] = e
    blur_x = hl.Func("blur_x")
    e = kernel[0] * blur_y[x, y]
    for i in range(1, RADIUS + 1):
        e = e + kernel[i] * (blur_y[x - i, y] + blur_y[x + i, y])
    blur_x[x, y] = e
    sharpen = hl.Func("sharpen")
    sharpen[x, y] = 2 * gray[x, y] - blur_x[x, y]
    ratio = hl.Func("ratio")
    ratio[x, y] = sharpen[x, y] / gray[x, y]
    out = hl.Func("unsharp")
    out[x, y, c] = ratio[x, y] * inp[x, y, c]
    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(outputs=[out], inputs={"input": inp}, output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    # Bounded away from 0: the app divides by the luminance.
    return {"input": rng.uniform(0.1, 1.0, size=(3, height, width)).astype(np.float32)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    f = np.float32
    taps = np.arange(RADIUS + 1)
    kernel = (np.exp((-(taps * taps)).astype(f) / f(2 * SIGMA * SIGMA))
              / f(math.sqrt(2 * math.pi) * SIGMA)).astype(f)
    img = Grid(inp["input"], boundary="edge")
    xs, ys = span(-RADIUS, width + RADIUS), span(-RADIUS, height + RADIUS)
    rgb = img(xs, ys)
    gray = Grid(f(LUMA[0]) * rgb[0] + f(LUMA[1]) * rgb[1] + f(LUMA[2]) * rgb[2], -RADIUS, -RADIUS)
    ys0, xs0 = span(0, height), span(0, width)
    by = kernel[0] * gray(xs, ys0)
    for i in range(1, RADIUS + 1):
        by = by + kernel[i] * (gray(xs, ys0 - i) + gray(xs, ys0 + i))
    blur_y = Grid(by, -RADIUS, 0)
    bx = kernel[0] * blur_y(xs0, ys0)
    for i in range(1, RADIUS + 1):
        bx = bx + kernel[i] * (blur_y(xs0 - i, ys0) + blur_y(xs0 + i, ys0))
    g = gray(xs0, ys0)
    ratio = (f(2) * g - bx) / g
    return [(ratio[None] * inp["input"]).astype(f)]


UNSHARP = register(PipelineSpec(
    name="unsharp", description="Halide app unsharp: gaussian-blurred luminance, sharpen, rescale RGB",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=1e-4, atol=1e-5, tags=("classic",)))

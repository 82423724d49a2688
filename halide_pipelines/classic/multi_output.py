"""A two-output pipeline sharing a producer: a blurred image and its half-resolution gradient.

A [1 2 1] x [1 2 1] binomial blur of a uint16 image (through ``repeat_edge``) is the shared producer;
output 0 is the blurred image (uint16, full size), output 1 the gradient magnitude of the blur
sampled at even pixels (float32, half size), which reads the blur one pixel outside the image.
The blur is exact integer arithmetic; the magnitude's float rounding is the only tolerance.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, image_param, span


def build(width: int, height: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    inp = image_param(hl.UInt(16), "input", [width, height])
    clamped = hl.BoundaryConditions.repeat_edge(inp)
    blur_x = hl.Func("blur_x")
    blur_x[x, y] = hl.u16((hl.u32(clamped[x - 1, y]) + 2 * hl.u32(clamped[x, y]) + clamped[x + 1, y] + 2) // 4)
    blur_y = hl.Func("blur_y")
    blur_y[x, y] = hl.u16((hl.u32(blur_x[x, y - 1]) + 2 * hl.u32(blur_x[x, y]) + blur_x[x, y + 1] + 2) // 4)
    blurred = hl.Func("blurred")
    blurred[x, y] = blur_y[x, y]
    gx = hl.f32(blur_y[2 * x + 1, 2 * y]) - hl.f32(blur_y[2 * x - 1, 2 * y])
    gy = hl.f32(blur_y[2 * x, 2 * y + 1]) - hl.f32(blur_y[2 * x, 2 * y - 1])
    grad = hl.Func("grad_mag")
    grad[x, y] = hl.sqrt(gx * gx + gy * gy)
    shapes = [[width, height], [width // 2, height // 2]]
    set_output_estimates(blurred, shapes[0])
    set_output_estimates(grad, shapes[1])
    return BuiltPipeline(outputs=[blurred, grad], inputs={"input": inp}, output_shapes=shapes)


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {"input": rng.integers(0, 1 << 16, size=(height, width), dtype=np.uint16)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    src = Grid(inp["input"].astype(np.uint32), boundary="edge")
    xs, ys = span(-1, width + 1), span(-2, height + 2)
    bx = Grid((src(xs - 1, ys) + 2 * src(xs, ys) + src(xs + 1, ys) + 2) // 4, -1, -2)
    ys1 = span(-1, height + 1)
    by = Grid(((bx(xs, ys1 - 1) + 2 * bx(xs, ys1) + bx(xs, ys1 + 1) + 2) // 4).astype(np.uint16), -1, -1)
    X, Y = span(0, width // 2), span(0, height // 2)
    f = np.float32
    gx = by(2 * X + 1, 2 * Y).astype(f) - by(2 * X - 1, 2 * Y).astype(f)
    gy = by(2 * X, 2 * Y + 1).astype(f) - by(2 * X, 2 * Y - 1).astype(f)
    return [by(span(0, width), span(0, height)), np.sqrt(gx * gx + gy * gy)]


MULTI_OUTPUT = register(PipelineSpec(
    name="multi_output",
    description="Two outputs sharing a blur: the uint16 blurred image and a half-size float gradient magnitude",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=1e-5, atol=0, tags=("classic",)))

"""Halide's ``blur`` app: a 3x3 box blur of a uint16 image as two separable 3-tap passes.

As in the app, the output is the valid region: the input is 2 pixels larger in each dimension and
the taps read ``x, x+1, x+2``. Sums are formed in uint32 (the app lets uint16 wrap) and divided by 3
with unsigned (floor) division, so the reference is exact.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param


def build(width: int, height: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    inp = image_param(hl.UInt(16), "input", [width + 2, height + 2])
    blur_x = hl.Func("blur_x")
    blur_x[x, y] = hl.u16((hl.u32(inp[x, y]) + inp[x + 1, y] + inp[x + 2, y]) // 3)
    blur_y = hl.Func("blur_y")
    blur_y[x, y] = hl.u16((hl.u32(blur_x[x, y]) + blur_x[x, y + 1] + blur_x[x, y + 2]) // 3)
    set_output_estimates(blur_y, [width, height])
    return BuiltPipeline(outputs=[blur_y], inputs={"input": inp}, output_shapes=[[width, height]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {"input": rng.integers(0, 1 << 16, size=(height + 2, width + 2), dtype=np.uint16)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    a = inp["input"].astype(np.uint32)
    bx = ((a[:, 0:width] + a[:, 1:width + 1] + a[:, 2:width + 2]) // 3).astype(np.uint16).astype(np.uint32)
    by = (bx[0:height] + bx[1:height + 1] + bx[2:height + 2]) // 3
    return [by.astype(np.uint16)]


def flops(width: int, height: int) -> float:
    return 3.0 * width * (height + 2) + 3.0 * width * height  # two adds and a divide per tap pass


BLUR = register(PipelineSpec(
    name="blur", description="Halide app blur: 3x3 box blur of uint16 as two separable 3-tap passes",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=0, atol=0, tags=("classic",), flops_fn=flops))

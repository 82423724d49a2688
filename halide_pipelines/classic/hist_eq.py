"""Histogram equalisation, after Halide's ``hist`` app.

Integer luma of an RGB uint8 image; a histogram of it built by RDom scatters, first per row
(``hist_rows``, parallel over rows in the app's schedule) then summed over rows; the cumulative
distribution as a serial scan (an RDom update reading its own previous entry); a 256-entry LUT
``round(255 * cdf / N)``; and every channel shifted by the luma's change. All integer: exact.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param

LUMA = (77, 150, 29)  # sums to 256


def build(width: int, height: int) -> BuiltPipeline:
    x, y, c, b = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("b")
    inp = image_param(hl.UInt(8), "input", [width, height, 3])
    luma = hl.Func("luma")
    luma[x, y] = hl.u8((hl.u32(LUMA[0]) * inp[x, y, 0] + hl.u32(LUMA[1]) * inp[x, y, 1]
                        + hl.u32(LUMA[2]) * inp[x, y, 2] + 128) // 256)
    rx = hl.RDom([hl.Range(0, inp.width())], "rx")
    hist_rows = hl.Func("hist_rows")
    hist_rows[b, y] = 0
    hist_rows[hl.i32(luma[rx.x, y]), y] += 1
    ry = hl.RDom([hl.Range(0, inp.height())], "ry")
    hist = hl.Func("hist")
    hist[b] = 0
    hist[b] += hist_rows[b, ry.x]
    rb = hl.RDom([hl.Range(1, 255)], "rb")
    cdf = hl.Func("cdf")
    cdf[b] = hist[0]
    cdf[rb.x] = cdf[rb.x - 1] + hist[rb.x]
    n = hl.i64(inp.width() * inp.height())
    lut = hl.Func("lut")
    lut[b] = hl.u8((hl.i64(cdf[b]) * 255 + n // 2) // n)
    out = hl.Func("hist_eq")
    shift = hl.i32(lut[hl.i32(luma[x, y])]) - hl.i32(luma[x, y])
    out[x, y, c] = hl.u8(hl.clamp(hl.i32(inp[x, y, c]) + shift, 0, 255))
    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(outputs=[out], inputs={"input": inp}, output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    # A low-contrast image (values bunched in the middle), which equalisation spreads out.
    base = rng.normal(110, 18, size=(1, height, width)) + rng.normal(0, 6, size=(3, height, width))
    return {"input": np.clip(base, 0, 255).astype(np.uint8)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    img = inp["input"].astype(np.int64)
    luma = (LUMA[0] * img[0] + LUMA[1] * img[1] + LUMA[2] * img[2] + 128) // 256
    cdf = np.cumsum(np.bincount(luma.ravel(), minlength=256))
    n = width * height
    lut = (cdf * 255 + n // 2) // n
    shift = lut[luma] - luma
    return [np.clip(img + shift[None], 0, 255).astype(np.uint8)]


HIST_EQ = register(PipelineSpec(
    name="hist_eq",
    description="Histogram equalisation (Halide app hist): per-row RDom scatter, row sum, cdf scan, LUT remap",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=0, atol=0, tags=("classic",), default_schedule_ok=False))

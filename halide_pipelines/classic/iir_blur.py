"""Halide's ``iir_blur`` app: a first-order IIR blur down and back up the columns, then the rows.

Each pass is a Func with an undefined pure definition and three updates: copy the first row, an
RDom scan down (``(1 - alpha) * above + alpha * in``), and an RDom scan back up; the pass's result is
transposed, so the second pass (over the transposed image) blurs the rows. Float32, 3 channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param, scalar_param


def _blur_cols_transpose(src: Any, height: Any, alpha: Any, name: str) -> Any:
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    blur = hl.Func(f"{name}_cols")
    blur[x, y, c] = hl.undef(hl.Float(32))
    blur[x, 0, c] = src[x, 0, c]
    ry = hl.RDom([hl.Range(1, height - 1)], f"{name}_ry").x
    blur[x, ry, c] = (1 - alpha) * blur[x, ry - 1, c] + alpha * src[x, ry, c]
    flip = height - ry - 1
    blur[x, flip, c] = (1 - alpha) * blur[x, flip + 1, c] + alpha * blur[x, flip, c]
    transpose = hl.Func(f"{name}_transpose")
    transpose[x, y, c] = blur[y, x, c]
    return transpose


def build(width: int, height: int) -> BuiltPipeline:
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    inp = image_param(hl.Float(32), "input", [width, height, 3])
    alpha = scalar_param(hl.Float(32), "alpha", 0.1)
    blur_y = _blur_cols_transpose(inp, inp.height(), alpha, "blur_y")
    blur = _blur_cols_transpose(blur_y, inp.width(), alpha, "blur_x")
    out = hl.Func("iir_blur")
    out[x, y, c] = blur[x, y, c]
    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(outputs=[out], inputs={"input": inp, "alpha": alpha}, output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {"input": rng.uniform(0.0, 1.0, size=(3, height, width)).astype(np.float32), "alpha": 0.1}


def _np_cols(a: np.ndarray, alpha: np.float32) -> np.ndarray:
    """One pass over [c, y, x]: down then up the y axis."""
    keep = np.float32(1) - alpha
    b = np.empty_like(a)
    b[:, 0] = a[:, 0]
    for j in range(1, a.shape[1]):
        b[:, j] = keep * b[:, j - 1] + alpha * a[:, j]
    for j in range(a.shape[1] - 2, -1, -1):
        b[:, j] = keep * b[:, j + 1] + alpha * b[:, j]
    return b


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    alpha = np.float32(inp["alpha"])
    blur_y = _np_cols(inp["input"], alpha).transpose(0, 2, 1)
    return [np.ascontiguousarray(_np_cols(blur_y, alpha).transpose(0, 2, 1))]


IIR_BLUR = register(PipelineSpec(
    name="iir_blur", description="Halide app iir_blur: first-order IIR scans down/up columns, then rows (float)",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=1e-4, atol=1e-5, tags=("classic",)))

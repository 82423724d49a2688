"""A large square max filter after Halide's ``max_filter`` app.

The vertical max uses the app's log-doubling scan: ``vert_log(x, y, c, t)`` holds the max over rows
``[y, y + 2^t)``, built by one RDom update over (rows, t), and any window of 2r+1 rows is the max of
two overlapping power-of-two windows. The horizontal max is an inline ``maximum`` over an RDom. The
input is read through ``repeat_edge``. Max is exact, so the reference matches exactly.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param


def build(width: int, height: int, radius: int) -> BuiltPipeline:
    x, y, c, t = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("t")
    inp = image_param(hl.Float(32), "input", [width, height, 3])
    clamped = hl.BoundaryConditions.repeat_edge(inp)
    top = (2 * radius).bit_length() - 1  # floor(log2(2r)) = ceil(log2(2r + 1)) - 1: 2^top <= 2r+1 <= 2^(top+1)
    vert_log = hl.Func("vert_log")
    vert_log[x, y, c, t] = clamped[x, y, c]
    r = hl.RDom([hl.Range(-radius, inp.height() + radius), hl.Range(1, top)], "r")
    step = hl.clamp(hl.i32(1) << (r.y - 1), 0, 2 * radius)
    vert_log[x, r.x, c, r.y] = hl.max(vert_log[x, r.x, c, r.y - 1], vert_log[x, r.x + step, c, r.y - 1])
    vert = hl.Func("vert")
    vert[x, y, c] = hl.max(vert_log[x, y - radius, c, top],
                           vert_log[x, y + radius + 1 - (1 << top), c, top])
    dx = hl.RDom([hl.Range(-radius, 2 * radius + 1)], "dx").x
    out = hl.Func("max_filter")
    out[x, y, c] = hl.maximum(vert[x + dx, y, c])
    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(outputs=[out], inputs={"input": inp}, output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int, radius: int) -> dict:
    # Mostly small values with sparse peaks, so each output depends on exactly which pixels the window covers.
    return {"input": (rng.uniform(0.0, 1.0, size=(3, height, width)) ** 16).astype(np.float32)}


def reference(inp: dict, width: int, height: int, radius: int) -> list[np.ndarray]:
    from numpy.lib.stride_tricks import sliding_window_view
    d = 2 * radius + 1
    p = np.pad(inp["input"], ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    v = sliding_window_view(p, d, axis=1).max(axis=-1)
    return [np.ascontiguousarray(sliding_window_view(v, d, axis=2).max(axis=-1))]


MAX_FILTER = register(PipelineSpec(
    name="max_filter",
    description="Halide app max_filter (square): log-doubling vertical max scan, horizontal RDom max",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560, "radius": 13},
    test_sizes={"width": 40, "height": 32, "radius": 6},
    rtol=0, atol=0, tags=("classic",)))

"""The Halide lesson pipeline ``index_sum(x, y) = x + y`` with its hand-written schedule.

Its printed loop nest is a fixture (``../shared/fixtures/index_sum_loop_nest.txt``).
"""

from __future__ import annotations

import numpy as np

import halide as hl

from . import register
from .spec import BuiltPipeline, PipelineSpec, set_output_estimates


def build(width: int, height: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    f = hl.Func("index_sum")
    f[x, y] = x + y
    set_output_estimates(f, [width, height])
    return BuiltPipeline(outputs=[f], inputs={}, output_shapes=[[width, height]])


def hand_schedule(built: BuiltPipeline) -> None:
    """The lesson's schedule: 64x64 tiles, fused parallel tile index, 4x2 vectorised/unrolled tiles."""
    f = built.outputs[0]
    x, y = hl.Var("x"), hl.Var("y")
    x_outer, x_inner, y_outer, y_inner = hl.Var("x_outer"), hl.Var("x_inner"), hl.Var("y_outer"), hl.Var("y_inner")
    tile_index = hl.Var("tile_index")
    x_inner_outer, y_inner_outer = hl.Var("x_inner_outer"), hl.Var("y_inner_outer")
    x_vectors, y_pairs = hl.Var("x_vectors"), hl.Var("y_pairs")
    (f.split(x, x_outer, x_inner, 64).split(y, y_outer, y_inner, 64)
      .reorder(x_inner, y_inner, x_outer, y_outer)
      .fuse(x_outer, y_outer, tile_index).parallel(tile_index)
      .tile(x_inner, y_inner, x_inner_outer, y_inner_outer, x_vectors, y_pairs, 4, 2)
      .vectorize(x_vectors).unroll(y_pairs))


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return [(xx + yy).astype(np.int32)]


INDEX_SUM = register(PipelineSpec(
    name="index_sum", description="Halide lesson: index_sum(x, y) = x + y (hand schedule available)",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 350, "height": 250}, test_sizes={"width": 350, "height": 250},
    rtol=0, atol=0, tags=("lesson",)))

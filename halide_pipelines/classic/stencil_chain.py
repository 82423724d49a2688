"""Halide's ``stencil_chain`` app, shortened: eight integer stencils applied one after another.

The input is read through ``repeat_edge`` once; every later stage reads its producer outside the
image (where the producer is still defined), exactly like the app. Stages alternate a 3x3 binomial
filter and a 5-point stencil, both weighted averages with rounding in uint32, so values stay in
uint16 and the reference (edge padding by the chain's radius, then valid-region stencils) is exact.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param

STAGES = 8
BINOMIAL = ((1, 2, 1), (2, 4, 2), (1, 2, 1))  # [dy + 1][dx + 1], sum 16
FIVE_POINT = ((0, 0, 4), (-1, 0, 1), (1, 0, 1), (0, -1, 1), (0, 1, 1))  # (dx, dy, weight), sum 8


def _taps(stage: int) -> tuple[list[tuple[int, int, int]], int]:
    """The (dx, dy, weight) taps of a stage and its log2 normaliser."""
    if stage % 2 == 0:
        return [(dx, dy, BINOMIAL[dy + 1][dx + 1]) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 4
    return list(FIVE_POINT), 3


def build(width: int, height: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    inp = image_param(hl.UInt(16), "input", [width, height])
    prev = hl.BoundaryConditions.repeat_edge(inp)
    for s in range(STAGES):
        taps, shift = _taps(s)
        e = hl.u32(1 << (shift - 1))
        for dx, dy, w in taps:
            e = e + hl.u32(w) * prev[x + dx, y + dy]
        f = hl.Func(f"stage_{s}")
        f[x, y] = hl.u16(e >> shift)
        prev = f
    out = hl.Func("stencil_chain")
    out[x, y] = prev[x, y]
    set_output_estimates(out, [width, height])
    return BuiltPipeline(outputs=[out], inputs={"input": inp}, output_shapes=[[width, height]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    return {"input": rng.integers(0, 1 << 16, size=(height, width), dtype=np.uint16)}


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    a = np.pad(inp["input"], STAGES, mode="edge").astype(np.uint32)
    for s in range(STAGES):
        taps, shift = _taps(s)
        h, w = a.shape[0] - 2, a.shape[1] - 2
        acc = np.full((h, w), 1 << (shift - 1), dtype=np.uint32)
        for dx, dy, wt in taps:
            acc += np.uint32(wt) * a[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        a = (acc >> shift).astype(np.uint16).astype(np.uint32)
    return [a.astype(np.uint16)]


STENCIL_CHAIN = register(PipelineSpec(
    name="stencil_chain", description="Halide app stencil_chain: 8 chained uint16 3x3 / 5-point stencils",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 1536, "height": 2560}, test_sizes={"width": 40, "height": 32},
    rtol=0, atol=0, tags=("classic",), default_schedule_ok=False))

"""Matrix multiply (Halide's ``linear_algebra`` / ``cuda_mat_mul`` apps): ``C = A B`` via an RDom.

``A`` is m x k and ``B`` is k x n in numpy order (Halide: ``A(kk, i)``, ``B(j, kk)``). Float32; the
reference is numpy's matmul, whose summation order differs, hence a relative tolerance.
"""

from __future__ import annotations

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import image_param


def build(m: int, n: int, k: int) -> BuiltPipeline:
    x, y = hl.Var("x"), hl.Var("y")
    a = image_param(hl.Float(32), "A", [k, m])
    b = image_param(hl.Float(32), "B", [n, k])
    r = hl.RDom([hl.Range(0, k)], "r")
    prod = hl.Func("prod")
    prod[x, y] = hl.f32(0)
    prod[x, y] += a[r.x, y] * b[x, r.x]
    out = hl.Func("mat_mul")
    out[x, y] = prod[x, y]
    set_output_estimates(out, [n, m])
    return BuiltPipeline(outputs=[out], inputs={"A": a, "B": b}, output_shapes=[[n, m]])


def inputs(rng: np.random.Generator, m: int, n: int, k: int) -> dict:
    return {"A": rng.uniform(-1, 1, size=(m, k)).astype(np.float32),
            "B": rng.uniform(-1, 1, size=(k, n)).astype(np.float32)}


def reference(inp: dict, m: int, n: int, k: int) -> list[np.ndarray]:
    return [(inp["A"].astype(np.float64) @ inp["B"].astype(np.float64)).astype(np.float32)]


def flops(m: int, n: int, k: int) -> float:
    return 2.0 * m * n * k


MAT_MUL = register(PipelineSpec(
    name="mat_mul", description="Matrix multiply C = A B via an RDom over k (float32)",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"m": 1024, "n": 1024, "k": 1024}, test_sizes={"m": 24, "n": 40, "k": 36},
    rtol=1e-4, atol=1e-4, tags=("classic",), flops_fn=flops))

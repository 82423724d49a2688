"""The classic Halide benchmark apps, ported: one module per pipeline, each registering its spec.

Every spec carries the tag ``"classic"``, realistic default sizes, small test sizes and a numpy
reference (not Halide) that reproduces Halide's boundary handling and integer rounding.
"""

from __future__ import annotations

from . import (bilateral_grid, blur, camera_pipe, harris, hist_eq, iir_blur,  # noqa: F401
               local_laplacian, mat_mul, max_filter, multi_output, stencil_chain, unsharp)

NAMES = ("blur", "unsharp", "harris", "stencil_chain", "bilateral_grid", "local_laplacian", "camera_pipe",
         "hist_eq", "iir_blur", "max_filter", "mat_mul", "multi_output")

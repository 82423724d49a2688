"""The classic Halide benchmark apps, ported: one module per pipeline, each registering its spec.

Every spec carries the tag ``"classic"``, realistic default sizes, small test sizes and a numpy
reference (not Halide) that reproduces Halide's boundary handling and integer rounding.
"""

from __future__ import annotations

from . import (bilateral_grid, blur, camera_pipe, harris, hist_eq, iir_blur,
               local_laplacian, mat_mul, max_filter, multi_output, stencil_chain, unsharp)

__all__ = ["SPECS"]

SPECS = (blur.BLUR, unsharp.UNSHARP, harris.HARRIS, stencil_chain.STENCIL_CHAIN, bilateral_grid.BILATERAL_GRID,
         local_laplacian.LOCAL_LAPLACIAN, camera_pipe.CAMERA_PIPE, hist_eq.HIST_EQ, iir_blur.IIR_BLUR,
         max_filter.MAX_FILTER, mat_mul.MAT_MUL, multi_output.MULTI_OUTPUT)

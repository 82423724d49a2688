"""The classic Halide benchmark apps, ported: one module per pipeline, each registering its spec.

Every spec carries the tag ``"classic"``, realistic default sizes, small test sizes and a numpy
reference that reproduces Halide's boundary handling and integer rounding.
"""

from __future__ import annotations

from . import (blur, unsharp, harris, stencil_chain, bilateral_grid, local_laplacian)  # noqa: F401

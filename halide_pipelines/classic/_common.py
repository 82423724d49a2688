"""Shared pieces of the classic pipelines: declaring inputs with estimates, and numpy sampling.

The numpy references evaluate each stage the way Halide defines it: as a function of integer
coordinates that may lie outside the image. ``Grid`` holds a stage's values on a rectangle and samples
them at arbitrary coordinate vectors, applying the same boundary condition as the Halide side (or
refusing coordinates it does not hold, which catches a reference that computed too small a region).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import halide as hl

from ..spec import set_input_estimates

Shape = Sequence[int]


def image_param(t: Any, name: str, shape: Shape) -> Any:
    """An ImageParam of type ``t`` with one dimension per entry of ``shape`` (Halide order), estimated."""
    p = hl.ImageParam(t, len(shape), name)
    set_input_estimates(p, shape)
    return p


def scalar_param(t: Any, name: str, estimate: float) -> Any:
    """A scalar Param with its estimate set, as the autoschedulers need."""
    p = hl.Param(t, name)
    p.set_estimate(estimate)
    return p


def f32(v: float) -> Any:
    """A float32 constant Expr (Halide warns on Python floats that float32 cannot hold exactly)."""
    return hl.f32(float(v))


def span(lo: int, hi: int) -> np.ndarray:
    """The integer coordinates [lo, hi) as an int64 vector."""
    return np.arange(lo, hi, dtype=np.int64)


class Grid:
    """Values of a function f(..., y, x) on x in [x0, x0+w), y in [y0, y0+h); numpy layout [..., y, x].

    ``boundary`` mirrors Halide's BoundaryConditions for sampling outside the held rectangle:
    ``"edge"`` (repeat_edge), ``"mirror_interior"``, or None (out-of-range sampling is an error).
    """

    def __init__(self, data: np.ndarray, x0: int = 0, y0: int = 0, boundary: str | None = None):
        if boundary not in (None, "edge", "mirror_interior"):
            raise ValueError(f"unknown boundary {boundary!r}")
        self.data = data
        self.x0 = x0
        self.y0 = y0
        self.boundary = boundary

    @staticmethod
    def _index(coords: np.ndarray, origin: int, n: int, boundary: str | None, axis: str) -> np.ndarray:
        i = np.asarray(coords, dtype=np.int64) - origin
        if boundary == "edge":
            return np.clip(i, 0, n - 1)
        if boundary == "mirror_interior":
            if n == 1:
                return np.zeros_like(i)
            period = 2 * (n - 1)
            m = np.mod(i, period)
            return np.where(m >= n, period - m, m)
        if i.size and (i.min() < 0 or i.max() >= n):
            raise IndexError(f"reference samples {axis} in [{i.min() + origin}, {i.max() + origin}] "
                             f"outside the computed [{origin}, {origin + n})")
        return i

    def __call__(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """f(x, y) for every y in ``ys`` (rows) and x in ``xs`` (columns): shape [..., len(ys), len(xs)].

        The result may be a view of the held data; treat it as read-only.
        """
        h, w = self.data.shape[-2], self.data.shape[-1]
        ix = self._index(xs, self.x0, w, self.boundary, "x")
        iy = self._index(ys, self.y0, h, self.boundary, "y")
        sx, sy = _as_slice(ix), _as_slice(iy)
        if sx is not None and sy is not None:
            return self.data[..., sy, sx]
        return self.data[..., iy[:, None], ix[None, :]]


def _as_slice(i: np.ndarray) -> slice | None:
    """The slice equal to an increasing arithmetic index vector (a view instead of a gather), else None."""
    if i.ndim != 1 or i.size == 0:
        return None
    if i.size == 1:
        return slice(int(i[0]), int(i[0]) + 1)
    step = int(i[1] - i[0])
    if step <= 0 or not np.all(np.diff(i) == step):
        return None
    return slice(int(i[0]), int(i[-1]) + 1, step)


def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Halide's float lerp: ``a * (1 - w) + b * w``."""
    one = np.float32(1)
    return a * (one - w) + b * w

"""Halide's ``camera_pipe`` app: raw Bayer sensor data to an 8-bit RGB image.

Stages as in the app: shift inwards past the sensor border (the output is the valid region, so no
boundary condition), hot pixel suppression (clamp to the max of the 4 same-colour neighbours),
deinterleave the GRBG mosaic into 4 half-resolution channels, edge-directed demosaic (green by the
flatter direction, red/blue corrected by green's second derivative), interleave back, a Q8.8 fixed
point colour matrix (a 4x3 float input), and a gamma + contrast curve as a 1024-entry LUT Func.

Everything but the curve is integer arithmetic that the reference repeats exactly. The curve uses
float ``pow`` and rounds to uint8, so an entry may differ by one from numpy's: tolerance atol=1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import halide as hl

from .. import register
from ..spec import BuiltPipeline, PipelineSpec, set_output_estimates
from ._common import Grid, image_param, scalar_param, span

SHIFT_X, SHIFT_Y = 16, 12  # the raw image is 2 * SHIFT larger than the output in each dimension
LUT_SIZE = 1024

x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")


def _avg(a: Any, b: Any) -> Any:
    """Average of two int16 values rounding up, computed in int32 (the app's avg)."""
    return hl.i16((hl.i32(a) + b + 1) // 2)


def _func(name: str, e: Any) -> Any:
    f = hl.Func(name)
    f[x, y] = e
    return f


def _interleave_x(a: Any, b: Any, name: str) -> Any:
    return _func(name, hl.select(x % 2 == 0, a[x // 2, y], b[x // 2, y]))


def _interleave_y(a: Any, b: Any, name: str) -> Any:
    return _func(name, hl.select(y % 2 == 0, a[x, y // 2], b[x, y // 2]))


def build(width: int, height: int) -> BuiltPipeline:
    raw = image_param(hl.UInt(16), "raw", [width + 2 * SHIFT_X, height + 2 * SHIFT_Y])
    matrix_in = image_param(hl.Float(32), "matrix", [4, 3])
    gamma = scalar_param(hl.Float(32), "gamma", 2.0)
    contrast = scalar_param(hl.Float(32), "contrast", 50.0)
    black = scalar_param(hl.Int(32), "black_level", 25)
    white = scalar_param(hl.Int(32), "white_level", 1023)

    shifted = _func("shifted", hl.i16(raw[x + SHIFT_X, y + SHIFT_Y]))
    brightest = hl.max(hl.max(shifted[x - 2, y], shifted[x + 2, y]), hl.max(shifted[x, y - 2], shifted[x, y + 2]))
    denoised = _func("denoised", hl.clamp(shifted[x, y], 0, brightest))
    deinterleaved = hl.Func("deinterleaved")
    deinterleaved[x, y, c] = hl.mux(c, [denoised[2 * x, 2 * y], denoised[2 * x + 1, 2 * y],
                                        denoised[2 * x, 2 * y + 1], denoised[2 * x + 1, 2 * y + 1]])

    # Known values: <channel>_<site>; green at red rows (gr) and blue rows (gb).
    g_gr = _func("g_gr", deinterleaved[x, y, 0])
    r_r = _func("r_r", deinterleaved[x, y, 1])
    b_b = _func("b_b", deinterleaved[x, y, 2])
    g_gb = _func("g_gb", deinterleaved[x, y, 3])

    g_r = _func("g_r", hl.select(hl.absd(g_gr[x + 1, y], g_gr[x, y]) < hl.absd(g_gb[x, y - 1], g_gb[x, y]),
                                 _avg(g_gr[x + 1, y], g_gr[x, y]), _avg(g_gb[x, y - 1], g_gb[x, y])))
    g_b = _func("g_b", hl.select(hl.absd(g_gb[x - 1, y], g_gb[x, y]) < hl.absd(g_gr[x, y + 1], g_gr[x, y]),
                                 _avg(g_gb[x - 1, y], g_gb[x, y]), _avg(g_gr[x, y + 1], g_gr[x, y])))

    r_gr = _func("r_gr", g_gr[x, y] - _avg(g_r[x, y], g_r[x - 1, y]) + _avg(r_r[x - 1, y], r_r[x, y]))
    b_gr = _func("b_gr", g_gr[x, y] - _avg(g_b[x, y], g_b[x, y - 1]) + _avg(b_b[x, y], b_b[x, y - 1]))
    r_gb = _func("r_gb", g_gb[x, y] - _avg(g_r[x, y], g_r[x, y + 1]) + _avg(r_r[x, y], r_r[x, y + 1]))
    b_gb = _func("b_gb", g_gb[x, y] - _avg(g_b[x, y], g_b[x + 1, y]) + _avg(b_b[x, y], b_b[x + 1, y]))

    def diagonal(known: Any, g_here: Any, g_there: Any, d1: tuple, d2: tuple, name: str) -> Any:
        """Red at blue (or blue at red): the flatter diagonal, green-corrected."""
        (ax, ay), (bx, by) = d1
        (cx, cy), (dx, dy) = d2
        p = g_here[x, y] - _avg(g_there[x + ax, y + ay], g_there[x + bx, y + by]) + _avg(
            known[x + ax, y + ay], known[x + bx, y + by])
        n = g_here[x, y] - _avg(g_there[x + cx, y + cy], g_there[x + dx, y + dy]) + _avg(
            known[x + cx, y + cy], known[x + dx, y + dy])
        flatter = (hl.absd(known[x + ax, y + ay], known[x + bx, y + by])
                   < hl.absd(known[x + cx, y + cy], known[x + dx, y + dy]))
        return _func(name, hl.select(flatter, p, n))

    r_b = diagonal(r_r, g_b, g_r, ((0, 0), (-1, 1)), ((-1, 0), (0, 1)), "r_b")
    b_r = diagonal(b_b, g_r, g_b, ((0, 0), (1, -1)), ((1, 0), (0, -1)), "b_r")

    red = _interleave_y(_interleave_x(r_gr, r_r, "r_even"), _interleave_x(r_b, r_gb, "r_odd"), "red")
    green = _interleave_y(_interleave_x(g_gr, g_r, "g_even"), _interleave_x(g_b, g_gb, "g_odd"), "green")
    blue = _interleave_y(_interleave_x(b_gr, b_r, "b_even"), _interleave_x(b_b, b_gb, "b_odd"), "blue")
    demosaiced = hl.Func("demosaiced")
    demosaiced[x, y, c] = hl.mux(c, [red[x, y], green[x, y], blue[x, y]])

    matrix = hl.Func("matrix")
    matrix[x, y] = hl.i16(matrix_in[x, y] * 256.0)  # Q8.8 fixed point
    ir, ig, ib = (hl.i32(demosaiced[x, y, i]) for i in range(3))
    rows = [hl.i16((matrix[3, i] + matrix[0, i] * ir + matrix[1, i] * ig + matrix[2, i] * ib) // 256)
            for i in range(3)]
    corrected = hl.Func("corrected")
    corrected[x, y, c] = hl.mux(c, rows)

    curve = hl.Func("curve")
    inv_range = 1.0 / hl.f32(white - black)
    b = 2.0 - hl.pow(hl.f32(2.0), contrast / 100.0)
    a = 2.0 - 2.0 * b
    xf = hl.clamp(hl.f32(x - black) * inv_range, 0.0, 1.0)
    g = hl.pow(xf, 1.0 / gamma)
    z = hl.select(g > 0.5, 1.0 - (a * (1.0 - g) * (1.0 - g) + b * (1.0 - g)), a * g * g + b * g)
    val = hl.u8(hl.clamp(z * 255.0 + 0.5, 0.0, 255.0))
    curve[x] = hl.select(x <= black, hl.u8(0), hl.select(x > white, hl.u8(255), val))
    out = hl.Func("camera_pipe")
    out[x, y, c] = curve[hl.clamp(hl.i32(corrected[x, y, c]), 0, LUT_SIZE - 1)]

    set_output_estimates(out, [width, height, 3])
    return BuiltPipeline(
        outputs=[out],
        inputs={"raw": raw, "matrix": matrix_in, "gamma": gamma, "contrast": contrast,
                "black_level": black, "white_level": white},
        output_shapes=[[width, height, 3]])


def inputs(rng: np.random.Generator, width: int, height: int) -> dict:
    h, w = height + 2 * SHIFT_Y, width + 2 * SHIFT_X
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    scene = 200 + 600 * (0.5 + 0.5 * np.sin(9 * xx) * np.cos(7 * yy))
    raw = scene + rng.normal(0, 40, size=(h, w))
    hot = rng.random((h, w)) < 0.01  # a few hot pixels for the suppression to remove
    raw[hot] = 1023
    matrix = np.array([[1.6, -0.45, -0.15, -20.0 / 256],
                       [-0.25, 1.5, -0.25, 10.0 / 256],
                       [-0.1, -0.6, 1.7, -5.0 / 256]], dtype=np.float32)
    return {"raw": np.clip(raw, 0, 1023).astype(np.uint16), "matrix": matrix,
            "gamma": 2.0, "contrast": 50.0, "black_level": 25, "white_level": 1023}


# ---- numpy reference ------------------------------------------------------------------------------

def _np_avg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.int32) + b + 1) // 2).astype(np.int16)


def _np_absd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b)


def _curve(gamma: float, contrast: float, black: int, white: int) -> np.ndarray:
    F = np.float32
    i = np.arange(LUT_SIZE)
    inv_range = F(1) / F(white - black)
    b = F(2) - np.power(F(2), F(contrast) / F(100))
    a = F(2) - F(2) * b
    xf = np.clip((i - black).astype(F) * inv_range, F(0), F(1))
    g = np.power(xf, F(1) / F(gamma))
    one = F(1)
    z = np.where(g > F(0.5), one - (a * (one - g) * (one - g) + b * (one - g)), a * g * g + b * g)
    val = np.clip(z * F(255) + F(0.5), F(0), F(255)).astype(np.uint8)
    return np.where(i <= black, 0, np.where(i > white, 255, val)).astype(np.uint8)


def reference(inp: dict, width: int, height: int) -> list[np.ndarray]:
    hw, hh = (width + 1) // 2, (height + 1) // 2  # half-resolution extent the output reads
    raw = inp["raw"]
    shifted = Grid(raw.astype(np.int16), -SHIFT_X, -SHIFT_Y)
    # The output reads deinterleaved on half-res [-2, hw + 2), hence denoised on [-4, 2 hw + 4).
    dxs, dys = span(-4, 2 * hw + 4), span(-4, 2 * hh + 4)
    s = shifted(dxs, dys)
    brightest = np.maximum(np.maximum(shifted(dxs - 2, dys), shifted(dxs + 2, dys)),
                           np.maximum(shifted(dxs, dys - 2), shifted(dxs, dys + 2)))
    denoised = Grid(np.clip(s, 0, brightest).astype(np.int16), -4, -4)
    X, Y = span(-2, hw + 2), span(-2, hh + 2)
    g_gr, r_r, b_b, g_gb = (Grid(denoised(2 * X + i, 2 * Y + j), -2, -2) for j, i in ((0, 0), (0, 1), (1, 0), (1, 1)))

    X1, Y1 = span(-1, hw + 1), span(-1, hh + 1)

    def at(g: Grid, dx: int, dy: int, xs: np.ndarray = X1, ys: np.ndarray = Y1) -> np.ndarray:
        return g(xs + dx, ys + dy)

    g_r = Grid(np.where(_np_absd(at(g_gr, 1, 0), at(g_gr, 0, 0)) < _np_absd(at(g_gb, 0, -1), at(g_gb, 0, 0)),
                        _np_avg(at(g_gr, 1, 0), at(g_gr, 0, 0)), _np_avg(at(g_gb, 0, -1), at(g_gb, 0, 0))), -1, -1)
    g_b = Grid(np.where(_np_absd(at(g_gb, -1, 0), at(g_gb, 0, 0)) < _np_absd(at(g_gr, 0, 1), at(g_gr, 0, 0)),
                        _np_avg(at(g_gb, -1, 0), at(g_gb, 0, 0)), _np_avg(at(g_gr, 0, 1), at(g_gr, 0, 0))), -1, -1)

    X0, Y0 = span(0, hw), span(0, hh)

    def at0(g: Grid, dx: int, dy: int) -> np.ndarray:
        return g(X0 + dx, Y0 + dy)

    r_gr = at0(g_gr, 0, 0) - _np_avg(at0(g_r, 0, 0), at0(g_r, -1, 0)) + _np_avg(at0(r_r, -1, 0), at0(r_r, 0, 0))
    b_gr = at0(g_gr, 0, 0) - _np_avg(at0(g_b, 0, 0), at0(g_b, 0, -1)) + _np_avg(at0(b_b, 0, 0), at0(b_b, 0, -1))
    r_gb = at0(g_gb, 0, 0) - _np_avg(at0(g_r, 0, 0), at0(g_r, 0, 1)) + _np_avg(at0(r_r, 0, 0), at0(r_r, 0, 1))
    b_gb = at0(g_gb, 0, 0) - _np_avg(at0(g_b, 0, 0), at0(g_b, 1, 0)) + _np_avg(at0(b_b, 0, 0), at0(b_b, 1, 0))

    def diagonal(known: Grid, g_here: Grid, g_there: Grid, d1: tuple, d2: tuple) -> np.ndarray:
        (ax, ay), (bx, by) = d1
        (cx, cy), (dx, dy) = d2
        p = at0(g_here, 0, 0) - _np_avg(at0(g_there, ax, ay), at0(g_there, bx, by)) + _np_avg(
            at0(known, ax, ay), at0(known, bx, by))
        n = at0(g_here, 0, 0) - _np_avg(at0(g_there, cx, cy), at0(g_there, dx, dy)) + _np_avg(
            at0(known, cx, cy), at0(known, dx, dy))
        flatter = _np_absd(at0(known, ax, ay), at0(known, bx, by)) < _np_absd(at0(known, cx, cy), at0(known, dx, dy))
        return np.where(flatter, p, n)

    r_b = diagonal(r_r, g_b, g_r, ((0, 0), (-1, 1)), ((-1, 0), (0, 1)))
    b_r = diagonal(b_b, g_r, g_b, ((0, 0), (1, -1)), ((1, 0), (0, -1)))

    def interleave(gr: np.ndarray, r: np.ndarray, b: np.ndarray, gb: np.ndarray) -> np.ndarray:
        full = np.empty((2 * hh, 2 * hw), dtype=np.int16)
        full[0::2, 0::2], full[0::2, 1::2], full[1::2, 0::2], full[1::2, 1::2] = gr, r, b, gb
        return full[:height, :width]

    rgb = np.stack([interleave(r_gr, at0(r_r, 0, 0), r_b, r_gb),
                    interleave(at0(g_gr, 0, 0), at0(g_r, 0, 0), at0(g_b, 0, 0), at0(g_gb, 0, 0)),
                    interleave(b_gr, b_r, at0(b_b, 0, 0), b_gb)]).astype(np.int32)
    m = (inp["matrix"].astype(np.float32) * np.float32(256)).astype(np.int16).astype(np.int32)
    corrected = np.stack([((m[i, 3] + m[i, 0] * rgb[0] + m[i, 1] * rgb[1] + m[i, 2] * rgb[2]) // 256).astype(np.int16)
                          for i in range(3)])
    lut = _curve(inp["gamma"], inp["contrast"], inp["black_level"], inp["white_level"])
    return [lut[np.clip(corrected.astype(np.int32), 0, LUT_SIZE - 1)]]


CAMERA_PIPE = register(PipelineSpec(
    name="camera_pipe",
    description="Halide app camera_pipe: Bayer raw uint16 -> hot pixels, demosaic, colour matrix, curve LUT -> uint8",
    build_fn=build, inputs_fn=inputs, reference_fn=reference,
    default_sizes={"width": 2560, "height": 1920}, test_sizes={"width": 40, "height": 32},
    rtol=0, atol=1, tags=("classic",)))

"""XNOR-Net (Rastegari et al. 2016) binary convolution block, and the binary-weight (BWN) conv.

Layouts (Halide order, innermost first; numpy arrays are the reverse), as in ``conv.py``:
``input`` (CI, W+2, H+2, N) float32 and ``filter`` (CO, 3, 3, CI) float32, ``filter(co, kx, ky, ci)``;
W x H is the size of the valid 3x3 convolution. CI must be a multiple of 32 for ``xnor_conv``.

``xnor_conv`` stages (the paper's block: BinNorm -> BinActiv -> BinConv -> Pool):

1. BinNorm: batch normalisation without affine parameters, statistics per input channel over the
   whole (x, y, n) extent of the input, as training-mode BatchNorm computes them:
   ``norm = (I - mean_c) / sqrt(var_c + 1e-5)``. The sums ``bn_sum``/``bn_sumsq`` are float64, and
   ``norm`` is computed as ``(I * count - sum_c) * scale_c``: with inputs on a 2^-10 grid (what
   ``inputs`` makes) the sums and ``I * count - sum_c`` are exact in float64 in any summation order, so
   the sign bits below are identical in Halide (under any schedule, rfactor included) and numpy.
2. BinActiv: ``sign(norm)`` with sign(0) = +1, packed along channels into uint32 words
   (``act_bits(word, x, y, n)``, bit b = channel 32*word + b, set when norm >= 0) by an OR-reduction
   of shifted bits; ``K(x, y, n)`` = (mean over channels of |norm|) convolved with a 3x3 box (1/9).
3. Weights binarised the same way: ``weight_bits(co, word, kx, ky)`` (output channels innermost, so
   BinConv vectorises over co), and ``alpha(co)`` = mean |filter| over (ci, kx, ky).
4. BinConv: ``2 * sum popcount(~(act ^ weight)) - CI*9`` over words and the 3x3 taps, int32, which is
   the dot product of the +-1 tensors; scaled by ``K(x, y) * alpha(co)``, then ReLU and a 2x2 max-pool:
   output ``pool`` (CO, W/2, H/2, N) float32.

``bwn_conv``: real inputs, weights ``alpha(co) * sign(filter)`` (Binary-Weight-Network), float conv
without bias, then ReLU: output (CO, W, H, N).

FLOPs: both count the equivalent float work, 2*CO*CI*9*W*H*N (a binary MAC counts as two ops).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import halide as hl

from . import register
from .conv import WorkloadSizeError, check_sizes, nchw, nhwc, oihw
from .spec import BuiltPipeline, PipelineSpec, aligned, set_input_estimates, set_output_estimates

WORD = 32
BN_EPS = 1e-5
INPUT_GRID = 2.0 ** -10  # inputs are multiples of this, so the BinNorm sums are exact in float64
INPUT_CLIP = 7.0


def check_xnor_sizes(ci: int, co: int, width: int, height: int, batch: int) -> None:
    check_sizes("xnor_conv", ci=ci, co=co, width=width, height=height, batch=batch)
    if ci % WORD:
        raise WorkloadSizeError(f"xnor_conv: ci must be a multiple of {WORD} (channels are packed "
                                f"into uint32 words), got {ci}")
    if width % 2 or height % 2:
        raise WorkloadSizeError(f"xnor_conv: width and height must be even for the 2x2 max-pool, "
                                f"got {width}x{height}")


def _bits_of(negative_or_positive: Any, bit: Any) -> Any:
    """uint32 with bit ``bit`` set where the Boolean is true (the sign bit of one channel)."""
    return hl.select(negative_or_positive, hl.u32(1), hl.u32(0)) << hl.u32(bit)


def build_xnor(ci: int, co: int, width: int, height: int, batch: int) -> BuiltPipeline:
    check_xnor_sizes(ci, co, width, height, batch)
    words = ci // WORD
    count = (width + 2) * (height + 2) * batch
    inp = hl.ImageParam(hl.Float(32), 4, "input")
    weights = hl.ImageParam(hl.Float(32), 4, "filter")
    c, x, y, n, w = hl.Var("c"), hl.Var("x"), hl.Var("y"), hl.Var("n"), hl.Var("w")
    kx, ky = hl.Var("kx"), hl.Var("ky")

    # BinNorm: per-channel statistics over (x, y, n), exact float64 sums (see module docstring).
    rs = hl.RDom([hl.Range(0, width + 2), hl.Range(0, height + 2), hl.Range(0, batch)], "rs")
    bn_sum, bn_sumsq = hl.Func("bn_sum"), hl.Func("bn_sumsq")
    bn_sum[c] = hl.f64(0)
    bn_sum[c] += hl.f64(inp[c, rs.x, rs.y, rs.z])
    bn_sumsq[c] = hl.f64(0)
    bn_sumsq[c] += hl.f64(inp[c, rs.x, rs.y, rs.z]) * hl.f64(inp[c, rs.x, rs.y, rs.z])
    bn_scale = hl.Func("bn_scale")  # 1 / (count * std): norm = (I * count - sum) * scale
    mean = bn_sum[c] / count
    var = hl.max(bn_sumsq[c] / count - mean * mean, hl.f64(0))
    bn_scale[c] = hl.f64(1) / (hl.sqrt(var + hl.f64(BN_EPS)) * count)
    norm = hl.Func("bin_norm")
    norm[c, x, y, n] = hl.f32((hl.f64(inp[c, x, y, n]) * count - bn_sum[c]) * bn_scale[c])

    # BinActiv: packed sign bits and the scale K.
    rb = hl.RDom([hl.Range(0, WORD)], "rb")
    act_bits = hl.Func("act_bits")
    act_bits[w, x, y, n] = hl.u32(0)
    act_bits[w, x, y, n] = act_bits[w, x, y, n] | _bits_of(norm[WORD * w + rb.x, x, y, n] >= 0, rb.x)
    rc = hl.RDom([hl.Range(0, ci)], "rc")
    abs_sum = hl.Func("abs_sum")
    abs_sum[x, y, n] = hl.f32(0)
    abs_sum[x, y, n] += hl.abs(norm[rc.x, x, y, n])
    abs_mean = hl.Func("abs_mean")
    abs_mean[x, y, n] = abs_sum[x, y, n] / ci
    k = hl.Func("bin_k")
    box = [abs_mean[x + i, y + j, n] for j in range(3) for i in range(3)]
    total = box[0]
    for term in box[1:]:
        total = total + term
    k[x, y, n] = total * hl.f32(1.0 / 9.0)

    # Binarised weights and their per-filter scale.
    weight_bits = hl.Func("weight_bits")
    weight_bits[c, w, kx, ky] = hl.u32(0)
    weight_bits[c, w, kx, ky] = (weight_bits[c, w, kx, ky]
                                 | _bits_of(weights[c, kx, ky, WORD * w + rb.x] >= 0, rb.x))
    rw = hl.RDom([hl.Range(0, ci), hl.Range(0, 3), hl.Range(0, 3)], "rw")
    alpha_sum = hl.Func("alpha_sum")
    alpha_sum[c] = hl.f32(0)
    alpha_sum[c] += hl.abs(weights[c, rw.y, rw.z, rw.x])
    alpha = hl.Func("alpha")
    alpha[c] = alpha_sum[c] / (9 * ci)

    # BinConv: xnor + popcount over words and taps, then the float scaling, ReLU and 2x2 max-pool.
    rk = hl.RDom([hl.Range(0, words), hl.Range(0, 3), hl.Range(0, 3)], "rk")
    popsum = hl.Func("xnor_popcount")
    popsum[c, x, y, n] = hl.i32(0)
    popsum[c, x, y, n] += hl.i32(hl.popcount(
        ~(act_bits[rk.x, x + rk.y, y + rk.z, n] ^ weight_bits[c, rk.x, rk.y, rk.z])))
    bin_conv = hl.Func("bin_conv")
    bin_conv[c, x, y, n] = 2 * popsum[c, x, y, n] - 9 * ci
    scaled = hl.Func("scaled")
    scaled[c, x, y, n] = hl.f32(bin_conv[c, x, y, n]) * k[x, y, n] * alpha[c]
    relu = hl.Func("relu")
    relu[c, x, y, n] = hl.max(scaled[c, x, y, n], hl.f32(0))
    pool = hl.Func("pool")
    pool[c, x, y, n] = hl.max(hl.max(relu[c, 2 * x, 2 * y, n], relu[c, 2 * x + 1, 2 * y, n]),
                              hl.max(relu[c, 2 * x, 2 * y + 1, n], relu[c, 2 * x + 1, 2 * y + 1, n]))

    set_input_estimates(inp, [ci, width + 2, height + 2, batch])
    set_input_estimates(weights, [co, 3, 3, ci])
    shape = [co, width // 2, height // 2, batch]
    set_output_estimates(pool, shape)
    return BuiltPipeline(outputs=[pool], inputs={"input": inp, "filter": weights},
                         output_shapes=[shape])


def inputs(rng: np.random.Generator, ci: int, co: int, width: int, height: int,
           batch: int) -> dict[str, Any]:
    """Normal activations (mean 0.3, so BinNorm has work to do) on a 2^-10 grid, normal filters."""
    x = rng.normal(0.3, 1.0, (batch, height + 2, width + 2, ci))
    x = np.clip(np.round(x / INPUT_GRID) * INPUT_GRID, -INPUT_CLIP, INPUT_CLIP)
    return {
        "input": x.astype(np.float32),
        "filter": (rng.standard_normal((ci, 3, 3, co)) * np.sqrt(2.0 / (9 * ci))).astype(np.float32),
    }


def bin_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(norm float32, sign bits) of numpy input (N, H+2, W+2, CI), computed as the Halide stages are."""
    x64 = x.astype(np.float64)
    count = x64.shape[0] * x64.shape[1] * x64.shape[2]
    s = x64.sum(axis=(0, 1, 2))
    q = (x64 * x64).sum(axis=(0, 1, 2))
    mean = s / count
    var = np.maximum(q / count - mean * mean, 0.0)
    scale = 1.0 / (np.sqrt(var + BN_EPS) * count)
    centred = x64 * count - s
    return (centred * scale).astype(np.float32), centred >= 0


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a Boolean array along its last axis (a multiple of 32) into uint32 words, bit b = index b."""
    shaped = bits.reshape(*bits.shape[:-1], bits.shape[-1] // WORD, WORD).astype(np.uint32)
    return (shaped << np.arange(WORD, dtype=np.uint32)).sum(axis=-1, dtype=np.uint32)


def binary_dot_popcount(act_bits: np.ndarray, weight_bits: np.ndarray) -> np.ndarray:
    """Exact integer XNOR/popcount 3x3 convolution of packed sign bits.

    ``act_bits`` (N, H+2, W+2, CI) and ``weight_bits`` (CI, 3, 3, CO) are Booleans (True = +1); returns
    the int32 dot products of the +-1 tensors, shape (N, H, W, CO).
    """
    n, hp, wp, ci = act_bits.shape
    h, w = hp - 2, wp - 2
    a = pack_bits(act_bits)                                       # (N, H+2, W+2, words)
    wt = pack_bits(np.ascontiguousarray(weight_bits.transpose(1, 2, 3, 0)))  # (3, 3, CO, words)
    agree = np.zeros((n, h, w, wt.shape[2]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            tap = a[:, ky:ky + h, kx:kx + w, None, :]
            agree += np.bitwise_count(~(tap ^ wt[ky, kx])).sum(axis=-1, dtype=np.int64)
    return (2 * agree - 9 * ci).astype(np.int32)


def binary_dot_float(act_bits: np.ndarray, weight_bits: np.ndarray) -> np.ndarray:
    """The same dot products as a float32 PyTorch conv of the +-1 tensors (exact below 2^24)."""
    import torch
    import torch.nn.functional as F

    a = torch.from_numpy(nchw(np.where(act_bits, 1.0, -1.0).astype(np.float32)))
    wt = torch.from_numpy(oihw(np.where(weight_bits, 1.0, -1.0).astype(np.float32)))
    return nhwc(F.conv2d(a, wt))


def binary_dot(act_bits: np.ndarray, weight_bits: np.ndarray) -> np.ndarray:
    """The integer dot products, checked against the float conv of the sign tensors."""
    exact = binary_dot_popcount(act_bits, weight_bits)
    as_float = binary_dot_float(act_bits, weight_bits)
    if not np.array_equal(exact.astype(np.float32), as_float):
        worst = float(np.max(np.abs(exact - as_float)))
        raise AssertionError(f"xnor reference: popcount and float sign-conv disagree (max diff {worst})")
    return exact


def reference_xnor(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
                   batch: int) -> list[np.ndarray]:
    norm, act_bits = bin_norm(np.asarray(inp["input"], dtype=np.float32))
    filt = np.asarray(inp["filter"], dtype=np.float32)
    dot = binary_dot(act_bits, filt >= 0)
    abs_mean = np.abs(norm).sum(axis=-1, dtype=np.float32) / np.float32(ci)   # (N, H+2, W+2)
    box = sum(abs_mean[:, j:j + height, i:i + width] for j in range(3) for i in range(3))
    k = (box * np.float32(1.0 / 9.0)).astype(np.float32)
    alpha = np.abs(filt).sum(axis=(0, 1, 2), dtype=np.float32) / np.float32(9 * ci)
    scaled = dot.astype(np.float32) * k[..., None] * alpha
    relu = np.maximum(scaled, np.float32(0))
    pooled = relu.reshape(batch, height // 2, 2, width // 2, 2, co).max(axis=(2, 4))
    return [pooled.astype(np.float32)]


def torch_xnor(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
               batch: int) -> Callable[[], Any]:
    """The whole block in float32 PyTorch; BinConv is a float conv2d of the +-1 tensors."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(aligned(nchw(inp["input"])))     # as Halide's inputs (``spec.aligned``)
    w = torch.from_numpy(aligned(oihw(inp["filter"])))

    def run() -> Any:
        with torch.no_grad():
            mean = x.mean(dim=(0, 2, 3), keepdim=True)
            var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
            norm = (x - mean) * torch.rsqrt(var + BN_EPS)
            signs = torch.where(norm >= 0, 1.0, -1.0)
            k = F.avg_pool2d(norm.abs().mean(dim=1, keepdim=True), 3, stride=1)
            alpha = w.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
            out = F.conv2d(signs, torch.where(w >= 0, 1.0, -1.0)) * k * alpha
            return F.max_pool2d(torch.relu(out), 2)
    return run


def build_bwn(ci: int, co: int, width: int, height: int, batch: int) -> BuiltPipeline:
    check_sizes("bwn_conv", ci=ci, co=co, width=width, height=height, batch=batch)
    inp = hl.ImageParam(hl.Float(32), 4, "input")
    weights = hl.ImageParam(hl.Float(32), 4, "filter")
    c, x, y, n = hl.Var("c"), hl.Var("x"), hl.Var("y"), hl.Var("n")
    kx, ky, i = hl.Var("kx"), hl.Var("ky"), hl.Var("i")

    rw = hl.RDom([hl.Range(0, ci), hl.Range(0, 3), hl.Range(0, 3)], "rw")
    alpha_sum = hl.Func("alpha_sum")
    alpha_sum[c] = hl.f32(0)
    alpha_sum[c] += hl.abs(weights[c, rw.y, rw.z, rw.x])
    alpha = hl.Func("alpha")
    alpha[c] = alpha_sum[c] / (9 * ci)
    binary_weights = hl.Func("binary_weights")
    binary_weights[c, kx, ky, i] = hl.select(weights[c, kx, ky, i] >= 0, alpha[c], -alpha[c])

    r = hl.RDom([hl.Range(0, ci), hl.Range(0, 3), hl.Range(0, 3)], "r")
    conv = hl.Func("conv")
    conv[c, x, y, n] = hl.f32(0)
    conv[c, x, y, n] += binary_weights[c, r.y, r.z, r.x] * inp[r.x, x + r.y, y + r.z, n]
    relu = hl.Func("relu")
    relu[c, x, y, n] = hl.max(hl.f32(0), conv[c, x, y, n])

    set_input_estimates(inp, [ci, width + 2, height + 2, batch])
    set_input_estimates(weights, [co, 3, 3, ci])
    shape = [co, width, height, batch]
    set_output_estimates(relu, shape)
    return BuiltPipeline(outputs=[relu], inputs={"input": inp, "filter": weights},
                         output_shapes=[shape])


def bwn_inputs(rng: np.random.Generator, ci: int, co: int, width: int, height: int,
               batch: int) -> dict[str, Any]:
    return {
        "input": rng.standard_normal((batch, height + 2, width + 2, ci)).astype(np.float32),
        "filter": (rng.standard_normal((ci, 3, 3, co)) * np.sqrt(2.0 / (9 * ci))).astype(np.float32),
    }


def bwn_weights(filt: np.ndarray) -> np.ndarray:
    """alpha(co) * sign(filter) with sign(0) = +1, numpy (CI, 3, 3, CO) float32."""
    alpha = np.abs(filt).sum(axis=(0, 1, 2), dtype=np.float32) / np.float32(filt[..., 0].size)
    return np.where(filt >= 0, alpha, -alpha).astype(np.float32)


def reference_bwn(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
                  batch: int) -> list[np.ndarray]:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(nchw(inp["input"]).astype(np.float64))
    w = torch.from_numpy(oihw(bwn_weights(np.asarray(inp["filter"], dtype=np.float32))).astype(np.float64))
    return [nhwc(torch.relu(F.conv2d(x, w))).astype(np.float32)]


def torch_bwn(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
              batch: int) -> Callable[[], Any]:
    """Binarise the weights (alpha * sign) and run conv2d + ReLU, float32 NCHW."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(aligned(nchw(inp["input"])))     # as Halide's inputs (``spec.aligned``)
    w = torch.from_numpy(aligned(oihw(inp["filter"])))

    def run() -> Any:
        with torch.no_grad():
            alpha = w.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
            return torch.relu(F.conv2d(x, torch.where(w >= 0, alpha, -alpha)))
    return run


def flops(ci: int, co: int, width: int, height: int, batch: int) -> float:
    """Equivalent float ops of the 3x3 conv: 2*CO*CI*9*W*H*N (binary MACs counted as float MACs)."""
    return 2.0 * co * ci * 9 * width * height * batch


def _xnor_spec(name: str, batch: int, test_batch: int) -> PipelineSpec:
    return PipelineSpec(
        name=name,
        description=f"XNOR-Net block: BinNorm, BinActiv (packed sign bits, K), xnor/popcount 3x3 "
                    f"BinConv 256->256 at 28x28, x K x alpha, ReLU, 2x2 max-pool; batch {batch}",
        build_fn=build_xnor, inputs_fn=inputs, reference_fn=reference_xnor,
        default_sizes={"ci": 256, "co": 256, "width": 28, "height": 28, "batch": batch},
        test_sizes={"ci": 64, "co": 8, "width": 6, "height": 4, "batch": test_batch},
        rtol=1e-4, atol=1e-4, tags=("dl", "mission", "xnor"),
        flops_fn=flops, default_schedule_ok=False, torch_fn=torch_xnor)


XNOR_CONV = register(_xnor_spec("xnor_conv", batch=1, test_batch=1))
XNOR_CONV_B8 = register(_xnor_spec("xnor_conv_b8", batch=8, test_batch=2))
BWN_CONV = register(PipelineSpec(
    name="bwn_conv",
    description="Binary-weight conv (alpha(co) * sign(W)) with real inputs, 256->256 at 28x28, + ReLU",
    build_fn=build_bwn, inputs_fn=bwn_inputs, reference_fn=reference_bwn,
    default_sizes={"ci": 256, "co": 256, "width": 28, "height": 28, "batch": 1},
    test_sizes={"ci": 16, "co": 8, "width": 6, "height": 5, "batch": 1},
    rtol=1e-4, atol=1e-4, tags=("dl", "xnor"),
    flops_fn=flops, default_schedule_ok=False, torch_fn=torch_bwn))

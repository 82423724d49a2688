"""ResNet-like 3x3 convolution layer (conv + bias + ReLU), after Halide's ``apps/conv_layer``.

Layouts (Halide order, innermost first; numpy arrays are the reverse, see ``spec.py``):

- ``input``  (CI, W+2, H+2, N) float32: already padded activations, channels innermost.
- ``filter`` (CO, 3, 3, CI)    float32: ``filter(co, kx, ky, ci)``, as in Halide's app. Output channels
  are innermost, so the natural schedule vectorises the pure dimension ``c`` of ``conv`` and reads the
  filter contiguously while each input value of the ``ci`` reduction is broadcast; ``ci`` is the
  innermost reduction variable and walks the input contiguously. numpy shape (CI, 3, 3, CO).
- ``bias``   (CO,)             float32.
- output ``relu`` (CO, W, H, N) float32, a valid convolution (no padding, stride 1).

Stages: ``conv`` is initialised to the bias and updated over ``RDom(ci, kx, ky)``; ``relu`` is a
separate pointwise Func. The reference is ``torch.nn.functional.conv2d`` in float64.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import halide as hl

from autoscheduler.errors import ToolkitError

from . import register
from .spec import BuiltPipeline, PipelineSpec, aligned, set_input_estimates, set_output_estimates


class WorkloadSizeError(ToolkitError, ValueError):
    """Sizes a workload cannot be built with (non-positive, or not a multiple it needs)."""


def check_sizes(workload: str, **sizes: int) -> None:
    """Every size must be a positive int; raises WorkloadSizeError naming the bad one."""
    for name, value in sizes.items():
        if int(value) != value or value <= 0:
            raise WorkloadSizeError(f"{workload}: size '{name}' must be a positive integer, got {value}")


def build(ci: int, co: int, width: int, height: int, batch: int) -> BuiltPipeline:
    check_sizes("conv_layer", ci=ci, co=co, width=width, height=height, batch=batch)
    inp = hl.ImageParam(hl.Float(32), 4, "input")
    weights = hl.ImageParam(hl.Float(32), 4, "filter")
    bias = hl.ImageParam(hl.Float(32), 1, "bias")
    c, x, y, n = hl.Var("c"), hl.Var("x"), hl.Var("y"), hl.Var("n")
    r = hl.RDom([hl.Range(0, ci), hl.Range(0, 3), hl.Range(0, 3)], "r")

    conv = hl.Func("conv")
    conv[c, x, y, n] = bias[c]
    conv[c, x, y, n] += weights[c, r.y, r.z, r.x] * inp[r.x, x + r.y, y + r.z, n]
    relu = hl.Func("relu")
    relu[c, x, y, n] = hl.max(hl.f32(0), conv[c, x, y, n])

    set_input_estimates(inp, [ci, width + 2, height + 2, batch])
    set_input_estimates(weights, [co, 3, 3, ci])
    set_input_estimates(bias, [co])
    shape = [co, width, height, batch]
    set_output_estimates(relu, shape)
    return BuiltPipeline(outputs=[relu], inputs={"input": inp, "filter": weights, "bias": bias},
                         output_shapes=[shape])


def inputs(rng: np.random.Generator, ci: int, co: int, width: int, height: int,
           batch: int) -> dict[str, Any]:
    """Standard-normal activations, He-scaled filters, small biases: about half the outputs are > 0."""
    return {
        "input": rng.standard_normal((batch, height + 2, width + 2, ci)).astype(np.float32),
        "filter": (rng.standard_normal((ci, 3, 3, co)) * np.sqrt(2.0 / (9 * ci))).astype(np.float32),
        "bias": (0.1 * rng.standard_normal(co)).astype(np.float32),
    }


def nchw(activations: np.ndarray) -> np.ndarray:
    """numpy (N, H, W, C) (Halide (c, x, y, n)) -> PyTorch's NCHW."""
    return np.ascontiguousarray(activations.transpose(0, 3, 1, 2))


def oihw(weights: np.ndarray) -> np.ndarray:
    """numpy (CI, KH, KW, CO) (Halide filter(co, kx, ky, ci)) -> PyTorch's (CO, CI, KH, KW)."""
    return np.ascontiguousarray(weights.transpose(3, 0, 1, 2))


def nhwc(output: Any) -> np.ndarray:
    """PyTorch NCHW tensor -> numpy (N, H, W, C), the array of a Halide Func over (c, x, y, n)."""
    return np.ascontiguousarray(output.detach().cpu().numpy().transpose(0, 2, 3, 1))


def reference(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
              batch: int) -> list[np.ndarray]:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(nchw(inp["input"]).astype(np.float64))
    w = torch.from_numpy(oihw(inp["filter"]).astype(np.float64))
    b = torch.from_numpy(np.asarray(inp["bias"], dtype=np.float64))
    out = torch.relu(F.conv2d(x, w, b))
    return [nhwc(out).astype(np.float32)]


def torch_runner(inp: dict[str, Any], ci: int, co: int, width: int, height: int,
                 batch: int) -> Callable[[], Any]:
    """conv2d + bias + ReLU on float32 NCHW tensors prepared here (PyTorch's default layout)."""
    import torch
    import torch.nn.functional as F

    # aligned like Halide's inputs on every timing path (``spec.aligned``): a fair comparison
    x = torch.from_numpy(aligned(nchw(inp["input"])))
    w = torch.from_numpy(aligned(oihw(inp["filter"])))
    b = torch.from_numpy(aligned(inp["bias"]))

    def run() -> Any:
        with torch.no_grad():
            return torch.relu(F.conv2d(x, w, b))
    return run


def flops(ci: int, co: int, width: int, height: int, batch: int) -> float:
    """One multiply and one add per MAC of the 3x3 convolution (bias and ReLU not counted)."""
    return 2.0 * co * ci * 9 * width * height * batch


def _spec(name: str, batch: int, test_batch: int) -> PipelineSpec:
    return PipelineSpec(
        name=name,
        description=f"ResNet 3x3 conv + bias + ReLU, 64->64 channels, 56x56, batch {batch} "
                    "(Halide apps/conv_layer layout: (c, x, y, n), filter (co, kx, ky, ci))",
        build_fn=build, inputs_fn=inputs, reference_fn=reference,
        default_sizes={"ci": 64, "co": 64, "width": 56, "height": 56, "batch": batch},
        test_sizes={"ci": 8, "co": 8, "width": 6, "height": 5, "batch": test_batch},
        rtol=1e-4, atol=1e-4, tags=("dl", "mission", "conv"),
        flops_fn=flops, torch_fn=torch_runner)


CONV_LAYER = register(_spec("conv_layer", batch=1, test_batch=1))
CONV_LAYER_B8 = register(_spec("conv_layer_b8", batch=8, test_batch=2))

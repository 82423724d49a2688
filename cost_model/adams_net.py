"""A faithful PyTorch port of Halide's Adams2019 cost model (``cost_model_generator.cpp``).

Per stage of a pipeline, the network embeds the algorithm (40x7 pipeline features, through a
1x1 "conv" whose weights are squashed by a sigmoid, to 8 channels, no activation) and the schedule
(39 schedule features through Halide's ``fast_log(x + 1)`` and a linear layer to 24 channels,
ReLU), concatenates the two, and maps them with one more linear layer + ReLU to 32 non-negative
coefficients. Those coefficients weight hand-built cost terms computed from the raw schedule
features (compute, loads, stores, false sharing, page faults, malloc, parallel launches, working
set); the per-stage cost is their sum times 1e-9, and the prediction is the sum over stages.

Everything is computed in float32, as Halide's generated ``cost_model`` pipeline does, so that the
port reproduces the plugin's ``Best cost`` to about 1e-6 relative.

Stage order matters in exactly one place: the stage with index 0 is treated as the pipeline's final
output in the store-cost term (coefficients 17 and 20 instead of 18 and 21). Feed stages in the
featurization's order (see :mod:`cost_model.features_layout`). A stage whose schedule features are
all zero contributes exactly 0, so pipelines with fewer stages can be zero-padded at the end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .features_layout import NUM_SCHEDULE_FEATURES, PIPELINE_COLS, PIPELINE_ROWS
from .features_layout import SCHEDULE_FEATURE_INDEX as _F

HEAD1_CHANNELS = 8
HEAD2_CHANNELS = 24
CONV1_CHANNELS = 32
"""``NetworkSize.h``: 8 pipeline-embedding channels, 24 schedule-embedding channels, 32 coefficients."""

RUNTIME_SCALE = 1e-9
"""The generator multiplies each stage's cost by 1e-9 "so that network weights are in a
human-readable range"; predictions are in the same (seconds-like) units as Halide's costs."""

# Halide's fast_log (src/IROperator.cpp): range reduction to [0.75, 1.5) and an odd/even split
# polynomial in (reduced - 1) whose highest-order coefficient comes first.
_FAST_LOG_COEFFS = (
    0.07640318789187280912, -0.16252961013874300811, 0.20625219040645212387,
    -0.25110261010892864775, 0.33320464908377461777, -0.49997513376789826101, 1.0, 0.0)
_LOG2_F32 = float(torch.tensor(math.log(2.0), dtype=torch.float32))  # logf(2) as a float constant
_NON_EXPONENT_MASK = 0x807FFFFF - (1 << 32)  # the int32 bit pattern 0x807fffff


def _as_f32(c: float) -> float:
    return float(torch.tensor(c, dtype=torch.float32))


_FAST_LOG_COEFFS_F32 = tuple(_as_f32(c) for c in _FAST_LOG_COEFFS)


def _evaluate_polynomial(x: torch.Tensor, coeffs: tuple[float, ...]) -> torch.Tensor:
    """Halide's ``evaluate_polynomial``: even and odd terms accumulated separately in x^2."""
    x2 = x * x
    even = torch.full_like(x, coeffs[0])
    odd = torch.full_like(x, coeffs[1])
    for i in range(2, len(coeffs)):
        if i % 2 == 0:
            even = even * x2 if coeffs[i] == 0.0 else even * x2 + coeffs[i]
        else:
            odd = odd * x2 if coeffs[i] == 0.0 else odd * x2 + coeffs[i]
    if len(coeffs) % 2 == 0:
        return even * x + odd
    return odd * x + even


def fast_log(x: torch.Tensor) -> torch.Tensor:
    """Halide's ``fast_log`` for float32, bit for bit in its formula (NOT ``torch.log``).

    Factor x = 2^e * m with m in [0.75, 1.5) by editing the float's bits, evaluate a degree-7
    polynomial in (m - 1) and add e * logf(2). Like Halide's, it returns nonsense for x <= 0.
    Computed in float32 whatever the input dtype; the result has the input's dtype.
    """
    xf = x.to(torch.float32).contiguous()
    bits = xf.view(torch.int32)
    no_exponent = bits & _NON_EXPONENT_MASK
    new_exponent = no_exponent >> 22  # 1 when the mantissa is >= 1.5: halve it
    new_biased_exponent = 127 - new_exponent
    old_biased_exponent = bits >> 23
    exponent = old_biased_exponent - new_biased_exponent
    blended = no_exponent | (new_biased_exponent << 23)
    reduced = blended.view(torch.float32)
    x1 = reduced - 1.0
    result = _evaluate_polynomial(x1, _FAST_LOG_COEFFS_F32)
    result = result + exponent.to(torch.float32) * _LOG2_F32
    return result.to(x.dtype) if x.is_floating_point() else result


class AdamsOutput(NamedTuple):
    """Everything :meth:`AdamsNet.forward_detailed` computes, for training and inspection.

    ``prediction`` [B]: predicted runtime per schedule; ``stage_costs`` [B, S]: its per-stage
    parts (already scaled by 1e-9); ``coefficients`` [B, S, 32]: the ReLU'd coefficients;
    ``preactivation`` [B, S, 32]: the same before the ReLU (the training loss regularises its
    negative part).
    """

    prediction: torch.Tensor
    stage_costs: torch.Tensor
    coefficients: torch.Tensor
    preactivation: torch.Tensor


class AdamsNet(nn.Module):
    """The Adams2019 cost network (4,264 parameters), parameters indexed like Halide's buffers.

    Parameter shapes (same coordinates as the Halide buffers, so ``head1_filter[c, row, type]`` is
    Halide's ``head1_filter(c, row, type)``):

    * ``head1_filter`` [8, 40, 7], ``head1_bias`` [8]
    * ``head2_filter`` [24, 39], ``head2_bias`` [24]
    * ``conv1_filter`` [32, 32] (input channels 0-7 read the pipeline embedding, 8-31 the schedule
      embedding), ``conv1_bias`` [32]

    A fresh network is initialised uniformly in [-0.5, 0.5), like Halide's ``Weights::randomize``;
    load Halide's weights with :func:`cost_model.weights_io.load_halide_weights`.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.rand(*shape, generator=generator, dtype=torch.float32) - 0.5)

        self.head1_filter = uniform(HEAD1_CHANNELS, PIPELINE_ROWS, PIPELINE_COLS)
        self.head1_bias = uniform(HEAD1_CHANNELS)
        self.head2_filter = uniform(HEAD2_CHANNELS, NUM_SCHEDULE_FEATURES)
        self.head2_bias = uniform(HEAD2_CHANNELS)
        self.conv1_filter = uniform(CONV1_CHANNELS, HEAD1_CHANNELS + HEAD2_CHANNELS)
        self.conv1_bias = uniform(CONV1_CHANNELS)

    def forward(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                num_cores: int | float | torch.Tensor) -> torch.Tensor:
        """Predicted runtime of each schedule, in Halide's units.

        ``pipeline_features``: [S, 40, 7] shared by the batch (or [B, S, 40, 7]);
        ``schedule_features``: [B, S, 39] (or [S, 39] for one schedule);
        ``num_cores``: the ``parallelism`` the plugin was run with (its idle-core term).
        Returns a float32 tensor [B] (a 0-d tensor for a single [S, 39] schedule).
        """
        return self.forward_detailed(pipeline_features, schedule_features, num_cores).prediction

    def embed_pipeline(self, pipeline_features: torch.Tensor) -> torch.Tensor:
        """Head 1: [..., S, 40, 7] -> [..., S, 8] (sigmoid-squashed filter, bias, no activation)."""
        squashed = torch.sigmoid(self.head1_filter)  # Halide: 1 / (1 + exp(-w))
        return torch.einsum("...sxy,cxy->...sc", pipeline_features.to(torch.float32), squashed) \
            + self.head1_bias

    def embed_schedule(self, schedule_features: torch.Tensor) -> torch.Tensor:
        """Head 2: [..., S, 39] -> [..., S, 24] (fast_log(x + 1), linear, ReLU)."""
        normalized = fast_log(schedule_features.to(torch.float32) + 1.0)
        return torch.relu(normalized @ self.head2_filter.t() + self.head2_bias)

    def forward_detailed(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                         num_cores: int | float | torch.Tensor,
                         is_output: torch.Tensor | None = None) -> AdamsOutput:
        """The prediction with its per-stage costs and the coefficients (see :class:`AdamsOutput`).

        ``is_output``: bool [S] or [B, S], which stages are the final output (their stores have
        their own coefficients); default: stage 0, as Halide's featurization orders them. Passing
        it lets a caller price rows of many pipelines' stages, or distinct rows of one batch, as a
        batch of one-stage schedules (``autoscheduler.cost.CostModel._stage_costs``)."""
        single = schedule_features.dim() == 2
        sched = schedule_features.to(torch.float32)
        if single:
            sched = sched.unsqueeze(0)
        if sched.dim() != 3 or sched.shape[-1] != NUM_SCHEDULE_FEATURES:
            raise ValueError(f"schedule_features must be [batch, stages, {NUM_SCHEDULE_FEATURES}], "
                             f"got {tuple(schedule_features.shape)}")
        if pipeline_features.shape[-2:] != (PIPELINE_ROWS, PIPELINE_COLS) or \
                pipeline_features.shape[-3] != sched.shape[1]:
            raise ValueError(f"pipeline_features must be [stages, {PIPELINE_ROWS}, {PIPELINE_COLS}] "
                             f"with the {sched.shape[1]} stages of schedule_features, "
                             f"got {tuple(pipeline_features.shape)}")

        head1 = self.embed_pipeline(pipeline_features)  # [S, 8] or [B, S, 8]
        head2 = self.embed_schedule(sched)  # [B, S, 24]
        w1 = self.conv1_filter[:, :HEAD1_CHANNELS]
        w2 = self.conv1_filter[:, HEAD1_CHANNELS:]
        # Halide splits this layer: conv1_stage1 (bias + pipeline part, per stage) then stage2.
        stage1 = self.conv1_bias + head1 @ w1.t()
        preact = stage1 + head2 @ w2.t()
        coef = torch.relu(preact)
        if is_output is not None and is_output.dim() == 2 and single:
            is_output = is_output[0]
        stage_costs = _stage_costs(sched, coef, num_cores, is_output)
        prediction = stage_costs.sum(dim=-1)
        if single:
            return AdamsOutput(prediction[0], stage_costs[0], coef[0], preact[0])
        return AdamsOutput(prediction, stage_costs, coef, preact)


def _stage_costs(sched: torch.Tensor, c: torch.Tensor, num_cores: int | float | torch.Tensor,
                 is_output: torch.Tensor | None = None) -> torch.Tensor:
    """The hand-built cost terms of ``cost_model_generator.cpp``, in float32, in its order.

    ``sched`` [B, S, 39] raw schedule features; ``c`` [B, S, 32] ReLU'd coefficients;
    ``is_output`` bool [S] or [B, S] (default: stage 0 only). Returns [B, S]: each stage's cost
    times 1e-9.
    """
    def f(name: str) -> torch.Tensor:
        return sched[..., _F[name]]

    def k(i: int) -> torch.Tensor:
        return c[..., i]

    one = torch.ones((), dtype=torch.float32, device=sched.device)
    zero = torch.zeros((), dtype=torch.float32, device=sched.device)
    num_realizations = f("num_realizations")
    num_productions = f("num_productions")
    inlined_calls = f("inlined_calls")
    inner_parallelism = f("inner_parallelism")
    outer_parallelism = f("outer_parallelism")
    bytes_at_realization = f("bytes_at_realization")
    bytes_at_production = f("bytes_at_production")
    vector_size = f("vector_size")
    num_vectors = f("num_vectors")
    num_scalars = f("num_scalars")
    bytes_at_task = f("bytes_at_task")
    innermost_bytes_at_task = f("innermost_bytes_at_task")
    working_set = f("working_set")

    # Compute: vectors and scalars priced separately, and differently when the stage is inlined.
    compute_cost = torch.where(inlined_calls == 0,
                               vector_size * num_vectors * k(0) + num_scalars * k(1),
                               vector_size * num_vectors * k(2) + num_scalars * k(3))
    # Round up by how neatly the tasks fill the cores.
    num_tasks = torch.maximum(one, inner_parallelism * outer_parallelism)
    cores = torch.as_tensor(num_cores, dtype=torch.float32, device=sched.device)
    if cores.dim() == 1:
        cores = cores.unsqueeze(-1)  # one core count per schedule in the batch
    tasks_per_core = num_tasks / cores
    idle_core_wastage = torch.ceil(tasks_per_core) / torch.maximum(one, tasks_per_core)
    compute_cost = compute_cost * idle_core_wastage

    load_cost = (num_realizations * f("unique_lines_read_per_realization") * k(5)
                 + num_realizations * f("unique_bytes_read_per_realization") * k(6)
                 + num_vectors * f("scalar_loads_per_vector") * k(7)
                 + num_scalars * f("scalar_loads_per_scalar") * k(8)
                 + num_vectors * f("vector_loads_per_vector") * k(9)
                 + num_scalars * f("unique_bytes_read_per_vector") * k(10)
                 + num_vectors * f("unique_bytes_read_per_vector") * k(11)
                 + num_scalars * f("unique_lines_read_per_vector") * k(12)
                 + num_vectors * f("unique_lines_read_per_vector") * k(13)
                 + num_tasks * f("unique_bytes_read_per_task") * k(14)
                 + num_tasks * f("unique_lines_read_per_task") * k(15))

    # Stores: separate coefficients for stages with inner parallelism, for stage 0 (the final
    # output, never loaded again) and for the rest.
    lines_written_per_realization = inner_parallelism * (
        bytes_at_task / torch.maximum(one, innermost_bytes_at_task))
    parallel = inner_parallelism > 1
    if is_output is None:
        is_output = torch.zeros(sched.shape[-2], dtype=torch.bool, device=sched.device)
        is_output[0] = True
    else:
        is_output = is_output.to(device=sched.device, dtype=torch.bool)
    alpha = torch.where(parallel, k(16), torch.where(is_output, k(17), k(18)))
    beta = torch.where(parallel, k(19), torch.where(is_output, k(20), k(21)))
    store_cost = num_realizations * (lines_written_per_realization * alpha
                                     + bytes_at_realization * beta)
    cost_of_false_sharing = torch.where(
        parallel, k(22) * (num_vectors + num_scalars) / torch.maximum(one, innermost_bytes_at_task),
        zero)
    store_cost = store_cost + cost_of_false_sharing
    max_threads_hitting_same_page_fault = torch.minimum(
        inner_parallelism, 4096 / torch.maximum(one, innermost_bytes_at_task))
    num_page_faults = bytes_at_production
    cost_of_page_faults = (num_page_faults * max_threads_hitting_same_page_fault
                           * inner_parallelism * outer_parallelism * k(23))
    store_cost = store_cost + cost_of_page_faults

    cost_of_malloc = k(24) * num_realizations
    cost_of_parallel_launches = num_productions * torch.where(parallel, k(25), zero)
    cost_of_parallel_tasks = num_productions * (inner_parallelism - 1) * k(26)
    cost_of_parallelism = cost_of_parallel_tasks + cost_of_parallel_launches
    cost_of_working_set = working_set * k(27)

    # Halide: "store_cost was accidentally in the list twice for our best weights", kept doubled.
    store_cost = store_cost * 2

    cost = (compute_cost + store_cost + load_cost + cost_of_malloc + cost_of_parallelism
            + cost_of_working_set)
    # The generator adds 0 * every coefficient so that all 32 are used (NaN/inf propagate).
    for i in range(CONV1_CHANNELS):
        cost = cost + 0.0 * k(i)
    return cost * RUNTIME_SCALE


__all__ = ["AdamsNet", "AdamsOutput", "fast_log", "HEAD1_CHANNELS", "HEAD2_CHANNELS",
           "CONV1_CHANNELS", "RUNTIME_SCALE"]

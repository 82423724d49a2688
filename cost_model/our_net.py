"""Our own cost network: the same inputs as AdamsNet, a log-runtime head and cross-stage context.

Inputs are AdamsNet's (``pipeline_features`` [S, 40, 7], ``schedule_features`` [B, S, 39], the core
count), so it drops into the search wherever AdamsNet does, and its output is a predicted runtime
(milliseconds, the unit of our training labels; lower is better).

What it changes, and why:

* **Log space throughout.** Schedule features span twelve orders of magnitude and the runtime is
  mostly products of them (vectors x cost per vector, tasks x bytes per task, ...). On
  ``log1p``-scaled features a product is a sum, which a small MLP represents exactly; AdamsNet's
  hand-built terms are replaced by learned ones.
* **Each stage predicts its log-cost; the pipeline's runtime is the sum of the stages' costs**
  (``logsumexp`` over stages), so the prediction stays additive over stages like Adams2019's, and a
  stage not scheduled yet (all-zero schedule features, as the featurizer leaves it in partial states)
  contributes exactly nothing. The search compares partial states of one slot group, which all have
  the same scheduled stages, so their costs stay comparable.
* **Cross-stage context.** Each stage also sees a masked mean and max over all scheduled stages'
  hidden vectors (the rest of the pipeline: is there a huge producer, is everything inlined?),
  which AdamsNet, whose stages only meet in the final sum, cannot see.
* **Core count and output flag as inputs**, instead of the fixed idle-core and output-store terms.

About 70 k parameters: a batch of 1,000 schedules of a 20-stage pipeline costs a few milliseconds
on one CPU core, cheap next to featurization.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from autoscheduler.dag.features import MATH_CLASSES

from .adams_net import AdamsNet
from .features_layout import NUM_EXTRA_INPUTS, NUM_SCHEDULE_FEATURES, PIPELINE_COLS, PIPELINE_ROWS
from .features_layout import SCHEDULE_FEATURE_INDEX as _F

PIPELINE_INPUTS = PIPELINE_ROWS * PIPELINE_COLS


@dataclass(frozen=True)
class OurNetConfig:
    """Sizes of :class:`OurNet` (stored in the weights' metadata so a file rebuilds its network).

    ``members``: independently initialised sub-networks whose per-stage log-costs are averaged (a
    small ensemble: on a few hundred training pipelines it ranks held-out ones more reliably than
    one network); ``context``: the cross-stage pooled context; ``normalize``: standardise the
    log features with statistics of the training set (:meth:`OurNet.fit_normalization`);
    ``adams_terms``: also feed each stage's Adams2019 hand-built cost terms (compute, loads, stores,
    false sharing, page faults, malloc, parallel launches and tasks, working set: the 28 quantities
    AdamsNet weights with its coefficients), log-scaled, as inputs; ``prior``: a frozen AdamsNet
    (Halide's baseline weights, :meth:`OurNet.load_prior`) predicts each stage's cost, which is both
    an input and the starting point: the network learns a per-stage log-space correction of it
    (zero at the start, so an untrained network ranks exactly as the prior does);
    ``max_correction``: with a prior, bound that correction to +-this (natural log) per stage with
    a tanh, so that a schedule unlike the training data cannot be predicted arbitrarily faster or
    slower than the prior says (0: unbounded); ``math_inputs``: also take each stage's costly math
    calls per point by class (``autoscheduler.dag.features.math_calls``: element-by-element libm
    functions such as tanh and sin, and polynomial ones such as exp), and those times the points the
    stage computes (inlined calls included), which Halide's features count as one ``ExternCall``
    whether it is a sqrt or a tanh; ``extra_inputs``: also take each stage's extra schedule inputs
    (``autoscheduler.features.extra_inputs``: scatter stores and gathered accumulator loads of a
    stage vectorised across its storage order, and the accumulator-latency factor);
    ``kernel_factors``: trained, early-stopped and evaluated on its stage costs times each stage's
    accumulator-latency factor (``kernel_terms``, from the extra inputs' third column), which is
    what the search ranks by (``autoscheduler.cost.CostModel.predict`` multiplies them in);
    ``hoisted_math`` (with ``math_inputs``): the math calls are those each point actually runs under
    the schedule, after Halide hoists loop-invariant calls out of loops
    (``autoscheduler.features.math_inputs``, ``PipelineData.stage_math_run``), not the per-point
    count of the algorithm; callers pass that [B, S, 2] as ``stage_math`` (``math_input_of``).
    """

    @property
    def schedule_inputs(self) -> int:
        return (SCHEDULE_INPUTS + (NUM_ADAMS_TERMS if self.adams_terms else 0) + (1 if self.prior else 0)
                + (2 * MATH_INPUTS if self.math_inputs else 0) + (EXTRA_INPUTS if self.extra_inputs else 0))

    pipeline_dim: int = 32
    hidden: int = 96
    dropout: float = 0.0
    context: bool = True
    members: int = 1
    normalize: bool = False
    adams_terms: bool = False
    prior: bool = False
    max_correction: float = 0.0
    math_inputs: bool = False
    extra_inputs: bool = False
    kernel_factors: bool = False
    hoisted_math: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OurNetConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class OurNetOutput(NamedTuple):
    """``prediction`` [B] runtime (ms); ``log_prediction`` [B]; ``stage_costs`` [B, S] (ms, zero for
    unscheduled stages); ``mask`` [B, S] True where a stage is scheduled."""

    prediction: torch.Tensor
    log_prediction: torch.Tensor
    stage_costs: torch.Tensor
    mask: torch.Tensor


def signed_log1p(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|): log scaling that tolerates the odd negative feature."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


SCHEDULE_INPUTS = NUM_SCHEDULE_FEATURES + 2
"""Schedule features + log(cores) + "is the final output stage"."""

MATH_INPUTS = MATH_CLASSES
"""Classes of costly math calls a stage's ``stage_math`` row counts (``dag.features.math_calls``)."""

EXTRA_INPUTS = NUM_EXTRA_INPUTS
"""Extra schedule inputs per stage (``features_layout.EXTRA_INPUT_NAMES``)."""

NUM_ADAMS_TERMS = 28
"""AdamsNet's cost terms that have a coefficient (its coefficients 28-31 are unused)."""


def adams_terms(sched: torch.Tensor, num_cores: int | float | torch.Tensor) -> torch.Tensor:
    """[B, S, 28]: AdamsNet's hand-built cost terms of each stage before its learned coefficients
    weight them (``cost = 1e-9 * sum_i c_i * term_i``: :func:`cost_model.adams_net._stage_costs`
    term by term, store terms doubled as there), from the raw schedule features [B, S, 39].
    Stage 0 is the final output (its store terms use their own slots, as in AdamsNet)."""
    sched = sched.to(torch.float32)

    def f(name: str) -> torch.Tensor:
        return sched[..., _F[name]]

    one = torch.ones((), dtype=torch.float32, device=sched.device)
    nr, npr = f("num_realizations"), f("num_productions")
    ip, op = f("inner_parallelism"), f("outer_parallelism")
    nv, ns, vs = f("num_vectors"), f("num_scalars"), f("vector_size")
    ibat = torch.maximum(one, f("innermost_bytes_at_task"))
    num_tasks = torch.maximum(one, ip * op)
    cores = torch.as_tensor(num_cores, dtype=torch.float32, device=sched.device)
    if cores.dim() == 1:
        cores = cores.unsqueeze(-1)
    tasks_per_core = num_tasks / cores
    idle = torch.ceil(tasks_per_core) / torch.maximum(one, tasks_per_core)
    inlined = (f("inlined_calls") != 0).to(torch.float32)
    parallel = (ip > 1).to(torch.float32)
    is_output = torch.zeros(sched.shape[-2], dtype=torch.float32, device=sched.device)
    is_output[0] = 1.0
    serial_out = (1 - parallel) * is_output
    serial_other = (1 - parallel) * (1 - is_output)
    lines_written = nr * ip * (f("bytes_at_task") / ibat)
    bytes_written = nr * f("bytes_at_realization")
    zero = torch.zeros_like(nr)
    terms = [
        (1 - inlined) * vs * nv * idle, (1 - inlined) * ns * idle,
        inlined * vs * nv * idle, inlined * ns * idle,
        zero,
        nr * f("unique_lines_read_per_realization"), nr * f("unique_bytes_read_per_realization"),
        nv * f("scalar_loads_per_vector"), ns * f("scalar_loads_per_scalar"),
        nv * f("vector_loads_per_vector"),
        ns * f("unique_bytes_read_per_vector"), nv * f("unique_bytes_read_per_vector"),
        ns * f("unique_lines_read_per_vector"), nv * f("unique_lines_read_per_vector"),
        num_tasks * f("unique_bytes_read_per_task"), num_tasks * f("unique_lines_read_per_task"),
        2 * parallel * lines_written, 2 * serial_out * lines_written, 2 * serial_other * lines_written,
        2 * parallel * bytes_written, 2 * serial_out * bytes_written, 2 * serial_other * bytes_written,
        2 * parallel * (nv + ns) / ibat,
        2 * f("bytes_at_production") * torch.minimum(ip, 4096 / ibat) * ip * op,
        nr, npr * parallel, npr * (ip - 1), f("working_set"),
    ]
    out = torch.stack(terms, dim=-1)
    return torch.nan_to_num(out, nan=0.0, posinf=1e30, neginf=-1e30)


class _Member(nn.Module):
    """One sub-network: per-stage MLP over log features, with pooled cross-stage context."""

    def __init__(self, config: OurNetConfig) -> None:
        super().__init__()
        p, h = config.pipeline_dim, config.hidden
        self.use_context = config.context
        self.pipe = nn.Sequential(nn.Linear(PIPELINE_INPUTS, p), nn.ReLU())
        self.sched = nn.Sequential(nn.Linear(config.schedule_inputs, h), nn.ReLU())
        self.stage = nn.Sequential(nn.Linear(p + h, h), nn.ReLU(), nn.Dropout(config.dropout),
                                   nn.Linear(h, h), nn.ReLU())
        if self.use_context:
            self.context = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU())
            self.mix = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU())
        self.head = nn.Linear(h, 1)

    def forward(self, pipe_in: torch.Tensor, sched_in: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[S, 280] or [B, S, 280] pipeline inputs, [B, S, 41 (+28)] schedule inputs -> [B, S] log-costs."""
        b, s, _ = sched_in.shape
        pipe = self.pipe(pipe_in)
        if pipe.dim() == 2:
            pipe = pipe.unsqueeze(0).expand(b, s, pipe.shape[-1])
        hidden = self.stage(torch.cat([pipe, self.sched(sched_in)], dim=-1))  # [B, S, H]
        if self.use_context:
            ctx = self._context(hidden, mask).unsqueeze(1).expand(b, s, -1)
            hidden = self.mix(torch.cat([hidden, ctx], dim=-1))
        return self.head(hidden).squeeze(-1)

    def forward_rows(self, pipe_in: torch.Tensor, rows: "DistinctRows", mask: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the per-stage layers run once per distinct (stage, schedule input)
        row: [S, 280] pipeline inputs and the distinct rows of the [B, S, F] schedule inputs ->
        [B, S] log-costs. The same function; only what mixes the stages sees every row."""
        b, s = mask.shape
        pipe = self.pipe(pipe_in)[rows.stage]                                       # [U, P]
        hidden = self.stage(torch.cat([pipe, self.sched(rows.inputs)], dim=-1))     # [U, H]
        if not self.use_context:
            return self.head(hidden).squeeze(-1)[rows.inverse].reshape(b, s)
        ctx = self._context(hidden[rows.inverse].reshape(b, s, -1), mask)           # [B, H]
        mix = self.mix[0]
        assert isinstance(mix, nn.Linear)
        h = hidden.shape[-1]
        # mix(cat[hidden, ctx]) = relu(W_h hidden + W_c ctx + b): the hidden half once per distinct row
        own = (hidden @ mix.weight[:, :h].T)[rows.inverse].reshape(b, s, -1)
        out = torch.relu(own + (ctx @ mix.weight[:, h:].T + mix.bias).unsqueeze(1))
        return self.head(out).squeeze(-1)

    def _context(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, H]: the context layer over the masked mean and max of the scheduled stages' hidden vectors."""
        m = mask.unsqueeze(-1).to(hidden.dtype)
        count = torch.clamp(m.sum(dim=1), min=1.0)
        mean = (hidden * m).sum(dim=1) / count
        neg = torch.finfo(hidden.dtype).min
        mx = torch.where(mask.unsqueeze(-1), hidden, torch.full_like(hidden, neg)).amax(dim=1)
        mx = torch.where(mask.any(dim=1, keepdim=True), mx, torch.zeros_like(mx))
        return self.context(torch.cat([mean, mx], dim=-1))


class DistinctRows(NamedTuple):
    """The distinct (stage, schedule input) rows of a [B, S, F] batch: ``inputs`` [U, F], ``stage``
    [U] (the stage each belongs to), ``inverse`` [B * S] (each batch row's distinct row). Why: the
    children of one beam share all but the stages their decision touched (and unscheduled stages
    are all zeros), so a batch of 100 children of a 100-stage pipeline has a few hundred distinct
    rows, not 10,000, and the per-stage layers are most of the network's arithmetic."""

    inputs: torch.Tensor
    stage: torch.Tensor
    inverse: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> "DistinctRows":
        b, s, f = x.shape
        flat = np.ascontiguousarray(x.detach().reshape(b * s, f).numpy())
        stage = np.tile(np.arange(s, dtype=np.int64), b)
        keyed = np.ascontiguousarray(np.concatenate([stage[:, None].view(np.uint8),
                                                     flat.view(np.uint8)], axis=1))
        # distinct rows by their bytes (a 1-D sort of opaque records: far faster than axis=0)
        as_bytes = keyed.view(np.dtype((np.void, keyed.shape[1]))).reshape(-1)
        _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
        return cls(x.reshape(b * s, f)[torch.from_numpy(first)], torch.from_numpy(stage[first]),
                   torch.from_numpy(inverse.reshape(-1).astype(np.int64)))


class OurNet(nn.Module):
    """Per-stage MLP(s) over log features with pooled cross-stage context; sum of stage costs."""

    pipe_shift: torch.Tensor
    pipe_scale: torch.Tensor
    sched_shift: torch.Tensor
    sched_scale: torch.Tensor

    def __init__(self, config: OurNetConfig | None = None, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config or OurNetConfig()
        if self.config.members < 1:
            raise ValueError("OurNetConfig.members must be >= 1")
        self.members = nn.ModuleList(_Member(self.config) for _ in range(self.config.members))
        # standardisation of the log inputs (identity until fit_normalization)
        self.register_buffer("pipe_shift", torch.zeros(PIPELINE_INPUTS))
        self.register_buffer("pipe_scale", torch.ones(PIPELINE_INPUTS))
        self.register_buffer("sched_shift", torch.zeros(self.config.schedule_inputs))
        self.register_buffer("sched_scale", torch.ones(self.config.schedule_inputs))
        if generator is not None:
            with torch.no_grad():
                for param in self.parameters():
                    bound = 1.0 / math.sqrt(param.shape[-1]) if param.dim() > 1 else 0.05
                    param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)
        self.prior: AdamsNet | None = None
        if self.config.prior:
            self.prior = AdamsNet(generator=generator)
            self.prior.requires_grad_(False)
        with torch.no_grad():
            for m in self.member_nets():
                if self.prior is not None:   # start from the prior's prediction exactly
                    m.head.weight.zero_()
                    m.head.bias.zero_()
                else:
                    m.head.bias.fill_(-2.0)  # about 0.1 ms per stage to start with

    def load_prior(self, weights: AdamsNet) -> None:
        """Copy ``weights`` (e.g. Halide's baseline AdamsNet) into the frozen prior."""
        if self.prior is None:
            raise ValueError("this OurNet has no prior (OurNetConfig.prior is False)")
        self.prior.load_state_dict(weights.state_dict())

    def train(self, mode: bool = True) -> "OurNet":
        super().train(mode)
        if self.prior is not None:
            self.prior.eval()
        return self

    # -- inputs ----------------------------------------------------------------------------------

    def _inputs(self, pipeline_features: torch.Tensor, sched: torch.Tensor,
                num_cores: int | float | torch.Tensor, stage_math: torch.Tensor | None = None,
                stage_extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised log inputs: pipeline [S, 280] (or [B, S, 280]) and schedule [B, S, 41 (+28)
        (+4 math) (+3 extra) (+1 prior, always last)]."""
        b, s, _ = sched.shape
        pf = pipeline_features.to(torch.float32)
        pipe = signed_log1p(pf.reshape(*pf.shape[:-2], PIPELINE_INPUTS))
        cores = torch.as_tensor(num_cores, dtype=torch.float32, device=sched.device)
        cores = cores.reshape(-1, 1, 1).expand(b, s, 1) if cores.dim() == 1 else cores.expand(b, s, 1)
        is_output = torch.zeros(b, s, 1, dtype=torch.float32, device=sched.device)
        is_output[:, 0] = 1.0
        parts = [signed_log1p(sched), torch.log(torch.clamp(cores, min=1.0)), is_output]
        if self.config.adams_terms:
            parts.append(signed_log1p(adams_terms(sched, num_cores)))
        if self.config.math_inputs:
            if stage_math is None:
                raise ValueError("this network takes each stage's math calls (OurNetConfig.math_inputs): "
                                 "pass stage_math [stages, 2] (FunctionDAG.math_calls()), or [batch, stages, 2] "
                                 "(features.math_inputs.batch_math) for a network with hoisted_math")
            m = torch.as_tensor(stage_math, dtype=torch.float32, device=sched.device)
            m = m.reshape(-1, s, MATH_INPUTS).expand(b, s, MATH_INPUTS)
            points = (sched[..., _F["points_computed_total"]]
                      + sched[..., _F["inlined_calls"]]).unsqueeze(-1)
            parts += [torch.log1p(m), torch.log1p(m * torch.clamp(points, min=0.0))]
        if self.config.extra_inputs:
            if stage_extra is None:
                raise ValueError("this network takes each stage's extra schedule inputs (OurNetConfig.extra_inputs): "
                                 "pass stage_extra [batch, stages, 3] "
                                 "(autoscheduler.features.extra_inputs.batch_extras(states))")
            e = torch.as_tensor(stage_extra, dtype=torch.float32, device=sched.device)
            if e.shape != (b, s, EXTRA_INPUTS):
                raise ValueError(f"stage_extra must be [{b}, {s}, {EXTRA_INPUTS}] like the schedule features, "
                                 f"got {tuple(e.shape)}")
            parts.append(signed_log1p(e))
        if self.prior is not None:
            with torch.no_grad():
                stage = self.prior.forward_detailed(pipeline_features, sched, num_cores).stage_costs
            parts.append(torch.log(torch.clamp(stage, min=1e-12)).unsqueeze(-1))
        return pipe, torch.cat(parts, dim=-1)

    @classmethod
    def ensemble(cls, nets: Sequence["OurNet"]) -> "OurNet":
        """One network whose members are all of ``nets``' members: it predicts the geometric mean of
        their per-stage costs (the average of their log-costs), as ``members`` does for networks
        trained together. For networks trained apart (different seeds, each early-stopped): their
        errors on unseen pipelines differ, and the average ranks more reliably than any one of them.
        They must have the same sizes, inputs, prior and input standardisation."""
        if not nets:
            raise ValueError("OurNet.ensemble needs at least one network")
        first = nets[0]
        base = asdict(first.config)
        base.pop("members")
        for n in nets[1:]:
            other = asdict(n.config)
            other.pop("members")
            if other != base:
                raise ValueError(f"cannot average networks of different configurations: {base} vs {other}")
            for name in ("pipe_shift", "pipe_scale", "sched_shift", "sched_scale"):
                if not torch.equal(getattr(n, name), getattr(first, name)):
                    raise ValueError(f"cannot average networks with different input standardisation ({name})")
            if (n.prior is None) != (first.prior is None) or n.prior is not None and first.prior is not None and any(
                    not torch.equal(a, b) for a, b in zip(n.prior.state_dict().values(),
                                                           first.prior.state_dict().values())):
                raise ValueError("cannot average networks with different priors")
        members = [m for n in nets for m in n.member_nets()]
        out = cls(OurNetConfig(**{**base, "members": len(members)}))
        with torch.no_grad():
            for dst, src in zip(out.member_nets(), members):
                dst.load_state_dict(src.state_dict())
            for name in ("pipe_shift", "pipe_scale", "sched_shift", "sched_scale"):
                getattr(out, name).copy_(getattr(first, name))
            if out.prior is not None and first.prior is not None:
                out.prior.load_state_dict(first.prior.state_dict())
        return out.eval()

    def member_nets(self) -> list[_Member]:
        """The ensemble's sub-networks."""
        return [m for m in self.members if isinstance(m, _Member)]

    @property
    def normalization_fitted(self) -> bool:
        """Whether the input standardisation holds statistics (not the identity)."""
        return not (bool(torch.all(self.pipe_scale == 1)) and bool(torch.all(self.pipe_shift == 0))
                    and bool(torch.all(self.sched_scale == 1)) and bool(torch.all(self.sched_shift == 0)))

    @torch.no_grad()
    def fit_normalization(self, samples: Iterable[tuple[Any, ...]]) -> None:
        """Set the input standardisation from training data: ``samples`` yields (pipeline features
        [S, 40, 7], schedule features [B, S, 39], cores[, stage math [S, 2][, extra inputs [B, S, 3]]])
        per pipeline (numpy or torch). Only the scheduled stages count. A no-op unless
        ``config.normalize``."""
        if not self.config.normalize:
            return
        pipes, scheds = [], []
        for sample in samples:
            pf, sf, cores = sample[:3]
            sched = torch.as_tensor(sf, dtype=torch.float32)
            if sched.dim() != 3 or sched.shape[0] == 0:
                continue
            pipe, x = self._inputs(torch.as_tensor(pf), sched, cores, sample[3] if len(sample) > 3 else None,
                                   sample[4] if len(sample) > 4 else None)
            mask = (sched != 0).any(dim=-1)
            scheds.append(x[mask])
            pipes.append(pipe.reshape(-1, PIPELINE_INPUTS))
        if not scheds:
            return
        xs, ps = torch.cat(scheds), torch.cat(pipes)
        self.sched_shift.copy_(xs.mean(0))
        self.sched_scale.copy_(torch.clamp(xs.std(0), min=0.1) if xs.shape[0] > 1 else torch.ones_like(xs[0]))
        self.pipe_shift.copy_(ps.mean(0))
        self.pipe_scale.copy_(torch.clamp(ps.std(0), min=0.1) if ps.shape[0] > 1 else torch.ones_like(ps[0]))

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                num_cores: int | float | torch.Tensor, stage_math: torch.Tensor | None = None,
                stage_extra: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted runtime (ms) of each schedule: [B] (0-d for a single [S, 39] schedule).
        ``stage_math`` [S, 2]: each stage's costly math calls (needed with ``config.math_inputs``);
        ``stage_extra`` [B, S, 3] (or [S, 3]): extra schedule inputs (``config.extra_inputs``)."""
        return self.forward_detailed(pipeline_features, schedule_features, num_cores, stage_math,
                                     stage_extra).prediction

    def log_runtime(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                    num_cores: int | float | torch.Tensor, stage_math: torch.Tensor | None = None,
                    stage_extra: torch.Tensor | None = None) -> torch.Tensor:
        """log of the predicted runtime (ms): what the training losses read (no exp overflow)."""
        return self.forward_detailed(pipeline_features, schedule_features, num_cores, stage_math,
                                     stage_extra).log_prediction

    def forward_detailed(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                         num_cores: int | float | torch.Tensor, stage_math: torch.Tensor | None = None,
                         stage_extra: torch.Tensor | None = None) -> OurNetOutput:
        single = schedule_features.dim() == 2
        sched = schedule_features.to(torch.float32)
        if single:
            sched = sched.unsqueeze(0)
            if stage_extra is not None and stage_extra.dim() == 2:
                stage_extra = stage_extra.unsqueeze(0)
        if sched.dim() != 3 or sched.shape[-1] != NUM_SCHEDULE_FEATURES:
            raise ValueError(f"schedule_features must be [batch, stages, {NUM_SCHEDULE_FEATURES}], "
                             f"got {tuple(schedule_features.shape)}")
        s = sched.shape[1]
        if pipeline_features.shape[-2:] != (PIPELINE_ROWS, PIPELINE_COLS) or pipeline_features.shape[-3] != s:
            raise ValueError(f"pipeline_features must be [stages, {PIPELINE_ROWS}, {PIPELINE_COLS}] with "
                             f"the {s} stages of schedule_features, got {tuple(pipeline_features.shape)}")
        pipe, x = self._inputs(pipeline_features, sched, num_cores, stage_math, stage_extra)
        prior_log = x[..., -1] if self.prior is not None else None
        pipe = (pipe - self.pipe_shift) / self.pipe_scale
        x = (x - self.sched_shift) / self.sched_scale
        mask = (sched != 0).any(dim=-1)  # [B, S]: scheduled stages
        nets = self.member_nets()
        if pipe.dim() == 2 and x.shape[0] > 1 and x.device.type == "cpu" and not torch.is_grad_enabled():
            # scoring (the search): the per-stage layers once per distinct row
            rows = DistinctRows.of(x)
            log_stage = torch.stack([m.forward_rows(pipe, rows, mask) for m in nets]).sum(0)
        else:
            log_stage = nets[0](pipe, x, mask)
            for member in nets[1:]:
                log_stage = log_stage + member(pipe, x, mask)
        log_stage = log_stage / len(self.members)
        if prior_log is not None:
            bound = self.config.max_correction
            if bound > 0:
                log_stage = bound * torch.tanh(log_stage / bound)
            log_stage = log_stage + prior_log
        log_stage = torch.clamp(log_stage, -60.0, 60.0)
        masked = torch.where(mask, log_stage, torch.full_like(log_stage, -math.inf))
        log_pred = torch.logsumexp(masked, dim=-1)  # -inf when no stage is scheduled
        pred = torch.exp(log_pred)
        stage_costs = torch.where(mask, torch.exp(log_stage), torch.zeros_like(log_stage))
        if single:
            return OurNetOutput(pred[0], log_pred[0], stage_costs[0], mask[0])
        return OurNetOutput(pred, log_pred, stage_costs, mask)


__all__ = ["OurNet", "DistinctRows", "OurNetConfig", "OurNetOutput", "signed_log1p", "adams_terms", "NUM_ADAMS_TERMS",
           "MATH_INPUTS", "EXTRA_INPUTS"]

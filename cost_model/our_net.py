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
from typing import Any, NamedTuple

import torch
from torch import nn

from .features_layout import NUM_SCHEDULE_FEATURES, PIPELINE_COLS, PIPELINE_ROWS

PIPELINE_INPUTS = PIPELINE_ROWS * PIPELINE_COLS


@dataclass(frozen=True)
class OurNetConfig:
    """Sizes of :class:`OurNet` (stored in the weights' metadata so a file rebuilds its network)."""

    pipeline_dim: int = 32
    hidden: int = 96
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OurNetConfig":
        known = {k: d[k] for k in ("pipeline_dim", "hidden", "dropout") if k in d}
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


class OurNet(nn.Module):
    """Per-stage MLP over log features with pooled cross-stage context; sum of stage costs."""

    def __init__(self, config: OurNetConfig | None = None, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config or OurNetConfig()
        p, h = self.config.pipeline_dim, self.config.hidden
        self.pipe = nn.Sequential(nn.Linear(PIPELINE_INPUTS, p), nn.ReLU())
        # schedule features + log(cores) + "is the final output stage"
        self.sched = nn.Sequential(nn.Linear(NUM_SCHEDULE_FEATURES + 2, h), nn.ReLU())
        self.stage = nn.Sequential(nn.Linear(p + h, h), nn.ReLU(), nn.Dropout(self.config.dropout),
                                   nn.Linear(h, h), nn.ReLU())
        self.context = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU())
        self.mix = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU())
        self.head = nn.Linear(h, 1)
        if generator is not None:
            with torch.no_grad():
                for param in self.parameters():
                    bound = 1.0 / math.sqrt(param.shape[-1]) if param.dim() > 1 else 0.05
                    param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)
        with torch.no_grad():
            self.head.bias.fill_(-2.0)  # about 0.1 ms per stage to start with

    def forward(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                num_cores: int | float | torch.Tensor) -> torch.Tensor:
        """Predicted runtime (ms) of each schedule: [B] (0-d for a single [S, 39] schedule)."""
        return self.forward_detailed(pipeline_features, schedule_features, num_cores).prediction

    def log_runtime(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                    num_cores: int | float | torch.Tensor) -> torch.Tensor:
        """log of the predicted runtime (ms): what the training losses read (no exp overflow)."""
        return self.forward_detailed(pipeline_features, schedule_features, num_cores).log_prediction

    def forward_detailed(self, pipeline_features: torch.Tensor, schedule_features: torch.Tensor,
                         num_cores: int | float | torch.Tensor) -> OurNetOutput:
        single = schedule_features.dim() == 2
        sched = schedule_features.to(torch.float32)
        if single:
            sched = sched.unsqueeze(0)
        if sched.dim() != 3 or sched.shape[-1] != NUM_SCHEDULE_FEATURES:
            raise ValueError(f"schedule_features must be [batch, stages, {NUM_SCHEDULE_FEATURES}], "
                             f"got {tuple(schedule_features.shape)}")
        b, s, _ = sched.shape
        pf = pipeline_features.to(torch.float32)
        if pf.shape[-2:] != (PIPELINE_ROWS, PIPELINE_COLS) or pf.shape[-3] != s:
            raise ValueError(f"pipeline_features must be [stages, {PIPELINE_ROWS}, {PIPELINE_COLS}] with "
                             f"the {s} stages of schedule_features, got {tuple(pipeline_features.shape)}")
        pipe = self.pipe(signed_log1p(pf.reshape(*pf.shape[:-2], PIPELINE_INPUTS)))  # [S, P] or [B, S, P]
        if pipe.dim() == 2:
            pipe = pipe.unsqueeze(0).expand(b, s, pipe.shape[-1])
        cores = torch.as_tensor(num_cores, dtype=torch.float32, device=sched.device)
        cores = cores.reshape(-1, 1, 1).expand(b, s, 1) if cores.dim() == 1 else cores.expand(b, s, 1)
        is_output = torch.zeros(b, s, 1, dtype=torch.float32, device=sched.device)
        is_output[:, 0] = 1.0
        x = torch.cat([signed_log1p(sched), torch.log(torch.clamp(cores, min=1.0)), is_output], dim=-1)
        hidden = self.stage(torch.cat([pipe, self.sched(x)], dim=-1))  # [B, S, H]

        mask = (sched != 0).any(dim=-1)  # [B, S]: scheduled stages
        m = mask.unsqueeze(-1).to(hidden.dtype)
        count = torch.clamp(m.sum(dim=1), min=1.0)
        mean = (hidden * m).sum(dim=1) / count
        neg = torch.finfo(hidden.dtype).min
        mx = torch.where(mask.unsqueeze(-1), hidden, torch.full_like(hidden, neg)).amax(dim=1)
        mx = torch.where(mask.any(dim=1, keepdim=True), mx, torch.zeros_like(mx))
        ctx = self.context(torch.cat([mean, mx], dim=-1)).unsqueeze(1).expand(b, s, -1)
        log_stage = self.head(self.mix(torch.cat([hidden, ctx], dim=-1))).squeeze(-1)  # [B, S]
        log_stage = torch.clamp(log_stage, -60.0, 60.0)
        masked = torch.where(mask, log_stage, torch.full_like(log_stage, -math.inf))
        log_pred = torch.logsumexp(masked, dim=-1)  # -inf when no stage is scheduled
        pred = torch.exp(log_pred)
        stage_costs = torch.where(mask, torch.exp(log_stage), torch.zeros_like(log_stage))
        if single:
            return OurNetOutput(pred[0], log_pred[0], stage_costs[0], mask[0])
        return OurNetOutput(pred, log_pred, stage_costs, mask)


__all__ = ["OurNet", "OurNetConfig", "OurNetOutput", "signed_log1p"]

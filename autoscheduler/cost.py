"""The search's cost function: featurize a batch of states, run the cost network, return costs.

Weights shipped in ``cost_model/weights``: Halide's baseline Adams2019 weights
(``adams2019_baseline.weights``, for the port ``cost_model.AdamsNet``) and, when this project's own
training beat them on held-out pipelines, our network's (``ours.pt`` + ``ours.json``: the metadata
records the data, the command and the held-out metrics). ``DEFAULT_WEIGHTS`` is the one the search
loads unless given others: a ``.pt`` + ``.json`` pair made by ``autoschedule train`` (AdamsNet or
our network) or Halide's ``.weights`` format. Loading weights trained on a machine with another
vector ISA (AVX2 vs AVX-512) warns (``cost_model.weights_io.HostMismatchWarning``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from torch import nn

import cost_model
from cost_model.adams_net import AdamsNet
from cost_model.features_layout import kernel_factors
from cost_model.our_net import DistinctRows

from .features import network_inputs

WEIGHTS_DIR = Path(cost_model.__file__).resolve().parent / "weights"
BASELINE_WEIGHTS = WEIGHTS_DIR / "adams2019_baseline.weights"
OUR_WEIGHTS = WEIGHTS_DIR / "ours.pt"
DEFAULT_WEIGHTS = BASELINE_WEIGHTS
"""Halide's baseline weights (see data/README.md for the held-out comparison with ours.pt)."""


def stage_inputs(net: nn.Module, states: Sequence[Any]) -> dict[str, Any]:
    """Keyword inputs a network takes beyond AdamsNet's three, for states of one search space:
    each stage's costly math calls and extra schedule inputs for an OurNet trained with them
    (``OurNetConfig.math_inputs``, ``extra_inputs``)."""
    config = getattr(net, "config", None)
    out: dict[str, Any] = {}
    if states and getattr(config, "math_inputs", False):
        if getattr(config, "hoisted_math", False):
            from .features.math_inputs import batch_math
            out["stage_math"] = torch.from_numpy(batch_math(states))
        else:
            out["stage_math"] = torch.from_numpy(states[0].space.dag.math_calls())
    if states and getattr(config, "extra_inputs", False):
        from .features.extra_inputs import batch_extras
        out["stage_extra"] = torch.from_numpy(batch_extras(states))
    return out


def _factors(states: Sequence[Any], extra: dict[str, Any]) -> np.ndarray:
    """[B, S] kernel factors of ``states``: read off the extra inputs when the network takes them
    (they hold the factor), else computed (``kernel_terms.batch_factors``)."""
    if "stage_extra" in extra:
        return kernel_factors(extra["stage_extra"].double().numpy())
    from .features.kernel_terms import batch_factors
    return batch_factors(list(states))


class CostModel:
    """A loaded network plus the core count its idle-core term assumes."""

    def __init__(self, net: nn.Module, parallelism: int, source: str) -> None:
        self.net = net.eval()
        self.parallelism = parallelism
        self.source = source

    @classmethod
    def load(cls, weights: Optional[str] = None, *, parallelism: int = 1) -> "CostModel":
        from cost_model.train import load_model
        path = Path(weights) if weights else DEFAULT_WEIGHTS
        return cls(load_model(path), parallelism, str(path))

    kernel_terms: bool = True

    @torch.no_grad()
    def predict(self, states: Sequence[Any]) -> np.ndarray:
        """Predicted cost of each state (cost-model units; partial states: decided stages only).

        With ``kernel_terms`` (default) each stage's predicted cost is multiplied by its
        accumulator-latency factor (:mod:`autoscheduler.features.kernel_terms`), which Halide's
        features cannot see; networks without per-stage costs are used as they are. Our network can
        be trained through the same factors (``OurNetConfig.kernel_factors``); the shipped
        ``ours.pt`` is not (so trained, it did no better in the search: data/README.md)."""
        if not states:
            return np.zeros(0)
        inputs = network_inputs(states)
        extra = stage_inputs(self.net, states)
        detailed: Any = getattr(self.net, "forward_detailed", None)
        if self.kernel_terms and detailed is not None:
            sc = self._stage_costs(inputs, states, extra)
            return (sc * _factors(states, extra)).sum(axis=1)
        out = self.net(inputs.pipeline, inputs.schedule, self.parallelism, **extra)
        return out.detach().double().numpy()

    def _stage_costs(self, inputs: Any, states: Sequence[Any], extra: dict[str, Any] | None = None) -> np.ndarray:
        """[B, S] per-stage costs. A network whose stages never see each other (AdamsNet) is run
        once per distinct (stage, schedule-feature row): the children of one beam share all but
        the rows their decision touched, so a batch of 100 children of a 100-stage pipeline has a
        few hundred distinct rows, not 10,000 (the network was 60% of ae_train_step's search)."""
        sched = inputs.schedule
        b, s = int(sched.shape[0]), int(sched.shape[1])
        if not isinstance(self.net, AdamsNet) or b < 2:
            detailed: Any = getattr(self.net, "forward_detailed")
            kw = extra if extra is not None else stage_inputs(self.net, states)
            out = detailed(inputs.pipeline, sched, self.parallelism, **kw).stage_costs
            return out.detach().double().numpy().reshape(b, s)
        rows = DistinctRows.of(sched.detach().to(torch.float32))
        # the distinct rows as a batch of one-stage schedules, each with its stage's pipeline
        # features; stage 0 (the final output) told apart by the output mask
        one_stage = rows.inputs.unsqueeze(1)
        out = self.net.forward_detailed(inputs.pipeline[rows.stage].unsqueeze(1), one_stage, self.parallelism,
                                        is_output=(rows.stage == 0).unsqueeze(1)).stage_costs
        costs = out.reshape(-1).detach().double().numpy()
        return costs[rows.inverse.numpy()].reshape(b, s)

    def cost_fn(self, dag: Any) -> Callable[[Sequence[Any]], np.ndarray]:
        def fn(states: Sequence[Any]) -> np.ndarray:
            return self.predict(states)
        return fn

    @torch.no_grad()
    def stage_costs(self, dag: Any, state: Any) -> dict[str, float]:
        """Per-stage predicted cost of one state, keyed by stage name (``f``, ``f.update(0)``)."""
        detailed: Any = getattr(self.net, "forward_detailed", None)
        if detailed is None:
            return {}
        inputs = network_inputs([state])
        extra = stage_inputs(self.net, [state])
        detail = detailed(inputs.pipeline, inputs.schedule, self.parallelism, **extra)
        costs = detail.stage_costs[0].double().numpy().reshape(-1)
        if self.kernel_terms:
            costs = costs * _factors([state], extra)[0]
        order = dag.featurization_order()
        return {st.name: float(c) for st, c in zip(order, costs)}

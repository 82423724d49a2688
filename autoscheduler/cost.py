"""The search's cost function: featurize a batch of states, run the cost network, return costs.

The default network is the Adams2019 port (``cost_model.AdamsNet``) with Halide's baseline weights
(``cost_model/weights``) until weights trained by this project ship; a ``.pt`` + ``.json`` pair made by
``autoschedule train`` (AdamsNet or our network) or Halide's ``.weights`` format can be passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from torch import nn

import cost_model

from .features import network_inputs

WEIGHTS_DIR = Path(cost_model.__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "adams2019_baseline.weights"


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

    @torch.no_grad()
    def predict(self, states: Sequence[Any]) -> np.ndarray:
        """Predicted cost of each state (cost-model units; partial states: decided stages only)."""
        if not states:
            return np.zeros(0)
        inputs = network_inputs(states)
        out = self.net(inputs.pipeline, inputs.schedule, self.parallelism)
        return out.detach().double().numpy()

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
        detail = detailed(inputs.pipeline, inputs.schedule, self.parallelism)
        costs = detail.stage_costs[0].double().numpy()
        order = dag.featurization_order()
        return {st.name: float(c) for st, c in zip(order, costs)}

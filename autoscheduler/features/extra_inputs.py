"""What our cost network reads beyond Halide's 39 schedule features: how each stage's own vector
stores and accumulator loads reach memory, and how far its reduction loop is from issue-bound.

Why: our search space reorders storage (``Layout``) and picks each stage's vector dimension on its
own, so a stage can be vectorised along a dimension that is not its Func's innermost storage
dimension. Its vector stores are then scatters (a scalar store per lane), and an update's load of
the value it updates is a gather: on each step of its RVars, unless the accumulators stay in
registers. Halide's features have no store-access feature and count an update's load of its own
value as one dense vector load whatever the layout. Measured: on random_3, a schedule whose
``s3_stencil_rdom.update`` is vectorised along x while the Func is stored y-innermost ran 34 ms,
27.5 of them in that stage by Halide's profiler, which the network shipped before these inputs
priced at 0.9 ms, ranking that schedule first of twelve (the fastest ran 13 ms). Such stages occur
in 35% of the measured schedules (data/README.md).

Columns (:data:`EXTRA_INPUT_NAMES`), one row per stage in ``dag.featurization_order()``; zero for
stages not decided yet, inlined or rfactored:

0. ``scatter_store_lanes``: the stage's vector width when its vector dimension is not its Func's
   innermost storage dimension (``Featurizer.storage_dim``), else 0.
1. ``gathered_self_load_lanes``: the same for update stages, which load what they store.
2. ``accumulator_stall``: ``kernel_terms.stage_factors(state) - 1``, how much slower than its
   issue-bound ideal a reduction's innermost loop runs for lack of independent accumulators (the
   search multiplies each stage's predicted cost by that factor; ``OurNetConfig.kernel_factors``
   trains a network through it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cost_model.features_layout import EXTRA_INPUT_NAMES, NUM_EXTRA_INPUTS

from ..state import State
from .featurizer import Featurizer, featurizer_for
from .kernel_terms import stage_factors

__all__ = ["EXTRA_INPUT_NAMES", "NUM_EXTRA_INPUTS", "stage_extras", "batch_extras"]


def stage_extras(state: State) -> np.ndarray:
    """[S, 3] float32 extra inputs of ``state`` (CPU targets), rows in featurization order."""
    space = state.space
    fz = featurizer_for(space)
    if not isinstance(fz, Featurizer):
        raise ValueError("extra inputs describe CPU schedules; this search space targets a GPU")
    order = space.dag.featurization_order()
    out = np.zeros((len(order), NUM_EXTRA_INPUTS), dtype=np.float32)
    if not order:
        return out
    out[:, 2] = stage_factors(state, order) - 1.0
    for k, st in enumerate(order):
        f, s = st.node.index, st.index
        if state.placement(f) is None or state.is_inlined(f) or state.rfactor(f, s) is not None:
            continue
        inner = state.inner(f, s)
        if inner is None or inner.vector_dim is None or inner.vector_width <= 1:
            continue
        if inner.vector_dim != fz.storage_dim(state, f):
            out[k, 0] = inner.vector_width
            if s > 0:
                out[k, 1] = inner.vector_width
    return out


def batch_extras(states: Sequence[State]) -> np.ndarray:
    """[B, S, 3] float32 extra inputs for states of one search space."""
    if not states:
        return np.zeros((0, 0, NUM_EXTRA_INPUTS), dtype=np.float32)
    return np.stack([stage_extras(s) for s in states])

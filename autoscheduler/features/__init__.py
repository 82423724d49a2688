"""Adams2019 schedule features of search states (39 per stage), incremental, and AdamsNet inputs.

``Featurizer(space)`` (or ``featurizer_for(state)``, cached per search space):
``features(state)`` -> [S, 39] float64, ``batch(states)`` -> [B, S, 39] float32,
``pipeline`` -> [S, 40, 7] float32, ``network_inputs(states)`` -> ``AdamsInputs(pipeline,
schedule, num_cores)`` for ``cost_model.AdamsNet``. Stages are in ``dag.featurization_order()``
(Adams2019's featurization order). See ``featurizer.py`` for what is cached and ``loopnest.py`` for
how a state maps to Adams2019's loop nest.

CUDA targets: ``featurizer_for`` returns a :class:`GpuFeaturizer` (``gpu.py``: ``NUM_GPU_FEATURES``
per stage named by ``GPU_FEATURE_NAMES``, Anderson2021-style), and :class:`GpuAnalyticCost` is the
search's documented fallback cost over them while no learned GPU weights ship.
"""

from __future__ import annotations

from .featurizer import (NUM_SCHEDULE_FEATURES, AdamsInputs, Featurizer, featurize_states, featurizer_for,
                         network_inputs, pipeline_features, schedule_features)
from .gpu import (GPU_FEATURE_NAMES, NUM_GPU_FEATURES, GpuAnalyticCost, GpuFeaturizer, GpuInputs, gpu_features,
                  gpu_featurizer_for)

__all__ = ["NUM_SCHEDULE_FEATURES", "AdamsInputs", "Featurizer", "featurize_states", "featurizer_for",
           "network_inputs", "pipeline_features", "schedule_features", "GPU_FEATURE_NAMES", "NUM_GPU_FEATURES",
           "GpuAnalyticCost", "GpuFeaturizer", "GpuInputs", "gpu_features", "gpu_featurizer_for"]

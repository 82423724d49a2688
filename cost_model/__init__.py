"""Cost models: the PyTorch port of Halide's Adams2019 network, its feature layout, weight files."""

from .adams_net import AdamsNet, AdamsOutput, fast_log
from .features_layout import (
    SCHEDULE_FEATURE_NAMES,
    Featurization,
    parse_featurization,
)
from .weights_io import (
    WeightsMetadata,
    load_adams_net,
    load_halide_weights,
    load_weights,
    read_halide_weights,
    save_weights,
    write_halide_weights,
)

__all__ = [
    "AdamsNet", "AdamsOutput", "fast_log", "SCHEDULE_FEATURE_NAMES", "Featurization",
    "parse_featurization", "WeightsMetadata", "load_adams_net", "load_halide_weights",
    "load_weights", "read_halide_weights", "save_weights", "write_halide_weights",
]

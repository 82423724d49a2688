"""Bundled Halide workloads, each a PipelineSpec with a reference that is not Halide.

``get(name)`` returns a spec, ``names()`` lists them. Modules register their specs on import.
"""

from __future__ import annotations

from .spec import BuiltPipeline, PipelineSpec, realize, output_buffers

_REGISTRY: dict[str, PipelineSpec] = {}


class UnknownPipelineError(KeyError):
    """Raised by ``get`` for a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one readable line
        return str(self.args[0]) if self.args else "unknown pipeline"


def register(spec: PipelineSpec) -> PipelineSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"pipeline '{spec.name}' registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> PipelineSpec:
    """A bundled spec by name; ``random_<seed>`` names a generated random pipeline."""
    _load_all()
    if name.startswith("random_") and name[len("random_"):].isdigit():
        from . import random_pipelines
        return random_pipelines.spec(int(name[len("random_"):]))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownPipelineError(
            f"unknown pipeline '{name}'; run `autoschedule list` to see the bundled ones") from None


def names(tag: str | None = None) -> list[str]:
    _load_all()
    return [n for n, s in _REGISTRY.items() if tag is None or tag in s.tags]


def specs() -> list[PipelineSpec]:
    _load_all()
    return list(_REGISTRY.values())


MISSION = ("conv_layer", "conv_layer_b8", "xnor_conv", "ae_forward", "ae_train_step", "vae_train_step")

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


# Workload modules, each registering its specs when imported.
_MODULES = ("lesson", "conv", "xnor", "autoencoders", "classic")

__all__ = ["BuiltPipeline", "PipelineSpec", "realize", "output_buffers", "get", "names", "specs",
           "register", "MISSION", "UnknownPipelineError"]

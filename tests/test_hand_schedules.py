"""Hand-written schedules (bench/hand_schedules.py): they apply, compile and reproduce each workload's
reference at its test sizes (GuardWithIf tails, extents smaller than a tile) and at sizes of a few tiles
(the fast path: constant ShiftInwards tiles, packed operands, register accumulators)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler.schedules import apply_source

ROOT = Path(__file__).resolve().parent.parent


def _load_hand() -> Any:
    path = ROOT / "bench" / "hand_schedules.py"
    spec = importlib.util.spec_from_file_location("hand_schedules", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hand_schedules", module)
    spec.loader.exec_module(module)
    return module


hand = _load_hand()

# Sizes of a few tiles: every extent at least one register tile, none a multiple of it.
FAST_SIZES = {
    "conv_layer": {"ci": 8, "co": 64, "width": 7, "height": 5, "batch": 1},
    "conv_layer_b8": {"ci": 4, "co": 40, "width": 9, "height": 3, "batch": 2},
    "ae_train_step": {"batch": 20, "d_in": 52, "d_hidden": 40, "d_latent": 18},
    "ae_forward": {"batch": 10, "d_in": 50, "d_hidden": 36, "d_latent": 17},
    "vae_train_step": {"batch": 12, "d_in": 49, "d_hidden": 34, "d_latent": 16},
    "xnor_conv": {"ci": 64, "co": 48, "width": 8, "height": 4, "batch": 1},
}


def _check(name: str, sizes: dict[str, int]) -> str:
    spec = halide_pipelines.get(name)
    full = spec.sizes(**sizes)
    built = spec.build(**full)
    p = built.pipeline()
    source = hand.hand_source(name, p)
    apply_source(source, p)
    inputs = spec.make_inputs(3, **full)
    out = halide_pipelines.realize(built, inputs, hl.get_jit_target_from_environment(), pipeline=p)
    ref = spec.reference(inputs, **full)
    assert len(out) == len(ref)
    for k, (o, r) in enumerate(zip(out, ref)):
        assert o.shape == r.shape
        np.testing.assert_allclose(o, r, rtol=spec.rtol, atol=spec.atol, err_msg=f"{name} output {k}")
    return source


def _fast_flags(source: str) -> list[bool]:
    """Whether each register tile runs on the constant-tile path (conv: its splits; dense: each _mm)."""
    if "_mm(" in source:
        return [m.group(1) == "True" for m in re.finditer(r"\], (True|False), (?:True|False)\)", source)]
    return [", S)" in source]


@pytest.mark.parametrize("name", sorted(hand.HAND))
def test_hand_schedule_matches_reference_at_test_sizes(name: str) -> None:
    spec = halide_pipelines.get(name)
    source = _check(name, spec.test_sizes)
    assert _fast_flags(source) and not all(_fast_flags(source))  # below one tile somewhere: GuardWithIf


@pytest.mark.parametrize("name", sorted(FAST_SIZES))
def test_fast_path_matches_reference(name: str) -> None:
    source = _check(name, FAST_SIZES[name])
    assert _fast_flags(source) and all(_fast_flags(source))


def test_fast_path_is_chosen_at_default_sizes() -> None:
    conv = hand.conv_layer_source(halide_pipelines.get("conv_layer").build().pipeline())
    assert "split(c, co, ci, V * 4, S)" in conv and "reorder_storage(f0, f3, f1, f2)" in conv
    dense = hand.dense_source(halide_pipelines.get("ae_train_step").build().pipeline())
    calls = [line for line in dense.splitlines() if line.startswith("_mm(")]
    # 4 forward layers, 3 dX (the first layer's input gets none), 4 dW
    assert len(calls) == 11
    assert all(_fast_flags(dense))  # every matmul on the constant-tile path
    assert sum("True)]" in line for line in calls) == 3  # the dX matmuls pack W transposed
    lines = dense.splitlines()
    assert sum(line.startswith("_scalar_sum(") for line in lines) == 1  # the loss total
    assert sum(line.startswith("_column_sum(") for line in lines) == 4  # the bias gradients


def test_unknown_workload_is_a_toolkit_error() -> None:
    from autoscheduler.errors import ToolkitError
    with pytest.raises(ToolkitError, match="no hand schedule"):
        hand.hand_source("blur", halide_pipelines.get("conv_layer").build().pipeline())

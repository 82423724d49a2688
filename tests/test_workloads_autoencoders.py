"""Autoencoder workloads: Halide (compute_root and Halide's default schedule) against PyTorch autograd.

Every output of the training steps is an SGD-updated parameter ``P - lr * dP`` or the loss; the
gradients themselves are recovered as ``(P - P') / lr`` and compared too, since ``P`` dominates ``P'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import halide as hl

import halide_pipelines
from autoscheduler.errors import ToolkitError
from autoscheduler.schedules import apply_source, root_source
from halide_pipelines import autoencoders as ae
from halide_pipelines.spec import BuiltPipeline, PipelineSpec

SPECS = [ae.AE_FORWARD, ae.AE_TRAIN_STEP, ae.DAE_TRAIN_STEP, ae.VAE_TRAIN_STEP, ae.CVAE_TRAIN_STEP]
TRAIN = [s for s in SPECS if s is not ae.AE_FORWARD]
ids = [s.name for s in SPECS]
train_ids = [s.name for s in TRAIN]
TINY = {"batch": 2, "d_in": 8, "d_hidden": 6}  # for Halide's default schedule (see below)

_compiled: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[BuiltPipeline, Any]] = {}


def rooted(spec: PipelineSpec, **sizes: int) -> tuple[BuiltPipeline, Any]:
    """The spec built at test sizes (plus overrides) with compute_root everywhere, compiled once."""
    full = {**spec.test_sizes, **sizes}
    key = (spec.name, tuple(sorted(full.items())))
    if key not in _compiled:
        built = spec.build(**full)
        p = built.pipeline()
        apply_source(root_source(p), p)
        p.compile_jit(hl.get_jit_target_from_environment())
        _compiled[key] = (built, p)
    return _compiled[key]


def inputs_at(spec: PipelineSpec, seed: int, **sizes: int) -> dict[str, Any]:
    return spec.make_inputs(seed, **{**spec.test_sizes, **sizes})


def reference_at(spec: PipelineSpec, inputs: dict[str, Any], **sizes: int) -> list[np.ndarray]:
    return spec.reference(inputs, **{**spec.test_sizes, **sizes})


def run_root(spec: PipelineSpec, inputs: dict[str, Any], **sizes: int) -> list[np.ndarray]:
    built, p = rooted(spec, **sizes)
    return halide_pipelines.realize(built, inputs, pipeline=p)


def param_names(spec: PipelineSpec) -> list[str]:
    """Parameter inputs in output order (the training steps' outputs are [loss, W1', b1', ...])."""
    built, _ = rooted(spec)
    return [k for k in built.inputs if k[0] in "Wb"]


def assert_outputs_match(spec: PipelineSpec, out: list[np.ndarray], ref: list[np.ndarray]) -> None:
    assert len(out) == len(ref)
    for i, (o, r) in enumerate(zip(out, ref)):
        assert o.shape == r.shape, f"{spec.name} output {i}: shape {o.shape} vs {r.shape}"
        np.testing.assert_allclose(o, r, rtol=spec.rtol, atol=spec.atol, err_msg=f"{spec.name} output {i}")


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_root_schedule_matches_torch(spec: PipelineSpec) -> None:
    inputs = inputs_at(spec, 0)
    assert_outputs_match(spec, run_root(spec, inputs), reference_at(spec, inputs))


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_default_schedule_matches_torch(spec: PipelineSpec) -> None:
    # default_schedule_ok is False for all of them: the all-inline default recomputes every layer below
    # a point for each point (exponential in depth), so it runs here only at sizes smaller still.
    built = spec.build(**{**spec.test_sizes, **TINY})
    inputs = inputs_at(spec, 1, **TINY)
    assert_outputs_match(spec, halide_pipelines.realize(built, inputs), reference_at(spec, inputs, **TINY))


@pytest.mark.parametrize("spec", [ae.VAE_TRAIN_STEP, ae.CVAE_TRAIN_STEP], ids=["vae", "cvae"])
def test_gaussian_reconstruction_option(spec: PipelineSpec) -> None:
    inputs = inputs_at(spec, 2)
    out = run_root(spec, inputs, gaussian=1)
    assert_outputs_match(spec, out, reference_at(spec, inputs, gaussian=1))
    bernoulli = run_root(spec, inputs)
    assert abs(float(out[0][0]) - float(bernoulli[0][0])) > 0.1  # the flag really changes the loss


@pytest.mark.parametrize("spec", TRAIN, ids=train_ids)
def test_gradients_match_torch(spec: PipelineSpec) -> None:
    inputs = inputs_at(spec, 3)
    inputs["lr"] = 1.0
    out, ref = run_root(spec, inputs), reference_at(spec, inputs)
    names = param_names(spec)
    assert len(names) == len(out) - 1
    for name, o, r in zip(names, out[1:], ref[1:]):
        p = inputs[name].astype(np.float64)
        g_halide, g_torch = p - o, p - r.astype(np.float64)
        # both updates are rounded to float32: allow two ulps of the parameter on top of 1e-4 relative
        tol = 2 * np.spacing(np.abs(inputs[name])).astype(np.float64) + 1e-4 * np.abs(g_torch)
        assert np.all(np.abs(g_halide - g_torch) <= tol), f"{spec.name} d{name}"
        assert np.abs(g_torch).max() > 1e-4, f"{spec.name} d{name} is (near) zero"


@pytest.mark.parametrize("spec", TRAIN, ids=train_ids)
def test_update_moves_every_parameter_and_lr0_does_not(spec: PipelineSpec) -> None:
    inputs = inputs_at(spec, 4)
    moved = run_root(spec, inputs)
    frozen = run_root(spec, {**inputs, "lr": 0.0})
    assert moved[0][0] == frozen[0][0]  # the loss does not depend on lr
    for name, m, f in zip(param_names(spec), moved[1:], frozen[1:]):
        np.testing.assert_array_equal(f, inputs[name], err_msg=f"lr=0 changed {name}")
        assert np.abs(m - inputs[name]).max() > 1e-5, f"{name} did not move"


def test_dae_with_no_dropped_pixels_is_the_ae_step() -> None:
    inputs = inputs_at(ae.DAE_TRAIN_STEP, 5)
    dropped = run_root(ae.DAE_TRAIN_STEP, inputs)
    clean = run_root(ae.DAE_TRAIN_STEP, {**inputs, "mask": np.ones_like(inputs["mask"])})
    plain = run_root(ae.AE_TRAIN_STEP, inputs)
    for c, p in zip(clean, plain):
        np.testing.assert_array_equal(c, p)
    assert not np.array_equal(dropped[0], plain[0])


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_torch_runner_computes_the_reference(spec: PipelineSpec) -> None:
    inputs = inputs_at(spec, 6)
    run = spec.torch_runner(inputs, **spec.test_sizes)
    assert run is not None
    got = run()
    got_list = [got] if spec is ae.AE_FORWARD else got
    for g, r in zip(got_list, reference_at(spec, inputs)):
        np.testing.assert_allclose(g.detach().numpy(), r, rtol=spec.rtol, atol=spec.atol)


def test_registration_shapes_and_flops() -> None:
    for spec in SPECS:
        assert halide_pipelines.get(spec.name) is spec and "dl" in spec.tags
        assert spec.default_sizes["batch"] == 256 and spec.default_sizes["d_in"] == 784
    assert set(halide_pipelines.MISSION) >= {"ae_forward", "ae_train_step", "vae_train_step"}
    for name in ("ae_forward", "ae_train_step", "vae_train_step"):
        assert "mission" in halide_pipelines.get(name).tags
    forward = 2 * 256 * (784 * 512 + 512 * 32 + 32 * 512 + 512 * 784)
    assert ae.AE_FORWARD.flops() == forward
    assert ae.AE_TRAIN_STEP.flops() == 3 * forward
    assert ae.VAE_TRAIN_STEP.flops() == 3 * 2 * 256 * (784 * 512 + 2 * 512 * 32 + 32 * 512 + 512 * 784)
    built = ae.CVAE_TRAIN_STEP.build()
    assert built.output_shapes[1] == [512, 794]  # W1 over (hidden, input + 10 labels)
    assert built.output_shapes[0] == [1]


def test_bad_flags_raise() -> None:
    with pytest.raises(ToolkitError):
        ae.VAE_TRAIN_STEP.build(gaussian=2)
    with pytest.raises(ToolkitError):
        ae.CVAE_TRAIN_STEP.build(n_classes=0)

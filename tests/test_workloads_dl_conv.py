"""The conv_layer and XNOR-Net workloads: Halide outputs against their numpy/torch references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import halide as hl

import halide_pipelines
from autoscheduler.errors import ToolkitError
from autoscheduler.schedules import apply_source, pipeline_funcs, root_source
from halide_pipelines import conv, xnor

SPECS = ("conv_layer", "conv_layer_b8", "xnor_conv", "xnor_conv_b8", "bwn_conv")
MISSION = ("conv_layer", "conv_layer_b8", "xnor_conv")


def _check(spec_name: str, out: list[np.ndarray], ref: list[np.ndarray]) -> None:
    spec = halide_pipelines.get(spec_name)
    assert len(out) == len(ref) == 1
    assert out[0].shape == ref[0].shape
    np.testing.assert_allclose(out[0], ref[0], rtol=spec.rtol, atol=spec.atol)


def _case(name: str) -> tuple[Any, dict[str, Any], list[np.ndarray]]:
    spec = halide_pipelines.get(name)
    inputs = spec.make_inputs(0, **spec.test_sizes)
    return spec, inputs, spec.reference(inputs, **spec.test_sizes)


def test_registered_with_tags_and_flops() -> None:
    for name in SPECS:
        spec = halide_pipelines.get(name)
        assert "dl" in spec.tags
        assert ("mission" in spec.tags) == (name in MISSION + ("xnor_conv_b8",))
        s = spec.default_sizes
        assert spec.flops() == 2.0 * s["co"] * s["ci"] * 9 * s["width"] * s["height"] * s["batch"]
        assert spec.torch_fn is not None
    assert halide_pipelines.get("conv_layer").default_sizes == {
        "ci": 64, "co": 64, "width": 56, "height": 56, "batch": 1}
    assert halide_pipelines.get("conv_layer_b8").default_sizes["batch"] == 8
    assert halide_pipelines.get("xnor_conv").default_sizes == {
        "ci": 256, "co": 256, "width": 28, "height": 28, "batch": 1}
    assert halide_pipelines.get("xnor_conv_b8").default_sizes["batch"] == 8


@pytest.mark.parametrize("name", SPECS)
def test_root_schedule_matches_reference(name: str) -> None:
    spec, inputs, ref = _case(name)
    built = spec.build(**spec.test_sizes)
    p = built.pipeline()
    apply_source(root_source(p), p)
    out = halide_pipelines.realize(built, inputs, pipeline=p)
    _check(name, out, ref)
    # Not vacuous: the output has real, varied positive values.
    assert (ref[0] > 0).mean() > 0.3
    assert np.ptp(ref[0]) > 0.5


@pytest.mark.parametrize("name", SPECS)
def test_default_schedule_matches_reference(name: str) -> None:
    spec, inputs, ref = _case(name)
    built = spec.build(**spec.test_sizes)
    _check(name, halide_pipelines.realize(built, inputs), ref)


@pytest.mark.parametrize("name", ("conv_layer", "bwn_conv"))
def test_relu_clamps_some_outputs(name: str) -> None:
    spec, inputs, ref = _case(name)
    assert 0.2 < (ref[0] == 0).mean() < 0.8


@pytest.mark.parametrize("name", SPECS)
def test_torch_runner_agrees_with_reference(name: str) -> None:
    spec, inputs, ref = _case(name)
    out = spec.torch_runner(inputs, **spec.test_sizes)()
    np.testing.assert_allclose(out.numpy().transpose(0, 2, 3, 1), ref[0], rtol=1e-4, atol=1e-4)


def test_building_twice_gives_independent_funcs() -> None:
    spec, inputs, ref = _case("conv_layer")
    first = spec.build(**spec.test_sizes)
    second = spec.build(**spec.test_sizes)
    assert first.outputs[0] is not second.outputs[0]
    p = first.pipeline()
    apply_source(root_source(p), p)
    # A schedule directive on the first build that makes it unrealizable at the test sizes.
    relu = first.outputs[0]
    relu.bound(relu.args()[1], 0, 1)
    with pytest.raises(Exception):
        halide_pipelines.realize(first, inputs, pipeline=p)
    third = spec.build(**spec.test_sizes)
    _check("conv_layer", halide_pipelines.realize(second, inputs), ref)
    _check("conv_layer", halide_pipelines.realize(third, inputs), ref)


def _random_bits(rng: np.random.Generator, n: int, h: int, w: int, ci: int,
                 co: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((n, h + 2, w + 2, ci)) < 0.5, rng.random((ci, 3, 3, co)) < 0.5


def test_reference_integer_and_float_paths_agree() -> None:
    rng = np.random.default_rng(3)
    act, wt = _random_bits(rng, 2, 3, 4, 64, 5)
    exact = xnor.binary_dot_popcount(act, wt)
    as_float = xnor.binary_dot_float(act, wt)
    assert exact.dtype == np.int32
    np.testing.assert_array_equal(exact.astype(np.float32), as_float)
    # A third, direct path: integer sums of sign products.
    a, w = np.where(act, 1, -1), np.where(wt, 1, -1)
    direct = sum(np.einsum("nyxc,co->nyxo", a[:, j:j + 3, i:i + 4, :], w[:, j, i, :])
                 for j in range(3) for i in range(3))
    np.testing.assert_array_equal(exact, direct)
    assert len(np.unique(exact)) > 5
    np.testing.assert_array_equal(xnor.binary_dot(act, wt), exact)


def test_reference_check_catches_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    act, wt = _random_bits(rng, 1, 2, 2, 32, 3)
    monkeypatch.setattr(xnor, "binary_dot_float", lambda a, w: np.zeros((1, 2, 2, 3), np.float32) + 1)
    with pytest.raises(AssertionError):
        xnor.binary_dot(act, wt)


def test_pack_bits_convention() -> None:
    bits = np.zeros((2, 64), dtype=bool)
    bits[0, [0, 3, 31]] = True
    bits[1, [32, 63]] = True
    packed = xnor.pack_bits(bits)
    assert packed.dtype == np.uint32
    np.testing.assert_array_equal(packed, [[1 | 8 | 2 ** 31, 0], [0, 1 | 2 ** 31]])


def _realize_stage(built: Any, inputs: dict[str, Any], name: str, shape: list[int]) -> np.ndarray:
    func = next(f for f in pipeline_funcs(built.pipeline()) if f.name().split("$")[0] == name)
    keep = built.bind_inputs(inputs)
    buf = hl.Buffer(func.type(), shape)
    hl.Pipeline([func]).realize([buf], hl.get_jit_target_from_environment())
    del keep
    return np.array(buf, copy=True)


def test_halide_packed_bits_match_numpy() -> None:
    spec = halide_pipelines.get("xnor_conv")
    sizes = spec.test_sizes
    inputs = spec.make_inputs(1, **sizes)
    built = spec.build(**sizes)
    words, wp, hp = sizes["ci"] // 32, sizes["width"] + 2, sizes["height"] + 2
    act = _realize_stage(built, inputs, "act_bits", [words, wp, hp, sizes["batch"]])
    norm, signs = xnor.bin_norm(inputs["input"])
    np.testing.assert_array_equal(act, xnor.pack_bits(signs))
    assert 0.3 < signs.mean() < 0.7  # the BinNorm centring gives balanced signs (input mean is 0.3)
    wbits = _realize_stage(built, inputs, "weight_bits", [sizes["co"], words, 3, 3])
    # Halide weight_bits(co, word, kx, ky) is numpy (ky, kx, word, co); the filter is (ci, ky, kx, co).
    packed = xnor.pack_bits(np.ascontiguousarray((inputs["filter"] >= 0).transpose(1, 2, 3, 0)))
    np.testing.assert_array_equal(wbits, packed.transpose(0, 1, 3, 2))


def test_sign_of_zero_is_plus_one_in_halide_and_reference() -> None:
    spec = halide_pipelines.get("xnor_conv")
    sizes = spec.test_sizes
    inputs = spec.make_inputs(2, **sizes)
    x, filt = inputs["input"].copy(), inputs["filter"].copy()
    # Channel 0 holds -1, 0, +1 with equal counts of -1 and +1: its mean is exactly 0.
    pattern = np.resize(np.array([-1.0, 0.0, 1.0, 0.5, -0.5], np.float32), x[..., 0].size)
    x[..., 0] = pattern.reshape(x[..., 0].shape)
    filt[:, 0, 0, :] = 0.0
    filt[1, 1, 1, :] = -0.0
    inputs = {"input": x, "filter": filt}
    _, signs = xnor.bin_norm(x)
    assert signs[..., 0][x[..., 0] == 0].all()
    ref = spec.reference(inputs, **sizes)
    # The reference treats 0 as +1: flipping that convention changes the answer.
    flipped = xnor.binary_dot_popcount(_nonzero_signs(x, signs), filt > 0)
    assert not np.array_equal(flipped, xnor.binary_dot(signs, filt >= 0))
    built = spec.build(**sizes)
    p = built.pipeline()
    apply_source(root_source(p), p)
    _check("xnor_conv", halide_pipelines.realize(built, inputs, pipeline=p), ref)


def _nonzero_signs(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """The sign bits with sign(0) = -1 on channel 0's exact zeros (a deliberately wrong convention)."""
    out = signs.copy()
    out[..., 0] &= x[..., 0] != 0
    return out


def test_invalid_sizes_raise_toolkit_errors() -> None:
    with pytest.raises(ToolkitError, match="multiple of 32"):
        halide_pipelines.get("xnor_conv").build(ci=48)
    with pytest.raises(ToolkitError, match="even"):
        halide_pipelines.get("xnor_conv").build(width=7)
    with pytest.raises(ToolkitError, match="positive"):
        halide_pipelines.get("conv_layer").build(ci=0)
    assert isinstance(conv.WorkloadSizeError("x"), ValueError)

"""The classic Halide benchmark pipelines against their numpy references, at test sizes.

Each pipeline is realized under compute_root-everything (every spec) and under Halide's default
all-inline schedule (specs whose ``default_schedule_ok`` says it finishes quickly), and must equal
the numpy reference within the spec's tolerance; JIT compilation dominates the time.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import halide as hl

import halide_pipelines
from halide_pipelines.classic import SPECS
from halide_pipelines.spec import PipelineSpec
from autoscheduler.schedules import apply_source, pipeline_funcs, root_source

EXPECTED = {"blur", "unsharp", "harris", "stencil_chain", "bilateral_grid", "local_laplacian", "camera_pipe",
            "hist_eq", "iir_blur", "max_filter", "mat_mul", "multi_output"}
BY_NAME = {s.name: s for s in SPECS}
DEFAULT_OK = [s.name for s in SPECS if s.default_schedule_ok]


def _check(spec: PipelineSpec, schedule: str) -> None:
    sizes = spec.test_sizes
    inputs = spec.make_inputs(0, **sizes)
    expected = spec.reference(inputs, **sizes)
    built = spec.build(**sizes)
    p = built.pipeline()
    if schedule == "root":
        apply_source(root_source(p), p)
    out = halide_pipelines.realize(built, inputs, pipeline=p)
    assert len(out) == len(expected)
    for i, (got, want) in enumerate(zip(out, expected)):
        assert got.shape == want.shape, f"output {i}: shape {got.shape} != reference {want.shape}"
        assert got.dtype == want.dtype, f"output {i}: dtype {got.dtype} != reference {want.dtype}"
        assert list(got.shape[::-1]) == list(built.output_shapes[i])
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=spec.rtol, atol=spec.atol, err_msg=f"{spec.name} output {i}")


def test_all_classic_specs_registered_with_tag() -> None:
    assert {s.name for s in SPECS} == EXPECTED
    assert EXPECTED <= set(halide_pipelines.names(tag="classic"))
    for s in SPECS:
        assert halide_pipelines.get(s.name) is s
        assert set(s.test_sizes) == set(s.default_sizes)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_root_schedule_matches_numpy(name: str) -> None:
    _check(BY_NAME[name], "root")


@pytest.mark.parametrize("name", sorted(DEFAULT_OK))
def test_default_schedule_matches_numpy(name: str) -> None:
    _check(BY_NAME[name], "default")


def test_pyramids_and_chains_are_deep() -> None:
    """The many-stage structure is kept: stage counts grow with the pyramid depth (no compilation)."""
    ll = BY_NAME["local_laplacian"]
    n4 = len(pipeline_funcs(ll.build(**ll.test_sizes).pipeline()))
    n8 = len(pipeline_funcs(ll.build().pipeline()))
    assert n4 >= 40 and n8 > n4 + 30
    assert len(pipeline_funcs(BY_NAME["camera_pipe"].build(width=40, height=32).pipeline())) >= 25
    assert len(pipeline_funcs(BY_NAME["stencil_chain"].build(width=40, height=32).pipeline())) >= 10


def test_multi_output_has_two_outputs_of_different_size_and_type() -> None:
    built = BY_NAME["multi_output"].build()
    assert len(built.outputs) == 2
    assert built.output_shapes == [[1536, 2560], [768, 1280]]
    assert [f.type() for f in built.outputs] == [hl.UInt(16), hl.Float(32)]


def _load_plugins() -> bool:
    lib = os.path.join(os.path.dirname(hl.__file__), "lib64")
    try:
        for plugin in ("mullapudi2016", "adams2019"):
            hl.load_plugin(os.path.join(lib, f"libautoschedule_{plugin}.so"))
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_estimates_complete(name: str) -> None:
    """Mullapudi2016 rejects a missing ImageParam or output estimate, Adams2019 a missing Param one."""
    if not _load_plugins():
        pytest.skip("autoscheduler plugins not available")
    spec = BY_NAME[name]
    target = hl.get_jit_target_from_environment()
    for plugin, params in (("Mullapudi2016", {}), ("Adams2019", {"beam_size": "1"})):
        p = spec.build(**spec.test_sizes).pipeline()
        result = p.apply_autoscheduler(target, hl.AutoschedulerParams(plugin, params))
        assert result.schedule_source

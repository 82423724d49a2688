"""Halide's autoschedulers as baselines: validated parameters, isolated searches, faithful translation."""

from __future__ import annotations

import numpy as np
import pytest

import halide as hl
import halide_pipelines
from autoscheduler import baselines
from autoscheduler.errors import BaselineError, TargetError
from autoscheduler.loop_nest import loop_nest
from autoscheduler.schedules import apply_source


def _small(name: str):
    spec = halide_pipelines.get(name)
    sizes = spec.sizes(**spec.test_sizes)
    return spec, sizes


def test_bad_parameters_are_rejected_before_the_plugin_sees_them():
    with pytest.raises(BaselineError, match="no parameter 'beam_sizee'"):
        baselines.validate_params("Adams2019", {"beam_sizee": 3})
    with pytest.raises(BaselineError, match="must be an integer"):
        baselines.validate_params("Adams2019", {"beam_size": 3.5})
    assert baselines.validate_params("Adams2019", {"beam_size": True}) == {"beam_size": "1"}
    with pytest.raises(BaselineError, match="unknown autoscheduler"):
        baselines.validate_params("Adams2020", {})


def test_bad_target_string_names_the_problem():
    with pytest.raises(TargetError, match="bad target string 'x86-65'"):
        baselines.parse_target("x86-65")
    assert baselines.parse_target("host-cuda").has_gpu_feature()


def test_anderson_needs_a_gpu_target():
    spec, sizes = _small("conv_layer")
    with pytest.raises(BaselineError, match="GPU targets only"):
        baselines.search(spec.build(**sizes).pipeline(), "Anderson2021", None, "host")


@pytest.mark.parametrize("name", ["Adams2019", "Mullapudi2016"])
def test_translated_schedule_reproduces_the_plugin_loop_nest(name):
    """The Python translation, applied to a fresh build, gives the loop nest the plugin made."""
    spec, sizes = _small("conv_layer")
    result = baselines.search(spec.build(**sizes).pipeline(), name, {"parallelism": 2}, "host",
                              spec=(spec.name, sizes))
    assert result.python_source is not None, result.extra
    fresh = spec.build(**sizes)
    p = fresh.pipeline()
    apply_source(result.python_source, p)
    assert loop_nest(p) == result.loop_nest
    inputs = spec.make_inputs(0, **sizes)
    out = halide_pipelines.realize(fresh, inputs, pipeline=p)
    for o, r in zip(out, spec.reference(inputs, **sizes)):
        np.testing.assert_allclose(o, r, rtol=spec.rtol, atol=spec.atol)


def test_anderson_translation_compiles_for_cuda_without_a_gpu(tmp_path):
    spec, sizes = _small("conv_layer")
    target = hl.Target("host-cuda-cuda_capability_80")
    result = baselines.search(spec.build(**sizes).pipeline(), "Anderson2021", None, target,
                              spec=(spec.name, sizes))
    assert result.python_source is not None, result.extra
    assert "gpu_blocks" in result.python_source
    p = spec.build(**sizes).pipeline()
    apply_source(result.python_source, p)
    p.compile_to_object(str(tmp_path / "conv.o"), p.infer_arguments(), "conv", target)
    assert (tmp_path / "conv.o").stat().st_size > 0


def test_li2018_timed_in_its_worker_matches_reference():
    spec, sizes = _small("conv_layer")
    result = baselines.search(spec.build(**sizes).pipeline(), "Li2018", None, "host",
                              spec=(spec.name, sizes), time_repeats=2)
    assert result.extra["timing"]["min_ms"] > 0
    inputs = spec.make_inputs(0, **sizes)
    for o, r in zip(result.extra["outputs"], spec.reference(inputs, **sizes)):
        np.testing.assert_allclose(o, r, rtol=spec.rtol, atol=spec.atol)


def test_plugin_error_is_one_line_and_the_caller_survives():
    x = hl.Var("x")
    f = hl.Func("no_estimates")
    f[x] = x * 2
    with pytest.raises(BaselineError) as info:
        baselines.search(hl.Pipeline(f), "Adams2019", {"parallelism": 2}, "host")
    assert "\n" not in str(info.value) and "estimate" in str(info.value).lower()

"""Small pipelines, reference outputs, tiny cost networks and stand-in training data that several test
modules build."""

from __future__ import annotations

from typing import Any

import halide as hl

import halide_pipelines
from autoscheduler.schedules import apply_source, root_source


def fake_pipeline_data(name: str, key: int, n: int = 4) -> Any:
    """A featurized pipeline of ``n`` schedules with hash ``key`` and all-ones features, for tests of
    splits and folds (nothing is compiled)."""
    import numpy as np

    from cost_model.dataset import PipelineData
    return PipelineData(name, {}, f"{key:064x}", "t", "d", 2, np.zeros((1, 40, 7), np.float32),
                        np.ones((n, 1, 39), np.float32), np.arange(1, n + 1, dtype=np.float64))


def tiny_ournet(seed: int = 0, **config: Any) -> Any:
    """A small, seeded OurNet (8-wide pipeline head, 16 hidden) with the given config flags."""
    import torch

    from cost_model.our_net import OurNet, OurNetConfig
    return OurNet(OurNetConfig(pipeline_dim=8, hidden=16, **config), generator=torch.Generator().manual_seed(seed))


def sum_reductions(width: int = 300, height: int = 6) -> tuple[hl.ImageParam, list[hl.Func]]:
    """total() = sum of an image (two RVars); rows(y) = 2 * sum of row y: long reductions over small
    pure domains, the case rfactor is for."""
    img = hl.ImageParam(hl.Float(32), 2, "img")
    y = hl.Var("y")
    r = hl.RDom([(0, width), (0, height)], "r")     # named: the source is the same text on every build
    q = hl.RDom([(0, width)], "q")
    total, rows = hl.Func("total"), hl.Func("rows")
    total[()] = hl.f32(0)
    total[()] += img[r.x, r.y]
    rows[y] = hl.f32(0)
    rows[y] += img[q.x, y] * 2
    img.dim(0).set_estimate(0, width)
    img.dim(1).set_estimate(0, height)
    total.set_estimates([])
    rows.set_estimates([(0, height)])
    return img, [total, rows]


def root_outputs(spec: Any, sizes: dict[str, int], inputs: Any, target: Any) -> list[Any]:
    """The compute_root-everything outputs of workload ``spec`` at ``sizes``: the reference every
    schedule is compared with."""
    built = spec.build(**sizes)
    p = built.pipeline()
    apply_source(root_source(p), p)
    return halide_pipelines.realize(built, inputs, target, pipeline=p)


def check_against_root(name: str, state: Any, sizes_list: Any, target: str = "x86-64-linux-sse41") -> None:
    """``state``'s schedule of bundled workload ``name`` equals the compute_root output at each of
    ``sizes_list`` (within the workload's tolerance)."""
    import numpy as np
    from autoscheduler.apply import schedule_source
    spec = halide_pipelines.get(name)
    src = schedule_source(state)
    for sizes in sizes_list:
        sizes = spec.sizes(**sizes)
        built = spec.build(**sizes)
        p = built.pipeline()
        apply_source(src, p)
        inputs = spec.make_inputs(0, **sizes)
        got = halide_pipelines.realize(built, inputs, hl.Target(target), pipeline=p)
        want = root_outputs(spec, sizes, inputs, hl.Target(target))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=max(spec.rtol, 1e-5), atol=max(spec.atol, 1e-6))


def featurized_twice(name: str, target: str, seeds: Any, cache_dir: Any) -> tuple[list[Any], list[Any], Any, Any]:
    """Random states (``seeds``) of bundled workload ``name`` at its test sizes, as measured samples
    (made-up times), featurized into a fresh cache and again from it: (states, samples, first,
    again), for tests of what the data set carries through its feature cache."""
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.state import random_state
    from cost_model.dataset import FeatureCache, Sample, featurize_group
    spec = halide_pipelines.get(name)
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    states = [random_state(dag, target, k, parallelism=2) for k in seeds]
    samples = [Sample(name, dict(spec.test_sizes), f"h-{name}", target, "dev", 2,
                      [d.to_dict() for d in st.decisions], 1e-3 * (k + 1), "OK") for k, st in enumerate(states)]
    cache = FeatureCache(cache_dir)
    return states, samples, featurize_group(samples, cache), featurize_group(samples, cache)

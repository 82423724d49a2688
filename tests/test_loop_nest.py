"""The lesson's loop nest, captured from Halide's C++ stderr, equals the shared fixture."""

from __future__ import annotations

import numpy as np

import halide_pipelines
from halide_pipelines import lesson
from autoscheduler.loop_nest import loop_nest
from autoscheduler.schedules import apply_source, root_source


def test_index_sum_loop_nest_matches_fixture(shared_fixtures):
    spec = halide_pipelines.get("index_sum")
    built = spec.build()
    lesson.hand_schedule(built)
    text = loop_nest(built.pipeline())
    assert text == (shared_fixtures / "index_sum_loop_nest.txt").read_text()


def test_index_sum_hand_schedule_output_matches_reference():
    spec = halide_pipelines.get("index_sum")
    built = spec.build()
    lesson.hand_schedule(built)
    out = halide_pipelines.realize(built, {})
    np.testing.assert_array_equal(out[0], spec.reference({})[0])


def test_root_schedule_loop_nest_has_every_stage():
    spec = halide_pipelines.get("conv_layer")
    built = spec.build(**spec.test_sizes)
    p = built.pipeline()
    apply_source(root_source(p), p)
    text = loop_nest(p)
    assert "produce conv" in text and "produce relu" in text
    # compute_root: the producer is realized before, not inside, the consumer's loops
    assert text.index("produce conv") < text.index("consume conv") < text.index("produce relu")


def test_root_source_skips_input_wrappers_of_rebuilt_pipelines():
    from autoscheduler.schedules import pipeline_funcs, schedulable_indices
    spec = halide_pipelines.get("conv_layer")
    for _ in range(2):  # the second build's wrappers are named input_im$1 ...
        p = spec.build(**spec.test_sizes).pipeline()
        funcs = pipeline_funcs(p)
        touched = {funcs[i].name().split("$")[0] for i in schedulable_indices(p)}
        assert not any(n.endswith("_im") for n in touched), touched

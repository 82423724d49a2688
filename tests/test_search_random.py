"""The search on 30 random pipelines: every schedule it returns compiles and reproduces the
compute_root-everything output at the sizes it was searched for (the estimates), at odd sizes and
at sizes smaller than its tiles (issue #7's "done when"). Searches run in two worker processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import halide_pipelines
from workload_pool import WorkloadPool

SEEDS = list(range(30))
SEARCH = dict(beam_size=4, passes=1, time_budget_s=20.0)


def _other_sizes(sizes: dict[str, int]) -> list[dict[str, int]]:
    """Odd sizes around two thirds of the estimates, and sizes of a few points (smaller than a tile)."""
    odd = {k: (max(3, v * 2 // 3) | 1) if k in ("width", "height") else v for k, v in sizes.items()}
    tiny = {k: (5 if k == "width" else 3) if k in ("width", "height") else v for k, v in sizes.items()}
    return [odd, tiny]


def check_seed(name: str) -> dict[str, Any]:
    """Runs in a worker: search ``name`` at its test sizes, then check the schedule at three sizes."""
    from autoscheduler.api import autoschedule
    from autoscheduler.schedules import apply_source, root_source
    spec = halide_pipelines.get(name)
    est = spec.sizes(**spec.test_sizes)
    problems: list[str] = []
    try:
        sched = autoschedule(spec.build(**est).outputs, **SEARCH)
        source = sched.source()
    except Exception as e:
        return {"problems": [f"{name}: search failed: {type(e).__name__}: {str(e)[:300]}"]}
    for k, sizes in enumerate([est] + _other_sizes(est)):
        try:    # the reference first: a pipeline that cannot run at these sizes says nothing of the schedule
            inputs = spec.make_inputs(0, **sizes)
            ref_built = spec.build(**sizes)
            rp = ref_built.pipeline()
            apply_source(root_source(rp), rp)
            want = halide_pipelines.realize(ref_built, inputs, pipeline=rp)
        except Exception as e:
            if k == 0:
                problems.append(f"{name}: compute_root fails at the estimates: {type(e).__name__}: {str(e)[:300]}")
            continue
        try:
            built = spec.build(**sizes)
            p = built.pipeline()
            apply_source(source, p)
            got = halide_pipelines.realize(built, inputs, pipeline=p)
            for g, w in zip(got, want):
                if not np.allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                   rtol=max(spec.rtol, 1e-5), atol=max(spec.atol, 1e-6), equal_nan=True):
                    problems.append(f"{name} at {sizes}: differs from compute_root by up to "
                                    f"{np.nanmax(np.abs(np.asarray(g, np.float64) - w)):.3g}")
        except Exception as e:
            problems.append(f"{name} at {sizes}: {type(e).__name__}: {str(e).strip()[:300]}")
    return {"problems": problems, "source": source}


@pytest.fixture(scope="module")
def runs():
    pool = WorkloadPool(check_seed, [f"random_{s}" for s in SEEDS], lambda n: (), lambda n: 0)
    yield pool
    pool.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_searched_schedule_of_a_random_pipeline_is_correct_at_any_size(seed, runs):
    result = runs.result(f"random_{seed}")
    assert not result["problems"], "\n".join(result["problems"])

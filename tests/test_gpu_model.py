"""The learned GPU cost model (cost_model.gpu_model): the roofline it starts from, what fitting
learns, its weights files, and its use by the search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import halide_pipelines
from autoscheduler.api import autoschedule, gpu_cost
from autoscheduler.dag import FunctionDAG
from autoscheduler.errors import ToolkitError, WeightsError
from autoscheduler.features.gpu import GpuAnalyticCost
from autoscheduler.state import State, random_state
from cost_model.gpu_model import (SHIPPED_GPU_WEIGHTS, GpuModelCost, GpuNet, GpuTrainOptions, evaluate_gpu,
                                  gpu_pipeline_data, load_gpu_model, predict_gpu, save_gpu_model, train_gpu)

TARGET = "host-cuda-cuda_capability_80"


def _states(name: str, n: int, seed: int = 0) -> tuple[State, list[State]]:
    spec = halide_pipelines.get(name)
    dag = FunctionDAG.from_pipeline(spec.build(**spec.sizes(**spec.test_sizes)).pipeline())
    initial = State.initial(dag, TARGET, None)
    rng = random.Random(seed)
    out: dict[tuple, State] = {}
    for _ in range(4 * n):
        st = random_state(dag, initial.space.target, rng, initial.space.parallelism)
        out.setdefault(st.decisions, st)
        if len(out) == n:
            break
    return initial, list(out.values())


def test_an_untrained_gpunet_is_the_roofline() -> None:
    initial, states = _states("conv_layer", 12)
    roof = GpuAnalyticCost(initial.space.parallelism).predict(states)
    net = GpuModelCost(GpuNet(hidden=8), initial.space.parallelism).predict(states)
    assert np.allclose(net, roof, rtol=1e-5)
    assert np.ptp(roof) > 0   # the states differ, so the check means something


def test_fitting_recovers_a_miscalibrated_roofline() -> None:
    """Times made by the roofline with kernel launches 10x dearer than modelled: the roofline
    misorders them, the fitted term scales order them (nearly) all and price launches up."""
    initial, states = _states("blur", 40)
    data = gpu_pipeline_data(initial.space, "blur", "k", [[d.to_dict() for d in s.decisions] for s in states],
                             np.ones(len(states)))
    assert data is not None and data.num_schedules == len(states)
    scale = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 10.0])
    data.runtimes_ms = GpuAnalyticCost.combine_terms(data.terms * scale).sum(-1)
    before = evaluate_gpu(None, [data]).means["pairwise"]
    model, _ = train_gpu([data], (), GpuTrainOptions(hidden=0, epochs=300, lr=3e-2, weight_decay=0.0, patience=100))
    after = evaluate_gpu(model, [data]).means["pairwise"]
    assert before < 0.9 and after > 0.95, (before, after)
    s = model.log_scales.detach().exp()
    assert float(s[5] / s[0]) > 3.0 and float(s[5] / s[4]) > 3.0  # launches dearer relative to work


def test_weights_round_trip_and_errors_name_the_file(tmp_path: Path) -> None:
    initial, states = _states("blur", 8)
    torch.manual_seed(0)
    model = GpuNet(hidden=4)
    with torch.no_grad():
        model.log_scales.copy_(torch.tensor([0.1, 0.5, -0.2, 0.0, 0.3, -1.0]))
    path = tmp_path / "g.pt"
    save_gpu_model(model, path, gpu="NVIDIA H200", data_size=8, pipelines=1, metrics={"cv_pairwise": 0.8},
                   command="test")
    again = load_gpu_model(path)
    data = gpu_pipeline_data(initial.space, "blur", "k", [[d.to_dict() for d in s.decisions] for s in states],
                             np.arange(1, len(states) + 1, dtype=float))
    assert data is not None
    assert np.allclose(predict_gpu(model, data), predict_gpu(again, data))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["machine"] == "NVIDIA H200" and meta["extra"]["gpu_feature_version"]
    with pytest.raises(WeightsError, match="no such GPU weights"):
        load_gpu_model(tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="not a GPU cost model"):
        load_gpu_model(Path(__file__).resolve().parent.parent / "cost_model" / "weights" / "ours.pt")
    meta["extra"]["gpu_feature_version"] = "000000000000"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="GPU feature version") as info:
        load_gpu_model(path)
    assert "\n" not in str(info.value) and "g.pt" in str(info.value)


def test_the_shipped_gpu_weights_load_and_search_legal_cuda_schedules() -> None:
    model = load_gpu_model(SHIPPED_GPU_WEIGHTS)
    meta = json.loads(SHIPPED_GPU_WEIGHTS.with_suffix(".json").read_text())
    assert "H200" in meta["machine"] and meta["data_size"] >= 600 and meta["extra"]["pipelines"] >= 60
    assert isinstance(gpu_cost(str(SHIPPED_GPU_WEIGHTS), 132), GpuModelCost) and model.hidden == 8
    spec = halide_pipelines.get("blur")
    sched = autoschedule(spec.build(**spec.test_sizes).outputs, "host-cuda", weights=str(SHIPPED_GPU_WEIGHTS),
                         beam_size=4, passes=1)
    assert sched.state.is_complete and ".gpu_blocks(" in sched.source()
    with pytest.raises(ToolkitError, match="CUDA targets take GPU weights"):
        gpu_cost("baseline.weights", 132)


def test_tune_on_cuda_searches_with_the_gpu_weights_it_is_given(tmp_path: Path) -> None:
    from dataclasses import replace

    from autoscheduler.measure import cuda_available
    from autoscheduler.tune import TuneOptions, tune
    if cuda_available():
        pytest.skip("this machine has a GPU: tune would measure (test_tune.py::test_tune_cuda_on_the_gpu)")
    opts = replace(TuneOptions(), beam_size=4, passes=1, batch=3, rounds=1, progress=False,
                   weights=str(SHIPPED_GPU_WEIGHTS))
    r = tune("blur", "host-cuda", db=tmp_path / "t.sqlite", small=True, options=opts)
    assert r.not_measured and r.start_weights == str(SHIPPED_GPU_WEIGHTS)
    assert r.best_source is not None and ".gpu_blocks(" in r.best_source
    with pytest.raises(ToolkitError, match="not a GPU cost model"):
        tune("blur", "host-cuda", db=tmp_path / "t.sqlite", small=True,
             options=replace(opts, weights=str(SHIPPED_GPU_WEIGHTS.with_name("ours.pt"))))

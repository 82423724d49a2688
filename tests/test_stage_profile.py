"""Per-stage profiles of measured schedules (``autoscheduler.stage_profile``) and the cost model's
per-stage loss that trains on them (``cost_model.train.stage_share_loss``)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

import halide_pipelines
from autoscheduler import cli
from autoscheduler.dag import FunctionDAG
from autoscheduler.stage_profile import (StageProfile, _profile_one, charge_groups, parse_reports,
                                         profile_samples, read_profiles, runs_for)
from autoscheduler.state import Place, State
from cost_model.dataset import PipelineData, Sample, attach_profiles
from cost_model.our_net import OurNet, OurNetConfig
from cost_model.train import TrainOptions, batch_loss, stage_share_loss, stage_share_metrics, train

AVX2 = "x86-64-linux-avx-avx2-f16c-fma-sse41"
SIZES = {"width": 512, "height": 512}

REPORT = """blur_y
 total time: 10.000000 ms  samples: 10  runs: 1  time per run: 10.000000 ms
 average threads used: 1.900000
 heap allocations: 2  peak heap usage: 100 bytes
    waiting for parallel tasks to finish:      1.000ms (10.0%)   threads: 1.000
    halide_malloc:                             0.000ms ( 0.0%)   threads: 0.000
    blur_x:                                    6.000ms (60.0%)   threads: 2.000  peak: 10 num: 1 avg: 10
    blur_y:                                    3.000ms (30.0%)   threads: 2.000
blur_y
 total time: 20.000000 ms  samples: 20  runs: 1  time per run: 20.000000 ms
    blur_x:                                    8.000ms (40.0%)   threads: 2.000
    blur_y:                                   12.000ms (60.0%)   threads: 2.000
"""


def test_reports_are_summed_over_runs_and_overheads_kept_apart():
    runs, samples, total, per_func, overhead = parse_reports(REPORT)
    assert (runs, samples, total) == (2, 30, 30.0)
    assert per_func == {"blur_x": 14.0, "blur_y": 15.0}
    assert overhead == 1.0


def test_runs_cover_the_sampled_time_within_bounds():
    assert runs_for(1.0, 300.0, 200) == 200       # capped
    assert runs_for(100.0, 300.0, 200) == 3       # at least 3
    assert runs_for(10.0, 300.0, 200) == 30
    assert runs_for(float("nan"), 300.0, 200) == 3


def _blur_state(blur_x_where: str) -> State:
    spec = halide_pipelines.get("blur")
    dag = FunctionDAG.from_pipeline(spec.build(**SIZES).pipeline())
    state = State.initial(dag, AVX2, parallelism=2)
    bx = next(n.index for n in dag.nodes if n.name.split("$")[0] == "blur_x")
    while not state.is_complete:
        opts = state.options()
        pick = next((o for o in opts if o == Place(bx, blur_x_where)), opts[0])
        state = state.apply(pick)
    return state


def test_inlined_funcs_are_charged_to_their_consumer():
    inl = _blur_state("inline")
    groups, stage_group = charge_groups(inl)
    names = [[n.split("$")[0] for n in g] for g in groups]
    blur_group = next(g for g, ns in enumerate(names) if "blur_y" in ns)
    assert "blur_x" in names[blur_group]
    order = inl.space.dag.featurization_order()
    assert len(stage_group) == len(order)
    for st, g in zip(order, stage_group):
        if st.node.name.split("$")[0] in ("blur_x", "blur_y"):
            assert g == blur_group
    root = _blur_state("root")
    groups, _ = charge_groups(root)
    assert not any({"blur_x", "blur_y"} <= {n.split("$")[0] for n in g} for g in groups)


def test_a_profile_splits_the_time_between_root_funcs():
    root = _blur_state("root")
    trace = [d.to_dict() for d in root.decisions]
    parts = _profile_one("blur", SIZES, AVX2, trace, runtime_ms=0.5, sampled_ms=150.0, max_runs=400)
    assert parts["runs"] >= 3 and parts["samples"] > 0
    names = [[n.split("$")[0] for n in g] for g in parts["groups"]]
    ms = dict(zip(map(tuple, names), parts["group_ms"]))
    bx = next(v for k, v in ms.items() if "blur_x" in k)
    by = next(v for k, v in ms.items() if "blur_y" in k)
    assert bx > 0 and by > 0                       # both root Funcs did work the sampler saw
    assert sum(parts["group_ms"]) <= parts["total_ms"] * 1.01


def test_profile_command_appends_resumes_and_reads_back(tmp_path, capsys):
    inl, root = _blur_state("inline"), _blur_state("root")
    db = tmp_path / "s.jsonl.gz"
    samples = [Sample("blur", SIZES, "h0", AVX2, "dev", 2, [d.to_dict() for d in st.decisions], 1e-5, "OK")
               for st in (inl, root)]
    with gzip.open(db, "wt") as fh:
        fh.write(json.dumps({"format": "halide-toolkit-samples", "version": 1, "count": 2}) + "\n")
        for s in samples:
            fh.write(json.dumps(s.to_export()) + "\n")
    out = tmp_path / "p.jsonl.gz"
    assert cli.main(["profile", "--db", str(db), "--out", str(out), "--sampled-ms", "20", "--quiet"]) == 0
    got = read_profiles(out)
    assert set(got) == {("h0", s.trace_hash()) for s in samples}
    counts = profile_samples(samples, out, sampled_ms=20.0)           # everything is there already
    assert counts["profiled"] == 0 and counts["skipped"] == 2
    with gzip.open(out, "at") as fh:                                   # an interrupted append
        fh.write('{"pipeline": "blur", "trunc')
    assert set(read_profiles(out)) == set(got)
    assert cli.main(["profile", "--db", str(db), "--out", str(out), "--shard", "2/2"]) == 2
    # evaluate reports how well a model splits these schedules' time between their stages (with
    # enough samples, and each profile's time as the measured one, so that none is left out)
    out2 = tmp_path / "p2.jsonl.gz"
    assert cli.main(["profile", "--db", str(db), "--out", str(out2), "--sampled-ms", "400", "--max-runs", "4000",
                     "--quiet"]) == 0
    timed = read_profiles(out2)
    with gzip.open(db, "wt") as fh:
        fh.write(json.dumps({"format": "halide-toolkit-samples", "version": 1, "count": 2}) + "\n")
        for s in samples:
            t = timed[("h0", s.trace_hash())]
            assert t.samples >= 50
            fh.write(json.dumps({**s.to_export(), "runtime_s": t.total_ms / 1e3}) + "\n")
    out = out2
    capsys.readouterr()
    assert cli.main(["evaluate", "--db", str(db), "--profiles", str(out), "--split", "all", "--quiet",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    text = capsys.readouterr().out
    assert "per-stage profiles: 2 schedule(s) of the 'all' pipelines" in text and "stage shares (2 profiled" in text


def _data(b: int = 6, s: int = 3, seed: int = 0) -> PipelineData:
    rng = np.random.default_rng(seed)
    pipe = np.abs(rng.normal(size=(s, 40, 7))).astype(np.float32)
    sched = np.abs(rng.normal(size=(b, s, 39))).astype(np.float32) * 10 + 1
    runtimes = np.exp(rng.normal(size=b))
    return PipelineData(f"random_{seed}", {}, f"h{seed}", "host", "dev", 2, pipe, sched, runtimes,
                        [f"t{i}" for i in range(b)])


def _profile(p: PipelineData, i: int, groups: list[int], ms: list[float], samples: int = 100) -> StageProfile:
    return StageProfile(p.name, p.pipeline_hash, p.trace_hashes[i], "host", 2, 10, samples, float(p.runtimes_ms[i]),
                        [[f"f{g}"] for g in range(len(ms))], ms, groups)


def test_share_loss_is_zero_where_the_prediction_matches_and_skips_unprofiled_rows():
    costs = torch.tensor([[1.0, 3.0, 4.0], [2.0, 2.0, 2.0]], requires_grad=True)
    groups = np.array([[0, 1, 1], [0, 1, 2]])
    exact = np.array([[0.125, 0.875, 0.0], [np.nan, np.nan, np.nan]], dtype=np.float32)
    assert float(stage_share_loss(costs, groups, exact).detach()) == pytest.approx(0.0, abs=1e-6)
    wrong = np.array([[0.875, 0.125, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype=np.float32)
    loss = stage_share_loss(costs, groups, wrong)
    assert float(loss.detach()) > 0.1
    loss.backward()
    assert costs.grad is not None and float(costs.grad[0, 0]) < 0   # more cost where the profile saw it
    none = np.full((2, 3), np.nan, dtype=np.float32)
    assert stage_share_loss(costs, groups, none) is None


def test_profiles_attach_by_trace_and_coarse_slowed_or_mismatched_ones_are_left_out():
    p = _data()
    profiles = {(p.pipeline_hash, p.trace_hashes[0]): _profile(p, 0, [0, 1, 1], [1.0, 3.0]),
                (p.pipeline_hash, p.trace_hashes[1]): _profile(p, 1, [0, 1, 1], [1.0, 3.0], samples=5),
                (p.pipeline_hash, p.trace_hashes[2]): _profile(p, 2, [0, 1], [1.0, 3.0])}
    slowed = _profile(p, 3, [0, 1, 1], [1.0, 3.0])
    slowed.total_ms = 3.0 * float(p.runtimes_ms[3])            # profiled on shared cores
    profiles[(p.pipeline_hash, p.trace_hashes[3])] = slowed
    assert attach_profiles([p], profiles) == 1
    assert p.group_share is not None and p.stage_group is not None
    assert np.allclose(p.group_share[0], [0.25, 0.75])
    assert np.isnan(p.group_share[1:]).all()
    sub = p.subset([0, 3])
    assert sub.group_share is not None and sub.group_share.shape == (2, 2)


def test_training_with_the_stage_loss_puts_time_where_the_profile_saw_it():
    """Totals alone cannot tell which stage is costly; profiles can. Synthetic truth: a stage's
    share of the time is proportional to its points computed (schedule feature 4), spread over two
    orders of magnitude. Trained on the stage loss, the network puts the time there on pipelines it
    never saw; trained on the totals only (random here), it does not learn it."""
    def make(seed: int) -> PipelineData:
        p = _data(b=8, s=4, seed=seed)
        rng = np.random.default_rng(100 + seed)
        p.schedule[:, :, 4] = np.exp(rng.uniform(0, 5, size=p.schedule.shape[:2])).astype(np.float32)
        attach_profiles([p], {(p.pipeline_hash, h): _profile(p, i, [0, 1, 2, 3], list(map(float, p.schedule[i, :, 4])))
                              for i, h in enumerate(p.trace_hashes)})
        return p
    train_set, held = [make(k) for k in range(12)], [make(k) for k in range(20, 24)]
    with_stage = TrainOptions(epochs=100, patience=100, stage_weight=1.0, lr=3e-3)
    totals_only = TrainOptions(epochs=100, patience=100, stage_weight=0.0, lr=3e-3)

    def stage_loss(model: OurNet) -> float:
        with torch.no_grad():
            return float(np.mean([batch_loss(model, p, with_stage)[1]["stage"] for p in held]))

    def fresh() -> OurNet:
        return OurNet(OurNetConfig(hidden=16, pipeline_dim=8), generator=torch.Generator().manual_seed(0))
    model, control = fresh(), fresh()
    before = stage_loss(model)
    train(model, train_set, [], with_stage)
    train(control, train_set, [], totals_only)
    assert stage_loss(model) < 0.25 * before
    assert stage_loss(model) < 0.25 * stage_loss(control)


class _Fixed(torch.nn.Module):
    """A model whose stage costs are the batch's ``stage_factors`` (each stage 1 ms times them)."""

    def forward_detailed(self, pipe, sched, cores):
        class Out:
            stage_costs = torch.ones(sched.shape[0], sched.shape[1])
        return Out()


def test_stage_share_metrics_score_where_the_model_puts_the_time():
    p = _data(b=3, s=3)
    attach_profiles([p], {(p.pipeline_hash, p.trace_hashes[i]): _profile(p, i, [0, 1, 1], [6.0, 2.0])
                          for i in range(2)})
    p.stage_factors = np.array([[6.0, 1.0, 1.0], [1.0, 3.0, 4.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    m = stage_share_metrics(_Fixed(), [p])
    assert m["n"] == 2                                  # the third schedule has no profile
    assert m["bottleneck"] == 0.5                       # right on the first, wrong on the second
    exact = float(np.log(0.75 / 0.75) * 0.75 + np.log(0.25 / 0.25) * 0.25)
    wrong = float(0.75 * np.log(0.75 / 0.125) + 0.25 * np.log(0.25 / 0.875))
    assert m["stage_kl"] == pytest.approx((exact + wrong) / 2, rel=1e-4)

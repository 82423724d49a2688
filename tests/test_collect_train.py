"""Training-data collection, data sets, cost-model training, metrics and the collect/train/evaluate CLI.

One module fixture collects 2 small random pipelines and a bundled workload (4 schedules each, short
timing) into a temporary database with the real measurement layer; the other tests read it. Training
tests use a synthetic data set whose runtimes are a known function of the features, so that "training
helps" is checked against the truth on pipelines the model never saw.
"""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
import struct

import numpy as np
import pytest
import torch

from autoscheduler import cli
from autoscheduler.collect import CollectOptions, ModelCost, collect, generate_states, is_searched
from autoscheduler.errors import WeightsError
from autoscheduler.measure import MeasureOptions
from autoscheduler.records import Records
from cost_model import AdamsNet
from cost_model.dataset import (PipelineData, Sample, featurize_group, load_dataset, read_sample_sets,
                                read_samples, split_pipelines, write_export)
from cost_model.features_layout import parse_featurization
from cost_model.metrics import (kendall_tau, pairwise_accuracy, pairwise_counts, pipeline_metrics,
                                summarize, top_k_regret)
from cost_model.our_net import OurNet, OurNetConfig
from cost_model.train import (TrainOptions, dataset_loss, evaluate, finetune, load_model, make_model,
                              predict, save_model, train)
from shared_pipelines import fake_pipeline_data

SEEDS = (38, 39)          # random pipelines with few stages: quick to build
K = 4
TIMING = ["--n-samples", "2", "--min-sample-s", "0.002", "--build-timeout", "30", "--run-timeout", "5",
          "--threads", "2", "--quiet"]
FAST = MeasureOptions(n_samples=2, min_sample_s=0.002, warmup=1, num_threads=2, build_timeout_s=30.0,
                      run_timeout_s=5.0, reference_timeout_s=60.0, max_consecutive_errors=0, progress=False)


def _options(**kw: object) -> CollectOptions:
    base: dict[str, object] = dict(pipelines=len(SEEDS), schedules_per_pipeline=K, seed_start=SEEDS[0],
                                   names=("blur",), small=True, measure=FAST)
    base.update(kw)
    return CollectOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    d = tmp_path_factory.mktemp("collect")
    db = d / "samples.sqlite"
    rc = cli.main(["collect", "--pipelines", str(len(SEEDS)), "--seed-start", str(SEEDS[0]), "--names", "blur",
                   "--schedules-per-pipeline", str(K), "--small", "--db", str(db)] + TIMING)
    assert rc == 0
    return d, db


# ---------------------------------------------------------------------------------------- collect

def test_collect_stores_every_measurement_reproducibly(collected):
    _, db = collected
    with Records(db, readonly=True) as r:
        rows = r.all()
    names = [f"random_{s}" for s in SEEDS] + ["blur"]
    assert sorted({x.pipeline_name for x in rows}) == sorted(names)
    for name in names:
        mine = [x for x in rows if x.pipeline_name == name]
        assert len(mine) == K, name                       # K distinct states, each measured once
        assert len({x.trace_hash for x in mine}) == K
        assert len({x.pipeline_hash for x in mine}) == 1
        import halide_pipelines
        spec = halide_pipelines.get(name)
        assert mine[0].sizes == spec.sizes(**spec.test_sizes)
    for x in rows:
        assert x.trace and x.trace[0]["kind"] == "place"   # a replayable decision trace
        assert x.num_threads == 2 and x.target not in ("", "host")   # the resolved target string
        assert x.predicted_cost is not None and math.isfinite(x.predicted_cost)
        if x.ok:
            assert x.statistic is not None and x.statistic == min(x.samples) > 0
    assert sum(x.ok for x in rows) >= len(rows) - 2   # random schedules may time out; most measure


def test_resume_skips_measured_and_fills_gaps(collected):
    _, db = collected
    report = collect(_options(), db)
    assert report.measured == 0 and report.skipped == K * (len(SEEDS) + 1)
    # a run killed before its last measurement was committed: that one (only) is measured again
    with Records(db, readonly=True) as r:
        victim = [x for x in r.all() if x.pipeline_name == f"random_{SEEDS[1]}"][-1]
    con = sqlite3.connect(db)
    con.execute("DELETE FROM measurements WHERE id = ?", (victim.id,))
    con.commit()
    con.close()
    report = collect(_options(names=()), db)
    assert report.measured == 1 and report.skipped == K * len(SEEDS) - 1
    with Records(db, readonly=True) as r:
        again = [x for x in r.all() if x.trace_hash == victim.trace_hash]
    assert len(again) == 1 and again[0].schedule_source == victim.schedule_source


def test_remeasure_measures_the_same_schedules_again_and_resumes(collected, tmp_path, capsys):
    _, db = collected
    name = f"random_{SEEDS[0]}"
    with Records(db, readonly=True) as r:
        old = {x.trace_hash: x for x in r.all() if x.pipeline_name == name and x.ok}
    again = tmp_path / "again.sqlite"
    report = collect(_options(pipelines=0, names=(name,), remeasure=str(db)), again)
    assert [p.name for p in report.pipelines] == [name] and report.measured == len(old) >= 2
    with Records(again, readonly=True) as r:
        new = {x.trace_hash: x for x in r.all()}
    assert set(new) == set(old)                  # the same schedules, nothing drawn anew
    for h, x in new.items():
        assert x.sizes == old[h].sizes and x.pipeline_hash == old[h].pipeline_hash
        assert x.schedule_source == old[h].schedule_source and x.ok
    report = collect(_options(pipelines=0, names=(name,), remeasure=str(db)), again)
    assert report.measured == 0 and report.skipped == len(old)
    assert cli.main(["collect", "--remeasure", str(again), "--db", str(again)]) == 2
    assert "is the database being written" in capsys.readouterr().err
    assert cli.main(["collect", "--remeasure", str(tmp_path / "nope.jsonl.gz"), "--db", str(again)]) == 2
    assert "no such data set" in capsys.readouterr().err


def test_generation_is_deterministic_and_mixes_search_and_random():
    import halide_pipelines
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.state import State
    assert [is_searched(i, 0.5) for i in range(6)] == [True, False, True, False, True, False]
    assert sum(is_searched(i, 0.25) for i in range(8)) == 2 and is_searched(0, 0.25)
    spec = halide_pipelines.get(f"random_{SEEDS[1]}")
    sizes = spec.sizes(**spec.test_sizes)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    cost = ModelCost(None, 2)
    opts = _options()
    a = generate_states("random_x", State.initial(dag, "host", 2), 6, cost, opts)
    b = generate_states("random_x", State.initial(dag, "host", 2), 6, cost, opts)
    assert [s.decisions for s, _, _ in a] == [s.decisions for s, _, _ in b]
    assert len({s.decisions for s, _, _ in a}) == len(a) >= 5
    assert [o.startswith("beam") for _, _, o in a][:2] == [True, False]
    assert all(s.is_complete and math.isfinite(c or math.nan) for s, c, _ in a)


# ---------------------------------------------------------------------------------------- dataset

def test_dataset_features_match_the_search_and_are_cached(collected, monkeypatch):
    d, db = collected
    data = load_dataset(db, cache_dir=d / "cache")
    assert sorted(p.name for p in data.pipelines) == sorted([f"random_{s}" for s in SEEDS] + ["blur"])
    with Records(db, readonly=True) as r:
        rows = {x.trace_hash: x for x in r.all() if x.ok}
    import halide_pipelines
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.features import network_inputs
    from autoscheduler.state import State
    for p in data.pipelines:
        assert p.schedule.shape == (p.num_schedules, p.pipeline.shape[0], 39)
        assert p.pipeline.shape[1:] == (40, 7) and p.num_cores == 2
        # the same numbers the search computes for the recorded states
        spec = halide_pipelines.get(p.name)
        dag = FunctionDAG.from_pipeline(spec.build(**p.sizes).pipeline())
        states = [State.from_trace(dag, rows[h].trace or [], p.target, 2) for h in p.trace_hashes]
        inputs = network_inputs(states)
        np.testing.assert_array_equal(inputs.schedule.numpy(), p.schedule)
        np.testing.assert_array_equal(inputs.pipeline.numpy(), p.pipeline)
        np.testing.assert_allclose(p.runtimes_ms, np.array([rows[h].statistic for h in p.trace_hashes],
                                                           dtype=np.float64) * 1e3)
    # second load: everything from the cache, nothing rebuilt
    import cost_model.dataset as ds

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("rebuilt a cached pipeline")
    monkeypatch.setattr(ds, "rebuild", boom)
    again = load_dataset(db, cache_dir=d / "cache")
    for x, y in zip(data.pipelines, again.pipelines):
        np.testing.assert_array_equal(x.schedule, y.schedule)


def test_exports_round_trip(collected, tmp_path):
    _, db = collected
    out = tmp_path / "samples.jsonl.gz"
    assert cli.main(["collect", "--db", str(db), "--export", str(out), "--export-halide",
                     str(tmp_path / "halide"), "--cache-dir", str(tmp_path / "c")]) == 0
    with gzip.open(out, "rt") as fh:
        header = json.loads(fh.readline())
    with Records(db, readonly=True) as r:
        n_records = len(r)
    assert header["count"] == n_records
    a = load_dataset(out, cache_dir=None)
    b = load_dataset(db, cache_dir=None)
    assert [p.key for p in a.pipelines] == [p.key for p in b.pipelines]
    for x, y in zip(a.pipelines, b.pipelines):
        np.testing.assert_array_equal(x.schedule, y.schedule)
        np.testing.assert_array_equal(x.runtimes_ms, y.runtimes_ms)
    # Halide .sample files: featurization records + float32 ms + int32 pipeline id + int32 schedule id
    files = sorted((tmp_path / "halide").glob("*.sample"))
    assert len(files) == b.num_schedules
    for f in files:
        blob = f.read_bytes()
        runtime, pid, sid = struct.unpack("<fii", blob[-12:])
        p = b.pipelines[pid]
        feat = parse_featurization(blob[:-12])
        np.testing.assert_array_equal(feat.schedule, p.schedule[sid])
        np.testing.assert_array_equal(feat.pipeline, p.pipeline)
        assert runtime == pytest.approx(p.runtimes_ms[sid], rel=1e-6)


def test_a_later_sample_set_replaces_the_labels_of_the_pipelines_it_holds(collected, tmp_path, capsys):
    """Re-measured pipelines (a second export) take all their samples from it; the others stay."""
    import dataclasses
    _, db = collected
    old = read_samples(db)
    keys = sorted({s.group_key for s in old})
    assert len(keys) >= 2
    redo = [dataclasses.replace(s, runtime_s=2 * s.runtime_s) for s in old if s.group_key == keys[0]][:2]
    later = tmp_path / "remeasured.jsonl.gz"
    write_export(redo, later)
    both = read_sample_sets([db, later])
    assert sorted(s.runtime_s for s in both if s.group_key == keys[0]) == sorted(s.runtime_s for s in redo)
    assert [s for s in both if s.group_key != keys[0]] == [s for s in old if s.group_key != keys[0]]
    capsys.readouterr()
    assert cli.main(["evaluate", "--db", str(db), "--db", str(later), "--split", "all",
                     "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    assert f"from {db} + {later}" in capsys.readouterr().out


_fake = fake_pipeline_data


def test_split_is_by_whole_pipeline_and_stable():
    ps = [_fake(f"random_{i}", i) for i in range(200)] + [_fake("blur", 999)]
    s = split_pipelines(ps, 0.1, 0.1)
    keys = [[p.pipeline_hash for p in part] for part in (s.train, s.val, s.test)]
    assert sum(map(len, keys)) == len(ps) and len(set(sum(keys, []))) == len(ps)
    assert any(p.name == "blur" for p in s.test)            # bundled workloads are held out
    assert 5 <= len(s.val) <= 40 and 5 <= len(s.test) <= 40
    more = split_pipelines(ps + [_fake(f"random_{i}", i) for i in range(200, 400)], 0.1, 0.1)
    role = {p.pipeline_hash: r for r, part in (("train", more.train), ("val", more.val), ("test", more.test))
            for p in part}
    assert all(role[p.pipeline_hash] == "train" for p in s.train)   # adding data moves nothing
    assert all(role[p.pipeline_hash] == "test" for p in s.test)
    tiny = split_pipelines([_fake(f"random_{i}", i) for i in range(3)], 0.1, 0.1)
    assert (len(tiny.train), len(tiny.val), len(tiny.test)) == (1, 1, 1)


def test_duplicate_traces_keep_the_fastest_measurement(collected):
    d, db = collected
    ok = [x for x in read_samples(db) if x.pipeline == f"random_{SEEDS[0]}"]
    assert ok
    slow = ok[0]
    assert slow.runtime_s is not None
    fast = Sample(slow.pipeline, slow.sizes, slow.pipeline_hash, slow.target, slow.device, slow.num_threads,
                  slow.trace, slow.runtime_s / 2, "OK")
    failed = Sample(slow.pipeline, slow.sizes, slow.pipeline_hash, slow.target, slow.device,
                    slow.num_threads, slow.trace, None, "RUN_TIMEOUT")
    stats: dict[str, int] = {}
    data = featurize_group(ok + [fast, failed], None, stats)
    assert data is not None and stats.get("duplicate") == 1
    assert data.num_schedules == len(ok)
    row = data.trace_hashes.index(slow.trace_hash())
    assert data.runtimes_ms[row] == pytest.approx(slow.runtime_s / 2 * 1e3)


# ---------------------------------------------------------------------------------------- metrics

def test_bootstrap_intervals_over_pipelines():
    from cost_model.metrics import bootstrap_interval, paired_difference
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.8, 0.1, 10), rng.normal(0.8, 0.1, 400)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3                  # 40x the pipelines: about 1/6 the width
    assert bootstrap_interval(small) == (lo_s, hi_s)         # seeded
    assert bootstrap_interval([0.5, float("nan")]) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_interval([]))
    a = [pipeline_metrics(f"p{i}", f"k{i}", [1, 2, 3], [10, 20, 30]) for i in range(5)]
    b = [pipeline_metrics(f"p{i}", f"k{i}", [3, 2, 1] if i < 2 else [1, 2, 3], [10, 20, 30]) for i in range(5)]
    mean, lo, hi, n = paired_difference(a, b, "pairwise_20")
    assert n == 5 and mean == pytest.approx(-0.4) and lo < mean < hi <= 0.0
    assert paired_difference(a, b[:3], "top1_regret")[3] == 3     # only pipelines both rate
    with pytest.raises(ValueError, match="unknown metric"):
        paired_difference(a, b, "speed")


def test_metrics_on_hand_made_examples():
    assert pairwise_accuracy([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert pairwise_accuracy([4, 3, 2, 1], [1, 2, 3, 4]) == 0.0
    assert kendall_tau([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert top_k_regret([4, 3, 2, 1], [1, 2, 3, 4], 1) == pytest.approx(3.0)
    assert top_k_regret([4, 3, 2, 1], [1, 2, 3, 4], 5) == 0.0
    pred, meas = [2, 1, 3, 4], [1.0, 1.1, 2.0, 5.0]
    # pairs: (0,1) wrong; (0,2) (0,3) (1,2) (1,3) (2,3) right -> 5/6; >20% apart: all but (0,1) -> 5/5
    assert pairwise_counts(pred, meas) == (5.0, 6)
    assert pairwise_accuracy(pred, meas, 1.2) == 1.0
    assert kendall_tau(pred, meas) == pytest.approx(4 / 6)
    assert top_k_regret(pred, meas, 1) == pytest.approx(0.1)
    assert top_k_regret(pred, meas, 2) == 0.0
    # a predicted tie counts half; tau-b corrects for it
    assert pairwise_accuracy([1, 1, 2], [1, 2, 3]) == pytest.approx(2.5 / 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))
    # measured ties are not pairs
    assert pairwise_counts([1, 2, 3], [1, 1, 2]) == (2.0, 2)
    assert math.isnan(pairwise_accuracy([1, 2], [3, 3]))
    s = summarize([pipeline_metrics("a", "a", [1, 2, 3, 4], [10, 20, 30, 40]),
                   pipeline_metrics("b", "b", [4, 3, 2, 1], [1, 2, 3, 4])])
    assert s.means["pairwise"] == 0.5 and s.means["top1_regret"] == pytest.approx(1.5)
    assert s.pooled_pairwise == 0.5 and s.n_schedules == 8


# ---------------------------------------------------------------------------------------- training

def _synthetic(n_pipelines: int, n: int, seed: int) -> list[PipelineData]:
    """Runtime = sum over stages of (vectors * c1 + scalars * c2 + bytes_at_realization * c3) with
    per-stage constants from the pipeline features: a function of the inputs the models can learn."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_pipelines):
        s = int(rng.integers(2, 5))
        pipe = rng.integers(0, 20, size=(s, 40, 7)).astype(np.float32)
        sched = np.exp(rng.uniform(0, 12, size=(n, s, 39))).astype(np.float32)
        weight = 1.0 + pipe[:, 4, 5] / 10.0                       # "adds per point" of each stage
        work = sched[:, :, 24] * weight + 4 * sched[:, :, 25] + 0.1 * sched[:, :, 11]
        runtimes = work.sum(axis=1) * 1e-6
        out.append(PipelineData(f"random_{1000 * seed + k}", {}, f"{seed}-{k}", "t", "d", 8, pipe, sched,
                                runtimes.astype(np.float64)))
    return out


def test_training_reduces_loss_and_ranks_unseen_pipelines():
    train_set, val_set, test_set = _synthetic(12, 48, 1), _synthetic(2, 48, 2), _synthetic(4, 48, 3)
    opts = TrainOptions(epochs=60, lr=3e-3, patience=60, seed=0)
    model = make_model("ours", seed=0)
    loss0 = dataset_loss(model, train_set, opts)
    acc0 = evaluate(model, test_set).means["pairwise"]
    result = train(model, train_set, val_set, opts)
    assert dataset_loss(result.model, train_set, opts) < 0.5 * loss0
    acc = evaluate(result.model, test_set).means["pairwise"]
    assert acc > 0.8 and acc > acc0 + 0.2
    assert 1 <= result.best_epoch <= result.epochs_run == 60
    # AdamsNet from Halide's weights also learns (lower rate, few epochs)
    adams = make_model("adams")
    aopts = TrainOptions(epochs=8, lr=1e-3, patience=8)
    before = dataset_loss(adams, train_set, aopts)
    train(adams, train_set, val_set, aopts)
    assert dataset_loss(adams, train_set, aopts) < before


def test_finetune_adapts_to_one_pipeline():
    data = _synthetic(6, 32, 4)
    model = make_model("ours", seed=1)
    train(model, data[1:], (), TrainOptions(epochs=5, lr=3e-3, patience=5))
    opts = TrainOptions()
    before = dataset_loss(model, [data[0]], opts)
    finetune(model, data[0], data[1:], steps=60, lr=3e-3)
    assert dataset_loss(model, [data[0]], opts) < before


def test_our_net_ignores_unscheduled_stages():
    data = _synthetic(1, 4, 5)[0]
    net = OurNet(generator=torch.Generator().manual_seed(0))
    pipe, sched = torch.from_numpy(data.pipeline), torch.from_numpy(data.schedule.copy())
    out = net.forward_detailed(pipe, sched, 8)
    assert torch.allclose(out.prediction, out.stage_costs.sum(dim=1), rtol=1e-5)
    sched[:, -1] = 0   # the last stage not scheduled yet
    part = net.forward_detailed(pipe, sched, 8)
    assert torch.all(part.stage_costs[:, -1] == 0) and not part.mask[:, -1].any()
    assert torch.allclose(part.prediction, part.stage_costs.sum(dim=1), rtol=1e-5)


def test_weights_round_trip(tmp_path):
    data = _synthetic(1, 8, 6)[0]
    net = OurNet(OurNetConfig(pipeline_dim=16, hidden=40), generator=torch.Generator().manual_seed(2))
    pt, js = save_model(net, tmp_path / "ours.pt", data_size=8, metrics={"test_pairwise": 0.75},
                        target="x86-64-linux", command="autoschedule train ...")
    back = load_model(pt)
    assert isinstance(back, OurNet) and back.config == net.config
    np.testing.assert_array_equal(predict(back, data), predict(net, data))
    meta = json.loads(js.read_text())
    assert meta["model"] == "OurNet" and meta["data_size"] == 8 and meta["metrics"]["test_pairwise"] == 0.75
    adams = make_model("adams")
    pt2, _ = save_model(adams, tmp_path / "adams.pt")
    back2 = load_model(pt2)
    assert isinstance(back2, AdamsNet)
    np.testing.assert_array_equal(predict(back2, data), predict(adams, data))
    pt.write_bytes(pt.read_bytes()[:-10])
    with pytest.raises(WeightsError):
        load_model(pt)
    with pytest.raises(WeightsError):
        make_model("ours", str(pt2))   # an AdamsNet file asked to be OurNet


# ---------------------------------------------------------------------------------------- CLI

def test_cli_train_then_evaluate(collected, tmp_path, capsys):
    _, db = collected
    w = tmp_path / "w.pt"
    cache = str(tmp_path / "cache")
    assert cli.main(["train", "--db", str(db), "--out", str(w), "--epochs", "5", "--val-fraction", "0",
                     "--test-fraction", "0", "--cache-dir", cache, "--quiet", "--math-inputs",
                     "--extra-inputs", "--kernel-factors", "--ensemble", "2", "--jobs", "2"]) == 0
    meta = json.loads(w.with_suffix(".json").read_text())
    config = meta["extra"]["config"]
    assert config["members"] == 2 and config["math_inputs"] and config["extra_inputs"] and config["kernel_factors"]
    assert "--ensemble 2" in meta["command"] and "--math-inputs" in meta["command"] and "--jobs 2" in meta["command"]
    assert "--extra-inputs" in meta["command"]
    n_random_ok = len({x.trace_hash() for x in read_samples(db) if x.pipeline.startswith("random_")})
    assert meta["model"] == "OurNet" and meta["data_size"] == n_random_ok   # bundled ones held out
    assert "train_pairwise" in meta["metrics"] and meta["command"].startswith("autoschedule")
    capsys.readouterr()
    assert cli.main(["evaluate", "--db", str(db), "--weights", str(w), "--weights", str(w), "--split", "all",
                     "--cache-dir", cache, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "random pipelines: 2 pipelines" in out and "pairwise" in out
    assert "95% interval over pipelines (bootstrap, 2000 resamples): >20% " in out
    # the same model against itself: a difference of exactly zero on every pipeline
    assert f"minus {w}, paired over the same pipelines (95% interval): >20% +0.000 (+0.000 to +0.000), " \
        "top-1 regret +0.0% (+0.0% to +0.0%)" in out
    assert "  blur: 1 pipelines" in out                      # per bundled workload
    # the trained model steers collect's search
    import halide_pipelines
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.state import State
    spec = halide_pipelines.get(f"random_{SEEDS[0]}")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    states = generate_states("x", State.initial(dag, "host", 2), 2, ModelCost(str(w), 2), _options())
    assert len(states) == 2 and all(s.is_complete and c is not None and c > 0 for s, c, _ in states)
    assert cli.main(["train", "--db", str(tmp_path / "missing.sqlite"), "--out", str(w)]) == 2


def test_the_cli_and_training_import_no_halide() -> None:
    """`autoschedule train` from a full feature cache runs where Halide is not installed (a lent
    host's CPU cores): building the CLI and importing the training code must not import it."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; from autoscheduler import cli; cli.build_parser(); import cost_model.train, "
            "cost_model.dataset; print(sorted(m for m in sys.modules if m.split('.')[0] == 'halide'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"

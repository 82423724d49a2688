"""Loading cost models the way the search does: bad files, the host check, the shipped default.

(The Adams2019 port against Halide is ``test_adams_net.py``; training and data are
``test_collect_train.py``.)
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from autoscheduler import cli
from autoscheduler.cost import DEFAULT_WEIGHTS, CostModel
from autoscheduler.errors import WeightsError
from autoscheduler.measure import device_fingerprint
from cost_model.adams_net import AdamsNet
from cost_model.our_net import OurNet, OurNetConfig
from cost_model.train import BASELINE_WEIGHTS, load_model, save_model
from cost_model.weights_io import (HostMismatchWarning, host_mismatch, isa_level, read_metadata,
                                   warn_if_host_mismatch, WeightsMetadata)

AVX2_BOX = json.dumps({"cores": 8, "cpu": "AMD Ryzen 7", "isa": ["sse4_1", "sse4_2", "avx", "avx2", "fma"]},
                      sort_keys=True, separators=(",", ":"))
AVX512_BOX = json.dumps({"cores": 2, "cpu": "Intel(R) Xeon(R)", "isa": ["sse4_1", "avx", "avx2", "fma",
                                                                        "avx512f", "avx512bw"]},
                        sort_keys=True, separators=(",", ":"))


def _small_net(seed: int = 0) -> OurNet:
    return OurNet(OurNetConfig(pipeline_dim=8, hidden=16), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------- host check

def test_isa_level_reads_fingerprints_targets_and_text() -> None:
    assert isa_level(AVX2_BOX) == "AVX2"
    assert isa_level(AVX512_BOX) == "AVX-512"
    assert isa_level(f"{AVX512_BOX};{AVX512_BOX}") == "AVX-512"
    assert isa_level("", "x86-64-linux-avx2-fma-f16c-sse41") == "AVX2"
    assert isa_level("", "x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41") == "AVX-512"
    assert isa_level("", "x86-64-linux-sse41") == "SSE4"
    assert isa_level("", "arm-64-linux") == "NEON"
    assert isa_level("2-core Xeon (AVX-512)") == "AVX-512"
    assert isa_level("a box with AVX2") == "AVX2"
    assert isa_level("", "") is None and isa_level("test box") is None


def test_host_mismatch_names_both_sides() -> None:
    meta = WeightsMetadata(model="OurNet", machine=AVX512_BOX, target="x86-64-linux-avx512")
    assert host_mismatch(meta, AVX512_BOX) is None
    why = host_mismatch(meta, AVX2_BOX)
    assert why is not None and "AVX-512" in why and "AVX2" in why and "\n" not in why
    # nothing recorded: nothing to compare, no warning
    assert host_mismatch(WeightsMetadata(), AVX2_BOX) is None
    with pytest.warns(HostMismatchWarning, match="w.pt: trained on an AVX2 machine"):
        warn_if_host_mismatch("w.pt", WeightsMetadata(machine=AVX2_BOX), AVX512_BOX)


def test_load_model_warns_when_trained_on_another_isa(tmp_path: Path) -> None:
    here = device_fingerprint("host")
    level = isa_level(here)
    other = AVX2_BOX if level == "AVX-512" else AVX512_BOX
    net = _small_net()
    pt, _ = save_model(net, tmp_path / "other.pt", machine=other, target="", command="test")
    with pytest.warns(HostMismatchWarning) as rec:
        load_model(pt)
    assert str(pt) in str(rec[0].message)
    same, _ = save_model(net, tmp_path / "same.pt", machine=here, target="", command="test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_model(same)
        CostModel.load(str(same))
    assert isinstance(back, OurNet)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(pt, check_host=False)


# ---------------------------------------------------------------------------------------- bad files

def _bad_file(tmp_path: Path, kind: str) -> Path:
    net = _small_net()
    pt, js = save_model(net, tmp_path / "w.pt", machine=device_fingerprint("host"), command="test")
    record = json.loads(js.read_text())
    if kind == "config":          # the JSON's sizes do not match the tensors
        record["extra"]["config"]["hidden"] = 32
        js.write_text(json.dumps(record))
    elif kind == "model_class":
        record["model"] = "TransformerNet"
        js.write_text(json.dumps(record))
    elif kind == "feature_version":
        record["pipeline_features_version"] = 2
        js.write_text(json.dumps(record))
    elif kind == "truncated":
        pt.write_bytes(pt.read_bytes()[:-40])
    elif kind == "swapped":       # another model's .pt next to this .json
        other, _ = save_model(_small_net(1), tmp_path / "x.pt", command="test")
        pt.write_bytes(other.read_bytes())
    elif kind == "halide_garbage":
        bad = tmp_path / "w.weights"
        bad.write_bytes(BASELINE_WEIGHTS.read_bytes()[:1000])
        return bad
    return pt


BAD_KINDS = ["config", "model_class", "feature_version", "truncated", "swapped", "halide_garbage"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_weights_give_one_line_error_naming_file_and_version(tmp_path: Path, kind: str) -> None:
    path = _bad_file(tmp_path, kind)
    for load in (load_model, lambda p: CostModel.load(str(p))):
        with pytest.raises(WeightsError) as info:
            load(path)
        msg = str(info.value)
        assert "\n" not in msg, msg
        assert str(path) in msg or str(path.with_suffix(".json")) in msg, msg
        assert "version 3" in msg, msg


def test_cli_reports_bad_weights_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _bad_file(tmp_path, "truncated")
    rc = cli.main(["run", "blur", "--small", "--weights", str(path), "--repeats", "0", "--no-reference"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and str(path) in err and "version 3" in err


# ---------------------------------------------------------------------------------------- default

def test_default_weights_load_and_are_documented() -> None:
    """The default the search loads: Halide's baseline, or weights this project trained, whose
    metadata then records where they came from and how well they rank held-out pipelines."""
    assert DEFAULT_WEIGHTS.exists()
    model = CostModel.load(parallelism=2)
    assert isinstance(model.net, (AdamsNet, OurNet))
    if DEFAULT_WEIGHTS.suffix == ".weights":
        return
    meta, record = read_metadata(DEFAULT_WEIGHTS)
    assert meta.data_size > 0 and meta.command.startswith("autoschedule train")
    assert isa_level(meta.machine, meta.target) is not None and meta.target
    for key in ("test_pairwise_20", "test_top1_regret", "test_kendall_tau"):
        assert math.isfinite(meta.metrics[key]), key
    assert meta.extra["split"]["test_pipelines"] > 0
    assert record["state_sha256"]


def test_predictions_of_default_model_are_finite_for_partial_and_complete_states() -> None:
    import random

    import halide_pipelines
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.state import State, random_state
    spec = halide_pipelines.get("random_3")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    model = CostModel.load(parallelism=2)
    rng = random.Random(0)
    complete = [random_state(dag, "host", rng, 2) for _ in range(4)]
    partial: list[State] = []
    state = State.initial(dag, "host", 2)
    while len(partial) < 4:   # partial states along a random walk, as the search scores them
        state = state.apply(rng.choice(state.options()))
        assert not state.is_complete
        partial.append(state)
    costs = model.predict(complete + partial)
    assert costs.shape == (8,) and np.all(np.isfinite(costs)) and np.all(costs[:4] > 0)
    assert np.all(costs[4:] >= 0)


# ---------------------------------------------------------------------------------------- OurNet options

def _batch(seed: int, b: int = 6, s: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    pipe = torch.from_numpy(rng.integers(0, 30, size=(s, 40, 7)).astype(np.float32))
    sched = torch.from_numpy(np.exp(rng.uniform(0, 10, size=(b, s, 39))).astype(np.float32))
    return pipe, sched


def test_ensemble_averages_the_members_stage_log_costs() -> None:
    cfg = OurNetConfig(pipeline_dim=8, hidden=16, members=3)
    net = OurNet(cfg, generator=torch.Generator().manual_seed(3))
    pipe, sched = _batch(0)
    sched[:, 2] = 0   # one unscheduled stage
    with torch.no_grad():
        out = net.forward_detailed(pipe, sched, 2)
        p_in, x_in = net._inputs(pipe, sched, 2)
        mask = (sched != 0).any(-1)
        logs = torch.stack([m(p_in, x_in, mask) for m in net.member_nets()]).mean(0)
    expected = torch.where(mask, torch.exp(logs), torch.zeros_like(logs))
    torch.testing.assert_close(out.stage_costs, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(out.prediction, expected.sum(1), rtol=1e-5, atol=0)
    assert len({float(m.head.bias.detach()) for m in net.member_nets()}) == 1   # same start
    w = [m.sched.state_dict()["0.weight"] for m in net.member_nets()]           # different weights
    assert not torch.equal(w[0], w[1])


def test_networks_trained_apart_average_into_one_ensemble() -> None:
    cfg = OurNetConfig(pipeline_dim=8, hidden=16)
    a, b = (OurNet(cfg, generator=torch.Generator().manual_seed(k)) for k in (4, 5))
    both = OurNet.ensemble([a, b])
    assert both.config.members == 2 and len(both.member_nets()) == 2
    pipe, sched = _batch(1)
    with torch.no_grad():
        la = torch.log(a.forward_detailed(pipe, sched, 2).stage_costs)
        lb = torch.log(b.forward_detailed(pipe, sched, 2).stage_costs)
        got = both.forward_detailed(pipe, sched, 2).stage_costs
    torch.testing.assert_close(got, torch.exp((la + lb) / 2), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="different configurations"):
        OurNet.ensemble([a, OurNet(OurNetConfig(pipeline_dim=8, hidden=24))])
    with pytest.raises(ValueError, match="at least one"):
        OurNet.ensemble([])


def test_normalization_is_an_affine_change_of_the_first_layers(tmp_path: Path) -> None:
    from cost_model.dataset import PipelineData
    from cost_model.train import TrainOptions, train
    cfg = OurNetConfig(pipeline_dim=8, hidden=16, normalize=True)
    data = []
    for k in range(3):
        pipe, sched = _batch(10 + k, b=8)
        runtimes = sched[:, :, 24].double().sum(1).numpy() * 1e-6
        data.append(PipelineData(f"random_{k}", {}, f"{k:064x}", "t", "d", 2, pipe.numpy(), sched.numpy(),
                                 runtimes))
    net = OurNet(cfg, generator=torch.Generator().manual_seed(1))
    assert not net.normalization_fitted
    net.fit_normalization((p.pipeline, p.schedule, p.num_cores) for p in data)
    assert net.normalization_fitted
    # the training set's standardised schedule inputs: mean 0, unit std where the feature varies
    xs = torch.cat([net._inputs(torch.from_numpy(p.pipeline), torch.from_numpy(p.schedule), 2)[1].reshape(-1, 41)
                    for p in data])
    z = (xs - net.sched_shift) / net.sched_scale
    assert torch.allclose(z.mean(0), torch.zeros(41), atol=1e-4)
    varying = xs.std(0) > 0.1
    assert torch.allclose(z.std(0)[varying], torch.ones(int(varying.sum())), atol=1e-4)
    # the same network without normalisation, its first layers folded: identical predictions
    plain = OurNet(OurNetConfig(pipeline_dim=8, hidden=16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first = plain.member_nets()[0]
        for lin, shift, scale in ((first.sched[0], net.sched_shift, net.sched_scale),
                                  (first.pipe[0], net.pipe_shift, net.pipe_scale)):
            assert isinstance(lin, torch.nn.Linear)
            lin.bias -= (lin.weight / scale) @ shift
            lin.weight /= scale
        pipe, sched = torch.from_numpy(data[0].pipeline), torch.from_numpy(data[0].schedule)
        torch.testing.assert_close(net(pipe, sched, 2), plain(pipe, sched, 2), rtol=1e-4, atol=0)
    # saved and loaded with its statistics; train() fits a fresh net, keeps a fitted one's
    pt, _ = save_model(net, tmp_path / "n.pt", command="test")
    back = load_model(pt, check_host=False)
    assert isinstance(back, OurNet) and back.config.normalize
    torch.testing.assert_close(back.sched_scale, net.sched_scale)
    before = net.sched_scale.clone()
    train(net, data[1:], (), TrainOptions(epochs=1, patience=1))
    torch.testing.assert_close(net.sched_scale, before)
    fresh = OurNet(cfg, generator=torch.Generator().manual_seed(1))
    train(fresh, data, (), TrainOptions(epochs=1, patience=1))
    assert fresh.normalization_fitted


def test_adams_terms_weighted_by_adams_coefficients_give_adams_stage_costs() -> None:
    from cost_model.our_net import NUM_ADAMS_TERMS, adams_terms
    net = load_model(BASELINE_WEIGHTS)
    assert isinstance(net, AdamsNet)
    pipe, sched = _batch(5, b=7, s=4)
    sched[3, 1] = 0   # an unscheduled stage costs nothing in both
    with torch.no_grad():
        out = net.forward_detailed(pipe, sched, 2)
        terms = adams_terms(sched, 2)
    assert terms.shape == (7, 4, NUM_ADAMS_TERMS)
    recon = (terms.double() * out.coefficients[..., :NUM_ADAMS_TERMS].double()).sum(-1) * 1e-9
    torch.testing.assert_close(recon, out.stage_costs.double(), rtol=1e-4, atol=0)
    # our network takes them as extra inputs
    ours = OurNet(OurNetConfig(pipeline_dim=8, hidden=16, adams_terms=True),
                  generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = ours._inputs(pipe, sched, 2)[1]
        assert x.shape == (7, 4, 41 + NUM_ADAMS_TERMS)
        assert torch.all(torch.isfinite(ours(pipe, sched, 2)))


def test_prior_starts_as_halides_adams_net_and_learns_a_correction(tmp_path: Path) -> None:
    from cost_model.dataset import PipelineData
    from cost_model.train import TrainOptions, make_model, train
    baseline = load_model(BASELINE_WEIGHTS)
    net = make_model("ours", config=OurNetConfig(pipeline_dim=8, hidden=16, prior=True, adams_terms=True))
    assert isinstance(net, OurNet) and net.prior is not None
    pipe, sched = _batch(7, b=9, s=3)
    with torch.no_grad():
        torch.testing.assert_close(net(pipe, sched, 2), baseline(pipe, sched, 2), rtol=1e-5, atol=0)
    frozen = {k: v.clone() for k, v in net.prior.state_dict().items()}
    # the runtime ranks opposite to the prior: training corrects the ranking, the prior stays frozen
    with torch.no_grad():
        runtimes = (1.0 / baseline(pipe, sched, 2)).double().numpy()
    data = [PipelineData("random_1", {}, "1" * 64, "t", "d", 2, pipe.numpy(), sched.numpy(), runtimes)]
    before = float(np.corrcoef(np.log(runtimes), np.log(net(pipe, sched, 2).detach().double().numpy()))[0, 1])
    train(net, data, (), TrainOptions(epochs=150, lr=3e-3, patience=150))
    after = float(np.corrcoef(np.log(runtimes), np.log(net(pipe, sched, 2).detach().double().numpy()))[0, 1])
    assert before < -0.99 and after > 0.5
    for k, v in net.prior.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    pt, _ = save_model(net, tmp_path / "p.pt", command="test")
    back = load_model(pt, check_host=False)
    assert isinstance(back, OurNet) and back.prior is not None
    with torch.no_grad():
        torch.testing.assert_close(back(pipe, sched, 2), net(pipe, sched, 2))


def test_cli_trains_our_network_with_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`autoschedule train` on the committed demo data set: the options reach the saved network."""
    demo = Path(__file__).resolve().parent.parent / "data" / "samples_small_tiny.jsonl.gz"
    out = tmp_path / "w.pt"
    cache = str(tmp_path / "cache")
    assert cli.main(["train", "--db", str(demo), "--out", str(out), "--model", "ours", "--prior",
                     "--adams-terms", "--hidden", "24", "--pipeline-dim", "8", "--weight-decay", "1e-3",
                     "--epochs", "2", "--cache-dir", cache, "--quiet"]) == 0
    meta, _ = read_metadata(out)
    assert meta.extra["config"]["prior"] and meta.extra["config"]["adams_terms"]
    assert meta.extra["config"]["hidden"] == 24 and meta.extra["train_options"]["weight_decay"] == 1e-3
    assert meta.data_size > 0 and meta.command.startswith("autoschedule train")
    for words in ("--prior", "--adams-terms", "--hidden 24", "--epochs 2", f"--db {demo}", f"--out {out}"):
        assert words in meta.command, (words, meta.command)   # the command that made them
    assert "--model" not in meta.command                      # defaults left out
    assert isa_level(meta.machine, meta.target) is not None
    net = load_model(out, check_host=False)
    assert isinstance(net, OurNet) and net.prior is not None
    capsys.readouterr()
    assert cli.main(["evaluate", "--db", str(demo), "--weights", str(out), "--split", "all",
                     "--cache-dir", cache, "--quiet"]) == 0
    assert "random pipelines: 10 pipelines" in capsys.readouterr().out


def test_cli_evaluate_as_searched_scores_stage_costs_times_kernel_factors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`evaluate --as-searched` scores a model as the search ranks with it: each stage's cost times
    its accumulator-latency factor. The demo data holds reductions whose factor is above 1, so the
    score is not the network's own."""
    from cost_model.dataset import load_dataset, read_sample_sets
    from cost_model.features_layout import kernel_factors
    from cost_model.train import evaluate
    demo = Path(__file__).resolve().parent.parent / "data" / "samples_small_tiny.jsonl.gz"
    cache = str(tmp_path / "cache")

    def line(*extra: str) -> str:
        capsys.readouterr()
        assert cli.main(["evaluate", "--db", str(demo), "--split", "all", "--cache-dir", cache,
                         "--quiet", *extra]) == 0
        out = capsys.readouterr().out
        return next(x for x in out.splitlines() if "random pipelines:" in x).split("random pipelines: ")[1]

    data = load_dataset(read_sample_sets([str(demo)]), cache_dir=cache)
    factors = {p.key: kernel_factors(p.stage_extra) for p in data.pipelines}
    assert any((f > 1).any() for f in factors.values())
    model = load_model(BASELINE_WEIGHTS)
    plain = evaluate(model, data.pipelines).line()
    for p in data.pipelines:
        p.stage_factors = factors[p.key].astype(np.float32)
    searched = evaluate(model, data.pipelines).line()
    assert searched != plain
    assert line() == plain
    assert line("--as-searched") == searched


def test_denormal_weights_are_flushed_on_save_and_load(tmp_path: Path) -> None:
    from cost_model.train import flush_denormals
    net = _small_net(4)
    first = net.member_nets()[0].stage[0]
    assert isinstance(first, torch.nn.Linear)
    with torch.no_grad():
        first.weight[:, :3] = 1e-40            # what weight decay leaves of a dead unit's weights
    pipe, sched = _batch(2)
    with torch.no_grad():
        before = net(pipe, sched, 2)
    pt, _ = save_model(net, tmp_path / "d.pt", command="test")
    back = load_model(pt, check_host=False)
    assert all(int(((p != 0) & (p.abs() < 1.1754944e-38)).sum()) == 0 for p in back.parameters())
    with torch.no_grad():
        torch.testing.assert_close(back(pipe, sched, 2), before)
    assert flush_denormals(net) == 3 * first.weight.shape[0] and flush_denormals(net) == 0


def test_networks_trained_in_worker_processes_equal_those_trained_here() -> None:
    from cost_model.dataset import PipelineData
    from cost_model.train import TrainOptions, train_seeds
    data = []
    for k in range(3):
        pipe, sched = _batch(20 + k, b=6)
        runtimes = sched[:, :, 24].double().sum(1).numpy() * 1e-6 + 1e-3
        data.append(PipelineData(f"random_{k}", {}, f"{k:064x}", "t", "d", 2, pipe.numpy(), sched.numpy(),
                                 runtimes))
    cfg = OurNetConfig(pipeline_dim=8, hidden=16)
    opts = TrainOptions(epochs=3, patience=3)
    here = train_seeds("ours", None, cfg, data[:2], data[2:], opts, [3, 4], jobs=1)
    apart = train_seeds("ours", None, cfg, data[:2], data[2:], opts, [3, 4], jobs=2)
    assert [r.best_epoch for r in here] == [r.best_epoch for r in apart]
    pipe, sched = torch.from_numpy(data[2].pipeline), torch.from_numpy(data[2].schedule)
    with torch.no_grad():
        for a, b in zip(here, apart):
            torch.testing.assert_close(a.model(pipe, sched, 2), b.model(pipe, sched, 2), rtol=0, atol=0)
        # different seeds, different networks
        assert not torch.equal(here[0].model(pipe, sched, 2), here[1].model(pipe, sched, 2))


@pytest.mark.parametrize("context", [True, False])
def test_scoring_runs_each_distinct_stage_row_once_and_predicts_the_same(context: bool) -> None:
    """Without gradients (the search) the per-stage layers run once per distinct (stage, input row):
    children of one beam share most rows. The stage costs must equal the row-by-row network's."""
    import random

    import halide_pipelines
    from autoscheduler.cost import OUR_WEIGHTS, stage_inputs
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.features import network_inputs
    from autoscheduler.state import State
    from cost_model.our_net import DistinctRows
    spec = halide_pipelines.get("random_3")
    dag = FunctionDAG.from_pipeline(spec.build(**spec.test_sizes).pipeline())
    shipped = load_model(OUR_WEIGHTS)
    net = shipped if context else OurNet(OurNetConfig(pipeline_dim=8, hidden=16, members=2, context=False),
                                         generator=torch.Generator().manual_seed(1))
    rng = random.Random(0)
    state = State.initial(dag, "host", 2)
    checked = distinct = rows = 0
    while not state.is_complete:
        kids = state.children()
        if len(kids) > 1:
            inp = network_inputs(kids)
            extra = stage_inputs(net, kids)
            with torch.no_grad():
                fast = net.forward_detailed(inp.pipeline, inp.schedule, 2, **extra)
                _, x = net._inputs(inp.pipeline, inp.schedule, 2, **extra)
            with torch.enable_grad():
                slow = net.forward_detailed(inp.pipeline, inp.schedule, 2, **extra)
            distinct += len(DistinctRows.of(x).stage)
            rows += x.shape[0] * x.shape[1]
            torch.testing.assert_close(fast.stage_costs, slow.stage_costs.detach(), rtol=1e-5, atol=1e-12)
            checked += 1
        state = rng.choice(kids)
    assert checked >= 3 and distinct < rows / 3   # most rows were shared


def test_adams_net_scored_once_per_distinct_row_equals_the_full_batch() -> None:
    """The search scores AdamsNet once per distinct (stage, feature row), as one-stage schedules
    with an output mask; the output stage's rows included (its stores have their own coefficients),
    that must equal the network on the whole batch."""
    import random

    import halide as hl

    from autoscheduler.dag import FunctionDAG
    from autoscheduler.features import network_inputs
    from autoscheduler.state import random_state
    from shared_pipelines import sum_reductions
    _, outs = sum_reductions()
    dag = FunctionDAG.from_pipeline(hl.Pipeline(outs))   # two outputs, one of them a scalar
    rng = random.Random(0)
    states = [random_state(dag, "host", rng, 2) for _ in range(24)]
    cm = CostModel.load(str(BASELINE_WEIGHTS), parallelism=2)
    inp = network_inputs(states)
    assert len({tuple(r) for r in inp.schedule[:, 0].tolist()}) > 1     # several output rows
    with torch.no_grad():
        full = cm.net.forward_detailed(inp.pipeline, inp.schedule, 2).stage_costs.double().numpy()
    np.testing.assert_allclose(cm._stage_costs(inp, states), full, rtol=1e-5, atol=1e-12)

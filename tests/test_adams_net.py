"""The Adams2019 port against Halide itself: its fast_log, its plugin's printed costs, its files.

Oracle fixtures (``fixtures/adams_best_cost``, made by ``fixtures/make_adams_best_cost.py``) hold, per
bundled CPU workload and search config, the plugin's ``Best cost`` and the featurization of the
schedule it picked; a registered workload without fixtures is searched live here instead.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import halide as hl

from autoscheduler.errors import WeightsError
from cost_model import features_layout as fl
from cost_model.adams_net import AdamsNet, fast_log
from cost_model.weights_io import (
    ADAMS2019_SHAPES,
    WeightsMetadata,
    halide_weights_bytes,
    load_adams_net,
    load_halide_weights,
    load_weights,
    metadata_path,
    parse_halide_weights,
    read_halide_weights,
    save_weights,
    write_halide_weights,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOL = 1e-4


def _load_maker() -> ModuleType:
    path = FIXTURES / "make_adams_best_cost.py"
    spec = importlib.util.spec_from_file_location("make_adams_best_cost", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_adams_best_cost", mod)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()
MANIFEST = MAKER.load_manifest()
BASELINE = MAKER.WEIGHTS


@pytest.fixture(scope="module")
def net() -> AdamsNet:
    return load_halide_weights(BASELINE)


def _predict(model: AdamsNet, featurization: bytes, cores: int) -> float:
    f = fl.parse_featurization(featurization)
    with torch.no_grad():
        return float(model(torch.from_numpy(f.pipeline), torch.from_numpy(f.schedule)[None], cores)[0])


# --- fast_log ----------------------------------------------------------------------------------

def _halide_fast_log(values: np.ndarray, target: str) -> np.ndarray:
    x = hl.Var("x")
    inp = hl.Buffer(values)
    f = hl.Func("fast_log_probe")
    f[x] = hl.fast_log(inp[x])
    return np.asarray(f.realize([len(values)], hl.Target(target))).copy()


def test_fast_log_is_halides_formula_not_log() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([np.exp(rng.uniform(0.0, 45.0, 4000)), rng.uniform(0.7, 3.0, 2000),
                             np.arange(1.0, 2000.0)]).astype(np.float32)
    ours = fast_log(torch.from_numpy(values)).numpy()
    # Bit-exact against Halide evaluating the same expression in IEEE order ...
    strict = _halide_fast_log(values, "x86-64-linux-sse41-strict_float")
    assert np.array_equal(ours, strict)
    # ... and within a few ulps of Halide's default (reassociating) float code.
    loose = _halide_fast_log(values, "x86-64-linux-sse41")
    np.testing.assert_allclose(ours, loose, rtol=0, atol=8e-6)
    # It is an approximation: not torch.log (the brief's trap), though close.
    exact = np.log(values.astype(np.float64))
    err = np.abs(ours - exact)
    assert 1e-7 < err.max() < 1e-5


# --- the oracle: Halide's printed Best cost ----------------------------------------------------

def _oracle_params() -> list[object]:
    names, excluded = MAKER.cpu_workloads()
    recorded = MANIFEST.get("workloads", {})
    params: list[object] = []
    for name in sorted(set(names) | set(recorded)):
        for config in MAKER.CONFIGS:
            params.append(pytest.param(name, config, id=f"{name}-{config}"))
    for name, reason in excluded.items():
        params.append(pytest.param(name, None, id=f"{name}-excluded",
                                   marks=pytest.mark.skip(reason=reason)))
    return params


@pytest.mark.parametrize("name,config", _oracle_params())
def test_port_predicts_halide_best_cost(net: AdamsNet, name: str, config: str) -> None:
    parallelism, beam = MAKER.CONFIGS[config]
    entry = MANIFEST.get("workloads", {}).get(name, {}).get(config)
    if entry is not None:
        featurization = MAKER.read_fixture_featurization(name, config)
        assert len(featurization) == entry["featurization_bytes"]
        best, penalty = float(entry["best_cost"]), int(entry["search_penalty"])
    elif config == MAKER.PRIMARY:
        # A workload registered after the fixtures were made: ask the plugin now.
        res = MAKER.run_oracle(name, parallelism=parallelism, beam_size=beam)
        featurization, best, penalty = res.featurization, res.best_cost, 1
    else:
        pytest.skip(f"{name}: no {config} fixture yet; run tests/fixtures/make_adams_best_cost.py")
    # beam_size 1 means one pass and no coarse-to-fine penalty: the cost is the prediction.
    assert penalty == 1 or beam is None
    ours = _predict(net, featurization, parallelism)
    assert abs(ours * penalty / best - 1) <= TOL, (name, config, ours, best)


def test_builtin_weights_are_baseline_weights() -> None:
    for name, entry in MANIFEST["workloads"].items():
        assert entry["best_cost_with_weights_file"] == entry[MAKER.PRIMARY]["best_cost"], name


def test_feature_names_match_the_plugins_dump() -> None:
    assert tuple(MANIFEST["halide_schedule_feature_names"]) == fl.SCHEDULE_FEATURE_NAMES
    assert set(fl.SCHEDULE_FEATURE_DOCS) == set(fl.SCHEDULE_FEATURE_NAMES)


def test_plugin_reads_weights_we_write(tmp_path: Path) -> None:
    """Random weights written by us, loaded by Halide's plugin: its cost equals our prediction."""
    import halide_pipelines
    name = "conv_layer" if "conv_layer" in halide_pipelines.names() else "index_sum"
    model = AdamsNet(generator=torch.Generator().manual_seed(7))
    path = tmp_path / "random.weights"
    write_halide_weights(path, model)
    res = MAKER.run_oracle(name, parallelism=2, beam_size=1, weights_path=str(path))
    ours = _predict(model, res.featurization, 2)
    assert abs(ours / res.best_cost - 1) <= TOL
    default = MAKER.run_oracle(name, parallelism=2, beam_size=1)
    assert res.best_cost_text != default.best_cost_text  # the plugin really used our file


# --- the network's batch and stage semantics ---------------------------------------------------

def _fixture(name: str, config: str) -> fl.Featurization:
    return fl.parse_featurization(MAKER.read_fixture_featurization(name, config))


def _pick(preferred: str, min_stages: int) -> str:
    """A recorded workload: ``preferred`` if the fixtures hold it, else one with enough stages."""
    workloads = MANIFEST["workloads"]
    if preferred in workloads:
        return preferred
    return next(n for n, e in sorted(workloads.items())
                if all(e[c]["num_stages"] >= min_stages for c in MAKER.CONFIGS))


def test_batch_of_schedules_with_per_schedule_cores(net: AdamsNet) -> None:
    name = _pick("conv_layer", 2)
    configs = list(MAKER.CONFIGS)
    feats = [_fixture(name, c) for c in configs]
    for f in feats[1:]:
        np.testing.assert_array_equal(f.pipeline, feats[0].pipeline)  # same algorithm
    sched = torch.from_numpy(np.stack([f.schedule for f in feats]))
    cores = torch.tensor([MAKER.CONFIGS[c][0] for c in configs])
    with torch.no_grad():
        out = net.forward_detailed(torch.from_numpy(feats[0].pipeline), sched, cores)
    assert out.prediction.shape == (len(configs),)
    assert out.stage_costs.shape == (len(configs), feats[0].num_stages)
    assert out.coefficients.shape == (len(configs), feats[0].num_stages, 32)
    assert torch.all(out.coefficients >= 0)
    entries = MANIFEST["workloads"][name]
    for i, c in enumerate(configs):
        best = float(entries[c]["best_cost"]) / entries[c]["search_penalty"]
        assert abs(float(out.prediction[i]) / best - 1) <= TOL
        single = net(torch.from_numpy(feats[i].pipeline), torch.from_numpy(feats[i].schedule),
                     int(cores[i]))
        assert torch.allclose(single, out.prediction[i], rtol=1e-6, atol=0)
    torch.testing.assert_close(out.stage_costs.sum(-1), out.prediction)
    per_schedule = torch.from_numpy(feats[0].pipeline).expand(len(configs), -1, -1, -1)
    with torch.no_grad():
        torch.testing.assert_close(net(per_schedule, sched, cores), out.prediction)


def test_only_stage_zero_is_special(net: AdamsNet) -> None:
    """Stages are summed, so their order is free, except stage 0: the final output's stores."""
    f = _fixture(_pick("conv_layer", 3), "p1_beam1")  # parallelism 1: no stage is parallel
    assert f.num_stages >= 3
    p, s = torch.from_numpy(f.pipeline), torch.from_numpy(f.schedule)
    with torch.no_grad():
        base = float(net(p, s, 1))
        rest = torch.tensor([0] + list(range(f.num_stages - 1, 0, -1)))
        assert float(net(p[rest], s[rest], 1)) == pytest.approx(base, rel=1e-6)
        moved = torch.roll(torch.arange(f.num_stages), 1)
        assert abs(float(net(p[moved], s[moved], 1)) / base - 1) > 1e-3
        # the output mask says where the output went: the same prediction, stage by stage
        mask = moved == 0
        out = net.forward_detailed(p[moved], s[moved], 1, is_output=mask)
        assert float(out.prediction) == pytest.approx(base, rel=1e-6)
        per_stage = net.forward_detailed(p, s, 1).stage_costs
        torch.testing.assert_close(out.stage_costs, per_stage[moved])
        # and rows as one-stage schedules, each with its own mask, price each stage the same
        ones = net.forward_detailed(p.unsqueeze(1), s.unsqueeze(1), 1,
                                    is_output=(torch.arange(f.num_stages) == 0).unsqueeze(1))
        torch.testing.assert_close(ones.stage_costs.reshape(-1), per_stage)


def test_zero_padded_stages_cost_nothing(net: AdamsNet) -> None:
    f = _fixture(_pick("blur", 1), MAKER.PRIMARY)
    p = torch.from_numpy(f.pipeline)
    s = torch.from_numpy(f.schedule)[None]
    pad_p = torch.cat([p, torch.zeros(3, 40, 7)])
    pad_s = torch.cat([s, torch.zeros(1, 3, 39)], dim=1)
    with torch.no_grad():
        out = net.forward_detailed(pad_p, pad_s, 2)
        assert torch.all(out.stage_costs[0, f.num_stages:] == 0)
        assert float(out.prediction[0]) == pytest.approx(float(net(p, s, 2)[0]), rel=1e-6)


def test_gradients_reach_every_weight() -> None:
    model = load_halide_weights(BASELINE)
    f = _fixture(_pick("harris", 2), MAKER.PRIMARY)
    sched = torch.from_numpy(f.schedule)[None].repeat(4, 1, 1)
    sched = sched * torch.tensor([1.0, 0.5, 2.0, 4.0])[:, None, None]
    out = model.forward_detailed(torch.from_numpy(f.pipeline), sched, 2)
    loss = (1 / out.prediction).square().sum() + 1e-5 * torch.relu(-out.preactivation).sum()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_bad_shapes_raise_value_error(net: AdamsNet) -> None:
    with pytest.raises(ValueError):
        net(torch.zeros(3, 40, 7), torch.zeros(2, 4, 39), 2)
    with pytest.raises(ValueError):
        net(torch.zeros(3, 40, 7), torch.zeros(2, 3, 38), 2)


# --- featurization layout ----------------------------------------------------------------------

def test_featurization_round_trip_and_layout() -> None:
    raw = MAKER.read_fixture_featurization(_pick("harris", 2), MAKER.PRIMARY)
    f = fl.parse_featurization(raw)
    assert f.num_stages * fl.RECORD_BYTES == len(raw)
    assert fl.build_featurization(f.pipeline, f.schedule, f.type_mask) == raw
    # The type mask marks the types the op histogram uses; every stage stores something.
    assert np.array_equal(f.type_mask != 0, (f.pipeline[:, :len(fl.OP_TYPE_NAMES)] != 0).any(1))
    stores = [fl.pipeline_row(f"{p}_Store") for p in fl.ACCESS_PATTERN_NAMES]
    assert np.all(f.pipeline[:, stores, :].sum(axis=(1, 2)) >= 1)
    with pytest.raises(fl.FeaturizationFormatError):
        fl.parse_featurization(raw[:-4])


# --- Halide .weights files ---------------------------------------------------------------------

def test_read_baseline_weights() -> None:
    w = read_halide_weights(BASELINE)
    assert (w.pipeline_features_version, w.schedule_features_version) == (3, 3)
    assert w.num_floats == 4264
    assert {k: v.shape for k, v in w.tensors.items()} == ADAMS2019_SHAPES
    data = BASELINE.read_bytes()
    assert halide_weights_bytes(w.tensors) == data
    # Halide order, first dimension fastest: the first floats are head1_filter[0..7, 0, 0].
    first = np.frombuffer(data[32:32 + 32], dtype="<f4")  # after 16 + 4 + 12 header bytes
    np.testing.assert_array_equal(w.tensors["head1_filter"][:, 0, 0], first)
    model = load_adams_net(BASELINE)
    assert sum(p.numel() for p in model.parameters()) == 4264


def _assert_one_line(err: WeightsError, path: Path) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg
    assert "version 3" in msg


def _corruptions(data: bytes) -> dict[str, bytes]:
    header = 16 + 4 + 12  # header, then head1_filter's ndims and extents
    wrong_version = bytearray(data)
    wrong_version[4:8] = struct.pack("<I", 4)
    wrong_extent = bytearray(data)
    wrong_extent[24:28] = struct.pack("<I", 41)
    nan = bytearray(data)
    nan[header:header + 4] = struct.pack("<f", float("nan"))
    return {
        "signature": b"XXXX" + data[4:],
        "empty": b"",
        "truncated_header": data[:10],
        "truncated_data": data[:-5],
        "truncated_mid_buffer": data[:header + 100],
        "trailing": data + b"\0\0\0\0",
        "version": bytes(wrong_version),
        "extent": bytes(wrong_extent),
        "buffer_count": data[:12] + struct.pack("<I", 5) + data[16:],
        "nan": bytes(nan),
    }


@pytest.mark.parametrize("kind", list(_corruptions(b"\0" * 64)))
def test_bad_halide_weights_raise_one_line_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.weights"
    path.write_bytes(_corruptions(BASELINE.read_bytes())[kind])
    with pytest.raises(WeightsError) as info:
        load_adams_net(path)
    _assert_one_line(info.value, path)


def test_missing_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.weights"
    with pytest.raises(WeightsError) as info:
        read_halide_weights(path)
    _assert_one_line(info.value, path)


def test_other_version_readable_when_asked(tmp_path: Path) -> None:
    data = bytearray(BASELINE.read_bytes())
    data[8:12] = struct.pack("<I", 4)
    w = parse_halide_weights(bytes(data), check_versions=False)
    assert w.schedule_features_version == 4


# --- our state_dict + JSON format --------------------------------------------------------------

def _saved(tmp_path: Path) -> tuple[Path, Path, WeightsMetadata]:
    model = load_halide_weights(BASELINE)
    meta = WeightsMetadata(data_size=1234, metrics={"pairwise_accuracy": 0.75},
                           machine="test box, 2 cores", target=MAKER.TARGET,
                           command="python3 -m cost_model.train --epochs 3")
    pt, js = save_weights(model, tmp_path / "adams.pt", meta)
    return pt, js, meta


def test_state_dict_round_trip(tmp_path: Path, net: AdamsNet) -> None:
    pt, js, meta = _saved(tmp_path)
    assert js == metadata_path(pt) and js.suffix == ".json"
    record = json.loads(js.read_text())
    assert record["pipeline_features_version"] == 3 and record["schedule_features_version"] == 3
    for path in (pt, js, tmp_path / "adams"):
        model, got = load_weights(path)
        assert isinstance(model, AdamsNet)
        assert (got.data_size, got.metrics, got.machine, got.target, got.command) == (
            meta.data_size, meta.metrics, meta.machine, meta.target, meta.command)
        for (k, a), (_, b) in zip(model.state_dict().items(), net.state_dict().items()):
            assert torch.equal(a, b), k
    raw = MAKER.read_fixture_featurization(_pick("unsharp", 2), MAKER.PRIMARY)
    assert _predict(load_adams_net(pt), raw, 2) == _predict(net, raw, 2)


def _rewrite_json(js: Path, **changes: object) -> None:
    record = json.loads(js.read_text())
    record.update(changes)
    js.write_text(json.dumps(record))


@pytest.mark.parametrize("kind", ["pt_flipped", "pt_truncated", "pt_garbage_with_sum",
                                  "json_garbage", "json_version", "json_missing", "pt_missing",
                                  "wrong_tensors", "json_format"])
def test_bad_state_dict_files_raise_one_line_error(tmp_path: Path, kind: str) -> None:
    import hashlib
    pt, js, _ = _saved(tmp_path)
    data = pt.read_bytes()
    if kind == "pt_flipped":
        pt.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif kind == "pt_truncated":
        pt.write_bytes(data[: len(data) // 2])
    elif kind == "pt_garbage_with_sum":  # checksum updated: torch itself must reject it
        garbage = data[: len(data) // 3]
        pt.write_bytes(garbage)
        _rewrite_json(js, state_sha256=hashlib.sha256(garbage).hexdigest())
    elif kind == "json_garbage":
        js.write_text("{not json")
    elif kind == "json_version":
        _rewrite_json(js, schedule_features_version=2)
    elif kind == "json_format":
        _rewrite_json(js, format="something-else")
    elif kind == "json_missing":
        js.unlink()
    elif kind == "pt_missing":
        pt.unlink()
    elif kind == "wrong_tensors":
        pt2, _ = save_weights(torch.nn.Linear(3, 2), tmp_path / "other.pt",
                              WeightsMetadata(model="AdamsNet"))
        pt.write_bytes(pt2.read_bytes())
        _rewrite_json(js, state_sha256=hashlib.sha256(pt2.read_bytes()).hexdigest())
    with pytest.raises(WeightsError) as info:
        load_weights(pt)
    msg = str(info.value)
    assert "\n" not in msg and "version 3" in msg
    assert str(pt) in msg or str(js) in msg

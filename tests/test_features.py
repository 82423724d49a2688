"""Schedule features (``autoscheduler.features``) and schedule replay (``autoscheduler.replay``)
against Halide's own Adams2019 plugin.

Oracle fixtures (``fixtures/features_oracle``, made by ``fixtures/features_make_oracle.py``): per
CPU workload at its test sizes (and a few random pipelines), what Adams2019 picked with beam_size 1
and parallelism 2 -- its C++ schedule source, the featurization of that schedule, its printed
``Best cost`` and its own dump of the chosen loop nest. Each schedule is replayed as a decision
trace of our search state, featurized by us, and compared with the plugin's featurization on every
stage whose loop nest the replay reproduces (its root child is the same in both dumps, and the
replay needed no approximation there).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import halide_pipelines
from autoscheduler.dag import FunctionDAG
from autoscheduler.features import (Featurizer, featurize_states, featurizer_for, network_inputs, pipeline_features,
                                    schedule_features)
from autoscheduler.ir import canonical_hash
from autoscheduler.replay import (ReplayError, normalize_loop_nest_dump, parse_cpp_schedule, replay,
                                  root_children)
from autoscheduler.state import InnerTile, OuterTile, Place, State
from cost_model.adams_net import AdamsNet
from cost_model.features_layout import SCHEDULE_FEATURE_NAMES as FN
from cost_model.features_layout import parse_featurization
from cost_model.weights_io import load_halide_weights

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WEIGHTS = FIXTURES / "adams_best_cost" / "adams2019_baseline.weights"
RTOL = 0.01
# The root-level sums: they mix every root child, so they are compared only when the whole nest is.
GLOBAL = {FN.index("working_set_at_root"), FN.index("working_set_at_realization"),
          FN.index("working_set_at_production")}
# Measured: 297 of 576 stages replayed exactly; 99.95% of their features match (28 pipelines). The
# count depends on what the process built before (propagate_adjoints names some Vars from Halide's
# global counters, so a plugin source recorded in a fresh process names loops that a later build calls
# differently: 268-276 after other test modules), so the comparison runs in a fresh process.
MIN_AGREEMENT = 0.995
MIN_EXACT_STAGES = 290
# Pipelines whose whole loop nest our vocabulary reproduces (every feature must match).
FULLY_EXACT = {"index_sum", "conv_layer", "conv_layer_b8", "bwn_conv", "blur", "hist_eq", "iir_blur", "mat_mul",
               "multi_output"}
# Why a feature can still differ on an exactly replayed stage.
KNOWN = {
    "unrolled_loop_extent": "Adams2019's featurization calls the level above the vector unrolled from its "
                            "bounds' compile-time-constant flags, but its apply unrolls only constant splits "
                            "(GuardWithIf tails in updates are not): the schedule (and so ours) is not unrolled",
    "scalar_loads_per_vector": "follows unrolled_loop_extent (loads invariant over an unrolled block are amortized)",
    "scalar_loads_per_scalar": "follows unrolled_loop_extent",
    "vector_loads_per_vector": "follows unrolled_loop_extent",
}


def _load_maker() -> ModuleType:
    path = FIXTURES / "features_make_oracle.py"
    spec = importlib.util.spec_from_file_location("features_make_oracle", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("features_make_oracle", mod)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()
NAMES = sorted(p.name[:-len(".json.gz")] for p in (FIXTURES / "features_oracle").glob("*.json.gz"))


def _build(name: str, sizes: dict[str, int]) -> tuple[Any, FunctionDAG]:
    spec = halide_pipelines.get(name)
    built = spec.build(**sizes)
    return built, FunctionDAG.from_pipeline(built.pipeline())


class _Compared:
    """One workload: the replay, our features, the plugin's, and which stages are exact."""

    def __init__(self, name: str) -> None:
        fx = MAKER.load(name)
        self.name = name
        self.fx = fx
        built, self.dag = _build(name, fx["sizes"])
        self.hash_ok = canonical_hash(built.pipeline()) == fx["pipeline_hash"]
        self.rp = replay(self.dag, fx["cpp_source"], fx["target"], int(fx["params"]["parallelism"]))
        self.fz = Featurizer(self.rp.state)
        self.ours = self.fz.features(self.rp.state)
        self.theirs = parse_featurization(bytes.fromhex(fx["featurization"])).schedule.astype(np.float64)
        r1, b1 = root_children(fx["loop_nest"])
        mine = self.fz.loop_nest(self.rp.state)
        r2, b2 = root_children(mine)
        groups = self.fz.groups(self.rp.state)
        dumped = list(reversed(groups))          # the dump prints the root's children last first
        noted = set(self.rp.inexact)
        self.exact_rows: list[int] = []
        self.n_groups = len(groups)
        self.exact_groups = 0
        if len(b1) == len(b2) == len(dumped):
            for (gid, stages), x, y in zip(dumped, b1, b2):
                if x == y and not any(s in noted for s in stages):
                    self.exact_groups += 1
                    self.exact_rows.extend(self.fz.row[s] for s in stages)
        self.fully_exact = self.exact_groups == self.n_groups and r1 == r2 and not noted
        if self.fully_exact:      # Funcs inlined into several root children are exact too
            self.exact_rows = list(range(self.fz.num_stages))


@pytest.fixture(scope="module")
def compared() -> dict[str, _Compared]:
    return {n: _Compared(n) for n in NAMES}


def test_fixtures_are_current_and_agree_with_adams_best_cost(compared: dict[str, _Compared]) -> None:
    assert len(NAMES) >= 25, "features_oracle fixtures missing: run tests/fixtures/features_make_oracle.py"
    manifest = json.loads((FIXTURES / "adams_best_cost" / "manifest.json").read_text())
    stale = [n for n, c in compared.items() if not c.hash_ok]
    assert not stale, f"stale fixtures (pipeline changed): {stale}; rerun tests/fixtures/features_make_oracle.py"
    checked = 0
    for name, c in compared.items():
        entry = manifest["workloads"].get(name, {}).get("p2_beam1")
        if entry is None or entry.get("sizes", c.fx["sizes"]) != c.fx["sizes"]:
            continue
        other = gzip.decompress((FIXTURES / "adams_best_cost" / entry["featurization_file"]).read_bytes())
        assert other.hex() == c.fx["featurization"], name
        assert entry["best_cost"] == c.fx["best_cost"], name
        checked += 1
    assert checked >= 20


def test_parse_cpp_schedule() -> None:
    cpp = MAKER.load("mat_mul")["cpp_source"]
    dims: dict[str, tuple[int, int, int]] = {}
    sched = parse_cpp_schedule(cpp, dims)
    assert sched[3].compute_root and sched[2].compute_at == (3, "x")
    upd = sched[2].stages[1]
    assert upd.vectorize == ["xi"] and upd.unroll == ["y"] and upd.reorder == ["xi", "x", "y", "r_x"]
    assert sched[3].stages[0].parallel == ["y"]
    assert ("y", "y", "yi", 12) in sched[3].stages[0].splits
    assert dims["r_x"] == (2, 1, 0) and dims["x"] == (3, 0, 0)
    with pytest.raises(ReplayError):
        parse_cpp_schedule("Func f = pipeline.get_func(1);\nf.gpu_blocks(x);")
    with pytest.raises(ReplayError):
        parse_cpp_schedule("Func f = pipeline.get_func(1);\ng.vectorize(x);")


def test_replay_reproduces_blur_exactly(compared: dict[str, _Compared]) -> None:
    c = compared["blur"]
    assert c.rp.exact and not c.rp.notes
    blur_y = c.dag.outputs[0].index
    blur_x = next(n.index for n in c.dag.nodes if not n.is_input and not n.is_output)
    assert c.rp.trace == [
        Place(blur_y, "root"), InnerTile(blur_y, 0, 0, 16, ()), OuterTile(blur_y, 0, ((1, 16),), True),
        Place(blur_x, "at", c.rp.state.placement(blur_x).at),   # type: ignore[union-attr]
        InnerTile(blur_x, 0, 0, 16, ((1, 3),)), OuterTile(blur_x, 0, (), False)]
    at = c.rp.state.placement(blur_x).at      # type: ignore[union-attr]
    assert at is not None and (at.func, at.level, at.dim) == (blur_y, "inner", 0)
    again = State.from_trace(c.dag, [d.to_dict() for d in c.rp.trace], c.fx["target"], 2)
    assert again == c.rp.state
    np.testing.assert_array_equal(c.ours, c.theirs)
    assert normalize_loop_nest_dump(c.fx["loop_nest"]) == normalize_loop_nest_dump(c.fz.loop_nest(c.rp.state))


def _exactness() -> dict[str, dict[str, Any]]:
    """What the exact-replay comparison needs of every workload, as plain data (picklable)."""
    out: dict[str, dict[str, Any]] = {}
    for name in NAMES:
        c = _Compared(name)
        out[name] = dict(ours=c.ours, theirs=c.theirs, exact_rows=list(c.exact_rows), fully_exact=c.fully_exact,
                         num_stages=c.fz.num_stages, exact_groups=c.exact_groups, n_groups=c.n_groups,
                         notes=list(c.rp.notes),
                         stage=[c.dag.stages[c.fz.ad.stage(*c.fz.ad.order[r]).id].name
                                for r in range(c.fz.num_stages)])
    return out


def test_features_match_plugin_where_the_replay_is_exact() -> None:
    # In a fresh process, like the one that recorded the fixtures: Halide names some of
    # propagate_adjoints' Vars from process-global counters, so what this process built before
    # changes which loops a recorded plugin source names (see MIN_EXACT_STAGES).
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        compared = pool.submit(_exactness).result(timeout=600)
    compared_cells = matched = 0
    exact_stages = total_stages = 0
    diffs: Counter[str] = Counter()
    examples: dict[str, str] = {}
    lines = [f"{'pipeline':16s} {'stages':>6s} {'exact':>5s} {'root children exact':>19s}  replay notes"]
    for name, c in compared.items():
        total_stages += c["num_stages"]
        exact_stages += len(c["exact_rows"])
        cols = [j for j in range(len(FN)) if c["fully_exact"] or j not in GLOBAL]
        for r in c["exact_rows"]:
            ok = np.isclose(c["ours"][r, cols], c["theirs"][r, cols], rtol=RTOL, atol=1e-9)
            compared_cells += len(cols)
            matched += int(ok.sum())
            for j, good in zip(cols, ok):
                if not good:
                    diffs[FN[j]] += 1
                    examples.setdefault(FN[j], f"{name} {c['stage'][r]}: ours {c['ours'][r, j]:g} "
                                               f"plugin {c['theirs'][r, j]:g}")
        if name in FULLY_EXACT:
            assert c["fully_exact"], f"{name} no longer replays exactly: {c['notes']}"
            np.testing.assert_allclose(c["ours"], c["theirs"], rtol=RTOL, atol=1e-9, err_msg=name)
        lines.append(f"{name:16s} {c['num_stages']:6d} {len(c['exact_rows']):5d} {c['exact_groups']:9d} / "
                     f"{c['n_groups']:<7d}  {len(c['notes'])}")
    share = matched / compared_cells
    lines.append(f"exactly replayed stages: {exact_stages} / {total_stages}; features within {RTOL:.0%} of the "
                 f"plugin's on them: {matched} / {compared_cells} = {share:.4%}")
    for feat, n in diffs.most_common():
        lines.append(f"  differs {n:3d}x  {feat:34s} e.g. {examples[feat]}  -- {KNOWN.get(feat, 'UNEXPLAINED')}")
    print("\n" + "\n".join(lines))
    assert exact_stages >= MIN_EXACT_STAGES, "\n".join(lines)
    assert share >= MIN_AGREEMENT, "\n".join(lines)
    assert set(diffs) <= set(KNOWN), "\n".join(lines)


def test_adams_net_on_our_features_predicts_the_plugins_best_cost(compared: dict[str, _Compared]) -> None:
    net = load_halide_weights(WEIGHTS)
    lines = []
    for name, c in compared.items():
        inputs = c.fz.network_inputs([c.rp.state])
        with torch.no_grad():
            pred = float(net(*inputs)[0])
        best = float(c.fx["best_cost"])
        err = pred / best - 1
        lines.append(f"{name:16s} Best cost {best:<11.6g} ours {pred:<11.6g} rel. error {err:+.2e}"
                     f"{'' if c.fully_exact else '  (replay not exact)'}")
        if c.fully_exact:
            assert abs(err) < 1e-4, name
    print("\n" + "\n".join(lines))


def _walk(dag: FunctionDAG, seed: int, beam: int = 3, parallelism: int = 4) -> list[State]:
    """Every child of a random beam walk, in the order a search would featurize them."""
    rng = random.Random(seed)
    states = [State.initial(dag, MAKER.TARGET, parallelism)]
    out = []
    while not all(s.is_complete for s in states):
        children = [c for s in states if not s.is_complete for c in s.children()]
        out.extend(children)
        rng.shuffle(children)
        states = children[:beam]
    return out


@pytest.mark.parametrize("name", ["random_8", "camera_pipe", "hist_eq"])
def test_incremental_features_equal_fresh_ones(name: str) -> None:
    spec = halide_pipelines.get(name)
    _, dag = _build(name, dict(spec.test_sizes))
    states = _walk(dag, 1)
    fz = Featurizer(states[0])
    warm = fz.batch(states)
    assert fz.hits > fz.misses, "the per-group cache is not being reused"
    cold = Featurizer(states[0])
    for k in random.Random(2).sample(range(len(states)), 60):
        cold.clear_cache()
        np.testing.assert_array_equal(warm[k], cold.features(states[k]).astype(np.float32))


def search_walk_features_agree(dag: FunctionDAG, target: str, seed: int, beam: int = 3,
                               parallelism: int = 4) -> tuple[Featurizer, set[str]]:
    """Walk as the beam search does (every child of a level featurized before the next level is
    made from some of them), featurizing each level with an incremental featurizer and with one
    that takes the full path every time; assert they agree on every child, and so do the kernel
    factors (``kernel_terms.stage_factors``, which also start from the parent's). Children whose
    last decision places no Func are preferred now and then, so that layouts, wraps and rfactors
    are walked through. Returns the incremental featurizer and the decision kinds featurized."""
    from autoscheduler.features.kernel_terms import stage_factors
    rng = random.Random(seed)
    states = [State.initial(dag, target, parallelism)]
    inc = Featurizer(states[0])
    full = Featurizer(states[0], incremental=False)
    kinds: set[str] = set()
    while not all(s.is_complete for s in states):
        children = [c for s in states if not s.is_complete for c in s.children()]
        got, want = inc.batch(children), full.batch(children)
        for k, c in enumerate(children):
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"after {c.decisions[-1]}")
        factors = [stage_factors(c) for c in children]      # from the parents' where they can
        for k, c in enumerate(children):
            parent, c.parent_derived = c.parent_derived, None
            np.testing.assert_array_equal(factors[k], stage_factors(c), err_msg=f"factors after {c.decisions[-1]}")
            c.parent_derived = parent
        kinds.update(c.decisions[-1].kind for c in children)
        rng.shuffle(children)
        rare = [c for c in children if c.decisions[-1].kind in ("layout", "wrap", "rfactor")]
        states = (rare[:1] + children)[:beam]
    return inc, kinds


@pytest.mark.parametrize("name", ["random_8", "local_laplacian", "ae_train_step", "xnor_conv"])
def test_features_from_the_parents_memo_equal_the_full_path(name: str) -> None:
    """A child's features start from its parent's (``State.parent_derived``): groups its
    decision did not touch are the parent's; they must equal what the full path computes."""
    spec = halide_pipelines.get(name)
    _, dag = _build(name, dict(spec.test_sizes))
    inc, kinds = search_walk_features_agree(dag, MAKER.TARGET, 1)
    assert inc.reused > inc.misses, "the parent's groups are not being reused"
    if name == "xnor_conv":
        assert "rfactor" in kinds
    if name == "local_laplacian":
        assert "layout" in kinds


def test_partial_states_and_network_inputs() -> None:
    _, dag = _build("blur", {"width": 40, "height": 32})
    s0 = State.initial(dag, MAKER.TARGET, 2)
    fz = featurizer_for(s0)
    assert fz is featurizer_for(s0.space)
    assert not schedule_features(s0).any()               # nothing scheduled: every row zero
    s1 = s0.apply(s0.options()[0])                         # the output is placed (not tiled yet)
    s2 = s1.apply(s1.options()[0])
    f2 = schedule_features(s2)
    out_row = fz.row[(dag.outputs[0].index, 0)]
    assert f2[out_row].any() and not np.delete(f2, out_row, axis=0).any()   # producers: not scheduled yet
    assert f2[out_row, FN.index("points_computed_minimum")] == 40 * 32
    assert f2[out_row, FN.index("vector_size")] == 16                      # uint16 on AVX2
    # optional decisions (Layout, Wrap) make some paths longer: the walk's last complete state
    done = [s for s in _walk(dag, 0, parallelism=2) if s.is_complete][-1]
    assert schedule_features(done).any(axis=1).all()     # inlined Funcs have rows too
    with pytest.raises(ValueError):
        fz.features(_walk(dag, 0, parallelism=4)[-1])       # another search space: another featurizer
    batch = featurize_states([s0, s2, done])
    assert batch.shape == (3, fz.num_stages, len(FN)) and batch.dtype == np.float32
    inputs = network_inputs([s0, s2, done])
    assert tuple(inputs.pipeline.shape) == (fz.num_stages, 40, 7) and inputs.num_cores == 2
    np.testing.assert_array_equal(inputs.pipeline.numpy(), pipeline_features(s0))
    net = AdamsNet(torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = net(*inputs)
    assert pred.shape == (3,) and float(pred[0]) == 0.0 and torch.isfinite(pred).all()


@pytest.mark.parametrize("name", ["mat_mul", "iir_blur"])
def test_replayed_schedule_compiles_and_computes_the_reference(name: str, compared: dict[str, _Compared]) -> None:
    from autoscheduler.apply import apply_state
    c = compared[name]
    spec = halide_pipelines.get(name)
    built = spec.build(**c.fx["sizes"])
    p = built.pipeline()
    apply_state(c.rp.state, p)
    inputs = spec.make_inputs(0, **c.fx["sizes"])
    got = halide_pipelines.realize(built, inputs, pipeline=p)
    for g, r in zip(got, spec.reference(inputs, **c.fx["sizes"])):
        np.testing.assert_allclose(g, r, rtol=max(spec.rtol, 1e-5), atol=max(spec.atol, 1e-5))

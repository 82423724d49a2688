"""bench/gpu_bench.py without a GPU: the candidates it prepares (the pick, the best predicted, and
alternatives that change one or two of the pick's decisions), and a run that says nothing was measured."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

import halide_pipelines
from autoscheduler.dag import FunctionDAG
from autoscheduler.measure import cuda_available
from autoscheduler.state import State

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "bench" / "gpu_bench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_prepared_candidates_are_the_pick_then_distinct_legal_alternatives(tmp_path: Path) -> None:
    gb = _bench()
    out = tmp_path / "c.json"
    assert gb.main(["prepare", "--only", "conv_layer", "--small", "--top", "3", "--diverse", "8", "--beam", "8",
                    "--passes", "1", "--time-budget", "20", "--no-baselines", "--no-pylib", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["workloads"]["conv_layer"]
    cands = entry["ours"]["candidates"]
    assert entry["baselines"] == {} and 3 < len(cands) <= 11
    assert [c["origin"] for c in cands[:3]] == ["top 0", "top 1", "top 2"]
    assert cands[0]["predicted_cost"] <= min(c["predicted_cost"] for c in cands[1:3])
    traces = [json.dumps(c["state"]["decisions"], sort_keys=True) for c in cands]
    assert len(set(traces)) == len(traces)
    pick = cands[0]["state"]["decisions"]
    spec = halide_pipelines.get("conv_layer")
    dag = FunctionDAG.from_pipeline(spec.build(**entry["sizes"]).pipeline())
    for c in cands[3:]:
        assert c["origin"].startswith(("decision ", "pair: "))
        st = State.from_trace(dag, c["state"]["decisions"], gb.SEARCH_TARGET)   # legal on replay
        assert st.is_complete and ".gpu_blocks(" in c["source"]
        if c["origin"].startswith("decision "):
            # differs from the pick first at the decision it names
            k = int(c["origin"].split()[1].rstrip(":"))
            assert c["state"]["decisions"][:k] == pick[:k] and c["state"]["decisions"][k] != pick[k]


def test_run_without_a_gpu_says_so_and_ratios_are_geomeans(tmp_path: Path) -> None:
    gb = _bench()
    if not cuda_available():
        assert gb.main(["run", "--candidates", str(tmp_path / "none.json"), "--out-dir", str(tmp_path)]) == 0
        assert "nothing was measured" in json.loads((tmp_path / "gpu_bench.json").read_text())["skipped"]
    rows = {"ours": {"min_ms": 2.0, "search_s": 4.0}, "ours_tuned": {"min_ms": 1.0},
            "Anderson2021": {"min_ms": 4.0, "search_s": 1.0}, "PyTorch": {"min_ms": 1.0}, "Li2018": {"error": "x"}}
    r = gb.ratios(rows)
    assert r == {"ours/Anderson2021": 0.5, "ours/PyTorch": 2.0, "ours_tuned/Anderson2021": 0.25,
                 "ours_tuned/PyTorch": 1.0, "ours_search/Anderson2021_search": 4.0}
    other = dict(r, **{"ours_tuned/Anderson2021": 1.0})
    s = gb.summary([{"pipeline": "a", "ratios": r}, {"pipeline": "b", "ratios": other}])
    assert s["geomean"]["ours_tuned/Anderson2021"] == pytest.approx(math.sqrt(0.25 * 1.0))

"""Schedules drawn on one machine and measured on another (``collect --prepare`` / ``--prepared``):
how GPU training data is collected when the GPU is lent briefly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from autoscheduler import cli
from autoscheduler.collect import CollectOptions, collect_prepared, prepare_candidates, read_prepared
from autoscheduler.errors import ToolkitError
from autoscheduler.measure import MeasureOptions, cuda_available
from autoscheduler.records import Records

FAST = MeasureOptions(n_samples=1, min_sample_s=0.001, progress=False, max_consecutive_errors=0)


def test_cuda_schedules_are_drawn_without_a_gpu(tmp_path: Path) -> None:
    out = tmp_path / "cuda.jsonl.gz"
    opts = CollectOptions(names=("blur",), schedules_per_pipeline=4, small=True,
                          target="host-cuda-cuda_capability_80", search_time_budget_s=2.0)
    assert prepare_candidates(opts, out) == 4
    rows = read_prepared(out)
    assert len(rows) == 4 and {r["pipeline"] for r in rows} == {"blur"}
    assert len({json.dumps(r["trace"]) for r in rows}) == 4
    # every schedule maps loops to GPU blocks (the CUDA search space), and says where it came from
    assert all(".gpu_blocks(" in r["source"] for r in rows)
    assert {r["origin"] == "random" for r in rows} == {True, False}
    if not cuda_available():
        with pytest.raises(ToolkitError, match="needs a CUDA GPU"):
            collect_prepared(out, CollectOptions(target="host-cuda", measure=FAST), tmp_path / "db.sqlite")


def test_prepared_cpu_schedules_are_measured_once_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "cpu.jsonl"
    opts = CollectOptions(names=("blur", "index_sum"), schedules_per_pipeline=3, small=True, target="host",
                          search_time_budget_s=2.0)
    assert prepare_candidates(opts, out) == 6
    db = tmp_path / "db.sqlite"
    report = collect_prepared(out, CollectOptions(target="host", measure=FAST), db)
    assert report.measured == 6 and report.ok == 6 and report.skipped == 0
    with Records(db, readonly=True) as r:
        rows = r.all()
    assert len(rows) == 6 and all(x.ok for x in rows)
    again = collect_prepared(out, CollectOptions(target="host", measure=FAST), db)
    assert again.measured == 0 and again.skipped == 6
    # a deadline of zero starts nothing
    other = tmp_path / "other.sqlite"
    assert collect_prepared(out, CollectOptions(target="host", measure=FAST), other,
                            deadline_s=0.0).measured == 0


def test_a_file_that_is_not_prepared_schedules_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "samples.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"format": "halide-toolkit-samples", "version": 1}) + "\n")
    with pytest.raises(ToolkitError, match="not a prepared-schedules file"):
        read_prepared(bad)
    assert cli.main(["collect", "--prepared", str(tmp_path / "missing.jsonl"), "--target", "host"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]

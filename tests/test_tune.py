"""The autotuning loop: resume after SIGKILL, apply history best, plots, executors, database errors.

One module fixture runs ``autoschedule tune blur --small`` (2 rounds of 4 candidates, short timing) in a
subprocess, kills it with SIGKILL as soon as the second round has committed a measurement, and resumes
it in this process; the other tests read the database it leaves. Everything runs at the workloads'
small test sizes, where a candidate builds and times in about a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import halide_pipelines
from autoscheduler import cli
from autoscheduler.api import autoschedule
from autoscheduler.errors import DatabaseError, ToolkitError
from autoscheduler.measure import MeasureOptions, schedule_hash
from autoscheduler.records import Record, Records
from autoscheduler.tune import (Progress, ProgressStore, ProposeOptions, TuneOptions, TuneResult, propose,
                                task_for, tune, tune_dir)
from autoscheduler.tune.propose import split_batch

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = "blur"
FAST = MeasureOptions(n_samples=2, min_sample_s=0.002, warmup=1, num_threads=2, build_timeout_s=30.0,
                      run_timeout_s=5.0, reference_timeout_s=60.0, max_consecutive_errors=0, progress=False)
OPTIONS = TuneOptions(rounds=2, batch=4, random_share=0.25, finetune_steps=5, retime_rounds=2, measure=FAST,
                      progress=False)
CLI_OPTIONS = ["--rounds", "2", "--batch", "4", "--random-share", "0.25", "--finetune-steps", "5",
               "--retime-rounds", "2", "--n-samples", "2", "--min-sample-s", "0.002", "--threads", "2",
               "--build-timeout", "30", "--run-timeout", "5", "--quiet"]


def tuned_rows(db: Path) -> list[Record]:
    with Records(db, readonly=True) as r:
        return [x for x in r.all() if x.pipeline_name == PIPELINE]


def progress_of(db: Path) -> Progress | None:
    files = list(tune_dir(db).glob(f"{PIPELINE}-*/progress.json"))
    if not files:
        return None
    import json
    try:
        return Progress.from_json(json.loads(files[0].read_text()))
    except ValueError:
        return None  # caught between the write and the rename: read again


@dataclass
class Resumed:
    db: Path
    before: list[Record]  # what the killed run had committed
    progress_at_kill: Progress
    result: TuneResult
    after: list[Record]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Resumed:
    db = tmp_path_factory.mktemp("tune") / "tuning.sqlite"
    log = open(db.with_suffix(".log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "autoscheduler.cli", "tune", PIPELINE, "--small", "--db",
                             str(db), *CLI_OPTIONS], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    killed = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            p = progress_of(db)
            # Mid-round: round 1 done and saved, round 2 started and one of its results committed.
            if p is not None and p.rounds_done == 1 and p.round_started == 1 and db.exists():
                if len(tuned_rows(db)) > p.round_start_max_id:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    assert killed, f"the tune ended (rc {proc.returncode}) before it could be killed mid-round: " \
                   + db.with_suffix(".log").read_text()[-2000:]
    assert proc.returncode == -signal.SIGKILL
    before = tuned_rows(db)
    at_kill = progress_of(db)
    assert at_kill is not None
    result = tune(PIPELINE, db=db, small=True, options=OPTIONS)
    return Resumed(db, before, at_kill, result, tuned_rows(db))


def test_killed_tune_resumes_without_remeasuring(resumed: Resumed) -> None:
    r, at_kill = resumed.result, resumed.progress_at_kill
    # The round counter and the fine-tuned weights were restored: only round 2 ran again ...
    assert at_kill.rounds_done == 1 and at_kill.weights == "weights-r000.pt"
    assert r.resumed and r.rounds_run == 1 and r.rounds_done == 2 and len(r.curve) == 2
    assert r.curve[0] == type(r.curve[0]).from_json(at_kill.curve[0])
    # ... it proposed the same candidates as before the kill (same model, same seeds, the database as
    # it was when the round began), so every one measured before the kill was skipped, none redone.
    in_round_2 = [x for x in resumed.before if (x.id or 0) > at_kill.round_start_max_id]
    assert in_round_2 and r.skipped == len(in_round_2)
    assert r.duplicates == 0
    assert len(resumed.after) == len(resumed.before) + r.measured
    hashes = [x.schedule_hash for x in resumed.after]
    assert len(hashes) == len(set(hashes))
    assert all(x.trace is not None for x in resumed.after)
    # The round's candidates: the round size, less those the search could not draw anew.
    assert r.curve[1].proposed == r.curve[1].skipped + r.curve[1].measured <= OPTIONS.batch
    # The best: the fastest two in the database, re-timed interleaved; the curve ends at the database's best.
    ok = sorted((x for x in resumed.after if x.ok and x.statistic is not None), key=lambda x: x.statistic or 0)
    assert r.best_record_id in {x.id for x in ok[:2]}
    assert r.best_source == next(x.schedule_source for x in ok if x.id == r.best_record_id)
    assert r.curve[-1].best_s == pytest.approx(ok[0].statistic)
    before_best = min(x.statistic for x in resumed.before if x.statistic is not None)
    assert r.curve[-1].best_s is not None and r.curve[-1].best_s <= before_best
    assert set(r.retimed) == {"best", "runner_up"} and r.best_time_s == r.retimed["best"]
    assert r.best_state is not None and r.best_state.is_complete
    # Fine-tuned weights: saved per round and for this target and device.
    assert r.weights_path is not None and r.weights_path.endswith("weights-r001.pt") and Path(r.weights_path).exists()
    assert r.transfer_weights_path is not None and Path(r.transfer_weights_path).exists()
    assert r.curve[1].pairwise_before is not None and r.curve[1].pairwise_after is not None
    assert r.time.search_s > 0 and r.time.build_s > 0 and r.time.train_s > 0 and r.time.total_s > 0


def test_finished_tune_reruns_without_measuring(resumed: Resumed, tmp_path: Path) -> None:
    """Rerunning a finished tune measures nothing and keeps the records; more rounds continue it."""
    db = tmp_path / "copy.sqlite"
    shutil.copy(resumed.db, db)
    shutil.copytree(tune_dir(resumed.db), tune_dir(db))
    again = tune(PIPELINE, db=db, small=True, options=replace(OPTIONS, retime_rounds=0))
    assert again.rounds_run == 0 and again.measured == 0 and "2 round(s) done" in again.stopped
    assert len(tuned_rows(db)) == len(resumed.after)


def test_apply_history_best_returns_the_stored_best(resumed: Resumed, capsys: pytest.CaptureFixture[str]) -> None:
    spec = halide_pipelines.get(PIPELINE)
    sizes = spec.sizes(**spec.test_sizes)
    built = spec.build(**sizes)
    sched = autoschedule(built.outputs, "host", db=str(resumed.db), parallelism=2)
    best = min((x for x in resumed.after if x.ok and x.statistic is not None), key=lambda x: x.statistic or 0)
    assert sched.record is not None and sched.record.id == best.id
    assert sched.search.states_scored == 0
    assert schedule_hash(sched.source()) == best.schedule_hash
    inputs = spec.make_inputs(0, **sizes)
    out = halide_pipelines.realize(built, inputs, pipeline=sched.apply().pipeline)
    for o, ref in zip(out, spec.reference(inputs, **sizes)):
        np.testing.assert_allclose(o, ref, rtol=spec.rtol, atol=spec.atol)
    # Other sizes are another pipeline (another hash): nothing stored, so it searches.
    other = spec.build(**{**sizes, "width": sizes["width"] + 8})
    searched = autoschedule(other.outputs, "host", db=str(resumed.db), parallelism=2, beam_size=4, passes=1)
    assert searched.record is None and searched.search.states_scored > 0
    assert cli.main(["run", PIPELINE, "--small", "--db", str(resumed.db), "--no-reference", "--repeats", "1"]) == 0
    assert f"measured {best.statistic * 1e3:.4g} ms" in capsys.readouterr().out  # type: ignore[operator]


def test_plot_writes_a_png(resumed: Resumed, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="needs the plot extra: pip install -e .[plot]")
    out = tmp_path / "curves" / "curve.png"
    assert cli.main(["plot", "--db", str(resumed.db), "--out", str(out), "--line", "Adams2019=0.004"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    from autoscheduler.plot import best_curve
    curve = best_curve(resumed.after)
    assert len(curve) == len(resumed.after)
    assert all(a is None or b is not None and b <= a for a, b in zip(curve, curve[1:]))


def test_plot_without_matplotlib_is_one_line(resumed: Resumed, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from autoscheduler.plot import plot_curves
    with pytest.raises(ToolkitError, match=r"matplotlib is not installed; install the plot extra"):
        plot_curves(resumed.db, tmp_path / "x.png")


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], expect: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and expect in err, err


def test_bad_or_corrupt_database_is_one_line_and_keeps_records(resumed: Resumed, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["tune", PIPELINE, "--small", "--db", str(tmp_path / "no_such_dir" / "t.sqlite")],
                    "cannot open or write the file")
    corrupt = tmp_path / "corrupt.sqlite"
    junk = b"this is not a database " * 400
    corrupt.write_bytes(junk)
    _one_line_error(capsys, ["tune", PIPELINE, "--small", "--db", str(corrupt)], "corrupt or not a tuning database")
    _one_line_error(capsys, ["plot", "--db", str(corrupt), "--out", str(tmp_path / "c.png")], "corrupt")
    with pytest.raises(DatabaseError):
        autoschedule(halide_pipelines.get(PIPELINE).build(width=40, height=32).outputs, "host", db=str(corrupt))
    assert corrupt.read_bytes() == junk and not tune_dir(corrupt).exists()
    # A readable database whose tuning progress is damaged: an error naming the file; records intact.
    db = tmp_path / "copy.sqlite"
    shutil.copy(resumed.db, db)
    shutil.copytree(tune_dir(resumed.db), tune_dir(db))
    progress = next(tune_dir(db).glob(f"{PIPELINE}-*/progress.json"))
    progress.write_text("{ not json")
    _one_line_error(capsys, ["tune", PIPELINE, "--small", "--db", str(db), *CLI_OPTIONS], "unreadable tuning progress")
    assert len(tuned_rows(db)) == len(resumed.after)


def test_proposals_are_deterministic_distinct_and_skip_measured() -> None:
    task = task_for(PIPELINE, "host", small=True)
    from autoscheduler.cost import CostModel
    from autoscheduler.state import State
    initial = State.initial(task.dag, "host", 2)
    cost = CostModel.load(None, parallelism=2).cost_fn(task.dag)
    opts = ProposeOptions(batch=6, random_share=0.34, beam_size=8, passes=1)
    assert split_batch(opts) == (4, 0, 2)          # no parents: no mutations
    first = propose(initial, cost, 0, opts, exclude=set())
    again = propose(initial, cost, 0, opts, exclude=set())
    assert [p.schedule_hash for p in first] == [p.schedule_hash for p in again]
    assert len({p.schedule_hash for p in first}) == len(first) >= 4
    assert first[0].origin == "beam" and sum(p.origin == "random" for p in first) == 2
    for p in first:
        assert p.state.is_complete and np.isfinite(p.predicted)
        assert schedule_hash(p.source) == p.schedule_hash
    later = propose(initial, cost, 0, opts, exclude={p.schedule_hash for p in first})
    assert later and not {p.schedule_hash for p in later} & {p.schedule_hash for p in first}


def test_mutations_change_one_choice_and_keep_the_rest_of_the_parent() -> None:
    task = task_for(PIPELINE, "host", small=True)
    from autoscheduler.cost import CostModel
    from autoscheduler.state import State
    from autoscheduler.tune.propose import mutate
    import random
    initial = State.initial(task.dag, "host", 2)
    cost = CostModel.load(None, parallelism=2).cost_fn(task.dag)
    opts = ProposeOptions(batch=8, random_share=0.25, mutate_share=0.5, beam_size=8, passes=1)
    parent = propose(initial, cost, 0, replace(opts, mutate_share=0.0), exclude=set())[0]
    trace = parent.trace
    kids = [mutate(initial, trace, cost, random.Random(k)) for k in range(6)]
    assert all(k is not None and k.is_complete for k in kids)
    again = mutate(initial, trace, cost, random.Random(0))
    assert again is not None and again.decisions == kids[0].decisions          # deterministic in the rng
    parent_d = [d for d in parent.state.decisions]
    for k in kids:
        assert k is not None
        d = list(k.decisions)
        first = next(i for i, (a, b) in enumerate(zip(parent_d, d)) if a != b)   # one choice replaced ...
        assert d[:first] == parent_d[:first]
        # ... and the parent's later decisions kept where their slots still exist
        assert len(set(d[first + 1:]) & set(parent_d[first + 1:])) > 0 or first + 1 >= len(parent_d) - 1
    assert mutate(initial, [{"kind": "nonsense"}], cost, random.Random(0)) is None
    assert split_batch(opts, parents=1) == (2, 4, 2)
    props = propose(initial, cost, 1, opts, exclude={parent.schedule_hash}, parents=[trace])
    assert sum(p.origin.startswith("mutate") for p in props) >= 3
    assert parent.schedule_hash not in {p.schedule_hash for p in props}


def test_user_pipeline_task_measures_through_serialized_bytes() -> None:
    import halide as hl
    x, y = hl.Var("x"), hl.Var("y")
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    k = hl.Param(hl.Int(32), "k", 3)
    f, g = hl.Func("f"), hl.Func("g")
    f[x, y] = inp[x, y] * 2.0
    g[x, y] = f[x, y] + f[x + 1, y] + hl.cast(hl.Float(32), k)
    inp.dim(0).set_estimate(0, 65)
    inp.dim(1).set_estimate(0, 32)
    k.set_estimate(3)
    g.set_estimates([(0, 64), (0, 32)])
    task = task_for([g], "host")
    assert task.output_shapes == [[64, 32]] and task.sizes == {"k": 3} and task.serialized
    from autoscheduler import schedules
    from autoscheduler.measure import measure_batch
    res = measure_batch([task.candidate(schedules.root_source(task.pipeline))], FAST)
    assert res[0].ok, res[0].message


def test_ray_executor_gives_the_same_records_as_local(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs the distributed extra: pip install -e .[distributed]")
    from autoscheduler.measure_ray import RayExecutor
    opts = replace(OPTIONS, rounds=1, batch=3, random_share=0.34, finetune_steps=0, replay=None)
    local = tune(PIPELINE, db=tmp_path / "local.sqlite", small=True, options=opts, executor="local")
    with RayExecutor(num_cpus=2, gpus=0) as ex:  # a local Ray cluster, shut down on exit
        via_ray = tune(PIPELINE, db=tmp_path / "ray.sqlite", small=True, options=opts, executor=ex)

    def key(rows: list[Record]) -> set[tuple[Any, ...]]:
        return {(x.schedule_hash, x.trace_hash, x.error_code, x.device, x.num_threads, x.predicted_cost) for x in rows}
    local_rows, ray_rows = tuned_rows(tmp_path / "local.sqlite"), tuned_rows(tmp_path / "ray.sqlite")
    assert len(local_rows) == local.measured == 3 and via_ray.measured == 3
    assert key(local_rows) == key(ray_rows)
    assert all(x.ok for x in ray_rows)
    assert via_ray.retimed["best"] is not None and via_ray.best_source is not None


# ---------------------------------------------------------------------------- CUDA targets

CUDA_OPTIONS = replace(OPTIONS, beam_size=8, passes=1, replay=None)


def _cuda_object(source: str, sizes: dict[str, int]) -> bytes:
    """``source`` applied to a fresh blur, compiled to an object for CUDA (Halide emits the PTX
    without a device); the object's bytes."""
    import halide as hl

    from autoscheduler.schedules import apply_source
    p = halide_pipelines.get(PIPELINE).build(**sizes).pipeline()
    apply_source(source, p)
    path = Path(__import__("tempfile").mkdtemp()) / "p.o"
    try:
        p.compile_to({hl.OutputFileType.object: str(path)}, list(p.infer_arguments()), "p",
                     hl.Target("host-cuda-cuda_capability_80"))
        return path.read_bytes()
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def test_cuda_target_without_a_gpu_searches_and_measures_nothing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscheduler.apply import schedule_source
    from autoscheduler.features.gpu import GpuAnalyticCost
    from autoscheduler.state import State
    from autoscheduler.tune import loop
    monkeypatch.setattr(loop, "cuda_available", lambda: False)  # also on a machine that has a GPU
    db = tmp_path / "cuda.sqlite"
    opts = replace(CUDA_OPTIONS, baselines=("root",))
    r = tune(PIPELINE, "host-cuda", db=db, small=True, options=opts)
    assert r.not_measured == loop.NO_CUDA_DEVICE == "nothing was measured: no CUDA device on this machine"
    assert r.not_measured in r.line() and "GpuAnalyticCost" in r.start_weights
    assert r.curve == [] and r.best_time_s is None and r.measured == 0 and r.rounds_done == 0
    assert r.weights_path is None and r.retimed == {} and r.baselines == {"root": None}
    # The candidates are round 1's (the full beam search, the dropout variants, the random share) with
    # the analytic GPU cost in the GPU space; the best is the lowest predicted.
    task = task_for(PIPELINE, r.target, small=True)
    initial = State.initial(task.dag, task.target)
    assert initial.space.gpu and r.pipeline_hash == initial.space.pipeline_hash
    expected = propose(initial, GpuAnalyticCost(initial.space.parallelism).cost_fn(task.dag), 0,
                       opts.propose_options(), exclude=set(), seed=opts.seed)
    assert [p.schedule_hash for p in r.proposals] == [p.schedule_hash for p in expected]
    assert r.proposals[0].origin == "beam" and len(r.proposals) == opts.batch
    assert sum(p.origin == "random" for p in r.proposals) == split_batch(opts.propose_options())[2]
    assert r.best_predicted == min(p.predicted for p in expected)
    assert r.best_state is not None and r.best_state.is_complete and r.best_state.space.gpu
    assert r.best_source == schedule_source(r.best_state) and ".gpu_blocks(" in r.best_source
    # Stored nothing: no record, no progress beside the database.
    with Records(db, readonly=True) as rec:
        assert rec.all() == []
    assert not tune_dir(db).exists()
    # A legal CUDA schedule: Halide compiles it to PTX kernels; without its GPU labels it computes blur.
    assert b".entry" in _cuda_object(r.best_source, r.sizes)
    spec = halide_pipelines.get(PIPELINE)
    built = spec.build(**r.sizes)
    from autoscheduler.schedules import apply_source
    apply_source(schedule_source(r.best_state, gpu=False), built.pipeline())
    inputs = spec.make_inputs(0, **r.sizes)
    for o, ref in zip(halide_pipelines.realize(built, inputs), spec.reference(inputs, **r.sizes)):
        np.testing.assert_allclose(o, ref, rtol=spec.rtol, atol=spec.atol)


def test_cli_tune_cuda_without_a_gpu_prints_the_schedule_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscheduler.tune import loop
    monkeypatch.setattr(loop, "cuda_available", lambda: False)
    db = tmp_path / "cli.sqlite"
    args = ["tune", PIPELINE, "--small", "--target", "host-cuda", "--db", str(db), "--batch", "3",
            "--beam-size", "8", "--passes", "1", "--quiet"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    lines = out.rstrip("\n").split("\n")
    assert lines[-1] == "nothing was measured: no CUDA device on this machine"
    source = "\n".join(lines[:-1]) + "\n"
    assert ".gpu_blocks(" in source and b".entry" in _cuda_object(source, halide_pipelines.get(PIPELINE).sizes(
        **halide_pipelines.get(PIPELINE).test_sizes))
    emit = tmp_path / "best.py"
    assert cli.main([*args, "--emit", str(emit)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip("\n").split("\n") == [f"# schedule written to {emit}",
                                            "nothing was measured: no CUDA device on this machine"]
    assert emit.read_text() == source  # the search is deterministic
    with Records(db, readonly=True) as rec:
        assert rec.all() == []
    _one_line_error(capsys, [*args, "--weights", "x.pt"], "no such GPU weights")
    _one_line_error(capsys, [*args, "--weights", str(ROOT / "cost_model" / "weights" / "ours.pt")],
                    "not a GPU cost model")
    _one_line_error(capsys, ["tune", PIPELINE, "--small", "--target", "host-opencl", "--db", str(db)],
                    "CPU and CUDA schedules only")


class _FakeGpu:
    """An Executor that 'times' CUDA candidates without a GPU: a deterministic time per schedule
    (from its hash), tagged with this machine's CUDA fingerprint. It drives the tuner's CUDA loop
    (records, resume, re-timing) on a machine without a GPU; real timing is test_tune_cuda_on_the_gpu."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.interleaved: list[list[str]] = []

    @staticmethod
    def seconds(c: Any) -> float:
        return 1e-3 * (1.0 + int(c.schedule_hash()[:8], 16) / 16 ** 8)

    def result(self, c: Any, samples: list[float]) -> Any:
        from autoscheduler.measure import ErrorCode, MeasureResult, device_fingerprint
        assert c.is_cuda, c.target
        return MeasureResult(c, ErrorCode.OK, samples=samples, repeats=1, build_s=0.01, run_s=0.01,
                             num_threads=2, device=device_fingerprint(c.target))


def _fake_gpu_executor() -> Any:
    from autoscheduler.measure import Executor

    class FakeGpu(_FakeGpu, Executor):
        def submit(self, candidates: Any, options: Any, on_result: Any = None) -> Any:
            out = []
            for i, c in enumerate(candidates):
                self.submitted.append(c.schedule_hash())
                out.append(self.result(c, [self.seconds(c)]))
                if on_result is not None:
                    on_result(i, out[-1])
            return out

        def submit_interleaved(self, candidates: Any, rounds: int, options: Any) -> Any:
            self.interleaved.append([c.schedule_hash() for c in candidates])
            return [self.result(c, [self.seconds(c)] * rounds) for c in candidates]

    return FakeGpu()


def ranked_source(rows: list[Record]) -> str:
    return min(rows, key=lambda x: x.statistic or 0).schedule_source


def test_cuda_loop_measures_through_the_executor_and_refits_the_gpu_cost(tmp_path: Path) -> None:
    from autoscheduler.tune import loop
    db = tmp_path / "fake_gpu.sqlite"
    ex = _fake_gpu_executor()
    log: list[str] = []
    r = tune(PIPELINE, "host-cuda", db=db, small=True, options=CUDA_OPTIONS, executor=ex, log=log.append)
    assert r.not_measured is None and r.rounds_done == 2 and len(r.curve) == 2
    rows = tuned_rows(db)
    assert len(rows) == r.measured == len(ex.submitted) == len(set(ex.submitted)) > 2
    assert all(x.ok and "cuda" in x.target.split("-") and x.trace is not None for x in rows)
    assert ".gpu_blocks(" in ranked_source(rows)
    # Each round refits the GPU cost's term scales on what was measured (nothing is saved), or says
    # why not when too few schedules were measured.
    assert r.curve[-1].measured_total >= loop.MIN_GPU_FIT  # so the last round did refit
    for c, line in zip(r.curve, log):
        if c.measured_total >= loop.MIN_GPU_FIT:
            assert c.finetune_skipped is None and c.pairwise_after is not None and "fine-tune pairwise" in line
        else:
            assert c.finetune_skipped == loop.GPU_NO_FINETUNE and "fine-tuning skipped" in line
    assert r.weights_path is None and r.transfer_weights_path is None and not list(tune_dir(db).rglob("*.pt"))
    # The two fastest re-timed interleaved; the best is the fastest stored.
    ranked = sorted(rows, key=lambda x: x.statistic or 0)
    assert ex.interleaved == [[ranked[0].schedule_hash, ranked[1].schedule_hash]]
    assert r.best_record_id == ranked[0].id and r.best_time_s == pytest.approx(ranked[0].statistic)
    assert r.best_state is not None and r.best_state.space.gpu
    # More rounds continue from the progress and measure nothing twice.
    more = tune(PIPELINE, "host-cuda", db=db, small=True, options=replace(CUDA_OPTIONS, rounds=3, patience=5),
                executor=ex)
    assert more.resumed and more.rounds_done == 3 and more.rounds_run == 1 and more.measured > 0
    assert len(ex.submitted) == len(set(ex.submitted)) == len(tuned_rows(db))
    # ``autoschedule(..., 'host-cuda', db=)`` finds the tuned best (same GPU space and pipeline hash).
    spec = halide_pipelines.get(PIPELINE)
    sched = autoschedule(spec.build(**more.sizes).outputs, "host-cuda", db=str(db))
    assert sched.record is not None and sched.record.id == more.best_record_id


@pytest.mark.gpu
def test_tune_cuda_on_the_gpu(tmp_path: Path) -> None:
    from autoscheduler.measure import cuda_available
    if not cuda_available():
        pytest.skip("no CUDA GPU on this machine")
    from autoscheduler.tune import loop
    opts = replace(CUDA_OPTIONS, rounds=1, batch=3, random_share=0.34,
                   measure=FAST.with_(memory_limit_mb=None, run_timeout_s=30.0, build_timeout_s=60.0))
    db = tmp_path / "gpu.sqlite"
    r = tune(PIPELINE, "host-cuda", db=db, small=True, options=opts)
    assert r.not_measured is None and r.measured == 3 and r.curve[0].finetune_skipped == loop.GPU_NO_FINETUNE
    rows = tuned_rows(db)
    assert len(rows) == 3 and any(x.ok for x in rows), [(x.error_code, x.error_message) for x in rows]
    import json
    assert all(json.loads(x.device)["gpu"] for x in rows)
    assert r.best_time_s is not None and r.best_source is not None and ".gpu_blocks(" in r.best_source
    again = tune(PIPELINE, "host-cuda", db=db, small=True, options=replace(opts, retime_rounds=0))
    assert again.measured == 0 and len(tuned_rows(db)) == 3

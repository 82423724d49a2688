"""The autotuning loop: search with the current model, measure what is new, fine-tune, repeat.

Each round (Adams2019's autotuning recipe, ``propose``): one full beam search plus dropout-randomised
beam / greedy searches and a share of random legal states; the candidates not yet in the database are
measured (``autoscheduler.measure``, any executor; this driver alone writes the records, each as it
arrives); then the model is fine-tuned on every measurement of this pipeline plus a replay of training
data (``cost_model.train.finetune``), and saved. The loop stops after ``rounds`` rounds, at the time
budget, or after ``patience`` rounds without an improvement larger than ``min_improvement``. The two
fastest schedules are then re-timed interleaved and the faster is declared best.

Everything needed to resume is in the database and beside it (``progress``): rerunning the same call
after a kill continues from the round in progress with the fine-tuned weights of the last completed
round, and measures nothing twice.

CUDA targets (``host-cuda``): the search runs in the GPU search space with the analytic GPU cost
(``features.gpu.GpuAnalyticCost``), or a saved GPU model (``weights``: a ``cost_model.gpu_model``
GpuNet). Fine-tuning there refits the six term scales of the GPU cost (compute, DRAM, L2, shared,
serial latency, launches) on this pipeline's measurements after each round, kept when it orders
them at least as well as the cost it replaces; it is not saved (it is refitted from the database
on resume). With a CUDA device to time on, everything else is as on the CPU (records, resume, no
re-measuring, the interleaved re-timing of the best two). Without
one (the local executor on a machine where ``measure.cuda_available()`` is False, or an executor that
raises DeviceUnavailableError before measuring anything), ``tune`` still proposes what round 1 would
(the full beam search, the dropout variants and the random share, through ``propose``), stores
nothing, and returns the candidate with the lowest predicted cost, with ``not_measured`` saying why.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BaselineError, ToolkitError
from ..measure import (DeviceUnavailableError, Executor, LocalExecutor, MeasureAbortedError,
                       MeasureOptions, MeasureResult, cuda_available, device_fingerprint, measure_batch,
                       retime_interleaved, trace_hash)
from ..measure.candidate import is_cuda_target
from ..measure.executor import EXECUTORS
from ..records import Record, Records
from .progress import Progress, ProgressStore, tune_dir
from .propose import Proposal, ProposeOptions, propose
from .task import TuneTask, task_for

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_REPLAY = REPO_ROOT / "data" / "samples_small_tiny.jsonl.gz"
NO_CUDA_DEVICE = "nothing was measured: no CUDA device on this machine"
GPU_NO_FINETUNE = "GPU cost not refitted: fewer than 4 schedules measured"
MIN_GPU_FIT = 4
PARENTS = 4   # the fastest measured schedules a round mutates


@dataclass(frozen=True)
class TuneOptions:
    """Knobs of a tuning run.

    Rounds of ``batch`` candidates (``random_share`` of them random, ``mutate_share`` mutations of
    the fastest measured ones; see ``ProposeOptions``). Stops
    after ``rounds`` rounds in all (a resumed run counts the rounds done before), after
    ``time_budget_s`` seconds of this call, or after ``patience`` rounds whose best did not beat the
    best before by more than ``min_improvement`` (relative). ``weights``: the model to start from
    (default: the shipped one); ignored when resuming, which continues from the fine-tuned weights;
    must be None on CUDA targets (searched with the analytic GPU cost, never fine-tuned).
    ``replay``: training data (an export or a database) replayed while fine-tuning so the model does
    not forget other pipelines; None for none; at most ``replay_pipelines`` of its pipelines.
    ``baselines``: schedules measured once for reference (``root``, ``default``, or a Halide
    autoscheduler such as ``Adams2019``): stored as records, labelled in plots, never the tuned best.
    """

    rounds: int = 10
    batch: int = 16
    random_share: float = 0.2
    mutate_share: float = 0.4
    beam_size: int = 32
    passes: int = 3
    search_time_budget_s: float = 30.0
    time_budget_s: float | None = None
    patience: int = 3
    min_improvement: float = 0.005
    weights: str | None = None
    replay: str | None = str(DEFAULT_REPLAY)
    replay_pipelines: int = 64
    finetune_steps: int = 40
    finetune_lr: float = 1e-3
    retime_rounds: int = 5
    baselines: tuple[str, ...] = ()
    baseline_timeout_s: float = 600.0
    seed: int = 0
    progress: bool = True
    measure: MeasureOptions = field(default_factory=lambda: MeasureOptions(max_consecutive_errors=0))

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.batch < 1 or self.patience < 1:
            raise ToolkitError("rounds, batch and patience must be >= 1")
        if not 0.0 <= self.random_share <= 1.0:
            raise ToolkitError("random_share must be between 0 and 1")
        if not 0.0 <= self.mutate_share <= 1.0 or self.random_share + self.mutate_share > 1.0:
            raise ToolkitError("mutate_share must be between 0 and 1, and random_share + mutate_share at most 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ToolkitError("the time budget must be positive")

    def propose_options(self) -> ProposeOptions:
        return ProposeOptions(batch=self.batch, random_share=self.random_share, beam_size=self.beam_size,
                              passes=self.passes, search_time_budget_s=self.search_time_budget_s,
                              mutate_share=self.mutate_share)


@dataclass
class TimeSplit:
    """Where the time went, in seconds. ``build_s`` / ``run_s`` sum the workers' compile and
    check-and-time times (builds overlap on parallel workers); ``measure_s`` is the driver's wall
    time waiting for measurements; ``total_s`` the wall time of every call of this run together."""

    search_s: float = 0.0
    build_s: float = 0.0
    run_s: float = 0.0
    train_s: float = 0.0
    measure_s: float = 0.0
    retime_s: float = 0.0
    total_s: float = 0.0

    def add(self, other: "TimeSplit") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def line(self) -> str:
        return (f"search {self.search_s:.1f} s, build {self.build_s:.1f} s, run {self.run_s:.1f} s, "
                f"train {self.train_s:.1f} s (measure wall {self.measure_s:.1f} s, total {self.total_s:.1f} s)")


@dataclass
class RoundStats:
    """One round: what was proposed and measured, the best so far, and how good the model was.

    ``predicted_pairwise``: pairwise ordering accuracy of the model's predictions on this round's
    measurements (made before measuring); ``pairwise_before`` / ``pairwise_after``: on every
    measurement of this pipeline, before and after this round's fine-tuning; ``finetune_skipped``:
    why no fine-tuning ran (CUDA targets: too few schedules measured to refit the GPU cost), else None."""

    round: int
    proposed: int = 0
    measured: int = 0
    skipped: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    round_best_s: float | None = None
    best_s: float | None = None
    measured_total: int = 0
    predicted_pairwise: float | None = None
    pairwise_before: float | None = None
    pairwise_after: float | None = None
    finetune_skipped: str | None = None
    search_s: float = 0.0
    build_s: float = 0.0
    run_s: float = 0.0
    measure_s: float = 0.0
    train_s: float = 0.0

    def line(self, rounds: int) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v * 1e3:.4g} ms"

        def acc(v: float | None) -> str:
            return "-" if v is None or not math.isfinite(v) else f"{v:.2f}"
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "no errors"
        tuned = (f"fine-tuning skipped ({self.finetune_skipped})" if self.finetune_skipped else
                 f"fine-tune pairwise {acc(self.pairwise_before)} -> {acc(self.pairwise_after)}")
        return (f"round {self.round + 1}/{rounds}: measured {self.measured} ({self.ok} OK; {errs}), "
                f"{self.skipped} already in the database; best {ms(self.best_s)} (this round "
                f"{ms(self.round_best_s)}); predicted vs measured pairwise {acc(self.predicted_pairwise)}; "
                f"{tuned}; search {self.search_s:.1f} s, measure {self.measure_s:.1f} s, train {self.train_s:.1f} s")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RoundStats":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TuneResult:
    """What a tuning run found. ``best_*`` is the fastest measured schedule of this pipeline, target and
    device (the tuner's own candidates and any earlier ones in the database; never a labelled
    baseline), declared after re-timing it interleaved against the runner-up (``retimed``).
    ``curve`` holds one entry per round (``best_s`` the best time after that round); ``weights_path``
    the fine-tuned model (None when no round trained); ``transfer_weights_path`` the same model saved
    for this target and device, to start another pipeline's tuning from. ``start_weights`` names the
    model the search started from (on CUDA targets the analytic GPU cost).

    ``not_measured`` is None when the loop ran; otherwise it says why nothing was measured (a CUDA
    target with no CUDA device: ``NO_CUDA_DEVICE``). Then ``best_*`` is the searched candidate with
    the lowest predicted cost (``best_predicted``, in the cost's units, ms for the analytic GPU cost),
    ``best_time_s`` is None, ``curve`` is empty, ``proposals`` holds every candidate the search drew
    (to carry to a machine with a GPU), and no record was written (nor, without a CUDA device on this
    machine, anything beside the database)."""

    pipeline: str
    sizes: dict[str, int]
    target: str
    device: str
    pipeline_hash: str
    db: str
    best_state: Any = None
    best_trace: list[Any] | None = None
    best_source: str | None = None
    best_time_s: float | None = None
    best_record_id: int | None = None
    runner_up_source: str | None = None
    runner_up_time_s: float | None = None
    retimed: dict[str, float | None] = field(default_factory=dict)
    curve: list[RoundStats] = field(default_factory=list)
    weights_path: str | None = None
    transfer_weights_path: str | None = None
    start_weights: str = ""
    time: TimeSplit = field(default_factory=TimeSplit)
    rounds_done: int = 0
    rounds_run: int = 0
    measured: int = 0
    skipped: int = 0
    duplicates: int = 0
    stopped: str = ""
    resumed: bool = False
    baselines: dict[str, float | None] = field(default_factory=dict)
    not_measured: str | None = None
    best_predicted: float | None = None
    proposals: list[Proposal] = field(default_factory=list)

    @property
    def best_per_round(self) -> list[float | None]:
        return [r.best_s for r in self.curve]

    def line(self) -> str:
        if self.not_measured is not None:
            pred = "-" if self.best_predicted is None else f"{self.best_predicted:.4g}"
            return (f"{self.pipeline}: {self.not_measured}; searched {len(self.proposals)} candidate(s) with "
                    f"{self.start_weights}, best predicted {pred} ms; {self.time.line()}")
        best = "no successful measurement" if self.best_time_s is None else f"best {self.best_time_s * 1e3:.4g} ms"
        base = "".join(f"; {k} {v * 1e3:.4g} ms" for k, v in self.baselines.items() if v)
        return (f"{self.pipeline}: {best} after {self.rounds_done} round(s) ({self.rounds_run} in this run, "
                f"{self.measured} measured, {self.skipped} already in the database){base}; stopped: "
                f"{self.stopped}; {self.time.line()}")


class _OutOfTime(Exception):
    """Raised from the measurement callback when the time budget is spent (after committing)."""


def make_executor(executor: str | Executor | None, address: str | None = None) -> tuple[Executor, bool]:
    """(executor, whether the caller owns it and must close it)."""
    if isinstance(executor, Executor):
        return executor, False
    if executor in (None, "local"):
        if address:
            raise ToolkitError("--address is for --executor ray (a Ray cluster to join)")
        return LocalExecutor(), True
    if executor == "ray":
        from ..measure_ray import RayExecutor
        return RayExecutor(address), True
    raise ToolkitError(f"unknown executor '{executor}': choose one of {', '.join(EXECUTORS)}")


def tune(what: Any, target: str | Any | None = None, *, db: str | os.PathLike[str],
         options: TuneOptions | None = None, executor: str | Executor | None = "local",
         address: str | None = None, sizes: dict[str, int] | None = None, small: bool = False,
         rounds: int | None = None, batch: int | None = None,
         log: Callable[[str], None] | None = None) -> TuneResult:
    """Tune ``what`` (a bundled workload's name, a PipelineSpec, or output Funcs with estimates) on
    ``target`` (default host) into the tuning database ``db`` (created if missing); resumable.

    ``executor``: ``"local"`` (process pool), ``"ray"`` (``address``: the cluster; default a local
    one) or an Executor instance (not closed here). ``log`` receives the one-line round summaries.
    A CUDA target with no CUDA device to time on searches only (see the module docstring): the
    result's ``not_measured`` says so.
    """
    from ..baselines import parse_target
    opts = options or TuneOptions()
    if rounds is not None or batch is not None:
        opts = replace(opts, rounds=rounds if rounds is not None else opts.rounds,
                       batch=batch if batch is not None else opts.batch)
    t = target if not isinstance(target, (str, type(None))) else parse_target(target)
    cuda = is_cuda_target(str(t))
    if t.has_gpu_feature() and not cuda:
        raise ToolkitError(f"tune searches CPU and CUDA schedules only, not '{t}'; use a CPU target such as "
                           "'host' or a CUDA one such as 'host-cuda'")
    if cuda and opts.weights:
        from ..api import gpu_cost
        gpu_cost(str(opts.weights), 1)  # CPU weights or a bad file: a one-line error before anything runs
    with Records(db) as records:  # a bad path or a corrupt file fails here, before anything is written
        task = task_for(what, str(t), sizes=sizes, small=small)
        if cuda and (executor in (None, "local") or isinstance(executor, LocalExecutor)) and not cuda_available():
            return _search_only(task, Path(db), opts, NO_CUDA_DEVICE, log)
        ex, own = make_executor(executor, address)
        try:
            tuner = _Tuner(task, records, Path(db), opts, ex, log)
            try:
                return tuner.run()
            except DeviceUnavailableError as e:
                if not cuda or tuner.measured:
                    raise
                return _search_only(task, Path(db), opts, f"nothing was measured: {e}", log)
        finally:
            if own:
                ex.close()


def _search_only(task: TuneTask, db: Path, opts: TuneOptions, reason: str,
                 log: Callable[[str], None] | None) -> TuneResult:
    """A CUDA target with no device to time on: propose round 1's candidates with the GPU cost (as
    ``_Tuner.round`` would) and return the lowest predicted; nothing is stored."""
    from ..api import gpu_cost
    from ..state import State
    say = log or (lambda s: None)
    start = time.perf_counter()
    deadline = None if opts.time_budget_s is None else start + opts.time_budget_s
    initial = State.initial(task.dag, task.target, None)
    cost = gpu_cost(str(opts.weights) if opts.weights else None, initial.space.parallelism)
    props = propose(initial, cost.cost_fn(task.dag), 0, opts.propose_options(), exclude=set(), seed=opts.seed,
                    deadline=deadline)
    search_s = time.perf_counter() - start
    if opts.baselines:
        say(f"# baselines {', '.join(opts.baselines)} not measured: {reason.split(': ', 1)[-1]}")
    result = TuneResult(task.name, dict(task.sizes), task.target, device_fingerprint(task.target),
                        initial.space.pipeline_hash, str(db), start_weights=cost.source, stopped=reason,
                        not_measured=reason, proposals=props,
                        baselines={label: None for label in opts.baselines})
    if props:  # always: propose adds the full beam search's best first (nothing is excluded here)
        best = min(props, key=lambda p: p.predicted)  # the first (the full beam search's) on ties
        result.best_state, result.best_trace, result.best_source = best.state, best.trace, best.source
        result.best_predicted = best.predicted
    result.time = TimeSplit(search_s=search_s, total_s=time.perf_counter() - start)
    return result


class _Tuner:
    """One call of ``tune``: the rounds, then the final re-timing (see the module docstring)."""

    def __init__(self, task: TuneTask, records: Records, db: Path, opts: TuneOptions, executor: Executor,
                 log: Callable[[str], None] | None) -> None:
        from ..state import State
        self.start = time.perf_counter()
        self.deadline = None if opts.time_budget_s is None else self.start + opts.time_budget_s
        self.task, self.records, self.db, self.opts, self.ex = task, records, db, opts, executor
        self.say = log or (lambda s: None)
        self.device = device_fingerprint(task.target)
        self.threads = opts.measure.threads
        self.cuda = is_cuda_target(task.target)
        # CUDA: the space's parallelism is the GPU's SM count (its default), as in ``autoschedule``, so
        # that the two search the same space and ``autoschedule(..., db=)`` finds what was tuned here.
        self.initial = State.initial(task.dag, task.target, None if self.cuda else self.threads)
        self.space = self.initial.space
        self.model: Any = None
        self.kernel_terms = False
        self.cost_fn: Callable[[Sequence[Any]], np.ndarray]
        start_weights = str(opts.weights) if opts.weights else ""
        self.gpu_model: Any = None  # CUDA: the GpuNet in use (None: the analytic roofline)
        if self.cuda:
            from ..api import gpu_cost as make_gpu_cost
            gpu_cost = make_gpu_cost(str(opts.weights) if opts.weights else None, self.space.parallelism)
            self.gpu_model = getattr(gpu_cost, "model", None)
            self.cost_fn = gpu_cost.cost_fn(task.dag)
            start_weights = gpu_cost.source
        elif not start_weights:
            from ..cost import DEFAULT_WEIGHTS
            start_weights = str(DEFAULT_WEIGHTS)
        self.ph = self.space.pipeline_hash
        self.store = ProgressStore(db, task.name, self.ph, task.target, self.device)
        loaded = self.store.load()
        self.resumed = loaded is not None
        self.prog = loaded if loaded is not None else Progress(
            task.name, dict(task.sizes), self.ph, task.target, self.device, start_weights=start_weights)
        if self.resumed and opts.weights and str(opts.weights) != self.prog.start_weights:
            self.say(f"# resuming: --weights {opts.weights} ignored; continuing from "
                     f"{self.prog.weights or self.prog.start_weights}")
        if not self.cuda:
            from cost_model.train import load_model

            from ..cost import CostModel
            weights = str(self.store.dir / self.prog.weights) if self.prog.weights else self.prog.start_weights
            self.model = load_model(weights)
            cost_model = CostModel(self.model, self.threads, weights)
            self.kernel_terms = cost_model.kernel_terms
            self.cost_fn = cost_model.cost_fn(task.dag)
        self.rows_cache: dict[str, np.ndarray] = {}
        self.replay_data: list[Any] | None = None
        self.split = TimeSplit()
        self.measured = self.skipped = self.duplicates = 0
        self.rounds_run = 0

    def spent(self, t: TimeSplit) -> None:
        """Add to this call's time split and to the run's (saved with the progress)."""
        self.split.add(t)
        for k, v in asdict(t).items():
            if v:
                self.prog.time[k] = self.prog.time.get(k, 0.0) + v

    # ------------------------------------------------------------------ database
    def rows(self) -> list[Record]:
        return [r for r in self.records.rows(self.ph)
                if r.target == self.task.target and r.device == self.device]

    def baseline_hashes(self) -> set[str]:
        return {str(b["schedule_hash"]) for b in self.prog.baselines.values() if b.get("schedule_hash")}

    def best_time(self, rows: Sequence[Record]) -> float | None:
        skip = self.baseline_hashes()
        times = [r.statistic for r in rows if r.ok and r.statistic is not None and r.schedule_hash not in skip]
        return min(times) if times else None

    def measure(self, cands: Sequence[Any], stats: RoundStats | None = None) -> list[MeasureResult]:
        """Measure ``cands``, committing each result as it arrives; stops early (_OutOfTime) when the
        time budget is spent."""
        done: list[MeasureResult] = []

        def on_result(i: int, r: MeasureResult) -> None:
            if not self.records.add(r, pipeline_hash_=self.ph):
                self.duplicates += 1
            done.append(r)
            self.measured += 1
            if stats is not None:
                stats.measured += 1
                stats.build_s += r.build_s or 0.0
                stats.run_s += r.run_s or 0.0
                if r.ok:
                    stats.ok += 1
                else:
                    stats.errors[r.code.value] = stats.errors.get(r.code.value, 0) + 1
            if self.deadline is not None and time.perf_counter() > self.deadline and len(done) < len(cands):
                raise _OutOfTime()

        if cands:
            t0 = time.perf_counter()
            try:
                measure_batch(cands, self.opts.measure, executor=self.ex, on_result=on_result)
            except MeasureAbortedError as e:
                self.say(f"# {e}")
            finally:
                if stats is not None:
                    stats.measure_s += time.perf_counter() - t0
        return done

    # ------------------------------------------------------------------ rounds
    def run(self) -> TuneResult:
        from tqdm import tqdm
        opts, prog = self.opts, self.prog
        if self.resumed:
            self.say(f"# resuming {self.task.name}: {prog.rounds_done} round(s) done"
                     + (f", round {prog.round_started + 1} in progress" if prog.round_started is not None else "")
                     + f"; progress in {self.store.dir}")
            if self.cuda:
                self.refit_gpu(self.rows())  # the refitted GPU cost is not saved: refit it from the records
        bar = tqdm(total=opts.rounds, initial=min(prog.rounds_done, opts.rounds), desc="tune", unit="round",
                   disable=not opts.progress, leave=False)
        stopped = ""
        try:
            self.measure_baselines()
            while True:
                r = prog.rounds_done
                if r >= opts.rounds:
                    stopped = f"{opts.rounds} round(s) done"
                elif prog.no_improve >= opts.patience:
                    stopped = f"no improvement for {prog.no_improve} round(s)"
                elif self.deadline is not None and time.perf_counter() >= self.deadline:
                    stopped = "time budget spent"
                if stopped:
                    break
                try:
                    stats = self.round(r)
                except _OutOfTime:
                    stopped = "time budget spent (mid-round; rerun to finish the round)"
                    break
                self.rounds_run += 1
                bar.update(1)
                bar.set_postfix(best_ms=f"{stats.best_s * 1e3:.4g}" if stats.best_s else "-")
                self.say(stats.line(opts.rounds))
                if stats.proposed == 0:
                    stopped = "search space exhausted: every schedule proposed was measured"
                    break
        finally:
            bar.close()
        prog.finished = stopped
        return self.finish(stopped)

    def round(self, r: int) -> RoundStats:
        prog = self.prog
        rows = self.rows()
        if prog.round_started != r:
            prog.round_started = r
            prog.round_start_max_id = max((x.id or 0 for x in rows), default=0)
            self.store.save(prog)
        before = {x.schedule_hash for x in rows if (x.id or 0) <= prog.round_start_max_id}
        stats = RoundStats(r)
        t0 = time.perf_counter()
        # parents: the fastest schedules measured before this round began (so a resumed round
        # proposes the same candidates)
        skip = self.baseline_hashes()
        ranked = sorted((x for x in rows if (x.id or 0) <= prog.round_start_max_id and x.ok
                         and x.statistic is not None and x.trace and x.schedule_hash not in skip
                         and x.num_threads == self.threads), key=lambda x: (x.statistic, x.schedule_hash))
        parents = [x.trace for x in ranked[:PARENTS] if x.trace]
        with self.model_threads():
            props = propose(self.initial, self.cost_fn, r, self.opts.propose_options(), exclude=before,
                            seed=self.opts.seed, deadline=self.deadline, parents=parents)
        stats.search_s = time.perf_counter() - t0
        measured_now = {x.schedule_hash for x in rows}
        todo = [p for p in props if p.schedule_hash not in measured_now]
        stats.proposed, stats.skipped = len(props), len(props) - len(todo)
        self.skipped += stats.skipped
        try:
            results = self.measure([self.task.candidate(p.source, p.trace, p.predicted) for p in todo], stats)
        finally:
            self.spent(TimeSplit(search_s=stats.search_s, build_s=stats.build_s, run_s=stats.run_s,
                                 measure_s=stats.measure_s))
        by_hash = {p.schedule_hash: p for p in props}
        ok_pred, ok_meas = [], []
        for res in results:
            if res.statistic is not None:
                ok_pred.append(by_hash[res.candidate.schedule_hash()].predicted)
                ok_meas.append(res.statistic)
        rows = self.rows()
        stats.round_best_s = min(ok_meas) if ok_meas else None
        stats.predicted_pairwise = _pairwise(ok_pred, ok_meas)
        saved = None
        if self.cuda:
            t1 = time.perf_counter()
            fit = self.refit_gpu(rows)
            if fit is None:
                stats.finetune_skipped = GPU_NO_FINETUNE
            else:
                stats.pairwise_before, stats.pairwise_after = fit
            stats.train_s = time.perf_counter() - t1
            self.spent(TimeSplit(train_s=stats.train_s))
        else:
            t1 = time.perf_counter()
            stats.pairwise_before, stats.pairwise_after, saved = self.finetune(r, rows)
            stats.train_s = time.perf_counter() - t1
            self.spent(TimeSplit(train_s=stats.train_s))
        best = self.best_time(rows)
        stats.best_s = best
        stats.measured_total = len(rows)
        if best is not None and (prog.best_s is None or best < prog.best_s * (1.0 - self.opts.min_improvement)):
            prog.no_improve = 0
        else:
            prog.no_improve += 1
        prog.best_s = best if best is not None else prog.best_s
        prog.curve.append(asdict(stats))
        prog.rounds_done = r + 1
        prog.round_started = None
        if saved is not None:
            prog.weights = saved
        self.store.save(prog)
        self.store.prune_weights(prog.weights)
        return stats

    # ------------------------------------------------------------------ the model
    def refit_gpu(self, rows: Sequence[Record]) -> tuple[float | None, float | None] | None:
        """CUDA: refit the GPU cost's six term scales on this pipeline's measurements (the fastest
        time of each schedule); the refit replaces the search's cost when it orders the measured
        schedules at least as well. Why only the scales: a few dozen schedules of one pipeline
        calibrate a handful of hardware constants, not a network. Returns the pairwise accuracy
        (before, after), or None with fewer than MIN_GPU_FIT schedules measured."""
        from cost_model.gpu_model import GpuModelCost, GpuTrainOptions, gpu_pipeline_data, predict_gpu, train_gpu

        from ..features.gpu import GpuAnalyticCost
        fastest: dict[str, tuple[float, list[Any]]] = {}
        for r in rows:
            if r.ok and r.statistic is not None and r.trace is not None:
                h = trace_hash(r.trace)
                if h not in fastest or r.statistic < fastest[h][0]:
                    fastest[h] = (r.statistic, r.trace)
        if len(fastest) < MIN_GPU_FIT:
            return None
        keys = sorted(fastest)
        data = gpu_pipeline_data(self.space, self.task.name, self.ph, [fastest[h][1] for h in keys],
                                 [fastest[h][0] * 1e3 for h in keys], dict(self.task.sizes))
        if data is None or data.num_schedules < MIN_GPU_FIT:
            return None
        current = (GpuAnalyticCost.combine_terms(data.terms).sum(-1) if self.gpu_model is None
                   else predict_gpu(self.gpu_model, data))
        before = _pairwise(current, data.runtimes_ms)
        model, _ = train_gpu([data], (), GpuTrainOptions(hidden=0, epochs=150, lr=1e-2, weight_decay=0.05,
                                                          patience=30, seed=self.opts.seed))
        after = _pairwise(predict_gpu(model, data), data.runtimes_ms)
        if after is not None and (before is None or after >= before):
            self.gpu_model = model
            self.cost_fn = GpuModelCost(model, self.space.parallelism, "GPU cost refitted on this pipeline") \
                .cost_fn(self.task.dag)
        return before, after

    def model_threads(self) -> contextlib.AbstractContextManager[Any]:
        """One torch thread while the learned model scores states (the analytic GPU cost needs none)."""
        if self.cuda:
            return contextlib.nullcontext()
        from cost_model.train import torch_threads
        return torch_threads(1)

    def pipeline_data(self, rows: Sequence[Record]) -> Any:
        """This pipeline's successful measurements (at the search's thread count) as PipelineData."""
        from cost_model.dataset import PipelineData, feature_rows, replay, split_rows
        from cost_model.features_layout import kernel_factors

        from ..features import featurizer_for
        fastest: dict[str, float] = {}
        traces: dict[str, list[Any]] = {}
        for r in rows:
            if not r.ok or r.statistic is None or r.trace is None or r.num_threads != self.threads:
                continue
            h = trace_hash(r.trace)
            if h not in fastest or r.statistic < fastest[h]:
                fastest[h], traces[h] = r.statistic, r.trace
        feat = featurizer_for(self.space)
        missing, states = [], []
        for h in sorted(fastest):
            if h not in self.rows_cache:
                try:
                    states.append(replay(self.space, traces[h]))
                    missing.append(h)
                except (ToolkitError, ValueError, KeyError, TypeError):
                    continue
        if states:
            for h, row in zip(missing, feature_rows(self.space, states)):
                self.rows_cache[h] = row   # schedule features, then the extra inputs
        keep = [h for h in sorted(fastest) if h in self.rows_cache]
        if len(keep) < 2:
            return None
        rows_ = np.stack([self.rows_cache[h] for h in keep]).astype(np.float32)
        # fine-tuned through the same kernel factors the search multiplies the network's stage costs by
        sched, extra, math_run = split_rows(rows_)
        factors = kernel_factors(extra) if self.kernel_terms else None
        return PipelineData(self.task.name, dict(self.task.sizes), self.ph, self.task.target, self.device,
                            self.threads, np.asarray(feat.pipeline, dtype=np.float32), sched,
                            np.asarray([fastest[h] * 1e3 for h in keep], dtype=np.float64), keep,
                            stage_factors=factors, stage_math=self.space.dag.math_calls(),
                            stage_extra=extra, stage_math_run=math_run)

    def load_replay(self) -> list[Any]:
        if self.replay_data is None:
            self.replay_data = []
            if self.opts.replay:
                from cost_model.dataset import load_dataset
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # traces that no longer replay are skipped, counted
                    data = load_dataset(self.opts.replay, cache_dir=tune_dir(self.db) / "feature_cache",
                                        min_schedules=2)
                others = [p for p in data.pipelines if p.pipeline_hash != self.ph]
                self.replay_data = others[: self.opts.replay_pipelines]
        return self.replay_data

    def finetune(self, r: int, rows: Sequence[Record]) -> tuple[float | None, float | None, str | None]:
        """Fine-tune on this pipeline's measurements plus the replay; save. Returns (pairwise accuracy
        before, after, saved weights file name), Nones when there is not enough data yet (or no
        learned model: CUDA targets)."""
        if self.opts.finetune_steps <= 0 or self.model is None:
            return None, None, None
        from cost_model.train import TrainOptions, finetune, predict, save_model, torch_threads
        data = self.pipeline_data(rows)
        if data is None:
            return None, None, None
        with torch_threads(1):
            acc_before = _pairwise(predict(self.model, data), data.runtimes_ms)
            finetune(self.model, data, self.load_replay(), steps=self.opts.finetune_steps,
                     lr=self.opts.finetune_lr, opts=TrainOptions(seed=self.opts.seed + r, threads=1))
            acc_after = _pairwise(predict(self.model, data), data.runtimes_ms)
        path = self.store.weights_path(r)
        save_model(self.model, path, data_size=data.num_schedules,
                   metrics={"pairwise_before": acc_before if acc_before is not None else math.nan,
                            "pairwise_after": acc_after if acc_after is not None else math.nan},
                   target=self.task.target, machine=self.device, command=_command(),
                   extra={"tuned_pipeline": self.task.name, "sizes": self.task.sizes, "pipeline_hash": self.ph,
                          "round": r, "start_weights": self.prog.start_weights,
                          "replay": self.opts.replay or "", "replay_pipelines": len(self.load_replay())})
        return acc_before, acc_after, path.name

    # ------------------------------------------------------------------ baselines and the end
    def measure_baselines(self) -> None:
        """Measure each requested baseline once (its schedule hash and time go into the progress)."""
        from .. import baselines, schedules
        for label in self.opts.baselines:
            if label in self.prog.baselines:
                continue
            entry: dict[str, Any] = {}
            try:
                if label in schedules.NAMED:
                    source = schedules.named_source(label, self.task.pipeline)
                else:
                    found = baselines.search(self.task.pipeline, label, None, self.task.target,
                                             spec=(self.task.name, self.task.sizes) if self.task.bundled else None,
                                             timeout_s=self.opts.baseline_timeout_s)
                    entry["search_s"] = found.search_time_s
                    if found.python_source is None:
                        raise BaselineError(f"{label}'s schedule has no Python translation "
                                            f"({found.extra.get('translation_error')})")
                    source = found.python_source
            except ToolkitError as e:
                entry["error"] = str(e)
                self.say(f"# baseline {label}: {e}")
                self.prog.baselines[label] = entry
                continue
            cand = self.task.candidate(source)
            entry["schedule_hash"] = cand.schedule_hash()
            known = [x for x in self.rows() if x.schedule_hash == entry["schedule_hash"]]
            if known:
                entry["statistic"] = known[0].statistic
            else:
                t0 = time.perf_counter()
                res = self.measure([cand])
                self.spent(TimeSplit(measure_s=time.perf_counter() - t0))
                entry["statistic"] = res[0].statistic if res else None
                if res and not res[0].ok:
                    entry["error"] = f"{res[0].code.value}: {res[0].message[:200]}"
            got = entry.get("statistic")
            self.say(f"# baseline {label}: " + (f"{got * 1e3:.4g} ms" if got else entry.get("error", "failed")))
            self.prog.baselines[label] = entry
            self.store.save(self.prog)

    def finish(self, stopped: str) -> TuneResult:
        task, prog = self.task, self.prog
        result = TuneResult(task.name, dict(task.sizes), task.target, self.device, self.ph, str(self.db),
                            start_weights=prog.start_weights, rounds_done=prog.rounds_done,
                            rounds_run=self.rounds_run, measured=self.measured, skipped=self.skipped,
                            duplicates=self.duplicates, stopped=stopped, resumed=self.resumed,
                            curve=[RoundStats.from_json(c) for c in prog.curve],
                            baselines={k: v.get("statistic") for k, v in prog.baselines.items()})
        skip = self.baseline_hashes()
        ranked = sorted((x for x in self.rows() if x.ok and x.statistic is not None and x.schedule_hash not in skip),
                        key=lambda x: (x.statistic, x.id or 0))
        order = list(range(min(2, len(ranked))))
        if len(ranked) >= 2 and self.opts.retime_rounds > 0:
            t0 = time.perf_counter()
            cands = [task.candidate(x.schedule_source, x.trace, x.predicted_cost) for x in ranked[:2]]
            retimed = retime_interleaved(cands, self.opts.retime_rounds,
                                         self.opts.measure.with_(progress=False), executor=self.ex)
            self.spent(TimeSplit(retime_s=time.perf_counter() - t0))
            stat = [r.statistic for r in retimed]
            if stat[1] is not None and (stat[0] is None or stat[1] < stat[0]):
                order = [1, 0]
            result.retimed = {"best": stat[order[0]], "runner_up": stat[order[1]]}
        if ranked:
            best = ranked[order[0]]
            result.best_source, result.best_trace, result.best_record_id = best.schedule_source, best.trace, best.id
            retimed_best = result.retimed.get("best")
            result.best_time_s = retimed_best if retimed_best is not None else best.statistic
            if best.trace is not None:
                from cost_model.dataset import replay
                try:
                    result.best_state = replay(self.space, best.trace)
                except (ToolkitError, ValueError, KeyError, TypeError):
                    result.best_state = None
            if len(order) > 1:
                runner = ranked[order[1]]
                result.runner_up_source = runner.schedule_source
                retimed_runner = result.retimed.get("runner_up")
                result.runner_up_time_s = retimed_runner if retimed_runner is not None else runner.statistic
        if prog.weights and self.model is not None:
            from cost_model.train import save_model
            result.weights_path = str(self.store.dir / prog.weights)
            transfer = self.store.transfer_path()
            save_model(self.model, transfer, data_size=0, target=task.target, machine=self.device,
                       command=_command(), extra={"tuned_pipeline": task.name, "pipeline_hash": self.ph,
                                                  "rounds": prog.rounds_done, "from": result.weights_path})
            result.transfer_weights_path = str(transfer)
        self.spent(TimeSplit(total_s=time.perf_counter() - self.start))
        self.store.save(prog)
        result.time = TimeSplit(**{k: float(prog.time.get(k, 0.0)) for k in TimeSplit.__dataclass_fields__})
        return result


def _pairwise(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> float | None:
    from cost_model.metrics import pairwise_accuracy
    if len(measured) < 2:
        return None
    acc = pairwise_accuracy(np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64))
    return None if math.isnan(acc) else float(acc)


def _command() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv)


__all__ = ["tune", "TuneOptions", "TuneResult", "RoundStats", "TimeSplit", "make_executor", "DEFAULT_REPLAY",
           "EXECUTORS", "NO_CUDA_DEVICE", "GPU_NO_FINETUNE"]

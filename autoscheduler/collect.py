"""Training-data collection: random pipelines x schedules, measured in isolation, stored as records.

For each pipeline (``random_<seed>`` for consecutive seeds, and/or named bundled workloads), K
complete schedules are drawn, deterministically in (pipeline, sample index):

* **searched** ones: a beam search with the current cost model, beam 1 to 4, and random dropout
  (``SearchOptions(dropout < 100)``): cost-model-biased random walks, as Adams2019's autotuning loop
  draws its samples (there: beam 1, dropout 1%); sample 0 of every pipeline is the least random one;
* **random** ones: uniformly random legal states (``random_state``), which cover the slow corners the
  cost model must also learn to rank.

Duplicates (same decisions) are redrawn; schedules already in the database for this pipeline, target
and device (by trace or by source, ``Records.has_measured``) are skipped, so rerunning the same
command resumes where a killed one stopped and measures nothing twice. Every result, failures
included, is committed as it arrives (``Records.add``). A record holds what reproduces the sample:
pipeline name and sizes, decision trace, target, device, thread count (the search's parallelism),
all timing samples; features are recomputed from it when training (``cost_model.dataset``).

CUDA targets: the GPU machine is lent briefly, so the schedules are drawn on a CPU machine
(``prepare_candidates``: the search needs only a ``host-cuda`` target and the analytic GPU cost) and
written as JSON lines (pipeline, sizes, trace, Python source, predicted cost); ``collect_prepared``
measures such a file on the GPU, pipeline by pipeline until a deadline, into the same database.

Exports: ``export_samples`` writes the compact data set to commit (JSON lines, gzip);
``export_halide_samples`` writes Halide's ``.sample`` files (featurization floats, runtime in ms,
pipeline id, schedule id) that ``adams2019_retrain_cost_model`` reads.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ToolkitError
from .measure import (Candidate, LocalExecutor, MeasureAbortedError, MeasureOptions, MeasureResult,
                      cuda_available, device_fingerprint, measure_batch)
from .records import Records, pipeline_hash

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "db" / "samples.sqlite"
DROPOUTS = (1, 5, 20, 50, 80)


@dataclass
class CollectOptions:
    """What to collect. ``names`` (explicit pipeline names) are collected after the ``pipelines``
    random ones (seeds ``seed_start`` ..). ``beam_fraction`` of the K schedules come from the
    dropout beam search, the rest are uniformly random. ``weights``: the cost model guiding the
    search (default: the shipped one).

    ``remeasure``: a data set (export or database) whose successful schedules are measured again,
    pipeline by pipeline in the order of its pipelines' names, instead of drawing new ones (only
    those of ``names`` / ``seed_start`` + ``pipelines`` when given). Why: measurements made under
    other conditions (before inputs were aligned, on a busier machine) become comparable without
    searching again; the old and new times of each trace also measure the old data's noise."""

    pipelines: int = 0
    schedules_per_pipeline: int = 8
    seed_start: int = 0
    names: tuple[str, ...] = ()
    small: bool = False
    target: str = "host"
    beam_fraction: float = 0.5
    weights: str | None = None
    search_time_budget_s: float = 20.0
    max_redraws: int = 4
    measure: MeasureOptions = field(default_factory=lambda: MeasureOptions(max_consecutive_errors=0))
    remeasure: str | None = None
    prepared: str | None = None
    deadline_s: float | None = None

    def pipeline_names(self) -> list[str]:
        return [f"random_{s}" for s in range(self.seed_start, self.seed_start + self.pipelines)] + list(self.names)


@dataclass
class PipelineReport:
    name: str
    sizes: dict[str, int]
    generated: int = 0
    skipped: int = 0
    measured: int = 0
    ok: int = 0
    best_ms: float | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    generate_s: float = 0.0


@dataclass
class CollectReport:
    pipelines: list[PipelineReport] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def measured(self) -> int:
        return sum(p.measured for p in self.pipelines)

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.pipelines)

    @property
    def ok(self) -> int:
        return sum(p.ok for p in self.pipelines)

    def line(self) -> str:
        failed = [p for p in self.pipelines if p.error]
        per = self.elapsed_s / self.measured if self.measured else math.nan
        return (f"{len(self.pipelines)} pipeline(s): {self.measured} schedule(s) measured ({self.ok} OK), "
                f"{self.skipped} already in the database, {len(failed)} pipeline(s) failed; "
                f"{self.elapsed_s:.1f} s ({per:.2f} s per measured schedule)")


def _seeded(*parts: Any) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def is_searched(index: int, beam_fraction: float) -> bool:
    """Whether sample ``index`` comes from the beam search: spread evenly, sample 0 searched."""
    f = min(1.0, max(0.0, beam_fraction))
    return math.ceil((index + 1) * f) > math.ceil(index * f)


class ModelCost:
    """A cost function for the search from any saved model (AdamsNet or OurNet)."""

    def __init__(self, weights: str | None, parallelism: int) -> None:
        from cost_model.train import BASELINE_WEIGHTS, load_model
        self.path = weights or str(BASELINE_WEIGHTS)
        self.net = load_model(self.path)
        self.parallelism = parallelism

    def __call__(self, states: Sequence[Any]) -> np.ndarray:
        import torch
        from .features import network_inputs
        if not states:
            return np.zeros(0)
        from .cost import stage_inputs
        inputs = network_inputs(states)
        with torch.no_grad():
            out = self.net(inputs.pipeline, inputs.schedule, self.parallelism, **stage_inputs(self.net, states))
        return np.asarray(out.detach().double().numpy(), dtype=np.float64)


def search_parallelism(target: str, threads: int) -> int:
    """The search's parallelism: the worker's threads on a CPU, the modelled GPU's SMs on CUDA."""
    if "cuda" in target.split("-"):
        from .state.gpu import GPU_DEFAULT_SMS
        return GPU_DEFAULT_SMS
    return threads


def search_cost(target: str, weights: str | None, parallelism: int) -> Callable[[Sequence[Any]], np.ndarray]:
    """What guides the dropout searches: the saved CPU model, or on CUDA the GPU cost ``autoschedule``
    uses (the roofline, or GPU weights)."""
    if "cuda" in target.split("-"):
        from .api import gpu_cost
        return gpu_cost(weights, parallelism).cost_fn()
    return ModelCost(weights, parallelism)


def generate_states(name: str, initial: Any, k: int, cost: Callable[[Sequence[Any]], np.ndarray],
                    opts: CollectOptions) -> list[tuple[Any, float | None, str]]:
    """K distinct complete states of one pipeline: (state, predicted cost, origin), deterministic."""
    from .search import SearchOptions, beam_search
    from .state import random_state
    out: list[tuple[Any, float | None, str]] = []
    seen: set[tuple[Any, ...]] = set()
    for i in range(k):
        searched = is_searched(i, opts.beam_fraction)
        for attempt in range(opts.max_redraws + 1):
            rng = _seeded(name, i, attempt)
            if searched:
                beam = 4 if i == 0 and attempt == 0 else rng.randint(1, 4)
                dropout = 90 if i == 0 and attempt == 0 else rng.choice(DROPOUTS)
                res = beam_search(initial, cost, SearchOptions(
                    beam_size=beam, passes=1, dropout=dropout, seed=rng.randrange(1 << 30),
                    time_budget_s=opts.search_time_budget_s, top_k=1))
                state, predicted = res.best, res.cost
                origin = f"beam{beam}/dropout{dropout}"
            else:
                state = random_state(initial.space.dag, initial.space.target, rng,
                                     initial.space.parallelism)
                predicted = None
                origin = "random"
            if state.decisions not in seen:
                seen.add(state.decisions)
                if predicted is None or not math.isfinite(predicted):
                    predicted = float(cost([state])[0])
                out.append((state, predicted, origin))
                break
    return out


def collect(opts: CollectOptions, db_path: str | os.PathLike[str] = DEFAULT_DB, *,
            executor: Any = None, log: Callable[[str], None] | None = None) -> CollectReport:
    """Collect ``opts`` into the database at ``db_path`` (created if missing); resumable."""
    from .baselines import parse_target

    say = log or (lambda s: None)
    start = time.perf_counter()
    target = str(parse_target(opts.target))
    if "cuda" in target.split("-") and not cuda_available():
        then = (f"run `autoschedule collect --prepared {opts.prepared}` on the GPU machine" if opts.prepared else
                "draw the schedules here with --prepare FILE, then run `autoschedule collect --prepared FILE` "
                "on the GPU machine")
        raise ToolkitError(f"target '{opts.target}' needs a CUDA GPU to measure on and this machine has none: {then}")
    device = device_fingerprint(target)
    parallelism = search_parallelism(target, opts.measure.threads)
    report = CollectReport()
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    cost = search_cost(target, opts.weights, parallelism)
    own = executor is None
    ex = executor if executor is not None else LocalExecutor()
    try:
        with Records(db_path) as db:
            reports: Iterator[PipelineReport]
            if opts.prepared is not None:
                reports = _prepared_reports(opts, db, ex, target, device, start, say)
            elif opts.remeasure is not None:
                reports = (_remeasure_one(name, sizes, traces, opts, db, ex, cost, target, device, parallelism)
                           for name, sizes, traces in _remeasure_groups(opts))
            else:
                reports = (_collect_one(name, opts, db, ex, cost, target, device, parallelism)
                           for name in opts.pipeline_names())
            for pr in reports:
                report.pipelines.append(pr)
                say(_report_line(pr))
    finally:
        if own:
            ex.close()
    report.elapsed_s = time.perf_counter() - start
    return report


def _report_line(pr: PipelineReport) -> str:
    best = f", best {pr.best_ms:.3f} ms" if pr.best_ms is not None else ""
    err = f" ERROR: {pr.error}" if pr.error else ""
    return (f"{pr.name} {pr.sizes}: {pr.measured} measured ({pr.ok} OK), {pr.skipped} skipped{best}; "
            f"search {pr.generate_s:.1f} s, total {pr.elapsed_s:.1f} s{err}")


def _collect_one(name: str, opts: CollectOptions, db: Records, ex: Any, cost: Any, target: str,
                 device: str, parallelism: int) -> PipelineReport:
    import halide_pipelines
    from .dag import FunctionDAG
    from .state import State
    t0 = time.perf_counter()
    pr = PipelineReport(name, {})
    try:
        spec = halide_pipelines.get(name)
        sizes = spec.sizes(**spec.test_sizes) if opts.small else spec.sizes()
        pr.sizes = dict(sizes)
        dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
        initial = State.initial(dag, target, parallelism)
        from cost_model.train import torch_threads
        with torch_threads(1):
            states = generate_states(name, initial, opts.schedules_per_pipeline, cost, opts)
    except (ToolkitError, ValueError, KeyError, RuntimeError) as e:
        return _failed(pr, e, t0)
    pr.generate_s = time.perf_counter() - t0
    _measure_states(pr, name, sizes, [st for st, _p, _o in states], [p for _s, p, _o in states],
                    opts, db, ex, target, device)
    pr.elapsed_s = time.perf_counter() - t0
    return pr


def _failed(pr: PipelineReport, e: Exception, t0: float) -> PipelineReport:
    """A pipeline the introspection or the search cannot handle: noted in its report; collection goes on."""
    pr.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    warnings.warn(f"collect: {pr.name}: {pr.error}", stacklevel=3)
    pr.elapsed_s = time.perf_counter() - t0
    return pr


def _measure_states(pr: PipelineReport, name: str, sizes: dict[str, int], states: Sequence[Any],
                    predicted: Sequence[float | None], opts: CollectOptions, db: Records, ex: Any,
                    target: str, device: str) -> None:
    """Measure the states the database lacks (by trace or by source) and store every result."""
    from .apply import schedule_source
    _measure_schedules(pr, name, sizes, [(str(schedule_source(st)), [d.to_dict() for d in st.decisions], p)
                                         for st, p in zip(states, predicted)], opts, db, ex, target, device)


def _measure_schedules(pr: PipelineReport, name: str, sizes: dict[str, int],
                       schedules: Sequence[tuple[str, list[Any], float | None]], opts: CollectOptions,
                       db: Records, ex: Any, target: str, device: str) -> None:
    """Measure the (source, trace, predicted cost) schedules the database lacks (by trace or by
    source) and store every result; counts go into ``pr``."""
    pr.generated = len(schedules)
    cands: list[Candidate] = []
    ph: str | None = None
    for source, trace, pred in schedules:
        cand = Candidate(name, dict(sizes), source, target, trace, pred)
        if ph is None:
            ph = pipeline_hash(cand)
        if (db.has_measured(ph, target, device, trace=trace)
                or db.has_measured(ph, target, device, schedule_source=source)):
            pr.skipped += 1
            continue
        cands.append(cand)
    results: list[MeasureResult] = []
    if cands:
        def on_result(i: int, r: MeasureResult) -> None:
            db.add(r, pipeline_hash_=ph)
            results.append(r)
        try:
            measure_batch(cands, opts.measure, executor=ex, on_result=on_result)
        except MeasureAbortedError as e:
            pr.error = str(e)
            warnings.warn(f"collect: {name}: {e}", stacklevel=3)
    pr.measured = len(results)
    ok = [r.statistic for r in results if r.statistic is not None]
    pr.ok = len(ok)
    pr.best_ms = min(ok) * 1e3 if ok else None


def _remeasure_groups(opts: CollectOptions) -> list[tuple[str, dict[str, int], list[list[Any]]]]:
    """(pipeline name, sizes, traces) of the successful samples of ``opts.remeasure``, by name."""
    from cost_model.dataset import read_samples
    assert opts.remeasure is not None
    wanted = set(opts.pipeline_names())
    groups: dict[tuple[str, str], tuple[str, dict[str, int], list[list[Any]]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for s in read_samples(opts.remeasure):
        if s.trace is None or (wanted and s.pipeline not in wanted):
            continue
        key = (s.pipeline, json.dumps(s.sizes, sort_keys=True))
        if (key[0], key[1], s.trace_hash()) in seen:
            continue
        seen.add((key[0], key[1], s.trace_hash()))
        groups.setdefault(key, (s.pipeline, dict(s.sizes), []))[2].append(s.trace)

    def order(k: tuple[str, str]) -> tuple[Any, ...]:
        name = k[0]
        seed = name[len("random_"):] if name.startswith("random_") else ""
        return (0, int(seed), k[1]) if seed.isdigit() else (1, name, k[1])
    return [groups[k] for k in sorted(groups, key=order)]


def _remeasure_one(name: str, sizes: dict[str, int], traces: list[list[Any]], opts: CollectOptions,
                   db: Records, ex: Any, cost: Any, target: str, device: str,
                   parallelism: int) -> PipelineReport:
    import halide_pipelines
    from .dag import FunctionDAG
    from .state import State
    t0 = time.perf_counter()
    pr = PipelineReport(name, dict(sizes))
    states = []
    try:
        dag = FunctionDAG.from_pipeline(halide_pipelines.get(name).build(**sizes).pipeline())
        for trace in traces:
            try:
                states.append(State.from_trace(dag, trace, target, parallelism))
            except (ToolkitError, ValueError, KeyError, TypeError) as e:
                warnings.warn(f"collect: {name}: a trace no longer replays ({e}); skipped", stacklevel=2)
        from cost_model.train import torch_threads
        with torch_threads(1):
            predicted = [float(c) for c in cost(states)] if states else []
    except (ToolkitError, ValueError, KeyError, RuntimeError) as e:
        return _failed(pr, e, t0)
    pr.generate_s = time.perf_counter() - t0
    _measure_states(pr, name, sizes, states, predicted, opts, db, ex, target, device)
    pr.elapsed_s = time.perf_counter() - t0
    return pr


# ------------------------------------------------------------------- drawn here, measured elsewhere

PREPARED_FORMAT = "halide-toolkit-prepared"


def prepare_candidates(opts: CollectOptions, out: str | os.PathLike[str], *,
                       log: Callable[[str], None] | None = None) -> int:
    """Draw ``opts``' schedules here (no device needed) and write them to ``out`` (JSON lines, gzip
    when the name ends in .gz): one header line, then per schedule its pipeline, sizes, decision
    trace, Python source, predicted cost and origin. Returns the number of schedules written."""
    import gzip
    import halide_pipelines
    from .apply import schedule_source
    from .baselines import parse_target
    from .dag import FunctionDAG
    from .state import State
    from cost_model.train import torch_threads
    say = log or (lambda s: None)
    target = str(parse_target(opts.target))
    parallelism = search_parallelism(target, opts.measure.threads)
    cost = search_cost(target, opts.weights, parallelism)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "wt") as f:
        f.write(json.dumps({"format": PREPARED_FORMAT, "version": 1, "target": target,
                            "parallelism": parallelism}) + "\n")
        for name in opts.pipeline_names():
            t0 = time.perf_counter()
            try:
                spec = halide_pipelines.get(name)
                sizes = spec.sizes(**spec.test_sizes) if opts.small else spec.sizes()
                dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
                with torch_threads(1):
                    states = generate_states(name, State.initial(dag, target, parallelism),
                                             opts.schedules_per_pipeline, cost, opts)
            except (ToolkitError, ValueError, KeyError, RuntimeError) as e:
                warnings.warn(f"collect --prepare: {name}: {type(e).__name__}: {e}", stacklevel=2)
                continue
            for state, predicted, origin in states:
                f.write(json.dumps({"pipeline": name, "sizes": dict(sizes),
                                    "trace": [d.to_dict() for d in state.decisions],
                                    "source": str(schedule_source(state)), "predicted_cost": predicted,
                                    "origin": origin}) + "\n")
                n += 1
            say(f"{name} {dict(sizes)}: {len(states)} schedule(s) drawn in {time.perf_counter() - t0:.1f} s")
    return n


def read_prepared(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The schedules of a ``prepare_candidates`` file; a file of another kind is a one-line error."""
    import gzip
    p = Path(path)
    if not p.exists():
        raise ToolkitError(f"{path}: no such file; write one with `autoschedule collect --prepare {path}`")
    opener: Any = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, EOFError) as e:
        raise ToolkitError(f"{path}: not a prepared-schedules file ({type(e).__name__}: {e})") from None
    if not lines or lines[0].get("format") != PREPARED_FORMAT:
        raise ToolkitError(f"{path}: not a prepared-schedules file (its first line should name format "
                           f"'{PREPARED_FORMAT}'); write one with `autoschedule collect --prepare`")
    return lines[1:]


def collect_prepared(source: str | os.PathLike[str], opts: CollectOptions,
                     db_path: str | os.PathLike[str] = DEFAULT_DB, *, deadline_s: float | None = None,
                     executor: Any = None, log: Callable[[str], None] | None = None) -> CollectReport:
    """Measure a ``prepare_candidates`` file on this machine for ``opts.target``, pipeline by
    pipeline, into the database; no pipeline is started after ``deadline_s``. Resumable like
    ``collect``: schedules the database holds for this target and device are skipped."""
    read_prepared(source)  # a missing or foreign file: a one-line error before anything starts
    return collect(replace(opts, prepared=str(source), deadline_s=deadline_s), db_path, executor=executor, log=log)


def _prepared_reports(opts: CollectOptions, db: Records, ex: Any, target: str, device: str, start: float,
                      say: Callable[[str], None]) -> Iterator[PipelineReport]:
    """One report per pipeline of ``opts.prepared``, measured in file order until the deadline."""
    assert opts.prepared is not None
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in read_prepared(opts.prepared):
        groups.setdefault((r["pipeline"], json.dumps(r["sizes"], sort_keys=True)), []).append(r)
    for (name, _), group in groups.items():
        if opts.deadline_s is not None and time.perf_counter() - start > opts.deadline_s:
            say(f"deadline {opts.deadline_s:.0f} s reached: {name} and later pipelines not measured")
            return
        t0 = time.perf_counter()
        sizes = {k: int(v) for k, v in group[0]["sizes"].items()}
        pr = PipelineReport(name, sizes)
        _measure_schedules(pr, name, sizes, [(r["source"], r["trace"], r.get("predicted_cost")) for r in group],
                           opts, db, ex, target, device)
        pr.elapsed_s = time.perf_counter() - t0
        yield pr


# ---------------------------------------------------------------------------------------- exports

def export_samples(db_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                   include_failures: bool = True) -> int:
    """The compact data set (``cost_model.dataset`` reads it back); returns the sample count."""
    from cost_model.dataset import read_samples, write_export
    return write_export(read_samples(db_path, include_failures=include_failures), out)


def export_halide_samples(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                          cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Halide's ``.sample`` files: per successful schedule, the featurization records (float32, 326
    per stage: 39 schedule + 7 type mask + 280 pipeline features, stages in Adams2019's order), then
    float32 runtime (ms), int32 pipeline id, int32 schedule id. Writes ``index.tsv`` mapping pipeline
    ids to names and hashes. Returns the number of files written."""
    from cost_model.dataset import DEFAULT_CACHE_DIR, load_dataset
    from cost_model.features_layout import build_featurization
    data = load_dataset(source, cache_dir=cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR,
                        min_schedules=1)
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    lines = ["pipeline_id\tname\tsizes\tpipeline_hash\ttarget\tschedules"]
    for pid, p in enumerate(data.pipelines):
        lines.append(f"{pid}\t{p.name}\t{json.dumps(p.sizes, sort_keys=True)}\t{p.pipeline_hash}\t{p.target}\t{p.num_schedules}")
        for sid in range(p.num_schedules):
            blob = build_featurization(p.pipeline, p.schedule[sid], p.type_mask)
            blob += struct.pack("<fii", float(p.runtimes_ms[sid]), pid, sid)
            (d / f"{pid:06d}_{sid:05d}.sample").write_bytes(blob)
            n += 1
    (d / "index.tsv").write_text("\n".join(lines) + "\n")
    return n


__all__ = ["CollectOptions", "CollectReport", "PipelineReport", "collect", "generate_states", "ModelCost",
           "prepare_candidates", "read_prepared", "collect_prepared", "search_cost", "search_parallelism",
           "export_samples", "export_halide_samples", "is_searched", "DEFAULT_DB"]

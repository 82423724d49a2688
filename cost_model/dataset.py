"""Training data for the cost model: measured schedules, rebuilt and featurized, split by pipeline.

A sample is stored as what reproduces it (``autoscheduler.collect``): the pipeline's name and sizes,
the decision trace of the schedule, the target, the device and the thread count, and the measured
times. Features are not stored: they are recomputed here, so a change to the featurizer never leaves
stale training data behind. For each pipeline (same canonical hash, target and device) the spec is
rebuilt (``halide_pipelines.get(name).build(**sizes)``), its FunctionDAG made once, every trace
replayed from one search space (``State.from_space`` + ``apply``) and the batch featurized with the
search's own featurizer (the same numbers the search scores).

Featurized tensors are cached on disk, one ``.npz`` per pipeline, keyed by the pipeline hash, the
target, the thread count and a fingerprint of the featurizer's source (``featurizer_fingerprint``),
holding one row per decision-trace hash: a new sample of a cached pipeline costs one replay, and an
edited featurizer invalidates the cache by itself.

Sources: a tuning database (``.sqlite``/``.db``, :class:`autoscheduler.records.Records`), the compact
export of ``autoschedule collect --export`` (``.jsonl`` or ``.jsonl.gz``), or ``records export``
JSON lines.

Splits are by whole pipelines and stable: a pipeline's role (train / val / test) is a function of its
hash alone, so adding pipelines never moves an old one between splits, and no pipeline is in two.
Bundled workloads (names that are not ``random_<seed>``) go to the test split by default: they are
what the toolkit is judged on, never trained on unless asked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from autoscheduler.errors import ToolkitError

from .features_layout import NUM_EXTRA_INPUTS, NUM_SCHEDULE_FEATURES

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "db" / "feature_cache"
EXPORT_FORMAT = "halide-toolkit-samples"
EXPORT_VERSION = 1
CACHE_VERSION = 4


class DatasetError(ToolkitError):
    """A data source that cannot be read, or holds no usable samples."""


@dataclass(frozen=True)
class Sample:
    """One measurement, as what reproduces it. ``runtime_s`` is the min over timing samples (None
    when the measurement failed; ``error_code`` says how)."""

    pipeline: str
    sizes: dict[str, int]
    pipeline_hash: str
    target: str
    device: str
    num_threads: int
    trace: list[Any] | None
    runtime_s: float | None
    error_code: str
    samples: tuple[float, ...] = ()
    predicted_cost: float | None = None

    @property
    def ok(self) -> bool:
        return self.error_code == "OK" and self.runtime_s is not None and self.runtime_s > 0

    @property
    def group_key(self) -> tuple[str, str, str, int]:
        return (self.pipeline_hash, self.target, self.device, self.num_threads)

    def trace_hash(self) -> str:
        return trace_hash(self.trace or [])

    def to_export(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "sizes": self.sizes, "pipeline_hash": self.pipeline_hash,
                "target": self.target, "device": self.device, "num_threads": self.num_threads,
                "trace": self.trace, "runtime_s": self.runtime_s, "error_code": self.error_code,
                "samples": list(self.samples), "predicted_cost": self.predicted_cost}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Sample":
        """From a compact export line, or from a ``records export`` line (Record.to_json)."""
        if "pipeline_name" in d:   # a full record
            return cls(str(d["pipeline_name"]), dict(d["sizes"]), str(d["pipeline_hash"]), str(d["target"]),
                       str(d["device"]), int(d["num_threads"]), d.get("trace"),
                       None if d.get("statistic") is None else float(d["statistic"]), str(d["error_code"]),
                       tuple(float(x) for x in d.get("samples") or ()), d.get("predicted_cost"))
        return cls(str(d["pipeline"]), {str(k): int(v) for k, v in dict(d["sizes"]).items()},
                   str(d["pipeline_hash"]), str(d["target"]), str(d["device"]), int(d["num_threads"]),
                   d.get("trace"), None if d.get("runtime_s") is None else float(d["runtime_s"]),
                   str(d["error_code"]), tuple(float(x) for x in d.get("samples") or ()),
                   d.get("predicted_cost"))


def trace_hash(trace: list[Any]) -> str:
    """The records' trace hash (same function, so cache rows and database rows agree)."""
    from autoscheduler.measure.candidate import trace_hash as _th
    return _th(trace)


# ---------------------------------------------------------------------------------------- reading

def open_text(path: Path, mode: str = "rt") -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_samples(source: str | os.PathLike[str], *, include_failures: bool = False) -> list[Sample]:
    """Every sample of a database or export file (only successful ones unless ``include_failures``)."""
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path}: no such database or sample file; check the path")
    out: list[Sample] = []
    if path.suffix in (".sqlite", ".db", ".sqlite3"):
        from autoscheduler.records import Records
        with Records(path, readonly=True) as db:
            for rec in db.all():
                out.append(Sample(rec.pipeline_name, dict(rec.sizes), rec.pipeline_hash, rec.target,
                                  rec.device, rec.num_threads, rec.trace, rec.statistic, rec.error_code,
                                  tuple(rec.samples), rec.predicted_cost))
    else:
        try:
            with open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        d = json.loads(line)
                        if isinstance(d, dict) and d.get("format") == EXPORT_FORMAT:
                            if d.get("version") != EXPORT_VERSION:
                                raise DatasetError(f"{path}: sample export version {d.get('version')!r}; "
                                                   f"this toolkit reads version {EXPORT_VERSION}")
                            continue   # the header line
                        out.append(Sample.from_json(d))
                    except (ValueError, KeyError, TypeError) as e:
                        warnings.warn(f"{path}:{lineno}: skipped a malformed sample ({e})", stacklevel=2)
        except (OSError, EOFError) as e:
            raise DatasetError(f"{path}: cannot read ({e}); check that it is a sample export or a "
                               "tuning database (.sqlite)") from None
    return out if include_failures else [s for s in out if s.ok]


def read_sample_sets(sources: Sequence[str | os.PathLike[str]]) -> list[Sample]:
    """The successful samples of several databases or exports, read in order: a pipeline
    (``Sample.group_key``: name, hash, target, threads) measured in a later file takes all its
    samples from the latest such file only. Why: a data set re-measured later (``collect
    --remeasure``, e.g. with aligned inputs) replaces the older labels of the pipelines it covers,
    and the loss compares the schedules of one pipeline, which must come from one measuring run."""
    out: dict[tuple[str, str, str, int], list[Sample]] = {}
    for source in sources:
        for key, group in group_samples(read_samples(source)).items():
            out[key] = group
    return [s for group in out.values() for s in group]


def write_export(samples: Iterable[Sample], out: str | os.PathLike[str]) -> int:
    """The compact data set: a header line then one JSON line per sample (gzip when ``.gz``)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows = sorted(samples, key=lambda s: (s.pipeline, s.pipeline_hash, s.target, s.device, s.trace_hash()))
    try:
        raw = open(tmp, "wb")
        with raw:
            # mtime=0: the same samples give the same bytes (a committed file changes only with its data)
            fh: Any = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else raw
            with io.TextIOWrapper(fh, encoding="utf-8") as text:
                text.write(json.dumps({"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                                       "count": len(rows)}) + "\n")
                for s in rows:
                    text.write(json.dumps(s.to_export(), sort_keys=True, separators=(",", ":")) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise DatasetError(f"{path}: cannot write the export ({e.strerror}); check the path") from None
    return len(rows)


# ---------------------------------------------------------------------------------------- featurizing

@dataclass
class PipelineData:
    """The featurized, successful schedules of one pipeline on one target and device.

    ``pipeline`` float32 [S, 40, 7]; ``schedule`` float32 [B, S, 39]; ``runtimes_ms`` float64 [B]
    (min over timing samples, milliseconds); ``num_cores`` the search's parallelism (= threads).
    """

    name: str
    sizes: dict[str, int]
    pipeline_hash: str
    target: str
    device: str
    num_cores: int
    pipeline: np.ndarray
    schedule: np.ndarray
    runtimes_ms: np.ndarray
    trace_hashes: list[str] = field(default_factory=list)
    type_mask: np.ndarray | None = None
    # [B, S] per-stage multipliers of the network's stage costs (``features.kernel_terms``), when the
    # search that uses the model applies them: training through them keeps what is fine-tuned equal to
    # what the search ranks by (None: the network's plain sum)
    stage_factors: np.ndarray | None = None
    # per-stage supervision (``attach_profiles``): [B, S] the profiled group of each featurized
    # stage (-1: none) and [B, G] each group's measured share of the time (NaN rows: no profile)
    stage_group: np.ndarray | None = None
    group_share: np.ndarray | None = None
    # [S, 2] costly math calls per point of each stage (``FunctionDAG.math_calls``), for networks that
    # take them (``OurNetConfig.math_inputs``)
    stage_math: np.ndarray | None = None
    # [B, S, 3] extra schedule inputs of each stage (``autoscheduler.features.extra_inputs``), for
    # networks that take them (``OurNetConfig.extra_inputs``)
    stage_extra: np.ndarray | None = None
    # [B, S, 2] the costly math calls each point runs under each schedule, loop-invariant calls
    # hoisted (``autoscheduler.features.math_inputs``), for networks with ``OurNetConfig.hoisted_math``
    stage_math_run: np.ndarray | None = None

    def math_input(self, hoisted: bool) -> np.ndarray | None:
        """What a network's ``stage_math`` argument takes: the executed calls [B, S, 2] for a network
        with ``hoisted_math``, else the per-point calls of the algorithm [S, 2]."""
        return self.stage_math_run if hoisted else self.stage_math

    @property
    def key(self) -> str:
        """Identifies the group (pipeline hash + target + device) in file names and splits."""
        return hashlib.sha256(f"{self.pipeline_hash}|{self.target}|{self.device}|{self.num_cores}".encode()
                              ).hexdigest()[:16]

    @property
    def bundled(self) -> bool:
        return not is_random_name(self.name)

    @property
    def num_schedules(self) -> int:
        return int(self.runtimes_ms.shape[0])

    def subset(self, idx: np.ndarray | Sequence[int]) -> "PipelineData":
        ix = np.asarray(idx, dtype=np.int64)
        return PipelineData(self.name, self.sizes, self.pipeline_hash, self.target, self.device,
                            self.num_cores, self.pipeline, self.schedule[ix], self.runtimes_ms[ix],
                            [self.trace_hashes[i] for i in ix] if self.trace_hashes else [], self.type_mask,
                            None if self.stage_factors is None else self.stage_factors[ix],
                            None if self.stage_group is None else self.stage_group[ix],
                            None if self.group_share is None else self.group_share[ix], self.stage_math,
                            None if self.stage_extra is None else self.stage_extra[ix],
                            None if self.stage_math_run is None else self.stage_math_run[ix])


def is_random_name(name: str) -> bool:
    return name.startswith("random_") and name[len("random_"):].isdigit()


def featurizer_fingerprint() -> str:
    """Hash of the source of everything the features depend on (DAG, state, featurizer)."""
    h = hashlib.sha256(f"cache{CACHE_VERSION}".encode())
    base = REPO_ROOT / "autoscheduler"
    for sub in ("dag", "state", "features"):
        for f in sorted((base / sub).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class FeatureCache:
    """Per-pipeline ``.npz`` files of schedule features by trace hash (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.dir = None if directory is None else Path(directory)
        self._fp: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = featurizer_fingerprint()
        return self._fp

    def path(self, pipeline_hash: str, target: str, num_cores: int) -> Path | None:
        if self.dir is None:
            return None
        tkey = hashlib.sha256(f"{target}|{num_cores}".encode()).hexdigest()[:10]
        return self.dir / f"{pipeline_hash[:24]}_{tkey}_{self.fingerprint}.npz"

    def load(self, pipeline_hash: str, target: str, num_cores: int
             ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
        """(pipeline features, type mask, stage math, {trace hash: [S, 39 + 3 + 2] row: schedule features,
        extra inputs, math calls run}); empty when not cached."""
        p = self.path(pipeline_hash, target, num_cores)
        if p is None or not p.exists():
            return None, None, None, {}
        try:
            with np.load(p, allow_pickle=False) as z:
                pipe, mask, sched, hashes = z["pipeline"], z["type_mask"], z["schedule"], z["trace_hashes"]
                math_ = z["stage_math"]
        except (OSError, ValueError, KeyError, EOFError):
            return None, None, None, {}   # a damaged cache file is rebuilt
        return pipe, mask, math_, {str(h): sched[i] for i, h in enumerate(hashes)}

    def store(self, pipeline_hash: str, target: str, num_cores: int, pipeline: np.ndarray,
              type_mask: np.ndarray, stage_math: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        p = self.path(pipeline_hash, target, num_cores)
        if p is None or not rows:
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        hashes = sorted(rows)
        # a name of its own per writer: two processes featurizing the same pipeline must not collide
        tmp = p.with_name(f"{p.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npz")
        np.savez_compressed(tmp, pipeline=pipeline, type_mask=type_mask, stage_math=stage_math,
                            schedule=np.stack([rows[h] for h in hashes]).astype(np.float32),
                            trace_hashes=np.asarray(hashes))
        os.replace(tmp, p)


@dataclass
class Rebuilt:
    """A pipeline rebuilt for featurizing: its search space and per-stage facts."""

    space: Any
    pipeline: np.ndarray
    type_mask: np.ndarray
    stage_math: np.ndarray


def rebuild(name: str, sizes: dict[str, int], target: str, num_cores: int) -> Rebuilt:
    """Build the named spec at ``sizes``, its DAG and search space (raises ToolkitError)."""
    import halide_pipelines
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.features import featurizer_for
    from autoscheduler.state import SearchSpace
    try:
        spec = halide_pipelines.get(name)
    except halide_pipelines.UnknownPipelineError as e:
        raise DatasetError(str(e)) from None
    built = spec.build(**sizes)
    dag = FunctionDAG.from_pipeline(built.pipeline())
    space = SearchSpace(dag, target, num_cores)
    stages = dag.featurization_order()
    mask = np.stack([np.asarray(st.features.types_in_use, dtype=np.float32) for st in stages]) \
        if stages else np.zeros((0, 7), np.float32)
    return Rebuilt(space, featurizer_for(space).pipeline.copy(), mask, dag.math_calls())


def replay(space: Any, trace: Sequence[Any]) -> Any:
    """The complete state a trace describes, replayed in ``space`` (raises ScheduleError)."""
    from autoscheduler.state import State, decision_from_dict
    from autoscheduler.errors import ScheduleError
    state = State.from_space(space)
    for d in trace:
        state = state.apply(decision_from_dict(d) if isinstance(d, dict) else d)
    if not state.is_complete:
        raise ScheduleError("the trace leaves the schedule incomplete")
    return state


def scheduled(name: str, sizes: dict[str, int], target: str, trace: Sequence[Any], num_threads: int
              ) -> tuple[Any, Any, Any, Any]:
    """The named workload built at ``sizes`` with a trace's schedule applied to its Funcs:
    (spec, BuiltPipeline, the hl.Pipeline scheduled, the replayed state). For tools that compile a
    measured schedule again (profiling it, lowering it)."""
    import halide_pipelines
    from autoscheduler.apply import apply_state
    from autoscheduler.dag import FunctionDAG
    from autoscheduler.state import SearchSpace
    spec = halide_pipelines.get(name)
    built = spec.build(**sizes)
    pipe = built.pipeline()
    state = replay(SearchSpace(FunctionDAG.from_pipeline(pipe), target, num_threads), trace)
    apply_state(state, pipe)
    return spec, built, pipe, state


def feature_rows(space: Any, states: Sequence[Any]) -> np.ndarray:
    """[B, S, 39 + 3 + 2]: the search's features of ``states``, their extra inputs (zero on GPU
    targets, whose network does not take them) and the math calls each point runs
    (``features.math_inputs``; split them with :func:`split_rows`)."""
    from autoscheduler.features import featurizer_for
    from autoscheduler.features.math_inputs import batch_math
    feats = np.asarray(featurizer_for(space).batch(states), dtype=np.float32)
    extra = np.zeros((*feats.shape[:2], NUM_EXTRA_INPUTS), dtype=np.float32)
    if not getattr(space, "gpu", False):
        from autoscheduler.features.extra_inputs import batch_extras
        extra = batch_extras(states)
    return np.concatenate([feats, extra, batch_math(list(states))], axis=-1)


def split_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`feature_rows` [..., 39 + 3 + 2] as (schedule features, extra inputs, math calls run)."""
    a, b = NUM_SCHEDULE_FEATURES, NUM_SCHEDULE_FEATURES + NUM_EXTRA_INPUTS
    return rows[..., :a], np.ascontiguousarray(rows[..., a:b]), np.ascontiguousarray(rows[..., b:])


def featurize_group(samples: Sequence[Sample], cache: FeatureCache | None = None,
                    stats: dict[str, int] | None = None) -> PipelineData | None:
    """Featurize the successful samples of one group (same ``group_key``); None when none replays.

    Duplicate traces keep their fastest measurement. ``stats`` counts what was skipped and why.
    """
    from autoscheduler.errors import ToolkitError as _TE
    stats = stats if stats is not None else {}
    best: dict[str, Sample] = {}
    for s in samples:
        if not s.ok or s.trace is None:
            continue
        h = s.trace_hash()
        if h not in best or (s.runtime_s or math.inf) < (best[h].runtime_s or math.inf):
            if h in best:
                stats["duplicate"] = stats.get("duplicate", 0) + 1
            best[h] = s
        else:
            stats["duplicate"] = stats.get("duplicate", 0) + 1
    if not best:
        return None
    first = next(iter(best.values()))
    cache = cache or FeatureCache(None)
    pipe, mask, math_, rows = cache.load(first.pipeline_hash, first.target, first.num_threads)
    missing = [h for h in best if h not in rows]
    if missing or pipe is None or mask is None or math_ is None:
        # only a cache miss builds the pipeline: a full cache trains where Halide is not installed
        try:
            rb = rebuild(first.pipeline, first.sizes, first.target, first.num_threads)
        except (_TE, ValueError) as e:
            stats["unbuildable"] = stats.get("unbuildable", 0) + len(best)
            warnings.warn(f"{first.pipeline} {first.sizes}: cannot rebuild ({e}); its samples are skipped",
                          stacklevel=2)
            return None
        pipe, mask, math_ = rb.pipeline, rb.type_mask, rb.stage_math
        states, hashes = [], []
        for h in missing:
            try:
                states.append(replay(rb.space, best[h].trace or []))
                hashes.append(h)
            except (_TE, ValueError, KeyError, TypeError) as e:
                stats["unreplayable"] = stats.get("unreplayable", 0) + 1
                if stats["unreplayable"] <= 3:
                    warnings.warn(f"{first.pipeline}: a trace no longer replays ({e}); skipped", stacklevel=2)
        if states:
            for h, row in zip(hashes, feature_rows(rb.space, states)):
                rows[h] = row
            cache.store(first.pipeline_hash, first.target, first.num_threads, pipe, mask, math_, rows)
    keep = sorted(h for h in best if h in rows)   # the same order from any source
    if not keep:
        return None
    stacked = np.stack([rows[h] for h in keep]).astype(np.float32)
    sched, extra, math_run = split_rows(stacked)
    runtimes = np.asarray([(best[h].runtime_s or 0.0) * 1e3 for h in keep], dtype=np.float64)
    return PipelineData(first.pipeline, dict(first.sizes), first.pipeline_hash, first.target, first.device,
                        first.num_threads, np.asarray(pipe, dtype=np.float32), sched, runtimes, keep,
                        np.asarray(mask, dtype=np.float32), stage_math=np.asarray(math_, dtype=np.float32),
                        stage_extra=extra, stage_math_run=math_run)


def group_samples(samples: Iterable[Sample]) -> dict[tuple[str, str, str, int], list[Sample]]:
    groups: dict[tuple[str, str, str, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.group_key, []).append(s)
    return groups


@dataclass
class Dataset:
    """Featurized pipelines plus what was skipped while loading."""

    pipelines: list[PipelineData]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def num_schedules(self) -> int:
        return sum(p.num_schedules for p in self.pipelines)

    def split(self, val_fraction: float = 0.1, test_fraction: float = 0.1, *,
              bundled_in_test: bool = True, salt: str = "") -> "Split":
        return split_pipelines(self.pipelines, val_fraction, test_fraction,
                               bundled_in_test=bundled_in_test, salt=salt)


def load_dataset(source: str | os.PathLike[str] | Sequence[Sample], *,
                 cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE_DIR, min_schedules: int = 2,
                 progress: bool = False) -> Dataset:
    """Read (a path, or samples, e.g. ``read_sample_sets``), group by pipeline, featurize (cached)
    and keep pipelines with >= ``min_schedules``."""
    samples = list(source) if not isinstance(source, (str, os.PathLike)) else read_samples(source)
    groups = group_samples(samples)
    cache = FeatureCache(cache_dir)
    stats: dict[str, int] = {"samples": len(samples), "groups": len(groups)}
    out: list[PipelineData] = []
    items: Iterable[tuple[Any, list[Sample]]] = sorted(groups.items(), key=lambda kv: (kv[1][0].pipeline, kv[0]))
    if progress:
        from tqdm import tqdm
        items = tqdm(list(items), desc="featurize", unit="pipeline", leave=False)
    for _, group in items:
        data = featurize_group(group, cache, stats)
        if data is None:
            continue
        if data.num_schedules < min_schedules:
            stats["too_few_schedules"] = stats.get("too_few_schedules", 0) + 1
            continue
        out.append(data)
    return Dataset(out, stats)


def attach_profiles(pipelines: Sequence[PipelineData], profiles: Any, *, min_samples: int = 50,
                    max_slowdown: float = 1.5) -> int:
    """Give each pipeline's schedules their stage profiles (``autoscheduler.stage_profile``):
    ``profiles`` maps (pipeline hash, trace hash) to a StageProfile, or is a path to read. Left out:
    profiles whose sampler saw fewer than ``min_samples`` samples (shares too coarse), whose runs
    took more than ``max_slowdown`` times the measured runtime (the cores were shared: parallel
    stages slow more than serial ones, which skews the shares), or whose stages do not match the
    featurization (another DAG). Returns the schedules that got one."""
    if isinstance(profiles, (str, os.PathLike)):
        from autoscheduler.stage_profile import read_profiles
        profiles = read_profiles(profiles)
    attached = 0
    for p in pipelines:
        b, s = p.schedule.shape[0], p.schedule.shape[1]
        found = [profiles.get((p.pipeline_hash, h)) for h in p.trace_hashes]
        found = [f if f is not None and f.samples >= min_samples and len(f.stage_group) == s
                 and sum(f.group_ms) > 0 and f.total_ms <= max_slowdown * float(p.runtimes_ms[i])
                 else None for i, f in enumerate(found)]
        if not any(f is not None for f in found):
            continue
        g = max(len(f.group_ms) for f in found if f is not None)
        groups = np.full((b, s), -1, dtype=np.int64)
        share = np.full((b, g), np.nan, dtype=np.float32)
        for i, f in enumerate(found):
            if f is None:
                continue
            groups[i] = f.stage_group
            share[i] = 0.0
            share[i, :len(f.group_ms)] = f.shares()
            attached += 1
        p.stage_group, p.group_share = groups, share
    return attached


# ---------------------------------------------------------------------------------------- splits

def split_role(key: str, val_fraction: float, test_fraction: float, salt: str = "") -> str:
    """``train``, ``val`` or ``test`` from a hash of the pipeline key alone (stable as data grows)."""
    u = int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass
class Split:
    train: list[PipelineData]
    val: list[PipelineData]
    test: list[PipelineData]

    def describe(self) -> str:
        def n(ps: list[PipelineData]) -> str:
            return f"{len(ps)} pipelines / {sum(p.num_schedules for p in ps)} schedules"
        return f"train {n(self.train)}, val {n(self.val)}, test {n(self.test)}"


def split_pipelines(pipelines: Sequence[PipelineData], val_fraction: float = 0.1,
                    test_fraction: float = 0.1, *, bundled_in_test: bool = True, salt: str = "") -> Split:
    """Split by whole pipelines (by ``pipeline_hash``: the same pipeline on two devices stays together).

    When the hash rule leaves val or test empty but there are enough random pipelines (tiny data
    sets), the train pipelines whose hash is closest to those splits move there, so that there is
    always something held out; with 10+ pipelines this never triggers in practice.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
    split = Split([], [], [])
    for p in pipelines:
        role = "test" if (bundled_in_test and p.bundled) else split_role(p.pipeline_hash, val_fraction,
                                                                        test_fraction, salt)
        getattr(split, role).append(p)

    def score(p: PipelineData) -> int:
        return int(hashlib.sha256(f"{salt}|{p.pipeline_hash}".encode()).hexdigest()[:12], 16)

    random_test = [p for p in split.test if not p.bundled]
    if test_fraction > 0 and not random_test and len(split.train) >= 3:
        p = min(split.train, key=score)
        split.train.remove(p)
        split.test.append(p)
    if val_fraction > 0 and not split.val and len(split.train) >= 2:
        p = min(split.train, key=score)
        split.train.remove(p)
        split.val.append(p)
    return split


def fold_splits(pipelines: Sequence[PipelineData], folds: int, val_fraction: float = 0.1, *,
                train_fraction: float = 1.0, salt: str = "cv") -> list[Split]:
    """K-fold cross-validation by whole random pipelines: fold k's test set is every random pipeline
    whose hash falls in fold k, its validation set (early stopping) a ``val_fraction`` share of the
    others, chosen by hash afresh per fold, its training set the rest. Each random pipeline is held
    out exactly once, so metrics over all folds rate a way of training on every pipeline there is:
    with 369 pipelines instead of a 40-pipeline test split, differences of a few points between two
    ways become measurable (data/README.md). Bundled workloads are left out (never trained on).

    ``train_fraction`` < 1 trains on that share of each fold's training pipelines (chosen by hash,
    the same in every fold, and a smaller share a subset of a larger one), the held-out and
    validation sets unchanged: a learning curve, how the held-out metrics grow with the data."""
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if folds < 2:
        raise ValueError(f"cross-validation needs 2 or more folds, got {folds}")
    if not 0 <= val_fraction < 1:
        raise ValueError("val_fraction must be in [0, 1)")
    random_ = [p for p in pipelines if not p.bundled]
    if len(random_) < folds:
        raise ValueError(f"{len(random_)} random pipeline(s) cannot fill {folds} folds")

    def fold(p: PipelineData) -> int:
        return int(hashlib.sha256(f"{salt}|{p.pipeline_hash}".encode()).hexdigest()[:12], 16) % folds

    of = {id(p): fold(p) for p in random_}
    out: list[Split] = []
    for k in range(folds):
        split = Split([], [], [p for p in random_ if of[id(p)] == k])
        for p in random_:
            if of[id(p)] != k:
                role = split_role(p.pipeline_hash, val_fraction, 0.0, f"{salt}-val{k}")
                if role == "val":
                    split.val.append(p)
                elif train_fraction >= 1 or split_role(p.pipeline_hash, 0.0, train_fraction,
                                                       f"{salt}-sub") == "test":
                    split.train.append(p)
        out.append(split)
    return out


def iter_batches(data: PipelineData, batch_size: int, rng: np.random.Generator) -> Iterator[PipelineData]:
    """Random batches of one pipeline's schedules (all of them when they fit in one batch)."""
    n = data.num_schedules
    if n <= batch_size:
        yield data
        return
    perm = rng.permutation(n)
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        if len(idx) >= 2:
            yield data.subset(idx)


__all__ = ["Sample", "PipelineData", "Dataset", "Split", "FeatureCache", "DatasetError", "read_samples",
           "write_export", "load_dataset", "featurize_group", "group_samples", "split_pipelines",
           "fold_splits", "split_role", "attach_profiles", "rebuild", "replay", "scheduled", "featurizer_fingerprint",
           "iter_batches", "is_random_name", "open_text",
           "DEFAULT_CACHE_DIR", "EXPORT_FORMAT", "EXPORT_VERSION"]

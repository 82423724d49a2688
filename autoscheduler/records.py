"""The tuning database: every measurement ever made, in SQLite (stdlib ``sqlite3``, WAL mode).

One row per measurement, keyed uniquely by (pipeline hash, target, device, schedule hash), so tuning
never measures a schedule twice and two databases merge without duplicates. The pipeline hash is
``autoscheduler.ir.canonical_hash`` (the algorithm and its estimates, names canonicalised). Only the
driver writes (workers never see the database); every record is committed on its own or in small
batches, so a killed driver loses nothing already committed. JSON lines are the exchange format:
``export_jsonl`` / ``import_jsonl`` round-trip every field (blobs in base64).

Every sqlite3 failure surfaces as ``DatabaseError`` with one line naming the file and the fix.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import os
import sqlite3
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .errors import DatabaseError
from .measure.candidate import Candidate, schedule_hash, trace_hash
from .measure.result import ErrorCode, MeasureResult, NoiseFloor

SCHEMA_VERSION = 1

_COLUMNS_SQL = """
    pipeline_hash   TEXT    NOT NULL,
    pipeline_name   TEXT    NOT NULL,
    sizes           TEXT    NOT NULL,   -- JSON object
    target          TEXT    NOT NULL,
    device          TEXT    NOT NULL,   -- canonical JSON fingerprint
    schedule_hash   TEXT    NOT NULL,
    schedule_source TEXT    NOT NULL,
    trace           TEXT,               -- JSON, verbatim decision trace
    trace_hash      TEXT,
    features        BLOB,
    predicted_cost  REAL,
    samples         TEXT    NOT NULL,   -- JSON list of seconds per run
    statistic       REAL,               -- min of samples, NULL unless OK
    repeats         INTEGER NOT NULL,
    error_code      TEXT    NOT NULL,
    error_message   TEXT    NOT NULL,
    build_s         REAL,
    run_s           REAL,
    num_threads     INTEGER NOT NULL,
    toolkit_version TEXT    NOT NULL,
    halide_version  TEXT    NOT NULL,
    timestamp       REAL    NOT NULL,
    schema_version  INTEGER NOT NULL
"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    {_COLUMNS_SQL},
    UNIQUE (pipeline_hash, target, device, schedule_hash)
);
CREATE INDEX IF NOT EXISTS measurements_best
    ON measurements (pipeline_hash, target, device, error_code, statistic);
CREATE INDEX IF NOT EXISTS measurements_name ON measurements (pipeline_name);
CREATE INDEX IF NOT EXISTS measurements_trace ON measurements (pipeline_hash, target, device, trace_hash);
CREATE TABLE IF NOT EXISTS noise_floors (
    id INTEGER PRIMARY KEY,
    pipeline_hash TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    target        TEXT NOT NULL,
    device        TEXT NOT NULL,
    schedule_hash TEXT NOT NULL,
    rel_diff      REAL NOT NULL,
    samples_a     TEXT NOT NULL,
    samples_b     TEXT NOT NULL,
    num_threads   INTEGER NOT NULL,
    timestamp     REAL NOT NULL
);
"""


@functools.lru_cache(maxsize=None)
def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("halide-autoscheduler-toolkit")
    except PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=None)
def halide_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("halide")
    except PackageNotFoundError:
        return "unknown"


_HASHES: dict[tuple[Any, ...], str] = {}


def pipeline_hash(candidate: Candidate) -> str:
    """``canonical_hash`` of the candidate's algorithm with its sizes (cached per workload).

    Builds the algorithm's Funcs in this process (no compilation): cheap, and safe in the driver.
    """
    key = candidate.workload_key()
    if key not in _HASHES:
        from .ir import canonical_hash
        if candidate.serialized is not None:
            import halide as hl
            pipeline = hl.deserialize_pipeline(candidate.serialized)
        else:
            import halide_pipelines
            pipeline = halide_pipelines.get(candidate.pipeline).build(**candidate.sizes).pipeline()
        _HASHES[key] = str(canonical_hash(pipeline))
    return _HASHES[key]


@dataclass
class Record:
    """One row of the database: a measurement with everything needed to understand or replay it."""

    pipeline_hash: str
    pipeline_name: str
    sizes: dict[str, int]
    target: str
    device: str
    schedule_hash: str
    schedule_source: str
    trace: list[Any] | None
    trace_hash: str | None
    features: bytes | None
    predicted_cost: float | None
    samples: list[float]
    statistic: float | None
    repeats: int
    error_code: str
    error_message: str
    build_s: float | None
    run_s: float | None
    num_threads: int
    toolkit_version: str
    halide_version: str
    timestamp: float
    schema_version: int = SCHEMA_VERSION
    id: int | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.OK.value

    @classmethod
    def from_result(cls, r: MeasureResult, pipeline_hash_: str | None = None) -> "Record":
        c = r.candidate
        return cls(
            pipeline_hash=pipeline_hash_ or pipeline_hash(c), pipeline_name=c.pipeline,
            sizes=dict(c.sizes), target=c.target, device=r.device,
            schedule_hash=schedule_hash(c.schedule_source), schedule_source=c.schedule_source,
            trace=c.trace, trace_hash=None if c.trace is None else trace_hash(c.trace),
            features=c.features, predicted_cost=c.predicted_cost, samples=list(r.samples),
            statistic=r.statistic, repeats=r.repeats, error_code=r.code.value,
            error_message=r.message, build_s=r.build_s, run_s=r.run_s, num_threads=r.num_threads,
            toolkit_version=toolkit_version(), halide_version=halide_version(), timestamp=r.timestamp)

    def candidate(self) -> Candidate:
        """The candidate this record measured (for re-measuring it, e.g. interleaved)."""
        return Candidate(self.pipeline_name, dict(self.sizes), self.schedule_source, self.target,
                         self.trace, self.predicted_cost, self.features)

    # -- JSON lines
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("id")
        d["features"] = None if self.features is None else base64.b64encode(self.features).decode()
        return d

    @classmethod
    def from_json(cls, d: Any) -> "Record":
        """Validate one exported object; raises ValueError naming what is wrong."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        names = [f.name for f in fields(cls) if f.name != "id"]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"missing field(s) {missing}")
        kw = {n: d[n] for n in names}
        _check(kw, str, "pipeline_hash", "pipeline_name", "target", "device", "schedule_hash",
               "schedule_source", "error_code", "error_message", "toolkit_version", "halide_version")
        _check(kw, int, "repeats", "num_threads", "schema_version")
        _check(kw, (int, float), "timestamp")
        _check(kw, (int, float, type(None)), "predicted_cost", "statistic", "build_s", "run_s")
        _check(kw, (str, type(None)), "trace_hash", "features")
        _check(kw, (list, type(None)), "trace")
        if not isinstance(kw["sizes"], dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in kw["sizes"].items()):
            raise ValueError("sizes must map names to integers")
        if not isinstance(kw["samples"], list) or not all(
                isinstance(s, (int, float)) for s in kw["samples"]):
            raise ValueError("samples must be a list of numbers")
        if kw["error_code"] not in {c.value for c in ErrorCode}:
            raise ValueError(f"unknown error code {kw['error_code']!r}")
        if kw["features"] is not None:
            try:
                kw["features"] = base64.b64decode(kw["features"], validate=True)
            except ValueError:
                raise ValueError("features is not base64") from None
        return cls(**kw)

    # -- SQL
    _FIELDS = ("pipeline_hash", "pipeline_name", "sizes", "target", "device", "schedule_hash",
               "schedule_source", "trace", "trace_hash", "features", "predicted_cost", "samples",
               "statistic", "repeats", "error_code", "error_message", "build_s", "run_s",
               "num_threads", "toolkit_version", "halide_version", "timestamp", "schema_version")

    def to_row(self) -> tuple[Any, ...]:
        d = {f: getattr(self, f) for f in self._FIELDS}
        d["sizes"] = json.dumps(self.sizes, sort_keys=True)
        d["trace"] = None if self.trace is None else json.dumps(self.trace)
        d["samples"] = json.dumps(self.samples)
        return tuple(d[f] for f in self._FIELDS)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Record":
        d = {f: row[f] for f in cls._FIELDS}
        d["sizes"] = json.loads(d["sizes"])
        d["trace"] = None if d["trace"] is None else json.loads(d["trace"])
        d["samples"] = json.loads(d["samples"])
        d["features"] = None if d["features"] is None else bytes(d["features"])
        return cls(**d, id=row["id"])


def _check(kw: dict[str, Any], types: Any, *names: str) -> None:
    for n in names:
        v = kw[n]
        if not isinstance(v, types) or isinstance(v, bool):
            raise ValueError(f"field {n!r} has the wrong type ({type(v).__name__})")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"field {n!r} is not finite")


@dataclass
class ImportReport:
    """What an import or merge did: rows inserted, rows already present, malformed lines skipped."""

    inserted: int = 0
    duplicates: int = 0
    skipped: int = 0


_SELECT = "SELECT * FROM measurements"


class Records:
    """A tuning database file. Open it in the driver only; use as a context manager or ``close()``."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        with self._guard("open"):
            if readonly:
                if not self.path.exists():
                    raise DatabaseError(f"{self.path}: no such tuning database; check the path")
                self._conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                             timeout=busy_timeout_s, isolation_level=None)
            else:
                self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            try:
                self._init_schema()
            except BaseException:
                self._conn.close()
                raise

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise DatabaseError(self._explain(e, action)) from e

    def _explain(self, e: sqlite3.Error, action: str) -> str:
        msg = str(e)
        low = msg.lower()
        where = f"{self.path} ({action})"
        if "locked" in low or "busy" in low:
            return (f"{where}: the database is locked by another process; only the tuning driver may "
                    "write to it: stop the other writer or wait, then retry")
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return (f"{where}: the file is corrupt or not a tuning database ({msg}); move it aside and "
                    "start a new one (rebuild it with `autoschedule records import` from an export)")
        if "full" in low:
            return (f"{where}: the disk is full ({msg}); free space and rerun; records already "
                    "committed are kept")
        if "unable to open" in low or "readonly" in low or "read-only" in low:
            return (f"{where}: cannot open or write the file ({msg}); check that its directory exists "
                    "and is writable")
        return f"{where}: database error ({msg})"

    def _init_schema(self) -> None:
        c = self._conn
        if self.readonly:
            self._check_version()
            return
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
        c.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            if c.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self._check_version()

    def _check_version(self) -> None:
        try:
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                raise DatabaseError(f"{self.path}: not a tuning database (no schema_version table); "
                                    "choose another file") from None
            raise
        version = row[0]
        if version is None or version > SCHEMA_VERSION:
            raise DatabaseError(f"{self.path}: schema version {version} is not one this toolkit reads "
                                f"(it reads {SCHEMA_VERSION}); upgrade the toolkit or export it with the "
                                "version that wrote it")

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only; open it without readonly to {action}")
        with self._guard(action):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Record]:
        with self._guard("read"):
            return [Record.from_row(r) for r in self._conn.execute(sql, args).fetchall()]

    def close(self) -> None:
        with self._guard("close"):
            self._conn.close()

    def __enter__(self) -> "Records":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add_record(self, record: Record, *, replace: bool = False) -> bool:
        """Insert and commit one record; False when its key is already present (nothing changes
        unless ``replace``)."""
        return self.add_records([record], replace=replace).inserted == 1

    def add_records(self, records: Iterable[Record], *, replace: bool = False,
                    batch: int = 64) -> ImportReport:
        """Insert records, committing every ``batch`` rows; duplicates of the unique key are skipped."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        cols = ", ".join(Record._FIELDS)
        sql = f"{verb} INTO measurements ({cols}) VALUES ({', '.join('?' * len(Record._FIELDS))})"
        report = ImportReport()
        pending: list[Record] = []

        def flush() -> None:
            with self._write("add records") as c:
                for rec in pending:
                    if c.execute(sql, rec.to_row()).rowcount > 0:
                        report.inserted += 1
                    else:
                        report.duplicates += 1
            pending.clear()

        for rec in records:
            pending.append(rec)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        return report

    def add(self, result: MeasureResult, *, pipeline_hash_: str | None = None,
            replace: bool = False) -> bool:
        """Record one measurement result (committed before returning)."""
        return self.add_record(Record.from_result(result, pipeline_hash_), replace=replace)

    def add_noise_floor(self, nf: NoiseFloor, *, pipeline_hash_: str | None = None) -> None:
        c = nf.a.candidate
        row = (pipeline_hash_ or pipeline_hash(c), c.pipeline, c.target, nf.a.device,
               schedule_hash(c.schedule_source), nf.rel_diff, json.dumps(nf.a.samples),
               json.dumps(nf.b.samples), nf.a.num_threads, time.time())
        with self._write("add a noise floor") as conn:
            conn.execute("INSERT INTO noise_floors (pipeline_hash, pipeline_name, target, device, "
                         "schedule_hash, rel_diff, samples_a, samples_b, num_threads, timestamp) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        with self._guard("count"):
            return int(self._conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def all(self) -> list[Record]:
        return self._query(f"{_SELECT} ORDER BY id")

    def rows(self, pipeline_hash_: str) -> list[Record]:
        """Every measurement of one pipeline (any target, device or outcome), oldest first."""
        return self._query(f"{_SELECT} WHERE pipeline_hash = ? ORDER BY id", (pipeline_hash_,))

    def rows_named(self, pipeline_name: str) -> list[Record]:
        return self._query(f"{_SELECT} WHERE pipeline_name = ? ORDER BY id", (pipeline_name,))

    def best(self, pipeline_hash_: str, target: str, device: str) -> Record | None:
        """The fastest correct measurement of a pipeline on a target and device, or None."""
        rows = self._query(f"{_SELECT} WHERE pipeline_hash = ? AND target = ? AND device = ? "
                           "AND error_code = 'OK' AND statistic IS NOT NULL ORDER BY statistic, id LIMIT 1",
                           (pipeline_hash_, target, device))
        return rows[0] if rows else None

    def best_all(self, pipeline_name: str | None = None) -> list[Record]:
        """The best record of every (pipeline hash, target, device), optionally of one pipeline name."""
        where = "error_code = 'OK' AND statistic IS NOT NULL"
        args: tuple[Any, ...] = ()
        if pipeline_name is not None:
            where += " AND pipeline_name = ?"
            args = (pipeline_name,)
        # SQLite takes the bare columns of a MIN() aggregate from the row holding the minimum.
        sql = (f"SELECT *, MIN(statistic) AS best FROM measurements WHERE {where} "
               "GROUP BY pipeline_hash, target, device ORDER BY pipeline_name, target, best")
        return self._query(sql, args)

    def has_measured(self, pipeline_hash_: str, target: str, device: str, *,
                     schedule_source: str | None = None, trace: list[Any] | None = None) -> bool:
        """Whether this schedule (by source, or by decision trace) was measured, whatever its outcome."""
        if (schedule_source is None) == (trace is None):
            raise ValueError("give exactly one of schedule_source or trace")
        if schedule_source is not None:
            col, value = "schedule_hash", schedule_hash(schedule_source)
        else:
            assert trace is not None
            col, value = "trace_hash", trace_hash(trace)
        with self._guard("read"):
            row = self._conn.execute(
                f"SELECT 1 FROM measurements WHERE pipeline_hash = ? AND target = ? AND device = ? "
                f"AND {col} = ? LIMIT 1", (pipeline_hash_, target, device, value)).fetchone()
        return row is not None

    def measured_schedule_hashes(self, pipeline_hash_: str, target: str, device: str) -> set[str]:
        """Schedule hashes already measured, to filter a whole batch in one query."""
        with self._guard("read"):
            rows = self._conn.execute("SELECT schedule_hash FROM measurements WHERE pipeline_hash = ? "
                                      "AND target = ? AND device = ?", (pipeline_hash_, target, device))
            return {r[0] for r in rows}

    def noise_floors(self, target: str | None = None, device: str | None = None) -> list[dict[str, Any]]:
        """A/A results, newest first, as dicts (rel_diff, samples_a, samples_b, ...)."""
        where, args = [], []
        for col, v in (("target", target), ("device", device)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = "SELECT * FROM noise_floors" + (" WHERE " + " AND ".join(where) if where else "")
        with self._guard("read"):
            out = []
            for r in self._conn.execute(sql + " ORDER BY timestamp DESC, id DESC", args):
                d = dict(r)
                d["samples_a"], d["samples_b"] = json.loads(d["samples_a"]), json.loads(d["samples_b"])
                out.append(d)
            return out

    # ------------------------------------------------------------------ exchange
    def export_jsonl(self, out: str | os.PathLike[str]) -> int:
        """Write every measurement as one JSON object per line; returns the count."""
        out = Path(out)
        tmp = out.with_name(out.name + ".tmp")
        n = 0
        try:
            with open(tmp, "w") as f:
                for rec in self.all():
                    f.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")
                    n += 1
            os.replace(tmp, out)
        except OSError as e:
            raise DatabaseError(f"{out}: cannot write the export ({e.strerror}); check the path "
                                "and free space") from None
        return n

    def import_jsonl(self, path: str | os.PathLike[str]) -> ImportReport:
        """Insert the records of a JSON lines file; a malformed line is skipped with a warning."""
        path = Path(path)
        report = ImportReport()

        def good() -> Iterator[Record]:
            try:
                f = open(path, encoding="utf-8", errors="replace")
            except OSError as e:
                raise DatabaseError(f"{path}: cannot read ({e.strerror}); check the path") from None
            with f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield Record.from_json(json.loads(line))
                    except ValueError as e:  # json.JSONDecodeError is a ValueError
                        report.skipped += 1
                        warnings.warn(f"{path}:{lineno}: skipped a malformed record ({e})", stacklevel=3)

        done = self.add_records(good())
        report.inserted, report.duplicates = done.inserted, done.duplicates
        return report

    def merge(self, other: str | os.PathLike[str]) -> ImportReport:
        """Insert every record of another database that this one lacks (by the unique key)."""
        with Records(other, readonly=True) as src:
            return self.add_records(src.all())

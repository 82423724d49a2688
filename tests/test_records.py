"""The tuning database: round trips, merges, queries, failures, and a driver killed mid-batch."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


import halide_pipelines
from autoscheduler import cli
from autoscheduler.errors import DatabaseError
from autoscheduler.measure import Candidate, ErrorCode, MeasureResult, NoiseFloor, device_fingerprint
from autoscheduler.records import SCHEMA_VERSION, Record, Records, pipeline_hash

ROOT = Path(__file__).resolve().parent.parent
IDX = {"width": 64, "height": 48}
DEVICE = device_fingerprint("host")
OTHER_DEVICE = json.dumps({"cpu": "Other CPU", "cores": 64, "isa": ["avx2"]}, sort_keys=True)


def result(source: str, code: ErrorCode = ErrorCode.OK, samples: tuple[float, ...] = (2e-3, 1e-3, 3e-3),
           *, pipeline: str = "index_sum", sizes: dict[str, int] | None = None, target: str = "host",
           device: str = DEVICE, trace: list | None = None) -> MeasureResult:
    c = Candidate(pipeline, dict(sizes or IDX), source, target, trace=trace,
                  predicted_cost=0.25, features=bytes(range(256)) * 3)
    ok = code is ErrorCode.OK
    return MeasureResult(c, code, "" if ok else f"{code.value}: something\nwith two lines",
                         samples=list(samples) if ok else [], repeats=7 if ok else 0, build_s=0.5,
                         run_s=0.2 if ok else None, num_threads=2, device=device, timestamp=1.7e9)


def sources(n: int) -> list[str]:
    return [f"f = pipeline.get_func(0)\nx, y = f.args()\nf.vectorize(x, {2 ** k})\n" for k in range(n)]


@pytest.fixture
def db(tmp_path: Path) -> Records:
    with Records(tmp_path / "t.db") as r:
        yield r


def test_same_pipeline_built_twice_hashes_the_same() -> None:
    from autoscheduler.ir import canonical_hash
    spec = halide_pipelines.get("blur")
    a, b = spec.build(width=40, height=32).pipeline(), spec.build(width=40, height=32).pipeline()
    assert a.get_func(1).name() != b.get_func(1).name()  # Halide renamed the second build's Funcs
    assert canonical_hash(a) == canonical_hash(b)
    assert canonical_hash(a) != canonical_hash(spec.build(width=48, height=32).pipeline())
    c = Candidate("blur", {"width": 40, "height": 32}, "")
    assert pipeline_hash(c) == canonical_hash(a)


def test_export_import_round_trips_every_field(db: Records, tmp_path: Path) -> None:
    rs = [result(sources(1)[0], trace=[["tile", 0, [8, 4]], {"k": None}]),
          result("# bad\n", ErrorCode.WRONG_ANSWER),
          result("# slow\n", ErrorCode.RUN_TIMEOUT, target="host-no_asserts")]
    for r in rs:
        assert db.add(r)
    before = db.all()
    assert [r.error_code for r in before] == ["OK", "WRONG_ANSWER", "RUN_TIMEOUT"]
    assert before[0].features == bytes(range(256)) * 3 and before[0].statistic == 1e-3
    out = tmp_path / "x.jsonl"
    assert db.export_jsonl(out) == 3
    with Records(tmp_path / "copy.db") as copy:
        report = copy.import_jsonl(out)
        assert (report.inserted, report.duplicates, report.skipped) == (3, 0, 0)
        after = copy.all()
    assert after == before  # dataclass equality: every field but the row id
    for old, new in zip(before, after):
        for name in Record._FIELDS:
            assert getattr(new, name) == getattr(old, name), name
    assert after[0].trace == [["tile", 0, [8, 4]], {"k": None}]
    assert after[0].candidate().schedule_source == sources(1)[0]


def test_duplicates_are_ignored_and_merge_adds_only_new(tmp_path: Path) -> None:
    src = sources(5)
    with Records(tmp_path / "a.db") as a, Records(tmp_path / "b.db") as b:
        for s in src[:3]:
            a.add(result(s))
        for s in src[1:5]:
            b.add(result(s))
        b.add(result(src[0], device=OTHER_DEVICE))  # same schedule, another machine: a new key
        assert not a.add(result(src[0], samples=(9.0,)))  # already measured: kept as it was
        report = a.merge(tmp_path / "b.db")
        assert (report.inserted, report.duplicates) == (3, 2)
        assert len(a) == 6
        again = a.merge(tmp_path / "b.db")
        assert (again.inserted, again.duplicates) == (0, 5) and len(a) == 6
        keys = {(r.pipeline_hash, r.target, r.device, r.schedule_hash) for r in a.all()}
        assert len(keys) == 6


def test_queries_best_rows_and_has_measured(db: Records) -> None:
    src = sources(4)
    db.add(result(src[0], samples=(5e-3, 4e-3)))
    db.add(result(src[1], samples=(2e-3, 3e-3), trace=[["a", 1]]))
    db.add(result(src[2], ErrorCode.RUN_ERROR))
    db.add(result(src[3], samples=(1e-3,), device=OTHER_DEVICE))
    db.add(result(src[0], samples=(1e-4,), pipeline="blur", sizes={"width": 40, "height": 32}))
    ph = pipeline_hash(Candidate("index_sum", IDX, ""))
    best = db.best(ph, "host", DEVICE)
    assert best is not None and best.schedule_source == src[1] and best.statistic == 2e-3
    assert db.best(ph, "host-cuda", DEVICE) is None
    assert len(db.rows(ph)) == 4 and len(db.rows_named("blur")) == 1
    assert db.has_measured(ph, "host", DEVICE, schedule_source=src[2])  # failures count as measured
    assert db.has_measured(ph, "host", DEVICE, schedule_source=src[2] + "\n  \n")  # whitespace
    assert not db.has_measured(ph, "host", OTHER_DEVICE, schedule_source=src[2])
    assert db.has_measured(ph, "host", DEVICE, trace=[["a", 1]])
    assert not db.has_measured(ph, "host", DEVICE, trace=[["a", 2]])
    with pytest.raises(ValueError):
        db.has_measured(ph, "host", DEVICE)
    assert len(db.measured_schedule_hashes(ph, "host", DEVICE)) == 3
    per_key = db.best_all()
    assert [(r.pipeline_name, r.statistic) for r in per_key] == [("blur", 1e-4), ("index_sum", 1e-3),
                                                                ("index_sum", 2e-3)]
    assert [(r.device, r.statistic) for r in db.best_all("index_sum")] == [(OTHER_DEVICE, 1e-3),
                                                                           (DEVICE, 2e-3)]


def test_noise_floor_is_stored(db: Records) -> None:
    a, b = result("# a\n", samples=(1.0e-3, 1.1e-3)), result("# a\n", samples=(1.05e-3, 1.2e-3))
    db.add_noise_floor(NoiseFloor(rel_diff=0.05, a=a, b=b))
    rows = db.noise_floors(target="host", device=DEVICE)
    assert len(rows) == 1 and rows[0]["rel_diff"] == 0.05 and rows[0]["samples_b"] == [1.05e-3, 1.2e-3]
    assert db.noise_floors(device=OTHER_DEVICE) == []


def test_malformed_lines_are_skipped_with_a_warning(db: Records, tmp_path: Path) -> None:
    lines = [json.dumps(Record.from_result(result(s)).to_json()) for s in sources(2)]
    broken = json.loads(lines[0])
    del broken["samples"]
    wrong_type = json.loads(lines[0])
    wrong_type["repeats"] = "seven"
    bad_code = dict(json.loads(lines[1]), error_code="EXPLODED")
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([lines[0], "{not json", json.dumps(broken), json.dumps(wrong_type),
                               json.dumps(bad_code), "[1, 2]", lines[1], lines[1][: len(lines[1]) // 2]]))
    with pytest.warns(UserWarning, match="skipped a malformed record") as caught:
        report = db.import_jsonl(path)
    assert (report.inserted, report.duplicates, report.skipped) == (2, 0, 6)
    assert len(caught) == 6 and all(str(path) in str(w.message) for w in caught)
    assert len(db) == 2


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite, just some bytes\n" * 200)
    with pytest.raises(DatabaseError) as info:
        Records(path)
    msg = str(info.value)
    assert str(path) in msg and "not a tuning database" in msg and "\n" not in msg


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Records(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(DatabaseError, match="schema version"):
        Records(path)


def test_locked_database_keeps_committed_records(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    src = sources(3)
    with Records(path, busy_timeout_s=0.2) as db:
        db.add(result(src[0]))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseError, match="locked by another process") as info:
            db.add(result(src[1]))
        assert str(path) in str(info.value)
        other.execute("ROLLBACK")
        other.close()
        assert db.add(result(src[2]))
    with Records(path) as db:
        assert [r.schedule_source for r in db.all()] == [src[0], src[2]]


def test_full_disk_keeps_committed_records(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    added = 0
    with Records(path) as db:
        db._conn.execute("PRAGMA max_page_count = 24")  # SQLite reports SQLITE_FULL past this size
        with pytest.raises(DatabaseError, match="disk is full") as info:
            for i in range(1000):
                db.add(result(f"# schedule {i}\n" + "x = 1\n" * 200))
                added += 1
        assert str(path) in str(info.value)
    assert added > 0
    with Records(path) as db:
        assert len(db) == added


def test_cli_export_import_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Records(a) as db:
        db.add(result("# fast\n", samples=(1e-3,)))
        db.add(result("# slow\n", samples=(4e-3,)))
    out = tmp_path / "a.jsonl"
    assert cli.main(["records", "export", "--db", str(a), "--out", str(out)]) == 0
    assert cli.main(["records", "import", "--db", str(b), str(out)]) == 0
    assert "imported 2 record(s)" in capsys.readouterr().out
    assert cli.main(["records", "best", "--db", str(b), "--pipeline", "index_sum", "--source"]) == 0
    text = capsys.readouterr().out
    assert "index_sum" in text and "1.0000" in text and "# fast" in text and "# slow" not in text
    assert cli.main(["records", "best", "--db", str(b), "--pipeline", "blur"]) == 1
    assert cli.main(["records", "best", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no such tuning database" in capsys.readouterr().err


DRIVER = """
import sys
from autoscheduler.measure import Candidate, LocalExecutor, MeasureOptions, measure_batch
from autoscheduler.records import Records, pipeline_hash

def main() -> None:
    db_path, n = sys.argv[1], int(sys.argv[2])
    sizes = {"width": 64, "height": 48}
    cands = [Candidate("index_sum", sizes, f"# variant {i}\\nf = pipeline.get_func(0)\\n"
                       f"f.vectorize(f.args()[0], {2 ** (i % 4)})\\n") for i in range(n)]
    opts = MeasureOptions(min_sample_s=0.05, n_samples=3, progress=False, memory_limit_mb=2048)
    with Records(db_path) as db, LocalExecutor() as ex:
        ph = pipeline_hash(cands[0])
        todo = [c for c in cands if not db.has_measured(ph, "host", DEVICE, schedule_source=c.schedule_source)]
        print("todo", len(todo), flush=True)
        def commit(i, r):
            db.add(r)
            print("committed", *ex.worker_pids(), flush=True)
        measure_batch(todo, opts, executor=ex, on_result=commit)
    print("done", flush=True)

if __name__ == "__main__":
    from autoscheduler.measure import device_fingerprint
    DEVICE = device_fingerprint("host")
    main()
"""


def gone(pid: int, wait_s: float = 10.0) -> bool:
    """Whether the process has exited (a zombie counts as exited), waiting up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_killed_driver_loses_nothing_and_resumes(tmp_path: Path) -> None:
    script, db_path, n = tmp_path / "driver.py", tmp_path / "tune.db", 8
    script.write_text(textwrap.dedent(DRIVER))
    proc = subprocess.Popen([sys.executable, str(script), str(db_path), str(n)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["todo", str(n)]
    committed, workers = 0, set()
    deadline = time.monotonic() + 60
    while committed < 3 and time.monotonic() < deadline:
        words = proc.stdout.readline().split()
        if words and words[0] == "committed":
            committed += 1
            workers.update(int(w) for w in words[1:])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert committed == 3, "the driver did not commit three records in time"
    assert workers and all(gone(pid) for pid in workers), "workers outlived their driver"
    with Records(db_path) as db:
        rows = db.all()
        assert committed <= len(rows) < n
        assert all(r.ok and len(r.samples) == 3 and r.statistic is not None for r in rows)
        kept = len(rows)
    rerun = subprocess.run([sys.executable, str(script), str(db_path), str(n)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.split()[:2] == ["todo", str(n - kept)]  # nothing committed is measured again
    assert sum(1 for line in rerun.stdout.splitlines() if line.startswith("committed")) == n - kept
    with Records(db_path) as db:
        final = db.all()
        assert len(final) == n and len({r.schedule_hash for r in final}) == n
        assert [r.schedule_source for r in final[:kept]] == [r.schedule_source for r in rows]

"""``autoschedule records export|import|best``: the tuning database from the command line.

``autoscheduler.cli`` calls ``register(subparsers)``; each handler returns an exit code and raises
ToolkitError (DatabaseError) for anything the user can fix.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from .errors import DatabaseError
from .records import Records


def cmd_export(args: argparse.Namespace) -> int:
    with Records(args.db, readonly=True) as db:
        n = db.export_jsonl(args.out)
    print(f"exported {n} record(s) from {args.db} to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Records(args.db) as db:
            report = db.import_jsonl(args.input)
    for w in caught[:10]:
        print(f"warning: {w.message}")
    if len(caught) > 10:
        print(f"warning: ... and {len(caught) - 10} more malformed line(s)")
    print(f"imported {report.inserted} record(s) into {args.db}; {report.duplicates} already present, "
          f"{report.skipped} malformed line(s) skipped")
    return 0


def _device_label(device: str) -> str:
    try:
        d: Any = json.loads(device)
    except ValueError:
        return device[:40]
    label = f"{d.get('cpu', '?')} x{d.get('cores', '?')}"
    gpus = d.get("gpu") or []
    if gpus:
        label += " + " + ", ".join(g.get("name", "?") for g in gpus)
    return label


def cmd_best(args: argparse.Namespace) -> int:
    with Records(args.db, readonly=True) as db:
        best = db.best_all(args.pipeline)
    if not best:
        what = f" of pipeline '{args.pipeline}'" if args.pipeline else ""
        print(f"no successful measurement{what} in {args.db}")
        return 0 if args.pipeline is None else 1
    if args.json:
        for r in best:
            print(json.dumps(r.to_json(), sort_keys=True))
        return 0
    print(f"{'pipeline':18s} {'hash':12s} {'target':10s} {'best ms':>10s} {'threads':>7s}  device")
    for r in best:
        assert r.statistic is not None
        print(f"{r.pipeline_name:18s} {r.pipeline_hash[:12]:12s} {r.target:10s} "
              f"{r.statistic * 1e3:10.4f} {r.num_threads:7d}  {_device_label(r.device)}")
        if args.source:
            print("    " + r.schedule_source.rstrip().replace("\n", "\n    "))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``records`` command (with export, import, best) to the CLI's subparsers."""
    p = subparsers.add_parser("records", help="export, import or query the tuning database")
    sub = p.add_subparsers(dest="records_command", required=True)

    sp = sub.add_parser("export", help="write every record as JSON lines")
    sp.add_argument("--db", required=True, help="the tuning database (SQLite file)")
    sp.add_argument("--out", required=True, help="the JSON lines file to write")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("import", help="add the records of a JSON lines file (duplicates skipped)")
    sp.add_argument("--db", required=True, help="the tuning database (created if missing)")
    sp.add_argument("input", help="a JSON lines file written by `records export`")
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("best", help="the fastest schedule of each pipeline, target and device")
    sp.add_argument("--db", required=True, help="the tuning database (SQLite file)")
    sp.add_argument("--pipeline", help="only this pipeline name")
    sp.add_argument("--source", action="store_true", help="print each best schedule's source")
    sp.add_argument("--json", action="store_true", help="print each best record as a JSON line")
    sp.set_defaults(func=cmd_best)


__all__ = ["register", "cmd_export", "cmd_import", "cmd_best", "DatabaseError"]

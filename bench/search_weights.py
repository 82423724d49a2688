"""Which cost-model weights make the beam search pick faster schedules, measured side by side.

Held-out ranking metrics (``autoschedule evaluate``) judge a model on schedules someone else chose;
the search asks it about the partial states it walks through. Here the same search (beam 32, three
passes, predict only) runs once per weights file on each workload, and the picks are timed
interleaved in one process pool (``retime_interleaved``: A B C A B C ..., min of the rounds), so
drift between them cancels. Reports each pick's milliseconds and the ratio to the pick made with
Halide's baseline weights (the search's default); writes bench/results/search_weights.json.

    python bench/search_weights.py [--only conv_layer,harris] [--rounds 7] [--time-budget 150]

Each search runs under ``--time-budget`` (30 s, autoschedule's default), which narrows the beam of a
search that cannot finish in time: weights that cost more to score a state see fewer states in it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import halide as hl  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler.api import autoschedule  # noqa: E402
from autoscheduler.cost import BASELINE_WEIGHTS, WEIGHTS_DIR  # noqa: E402
from autoscheduler.measure import Candidate, MeasureOptions  # noqa: E402
from autoscheduler.measure.batch import retime_interleaved  # noqa: E402

WORKLOADS = ("conv_layer", "harris", "unsharp", "bilateral_grid", "ae_forward", "xnor_conv")
WEIGHTS = {"baseline": BASELINE_WEIGHTS, "adams_retrained": WEIGHTS_DIR / "adams_retrained.pt",
           "ours": WEIGHTS_DIR / "ours.pt"}


def _shown(path: Path) -> str:
    """A weights path relative to the repository when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def compare(name: str, target: hl.Target, rounds: int, beam: int, passes: int,
            weights: dict[str, Path], time_budget_s: float = 30.0) -> dict[str, Any]:
    spec = halide_pipelines.get(name)
    sizes = spec.sizes()
    row: dict[str, Any] = {"workload": name, "sizes": sizes, "picks": {}}
    cands, labels = [], []
    for label, path in weights.items():
        built = spec.build(**sizes)
        t0 = time.perf_counter()
        sched = autoschedule(built.outputs, target, beam_size=beam, passes=passes, weights=str(path),
                             time_budget_s=time_budget_s)
        row["picks"][label] = {"search_s": time.perf_counter() - t0, "source": sched.candidates[0].source}
        cands.append(Candidate(name, dict(sizes), sched.candidates[0].source, target=str(target)))
        labels.append(label)
    results = retime_interleaved(cands, rounds=rounds, options=MeasureOptions(progress=False))
    for label, r in zip(labels, results):
        row["picks"][label]["ms"] = r.statistic * 1e3 if r.ok and r.statistic else None
        row["picks"][label]["error"] = None if r.ok else f"{r.code.name}: {r.message}"
    base = row["picks"]["baseline"]["ms"]
    for label in labels:
        ms = row["picks"][label]["ms"]
        row["picks"][label]["ratio_to_baseline"] = ms / base if ms and base else None
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated workloads (default: %s)" % ",".join(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--beam", type=int, default=32)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--time-budget", type=float, default=30.0, help="seconds per search (autoschedule's "
                    "time_budget_s; the default 30 narrows the beam of slower-to-score weights on large pipelines)")
    ap.add_argument("--weights", action="append", default=[], metavar="LABEL=FILE",
                    help="another weights file to compare (repeatable); 'baseline' is always first")
    ap.add_argument("--out", default=str(HERE / "results" / "search_weights.json"))
    args = ap.parse_args()
    weights = dict(WEIGHTS)
    for item in args.weights:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).exists():
            ap.error(f"--weights {item}: give LABEL=FILE with an existing file")
        weights[label] = Path(path).resolve()
    names = [n for n in args.only.split(",") if n] or list(WORKLOADS)
    target = hl.get_host_target()
    rows = []
    print(f"{'workload':16s} " + " ".join(f"{k + ' ms':>20s}" for k in weights) + "   ours / baseline")
    for name in names:
        row = compare(name, target, args.rounds, args.beam, args.passes, weights, args.time_budget)
        rows.append(row)
        p = row["picks"]
        cells = " ".join(f"{p[k]['ms']:20.3f}" if p[k]["ms"] else f"{'failed':>20s}" for k in weights)
        ratio = p["ours"]["ratio_to_baseline"]
        print(f"{name:16s} {cells}   {ratio:.2f}" if ratio else f"{name:16s} {cells}", flush=True)
    out = {"benchmark": "search_weights", "target": str(target), "cores": os.cpu_count(),
           "rounds": args.rounds, "beam": args.beam, "passes": args.passes, "time_budget_s": args.time_budget,
           "weights": {k: _shown(v) for k, v in weights.items()},
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which Func's decisions make one schedule faster than another: a decision-transplant experiment.

Why: when a tuned (or hand-written) schedule beats the search's pick, the whole-schedule prediction
only says the model ranked them wrong. Swapping the decisions of one Func at a time from the faster
"donor" schedule into the search's pick, and timing every variant interleaved (drift cancels), pins
the gap to the Funcs it comes from, with the model's prediction of each variant beside its time.
On ae_train_step this found that one Func (the adjoint of ``h3``) carries most of the gap, and that
the model predicts its faster placement 1.5x slower.

The donor is the fastest successful measurement of the workload in a tuning database or export
(``autoschedule tune`` / ``collect``, or ``data/bundled_tuned.jsonl.gz``). A variant whose trace is
illegal after the swap (its consumers' loops differ) is reported and skipped.

    python scripts/transplant.py ae_train_step --db data/bundled_tuned.jsonl.gz [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import halide as hl  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler.api import autoschedule  # noqa: E402
from autoscheduler.apply import schedule_source  # noqa: E402
from autoscheduler.cost import CostModel  # noqa: E402
from autoscheduler.errors import ScheduleError  # noqa: E402
from autoscheduler.measure import Candidate, MeasureOptions  # noqa: E402
from autoscheduler.measure.batch import retime_interleaved  # noqa: E402
from cost_model.dataset import read_samples, replay  # noqa: E402


def swap_func(base: list[dict[str, Any]], donor: list[dict[str, Any]], f: int) -> list[dict[str, Any]]:
    """``base`` with Func ``f``'s decisions replaced by ``donor``'s, at the place of base's first one."""
    theirs = [d for d in donor if d["func"] == f]
    out: list[dict[str, Any]] = []
    done = False
    for d in base:
        if d["func"] != f:
            out.append(d)
        elif not done:
            out.extend(theirs)
            done = True
    return out


def variants(base: list[dict[str, Any]], donor: list[dict[str, Any]], space: Any,
             names: dict[int, str]) -> tuple[dict[str, Any], list[str]]:
    """The base, the donor, and one variant per Func whose decisions differ (legal ones only)."""
    out = {"search pick": replay(space, base), "donor": replay(space, donor)}
    skipped: list[str] = []
    for f in sorted({d["func"] for d in base}):
        mine = [d for d in base if d["func"] == f]
        theirs = [d for d in donor if d["func"] == f]
        if json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True):
            continue
        try:
            out[f"pick + donor's {names[f]}"] = replay(space, swap_func(base, donor, f))
        except ScheduleError as e:
            skipped.append(f"{names[f]}: {str(e).splitlines()[0][:120]}")
    return out, skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline", help="a bundled workload")
    ap.add_argument("--db", required=True, help="tuning database or export holding the donor")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    spec = halide_pipelines.get(args.pipeline)
    sizes = spec.sizes()
    target = hl.get_jit_target_from_environment()
    ok = sorted((s for s in read_samples(args.db) if s.pipeline == args.pipeline and s.runtime_s and s.trace),
                key=lambda s: s.runtime_s or 0.0)
    if not ok:
        print(f"{args.db}: no successful measurement of {args.pipeline}; tune it first", file=sys.stderr)
        return 2
    sched = autoschedule(spec.build(**sizes).outputs, target)
    space = sched.state.space
    base = [json.loads(json.dumps(d.to_dict())) for d in sched.state.decisions]
    names = {n.index: n.name for n in space.dag.nodes}
    states, skipped = variants(base, [dict(d) for d in ok[0].trace], space, names)
    model = CostModel.load(parallelism=space.parallelism)
    preds = model.predict(list(states.values()))
    cands = [Candidate(args.pipeline, sizes, str(schedule_source(st)), target=str(target)) for st in states.values()]
    results = retime_interleaved(cands, rounds=args.rounds, options=MeasureOptions(progress=False))
    print(f"{args.pipeline}: donor measured {ok[0].runtime_s * 1e3:.3f} ms when stored")
    for (label, _), pred, r in zip(states.items(), preds, results):
        ms = f"{r.statistic * 1e3:9.3f} ms" if r.ok and r.statistic else f"{r.code:>12s}"
        print(f"  {label:40s} predicted {float(pred):9.4g}  measured {ms}")
    for s in skipped:
        print(f"  skipped (illegal after the swap): {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

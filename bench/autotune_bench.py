"""Autotuning against Halide's autoschedulers and PyTorch, every row measured in the same run, within a time budget.

For each workload (the six mission workloads and three classic ones by default): Halide's Adams2019
(parallelism = cores and 16, the faster kept), the other autoschedulers named by ``--baselines``
(Mullapudi2016, Li2018: parallelism = cores) and PyTorch (same thread count) are timed; then
``autoscheduler.tune`` tunes the workload for ``--budget`` seconds (search, measure, fine-tune rounds,
the two best re-timed interleaved); the tuned best is re-timed in this process exactly as the
baselines are (``bench/baselines.run_schedule``: JIT apart, min of repeats) and checked against the
compute_root output. Each row reports the ratios, % of the machine's peak (``bench/peak.py``, measured
beside each workload), the tuning curve (best time per round and per candidate, a PNG in
bench/results/), where the time went (search, build, run, train), and the cost model's pairwise
ordering accuracy on the workload's measurements with the starting and the fine-tuned weights.
Writes bench/results/autotune_bench.json after every workload.

    python bench/autotune_bench.py [--only conv_layer,blur] [--budget 600] [--small] [--db tuning.sqlite]
        [--baselines Adams2019,Mullapudi2016,Li2018]

Without ``--db`` the tuning database is a fresh temporary file, so no workload starts from an earlier
run's measurements (with ``--db`` an earlier run is resumed, and the budget counts this run only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import halide as hl  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler import baselines, schedules  # noqa: E402
from autoscheduler.errors import ToolkitError  # noqa: E402
from autoscheduler.measure import MeasureOptions  # noqa: E402
from autoscheduler.tune import TuneOptions, TuneResult, tune, tune_dir  # noqa: E402
import baselines as base_bench  # noqa: E402
import peak  # noqa: E402

CLASSIC = ("harris", "unsharp", "bilateral_grid")
BASELINES = ("Adams2019", "Mullapudi2016", "Li2018")


def adams_row(spec: Any, sizes: dict, target: hl.Target, repeats: int, timeout: float,
              reference: list[np.ndarray]) -> dict[str, Any]:
    """Adams2019 with parallelism = cores and = 16 (a minimum of tasks, not a thread count), faster kept."""
    rows = []
    for par in sorted({os.cpu_count() or 1, 16}):
        try:
            found = baselines.search(spec.build(**sizes).pipeline(), "Adams2019", {"parallelism": par}, target,
                                     spec=(spec.name, sizes), timeout_s=timeout, time_repeats=repeats)
        except ToolkitError as e:
            rows.append({"parallelism": par, "error": str(e)})
            continue
        row = dict(found.extra["timing"])
        row.update(parallelism=par, search_s=found.search_time_s,
                   correct=base_bench.outputs_ok(spec, found.extra["outputs"], reference))
        rows.append(row)
    ok = [r for r in rows if "min_ms" in r]
    return dict(min(ok, key=lambda r: r["min_ms"])) if ok else {"error": "; ".join(r["error"] for r in rows)}


def baseline_row(name: str, spec: Any, sizes: dict, target: hl.Target, repeats: int, timeout: float,
                 reference: list[np.ndarray]) -> dict[str, Any]:
    """One of Halide's autoschedulers (Adams2019: :func:`adams_row`; the others with parallelism =
    cores), its schedule timed as the plugin applied it and checked against the root output."""
    if name == "Adams2019":
        return adams_row(spec, sizes, target, repeats, timeout, reference)
    try:
        found = baselines.search(spec.build(**sizes).pipeline(), name, {"parallelism": os.cpu_count() or 1},
                                 target, spec=(spec.name, sizes), timeout_s=timeout, time_repeats=repeats)
    except ToolkitError as e:
        return {"error": str(e)}
    row = dict(found.extra["timing"])
    row.update(search_s=found.search_time_s, correct=base_bench.outputs_ok(spec, found.extra["outputs"], reference))
    return row


def pairwise_report(result: TuneResult, db: str) -> dict[str, Any]:
    """Pairwise ordering accuracy of the starting and the fine-tuned model on every successful
    measurement of the tuned pipeline (what fine-tuning is meant to improve)."""
    if result.weights_path is None:
        return {}
    from cost_model.dataset import load_dataset, read_samples
    from cost_model.metrics import pairwise_accuracy
    from cost_model.train import load_model, predict, torch_threads
    samples = [s for s in read_samples(db) if s.pipeline_hash == result.pipeline_hash and s.target == result.target
               and s.device == result.device]
    data = load_dataset(samples, cache_dir=tune_dir(db) / "feature_cache", min_schedules=2)
    if not data.pipelines:
        return {}
    p = max(data.pipelines, key=lambda d: d.num_schedules)
    out: dict[str, Any] = {"schedules": p.num_schedules}
    with torch_threads(1):
        for label, path in (("start", result.start_weights), ("finetuned", result.weights_path)):
            out[label] = pairwise_accuracy(predict(load_model(path), p), p.runtimes_ms)
    return out


def target_check(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """The issue's target for this workload, and whether the row meets it."""
    ours = row.get("tuned", {}).get("min_ms")
    # every reference row that produced a correct time (a baseline that gave wrong answers is no bar)
    refs = {k: r["min_ms"] for k, r in row.items() if k != "tuned" and r.get("min_ms") and r.get("correct", True)}
    if ours is None or not refs:
        return {"target": "-", "met": None}
    best_ref = min(refs.values())
    pct = row["tuned"].get("pct_peak")
    if name == "conv_layer_b8":
        return {"target": "<= 1.05x the fastest of " + " and ".join(refs), "met": ours <= 1.05 * best_ref}
    met = ours < best_ref
    goal = "faster than " + " and ".join(refs)
    if name == "conv_layer":
        goal += ", >= 80% of fp32 peak"
        met = met and pct is not None and pct >= 80.0
    if name == "ae_train_step":
        goal += ", >= 50% of fp32 peak"
        met = met and pct is not None and pct >= 50.0
    return {"target": goal, "met": bool(met)}


def bench_one(spec: Any, sizes: dict, target: hl.Target, args: argparse.Namespace, db: str) -> dict[str, Any]:
    t_all = time.perf_counter()
    local = {"fp32_gflops": peak.fp32_peak_gflops(target), "binary_gops": peak.binary_peak_gops(target)}
    inputs = spec.make_inputs(0, **sizes)
    root = base_bench.run_schedule(spec, sizes, inputs, schedules.root_source(spec.build(**sizes).pipeline()),
                                   target, 1, None)
    reference = root.pop("_out")
    res: dict[str, Any] = {"pipeline": spec.name, "sizes": sizes, "peaks": local, "rows": {}}
    for name in [b for b in args.baselines.split(",") if b]:
        res["rows"][name] = baseline_row(name, spec, sizes, target, args.repeats, args.search_timeout, reference)
    torch_row = base_bench.torch_row(spec, sizes, inputs, args.repeats)
    if torch_row is not None:
        res["rows"]["PyTorch"] = torch_row
    measure = MeasureOptions(n_samples=args.n_samples, min_sample_s=args.min_sample_s, max_consecutive_errors=0,
                             num_threads=args.threads, progress=sys.stderr.isatty())
    opts = TuneOptions(rounds=args.rounds, batch=args.batch, time_budget_s=args.budget, patience=args.patience,
                       weights=args.weights, finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
                       measure=measure, progress=sys.stderr.isatty())
    t0 = time.perf_counter()
    result = tune(spec.name, str(target), db=db, sizes=sizes, options=opts, executor=args.executor,
                  address=args.address, log=lambda s: print(f"  {spec.name}: {s}", flush=True))
    tune_s = time.perf_counter() - t0
    tuned: dict[str, Any] = {"tune_wall_s": tune_s, "stopped": result.stopped, "rounds": result.rounds_done,
                             "measured": result.measured, "tuner_best_ms": None if result.best_time_s is None
                             else result.best_time_s * 1e3}
    if result.best_source is not None:
        row = base_bench.run_schedule(spec, sizes, inputs, result.best_source, target, args.repeats, reference)
        row.pop("_out")
        tuned.update(row)
    res["rows"]["tuned"] = tuned
    flops = spec.flops(**sizes)
    peak_g = local["binary_gops"] if "xnor" in spec.tags and spec.name != "bwn_conv" else local["fp32_gflops"]
    for row in res["rows"].values():
        if flops and "min_ms" in row:
            row["pct_peak"] = 100.0 * flops / (row["min_ms"] * 1e-3) / (peak_g * 1e9)
    ours = tuned.get("min_ms")
    res["ratios"] = {f"tuned/{k}": ours / r["min_ms"] for k, r in res["rows"].items()
                     if k != "tuned" and ours and r.get("min_ms")}
    res["curve"] = {"best_ms_per_round": [None if v is None else v * 1e3 for v in result.best_per_round],
                    "rounds": [vars(r) for r in result.curve]}
    res["time_split"] = vars(result.time)
    res["pairwise"] = pairwise_report(result, db)
    res["weights"] = result.weights_path
    res["check"] = target_check(spec.name, res["rows"])
    try:
        from autoscheduler.plot import plot_curves
        lines = {k: r["min_ms"] for k, r in res["rows"].items() if k != "tuned" and r.get("min_ms")}
        png = Path(args.out).parent / f"autotune_{spec.name}.png"    # beside the JSON: a smoke run elsewhere
        # leaves the committed curves alone
        res["plot"] = str(plot_curves(db, png, pipelines=[spec.name], lines=lines,
                                      title=f"{spec.name} {sizes}: tuning curve ({args.budget:.0f} s budget)"))
    except ToolkitError as e:
        res["plot"] = f"not drawn: {e}"
    res["bench_s"] = time.perf_counter() - t_all
    return res


def print_row(res: dict[str, Any]) -> None:
    cells = []
    for k in ["tuned"] + [k for k in res["rows"] if k != "tuned"]:
        r = res["rows"].get(k)
        if r is None or "min_ms" not in r:
            cells.append(f"{k}=" + ("ERR" if r else "-"))
            continue
        pct = f" {r['pct_peak']:.0f}%" if "pct_peak" in r else ""
        bad = "" if r.get("correct", True) else " WRONG"
        cells.append(f"{k}={r['min_ms']:.3f}ms{pct}{bad}")
    ratios = " ".join(f"{k}={v:.2f}" for k, v in res["ratios"].items())
    pw = res.get("pairwise") or {}
    acc = f" pairwise {pw['start']:.2f}->{pw['finetuned']:.2f}" if "start" in pw else ""
    t = res["time_split"]
    met = {True: "MET", False: "missed", None: "-"}[res["check"]["met"]]
    print(f"{res['pipeline']:16s} " + " | ".join(cells) + f" | {ratios} | target {met}{acc} | "
          f"search {t['search_s']:.0f}s build {t['build_s']:.0f}s run {t['run_s']:.0f}s train {t['train_s']:.0f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated workloads (default: mission + classic)")
    ap.add_argument("--classic", default=",".join(CLASSIC), help="the classic workloads added to the mission ones")
    ap.add_argument("--budget", type=float, default=600.0, help="tuning seconds per workload")
    ap.add_argument("--small", action="store_true", help="the workloads' test sizes (a smoke run)")
    ap.add_argument("--db", help="tuning database (default: a fresh temporary file)")
    ap.add_argument("--rounds", type=int, default=1000, help="round limit (the budget usually stops first)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patience", type=int, default=6, help="rounds without improvement before stopping")
    ap.add_argument("--weights", help="cost model to start from")
    ap.add_argument("--finetune-steps", type=int, default=40)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--n-samples", type=int, default=3)
    ap.add_argument("--min-sample-s", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--executor", default="local", choices=("local", "ray"))
    ap.add_argument("--address")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--search-timeout", type=float, default=400.0, help="seconds for one baseline search")
    ap.add_argument("--baselines", default="Adams2019", help="comma-separated Halide autoschedulers to time "
                    "beside the tuned schedule (of %s)" % ",".join(BASELINES))
    ap.add_argument("--out", default=str(HERE / "results" / "autotune_bench.json"))
    args = ap.parse_args()
    unknown = [b for b in args.baselines.split(",") if b and b not in BASELINES]
    if unknown:
        ap.error(f"--baselines: unknown autoscheduler(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    names = ([n for n in args.only.split(",") if n]
             or list(halide_pipelines.MISSION) + [n for n in args.classic.split(",") if n])
    db = args.db or str(Path(tempfile.mkdtemp(prefix="autotune_bench-")) / "tuning.sqlite")
    target = hl.get_jit_target_from_environment()
    print(f"# target {target}; {os.cpu_count()} cores; budget {args.budget:.0f} s per workload; db {db}")
    results = []
    for name in names:
        spec = halide_pipelines.get(name)
        sizes = spec.sizes(**(spec.test_sizes if args.small else {}))
        res = bench_one(spec, sizes, target, args, db)
        results.append(res)
        print_row(res)
        sys.stdout.flush()
        out = {"machine": {"cores": os.cpu_count(), "target": str(target)}, "budget_s": args.budget,
               "small": args.small, "db": db, "results": results,
               "geomean": base_bench.geomeans(results), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print("# geometric means: " + ", ".join(f"{k} {v:.3f}" for k, v in base_bench.geomeans(results).items()))
    print(f"# wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

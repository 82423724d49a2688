"""Every bundled workload under root / Adams2019 / Mullapudi2016 / Li2018 (and PyTorch), in one run.

Adams2019 runs with parallelism = core count and = 16 and the faster is kept (the plugins'
``parallelism`` is a minimum of exposed tasks, not a thread count). Search and JIT time are reported
apart from run time; run time is the min and median of repeats; each row also gives % of the machine's
peak (fp32 FMA, or xnor/popcount for binary workloads) measured in this run by ``bench/peak.py``.
Writes bench/results/baselines.json and prints a table.

    python bench/baselines.py [--only conv_layer,blur] [--small] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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
from autoscheduler.measure.timing import compare  # noqa: E402
from autoscheduler.timing import time_callable, time_pipeline  # noqa: E402
import peak  # noqa: E402


def run_schedule(spec: Any, sizes: dict, inputs: dict, source: str, target: hl.Target,
                 repeats: int, reference: list[np.ndarray] | None) -> dict[str, Any]:
    built = spec.build(**sizes)
    p = built.pipeline()
    schedules.apply_source(source, p)
    row = time_pipeline(built, p, inputs, target, repeats=repeats)
    out = halide_pipelines.realize(built, inputs, target, pipeline=p)
    if reference is not None:
        ok = outputs_ok(spec, out, reference)
        row["correct"] = bool(ok)
    row["_out"] = out
    return row


def torch_row(spec: Any, sizes: dict, inputs: dict, repeats: int) -> dict[str, Any] | None:
    fn = spec.torch_runner(inputs, **sizes)
    if fn is None:
        return None
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    return time_callable(fn, repeats=repeats)


def bench_workload(spec: Any, sizes: dict, target: hl.Target, repeats: int, search_timeout: float,
                   peaks: dict[str, float]) -> dict[str, Any]:
    inputs = spec.make_inputs(0, **sizes)
    res: dict[str, Any] = {"pipeline": spec.name, "sizes": sizes, "rows": {}}
    flops = spec.flops(**sizes)
    peak_g = peaks["binary_gops"] if "xnor" in spec.tags and spec.name != "bwn_conv" else peaks["fp32_gflops"]

    built = spec.build(**sizes)
    root = run_schedule(spec, sizes, inputs, schedules.root_source(built.pipeline()), target, repeats, None)
    reference = root.pop("_out")
    res["rows"]["root"] = root
    cores = os.cpu_count() or 1
    plan = [("Adams2019", {"parallelism": cores}), ("Adams2019", {"parallelism": 16}),
            ("Mullapudi2016", {"parallelism": cores}), ("Li2018", {"parallelism": cores})]
    for name, params in plan:
        label = name if name != "Adams2019" else f"Adams2019(p={params['parallelism']})"
        try:
            fresh = spec.build(**sizes).pipeline()
            found = baselines.search(fresh, name, params, target, spec=(spec.name, sizes),
                                     timeout_s=search_timeout, time_repeats=repeats)
            row = dict(found.extra["timing"])
            out = found.extra["outputs"]
            row["correct"] = outputs_ok(spec, out, reference)
            row["search_s"] = found.search_time_s
            row["source"] = found.python_source
        except ToolkitError as e:
            row = {"error": str(e)}
        res["rows"][label] = row
    adams = [r for k, r in res["rows"].items() if k.startswith("Adams2019(") and "min_ms" in r]
    if adams:
        res["rows"]["Adams2019"] = dict(min(adams, key=lambda r: r["min_ms"]))
    t = torch_row(spec, sizes, inputs, repeats)
    if t is not None:
        res["rows"]["PyTorch"] = t
    for row in res["rows"].values():
        if flops and "min_ms" in row:
            row["pct_peak"] = 100.0 * flops / (row["min_ms"] * 1e-3) / (peak_g * 1e9)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated pipeline names (default: all)")
    ap.add_argument("--small", action="store_true", help="test sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--search-timeout", type=float, default=400.0)
    ap.add_argument("--out", default=str(HERE / "results" / "baselines.json"))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or halide_pipelines.names()
    target = hl.get_jit_target_from_environment()
    peaks = {"fp32_gflops": peak.fp32_peak_gflops(target), "binary_gops": peak.binary_peak_gops(target)}
    print(f"# peak: fp32 {peaks['fp32_gflops']:.1f} GFLOP/s, binary {peaks['binary_gops']:.1f} Gop/s; "
          f"target {target}; {os.cpu_count()} cores")
    results = []
    for name in names:
        spec = halide_pipelines.get(name)
        sizes = spec.sizes(**(spec.test_sizes if args.small else {}))
        t0 = time.perf_counter()
        # The peak is re-measured beside every workload, so a busy machine lowers both alike.
        local = {"fp32_gflops": peak.fp32_peak_gflops(target), "binary_gops": peak.binary_peak_gops(target)}
        peaks = {k: max(peaks[k], local[k]) for k in peaks}
        res = bench_workload(spec, sizes, target, args.repeats, args.search_timeout, local)
        res["peaks"] = local
        res["bench_s"] = time.perf_counter() - t0
        results.append(res)
        print_row(res)
        sys.stdout.flush()
        # Written after every workload, so an interrupted run keeps what it measured.
        out = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "target": str(target)},
               "peaks_max": peaks, "halide": "21.0.0", "results": results,
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(f"# wrote {args.out}")
    return 0


COLUMNS = ["root", "Adams2019", "Mullapudi2016", "Li2018", "PyTorch"]


def outputs_ok(spec: Any, outputs: list[np.ndarray], reference: list[np.ndarray]) -> bool:
    """The measurement layer's check (``autoscheduler.measure.timing.compare``) with the spec's
    tolerances, so a benchmark and a measured candidate agree on what a wrong answer is."""
    return compare(outputs, reference, spec.rtol, spec.atol, spec.mismatch_fraction) is None


def geomeans(results: list[dict[str, Any]]) -> dict[str, float]:
    """Geometric mean of each ratio key over the workloads that report it (positive values only)."""
    keys = sorted({k for r in results for k in r["ratios"]})
    out = {}
    for k in keys:
        vals = [r["ratios"][k] for r in results if k in r["ratios"] and r["ratios"][k] > 0]
        if vals:
            out[k] = float(np.exp(np.mean(np.log(vals))))
    return out


def print_row(res: dict[str, Any]) -> None:
    rows = res["rows"]
    cells = []
    for c in COLUMNS:
        r = rows.get(c)
        if r is None:
            cells.append(f"{c}=-")
        elif "error" in r:
            cells.append(f"{c}=ERR")
        else:
            pct = f" {r['pct_peak']:.0f}%" if "pct_peak" in r else ""
            bad = "" if r.get("correct", True) else " WRONG"
            srch = f" s{r['search_s']:.0f}s" if "search_s" in r else ""
            cells.append(f"{c}={r['min_ms']:.3f}ms{pct}{srch}{bad}")
    print(f"{res['pipeline']:16s} " + " | ".join(cells))


if __name__ == "__main__":
    sys.exit(main())

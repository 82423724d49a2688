"""CUDA: our schedules against Anderson2021, Li2018, Mullapudi2016 (experimental_gpu_schedule) and PyTorch.

GPU time is scarce and the GPU machine has no package index, so the work is split in two phases:

``prepare`` (this machine, CPU only; a CUDA search needs only a ``host-cuda`` target): for each
workload, our search (the best predicted state = "ours", predict only; the ``--top`` best = the
candidates "ours_tuned" measures on the GPU, fastest kept) and Halide's three GPU autoschedulers,
every search timed here on the same CPU; writes the candidates (decision traces as JSON and Python
schedule source) to ``bench/results/gpu_candidates.json``, and packs the pure-Python packages the GPU
machine lacks (flatbuffers, tqdm, pytest) into ``.gpu_bundle/pylib.tar.gz``.

    python bench/gpu_bench.py prepare [--only conv_layer,ae_train_step] [--small] [--top 4]

``run`` (the GPU machine, from ``scripts/gpu_run.sh``): every Halide schedule goes through the
measurement layer (``autoscheduler.measure``: isolated build workers, inputs copied to the device
first, samples of back-to-back runs closed by one ``device_sync``, min kept, outputs checked against
the compute_root schedule on the CPU); PyTorch (cuDNN / cuBLAS, strict fp32: TF32 off) for the conv
and autoencoder workloads, timed with ``torch.cuda.synchronize``. Results are written after every
workload to ``OUT_DIR/gpu_bench.json`` with the ratios issue 9 asks for. Without a GPU it writes
``{"skipped": ...}`` and exits 0.

    python bench/gpu_bench.py run --candidates bench/results/gpu_candidates.json --out-dir $OUT
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CANDIDATES = HERE / "results" / "gpu_candidates.json"
SEARCH_TARGET = "host-cuda-cuda_capability_80"
BASELINES = ("Anderson2021", "Li2018", "Mullapudi2016")
DEFAULT_WORKLOADS = ("conv_layer", "conv_layer_b8", "xnor_conv", "ae_forward", "ae_train_step", "vae_train_step")
TORCH_TAGS = ("conv", "train")
PYLIB = ("flatbuffers", "tqdm", "pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py")


# ------------------------------------------------------------------------------------------ prepare

def alternatives(best: Any, cost: Any, n: int, budget_s: float, per_option: int = 6) -> list[tuple[float, Any, str]]:
    """Schedules that differ from ``best`` in one decision and are completed by a short search:
    for each decision of ``best``'s trace (the output's first), up to ``per_option`` of the other
    options at that point (evenly spaced over the menu). Why: the top-k of one beam are near copies
    of each other (conv_layer's 16 best predicted all kept the accumulator in shared memory), and a
    GPU measurement is what should decide between the structures the roofline prices apart.
    Returns (predicted, state, origin), at most ``n``, one per alternative, first decisions first."""
    from autoscheduler.state import State
    t0 = time.perf_counter()
    out: list[tuple[float, Any, str]] = []
    seen = {best.decisions}
    s = State.from_space(best.space)
    for k, d in enumerate(best.decisions):
        if len(out) >= n or time.perf_counter() - t0 > budget_s:
            break
        for o in _spread([o for o in s.options() if o != d], per_option):
            if len(out) >= n or time.perf_counter() - t0 > budget_s:
                break
            _complete(s.apply(o), cost, seen, f"decision {k}: {o}", out)
        s = s.apply(d)
    return out


def _spread(options: list[Any], n: int) -> list[Any]:
    """At most ``n`` of ``options``, evenly spaced over the menu (its order runs small to large)."""
    if len(options) <= n:
        return options
    step = len(options) / n
    return [options[int(i * step)] for i in range(n)]


def _complete(state: Any, cost: Any, seen: set[Any], origin: str, out: list[tuple[float, Any, str]]) -> None:
    """Complete ``state`` by a short beam search; keep it in ``out`` when new and finite."""
    from autoscheduler.search import SearchOptions, beam_search
    try:
        r = beam_search(state, cost, SearchOptions(beam_size=4, passes=1, time_budget_s=3.0))
    except Exception:  # an option the completion cannot finish: skipped, the others go on
        return
    if r.best.decisions not in seen and math.isfinite(r.cost):
        seen.add(r.best.decisions)
        out.append((float(r.cost), r.best, origin))


def placement_pairs(best: Any, cost: Any, n: int, budget_s: float, per_option: int = 6) -> list[tuple[float, Any, str]]:
    """Two-decision alternatives of ``best``: the first producer computed at each other level of its
    consumer (block, thread, inner, root), crossed with each of up to ``per_option`` register tiles
    of that consumer, each completed by a short search. Why: a producer moved into the consumer's
    threads (a reduction's accumulators in registers) pays off only with a larger per-thread tile,
    a pair of decisions that one-decision alternatives never reach."""
    from autoscheduler.refine import _apply_all
    from autoscheduler.state import State
    from autoscheduler.state.decisions import InnerTile, Place
    t0 = time.perf_counter()
    trace = list(best.decisions)
    place_k = next((k for k, d in enumerate(trace) if k > 0 and isinstance(d, Place)), None)
    if place_k is None:
        return []
    consumer = trace[place_k].at.func if trace[place_k].at is not None else None
    inner_k = max((k for k in range(place_k) if isinstance(trace[k], InnerTile)
                   and (consumer is None or trace[k].func == consumer)), default=None)
    if inner_k is None:
        return []
    base = State.from_space(best.space)
    for d in trace[:inner_k]:
        base = base.apply(d)
    inners = _spread(base.options(), per_option)
    out: list[tuple[float, Any, str]] = []
    seen = {best.decisions}
    for inner in inners:
        # the decisions between the two, replayed; one the new tile no longer allows re-chosen greedily
        s, _ = _apply_all(base.apply(inner), trace[inner_k + 1:place_k], cost)
        if s is None:
            continue
        for place in s.options():
            if len(out) >= n or time.perf_counter() - t0 > budget_s:
                return out
            _complete(s.apply(place), cost, seen, f"pair: {inner} + {place}", out)
    return out


def _our_candidates(spec: Any, sizes: dict[str, int], top: int, beam: int, passes: int,
                    budget: float, diverse: int = 0) -> dict[str, Any]:
    """Our search's ``top`` best predicted (the first is "ours", predict only), then ``diverse``
    one-decision alternatives of the best (``alternatives``): the candidates "ours_tuned" measures."""
    from autoscheduler.api import autoschedule
    from autoscheduler.apply import schedule_source
    from autoscheduler.features.gpu import GpuAnalyticCost
    built = spec.build(**sizes)
    t0 = time.perf_counter()
    sched = autoschedule(built.outputs, SEARCH_TARGET, beam_size=beam, passes=passes, top_k=max(1, top),
                         time_budget_s=budget)
    search_s = time.perf_counter() - t0
    cands = [{"predicted_cost": c.predicted_cost, "source": c.source, "origin": f"top {i}",
              "state": json.loads(c.state.to_json())} for i, c in enumerate(sched.candidates)]
    if diverse > 0:
        best = sched.candidates[0].state
        cost = GpuAnalyticCost(best.space.parallelism).cost_fn()
        seen = {c.state.decisions for c in sched.candidates}
        found = placement_pairs(best, cost, diverse // 2, budget_s=45.0)
        found += alternatives(best, cost, diverse - len(found), budget_s=60.0)
        for pred, st, origin in found:
            if st.decisions not in seen:
                seen.add(st.decisions)
                cands.append({"predicted_cost": pred, "source": str(schedule_source(st)), "origin": origin,
                              "state": json.loads(st.to_json())})
    return {"search_s": search_s, "states_scored": sched.search.states_scored, "candidates": cands}


def _baseline(spec: Any, sizes: dict[str, int], name: str, timeout: float) -> dict[str, Any]:
    from autoscheduler import baselines
    import halide as hl
    try:
        r = baselines.search(spec.build(**sizes).pipeline(), name, None, hl.Target(SEARCH_TARGET),
                             spec=(spec.name, sizes), timeout_s=timeout)
    except Exception as e:  # a plugin failing on a workload is a result, not a crash of the bench
        return {"error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"search_s": r.search_time_s, "params": r.params, "source": r.python_source}
    if r.python_source is None:
        # The plugin's C++ has no Python translation (e.g. Li2018's rfactor): the measurement worker
        # then runs the plugin itself on its build, with the same parameters (deterministic).
        out["source"] = plugin_source(name, r.params)
        out["note"] = f"applied by the plugin in the worker: {r.extra.get('translation_error')}"
    return out


def plugin_source(name: str, params: dict[str, str]) -> str:
    """Schedule source that schedules ``pipeline`` by running a Halide autoscheduler plugin."""
    return ("from autoscheduler import baselines as _baselines\n"
            f"_baselines.load_plugin({name!r})\n"
            f"pipeline.apply_autoscheduler(hl.Target({SEARCH_TARGET!r}), "
            f"hl.AutoschedulerParams({name!r}, {dict(params)!r}))\n")


def pack_pylib(dest: Path) -> list[str]:
    """Pure-Python packages of this machine the GPU machine lacks, as a tar.gz (unpacked there
    onto PYTHONPATH after the machine's own paths)."""
    packed: list[str] = []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for mod in PYLIB:
            spec = importlib.util.find_spec(mod)
            if spec is None:
                continue
            if spec.submodule_search_locations:
                path = Path(list(spec.submodule_search_locations)[0])
            elif spec.origin:
                path = Path(spec.origin)
            else:
                continue
            tar.add(str(path), arcname=path.name,
                    filter=lambda ti: None if "__pycache__" in ti.name else ti)
            packed.append(mod)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(buf.getvalue())
    return packed


def cmd_prepare(args: argparse.Namespace) -> int:
    import halide_pipelines
    names = [n for n in args.only.split(",") if n] or list(DEFAULT_WORKLOADS)
    out: dict[str, Any] = {"search_target": SEARCH_TARGET, "machine": {"cores": os.cpu_count()},
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "top": args.top,
                           "beam": args.beam, "passes": args.passes, "workloads": {}}
    path = Path(args.out)
    for name in names:
        spec = halide_pipelines.get(name)
        sizes = spec.sizes(**(spec.test_sizes if args.small else {}))
        entry: dict[str, Any] = {"sizes": sizes, "ours": _our_candidates(spec, sizes, args.top, args.beam,
                                                                        args.passes, args.time_budget,
                                                                        args.diverse)}
        entry["baselines"] = ({} if args.no_baselines else
                              {b: _baseline(spec, sizes, b, args.search_timeout) for b in BASELINES})
        out["workloads"][name] = entry
        base = " ".join(f"{b}={v['search_s']:.1f}s" if "search_s" in v else f"{b}=ERR"
                        for b, v in entry["baselines"].items())
        print(f"{name:16s} ours: {len(entry['ours']['candidates'])} candidates, search "
              f"{entry['ours']['search_s']:.1f}s | {base}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
    if not args.no_pylib:
        packed = pack_pylib(ROOT / ".gpu_bundle" / "pylib.tar.gz")
        print(f"# packed {', '.join(packed)} into .gpu_bundle/pylib.tar.gz")
    print(f"# wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------ run

def gpu_present() -> bool:
    from autoscheduler.measure import cuda_available
    return cuda_available()


def torch_gpu_row(spec: Any, sizes: dict[str, int], inputs: dict[str, Any], n_samples: int = 5,
                  min_sample_s: float = 0.02) -> Optional[dict[str, Any]]:
    """PyTorch on the GPU (strict fp32) for conv and autoencoder workloads; None for the others."""
    if not any(t in spec.tags for t in TORCH_TAGS) and spec.name != "ae_forward":
        return None
    import numpy as np
    import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    if "conv" in spec.tags:
        if "xnor" in spec.tags:
            return None
        import torch.nn.functional as F
        from halide_pipelines.conv import nchw, oihw
        x = torch.from_numpy(nchw(inputs["input"])).cuda()
        w = torch.from_numpy(oihw(inputs["filter"])).cuda()
        b = torch.from_numpy(np.ascontiguousarray(inputs["bias"])).cuda()

        def fn() -> Any:
            with torch.no_grad():
                return torch.relu(F.conv2d(x, w, b))
    else:
        torch.set_default_device("cuda")
        try:
            fn = spec.torch_runner(inputs, **sizes)
        finally:
            torch.set_default_device("cpu")
        if fn is None:
            return None
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    reps, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter() - t0
        if t >= min_sample_s or reps >= 1 << 16:
            break
        reps *= 2
    samples = []
    for _ in range(n_samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) / reps)
    return {"min_ms": min(samples) * 1e3, "median_ms": sorted(samples)[len(samples) // 2] * 1e3,
            "samples_ms": [s * 1e3 for s in samples], "repeats": reps, "device": torch.cuda.get_device_name()}


def run_workload(name: str, entry: dict[str, Any], target: str, top: int, n_samples: int) -> dict[str, Any]:
    """Every Halide schedule of one workload through the measurement layer, then PyTorch."""
    import halide_pipelines
    from autoscheduler.measure import Candidate, MeasureOptions, measure_batch
    spec = halide_pipelines.get(name)
    sizes = {k: int(v) for k, v in entry["sizes"].items()}
    labels: list[str] = []
    cands: list[Any] = []
    for i, c in enumerate(entry["ours"]["candidates"][:max(1, top)]):
        labels.append(f"ours#{i}")
        cands.append(Candidate(name, sizes, c["source"], target=target, predicted_cost=c["predicted_cost"],
                               trace=c["state"]["decisions"]))
    rows: dict[str, dict[str, Any]] = {}
    for b, v in entry["baselines"].items():
        if v.get("source"):
            labels.append(b)
            cands.append(Candidate(name, sizes, v["source"], target=target))
        else:
            rows[b] = {"error": v.get("error", "no schedule"), "search_s": v.get("search_s")}
    opts = MeasureOptions(n_samples=n_samples, min_sample_s=0.02, progress=False, max_consecutive_errors=0,
                          build_timeout_s=300.0, run_timeout_s=120.0, memory_limit_mb=None,
                          build_workers=max(1, min(len(cands), (os.cpu_count() or 2) - 2)),
                          builds_per_phase=4)
    results = measure_batch(cands, opts)
    per: dict[str, dict[str, Any]] = {}
    for label, r in zip(labels, results):
        row: dict[str, Any] = {"code": r.code.name, "message": r.message[:300], "build_s": r.build_s,
                               "device": r.device}
        if r.statistic is not None:
            row.update(min_ms=r.statistic * 1e3, median_ms=sorted(r.samples)[len(r.samples) // 2] * 1e3,
                       samples_ms=[s * 1e3 for s in r.samples], correct=True)
        elif r.code.name == "WRONG_ANSWER":
            row["correct"] = False
        per[label] = row
    ours = [(per[lab]["min_ms"], lab) for lab in per if lab.startswith("ours#") and "min_ms" in per[lab]]
    if "ours#0" in per:
        rows["ours"] = dict(per["ours#0"], search_s=entry["ours"]["search_s"])
    if ours:
        best_ms, best = min(ours)
        rows["ours_tuned"] = dict(per[best], picked=best, measured=sum(1 for lab in per if lab.startswith("ours#")),
                                  search_s=entry["ours"]["search_s"])
    for b in BASELINES:
        if b in per:
            rows[b] = dict(per[b], search_s=entry["baselines"][b].get("search_s"))
    try:
        t = torch_gpu_row(spec, sizes, spec.make_inputs(0, **sizes))
        if t is not None:
            rows["PyTorch"] = t
    except Exception as e:
        rows["PyTorch"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    return {"pipeline": name, "sizes": sizes, "rows": rows, "candidates": per, "ratios": ratios(rows)}


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for ours in ("ours", "ours_tuned"):
        if "min_ms" not in rows.get(ours, {}):
            continue
        for base in (*BASELINES, "PyTorch"):
            if "min_ms" in rows.get(base, {}):
                out[f"{ours}/{base}"] = rows[ours]["min_ms"] / rows[base]["min_ms"]
    s_ours = rows.get("ours", {}).get("search_s")
    s_and = rows.get("Anderson2021", {}).get("search_s")
    if s_ours and s_and:
        out["ours_search/Anderson2021_search"] = s_ours / s_and
    return out


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for r in results for k in r["ratios"]})
    geo: dict[str, float] = {}
    for k in keys:
        vals = [r["ratios"][k] for r in results if r["ratios"].get(k, 0) > 0]
        if vals:
            geo[k] = math.exp(sum(math.log(v) for v in vals) / len(vals))
    by = {r["pipeline"]: r["ratios"] for r in results}
    targets = {
        "geomean ours_tuned/Anderson2021 <= 0.33": geo.get("ours_tuned/Anderson2021"),
        "conv_layer_b8 ours_tuned/PyTorch <= 1.5": by.get("conv_layer_b8", {}).get("ours_tuned/PyTorch"),
        "ae_train_step ours_tuned/PyTorch <= 1.5": by.get("ae_train_step", {}).get("ours_tuned/PyTorch"),
        "geomean ours_search/Anderson2021_search <= 0.25": geo.get("ours_search/Anderson2021_search"),
    }
    return {"geomean": geo, "issue9_targets": targets}


def cmd_run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / "gpu_bench.json"
    if not gpu_present():
        msg = "no CUDA GPU on this machine (nvidia-smi lists none): nothing was measured"
        out_path.write_text(json.dumps({"skipped": msg, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        print(f"# {msg}; wrote {out_path}")
        return 0
    cand_path = Path(args.candidates)
    if not cand_path.exists():
        print(f"gpu_bench: no candidates at {cand_path}: run `python bench/gpu_bench.py prepare` on a CPU "
              "machine first", file=sys.stderr)
        return 2
    prepared = json.loads(cand_path.read_text())
    from autoscheduler.measure import cuda_target
    target = args.target or cuda_target()  # nvidia-smi: no CUDA context here before the workers start
    from autoscheduler.measure import device_fingerprint
    names = [n for n in args.only.split(",") if n] or list(prepared["workloads"])
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in names:
        if time.perf_counter() - start > args.deadline_s:
            skipped.append(name)
            continue
        entry = prepared["workloads"].get(name)
        if entry is None:
            skipped.append(name)
            continue
        try:
            res = run_workload(name, entry, target, args.top, args.samples)
        except Exception as e:
            res = {"pipeline": name, "error": f"{type(e).__name__}: {str(e)[:500]}", "rows": {}, "ratios": {}}
        results.append(res)
        cells = [f"{k}={v['min_ms']:.4g}ms" + ("" if v.get("correct", True) else " WRONG")
                 if "min_ms" in v else f"{k}=ERR" for k, v in res["rows"].items()]
        print(f"{name:16s} " + " | ".join(cells), flush=True)
        out = {"target": target, "device": json.loads(device_fingerprint(target)),
               "prepared": {k: prepared.get(k) for k in ("search_target", "machine", "timestamp", "top", "beam",
                                                          "passes")},
               "results": results, "summary": summary(results), "skipped_for_time": skipped,
               "elapsed_s": time.perf_counter() - start, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
        out_path.write_text(json.dumps(out, indent=1, default=str))
    final = summary(results)
    for k, v in final["issue9_targets"].items():
        print(f"# {k}: {'n/a' if v is None else f'{v:.3f}'}")
    if skipped:
        print(f"# not run (deadline {args.deadline_s:.0f} s or not prepared): {', '.join(skipped)}")
    print(f"# wrote {out_path}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="search on this (CPU) machine; write the candidates JSON")
    p.add_argument("--only", default="")
    p.add_argument("--small", action="store_true", help="the workloads' test sizes (smoke test)")
    p.add_argument("--top", type=int, default=4, help="candidates of ours to measure on the GPU")
    p.add_argument("--diverse", type=int, default=0, help="also this many one-decision alternatives of our "
                   "best (measured for ours_tuned)")
    p.add_argument("--no-baselines", action="store_true", help="skip Halide's autoschedulers")
    p.add_argument("--beam", type=int, default=32)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--time-budget", type=float, default=60.0, help="our search's time budget per workload")
    p.add_argument("--search-timeout", type=float, default=600.0, help="seconds per plugin search")
    p.add_argument("--no-pylib", action="store_true", help="do not pack .gpu_bundle/pylib.tar.gz")
    p.add_argument("--out", default=str(DEFAULT_CANDIDATES))
    p.set_defaults(func=cmd_prepare)
    r = sub.add_parser("run", help="on the GPU machine: measure everything; skips cleanly without a GPU")
    r.add_argument("--candidates", default=str(DEFAULT_CANDIDATES))
    r.add_argument("--out-dir", default=os.environ.get("OUT", str(HERE / "results" / "gpu")))
    r.add_argument("--only", default="")
    r.add_argument("--top", type=int, default=4)
    r.add_argument("--samples", type=int, default=5)
    r.add_argument("--target", default="", help="Halide target (default: host-cuda + the device's capability)")
    r.add_argument("--deadline-s", type=float, default=420.0, help="start no workload after this many seconds")
    r.set_defaults(func=cmd_run)
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

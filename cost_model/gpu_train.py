"""Train and evaluate the GPU cost model (``GpuNet``) on schedules measured on a GPU.

    python -m cost_model.gpu_train --data data/gpu_samples.jsonl.gz \
        --bench bench/results/gpu_20261127/gpu_bench_h200_20261127_b.json --candidates bench/results/gpu_candidates.json \
        --out cost_model/weights/gpu_ours.pt

Reports, against the roofline alone (``GpuAnalyticCost``): held-out metrics on random pipelines
(``--folds``-fold cross-validation over whole pipelines), and metrics on the bundled workloads'
candidates timed by ``bench/gpu_bench.py`` (never trained on), for a model fitted on every random
pipeline; then saves that model with its metadata (GPU, samples, pipelines, metrics, command).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .dataset import Sample
from .gpu_model import (GpuPipelineData, GpuTrainOptions, cross_validate, evaluate_gpu, featurize_gpu_group,
                        load_gpu_dataset, save_gpu_model, train_gpu)


def bench_pipelines(bench: str, candidates: str) -> list[GpuPipelineData]:
    """The bundled workloads' candidates that a ``gpu_bench.py run`` timed correctly, as data."""
    res = json.loads(Path(bench).read_text())
    cands = json.loads(Path(candidates).read_text())
    out = []
    for r in res.get("results", []):
        name = r["pipeline"]
        entry = cands["workloads"].get(name)
        if entry is None:
            continue
        samples = []
        for i, c in enumerate(entry["ours"]["candidates"]):
            row = r.get("candidates", {}).get(f"ours#{i}", {})
            if row.get("min_ms") is None:
                continue
            samples.append(Sample(name, dict(r["sizes"]), f"bench:{name}", res["target"], "", 0,
                                  c["state"]["decisions"], row["min_ms"] * 1e-3, "OK"))
        p = featurize_gpu_group(samples)
        if p is not None:
            out.append(p)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="GPU samples (export or database); repeatable")
    ap.add_argument("--bench", help="a gpu_bench.py run's JSON: its bundled candidates are the bundled test set")
    ap.add_argument("--candidates", help="the candidates JSON that run measured")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=0, help="per-stage correction network width (0: term scales only)")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--out", help="save the model fitted on every random pipeline here (.pt + .json)")
    args = ap.parse_args(argv)
    opts = GpuTrainOptions(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, hidden=args.hidden)
    t0 = time.perf_counter()
    data = load_gpu_dataset(args.data)
    n = sum(p.num_schedules for p in data)
    print(f"loaded {len(data)} GPU pipeline(s), {n} schedule(s) in {time.perf_counter() - t0:.1f} s")
    if len(data) < max(2, args.folds):
        print(f"gpu_train: {len(data)} pipeline(s) are too few for {args.folds}-fold cross-validation; "
              "collect more with `autoschedule collect --prepared` on a GPU", file=sys.stderr)
        return 2
    ours, base = cross_validate(data, args.folds, opts)
    print(f"held out ({args.folds}-fold CV over random pipelines):")
    print(f"  GpuNet   {ours.line()}; pooled pairwise >20% {ours.pooled_pairwise_20:.3f}")
    print(f"  roofline {base.line()}; pooled pairwise >20% {base.pooled_pairwise_20:.3f}")
    metrics: dict[str, Any] = {**ours.as_dict("cv_"), **base.as_dict("cv_roofline_")}
    model, hist = train_gpu(data, (), opts)
    names = ("compute", "dram", "l2", "shared", "serial", "launch")
    scales = {k: round(float(v), 3) for k, v in zip(names, model.log_scales.detach().exp().tolist())}
    print(f"fitted on all {len(data)} pipelines ({hist['epochs']} epochs); term scales {scales}")
    if args.bench and args.candidates:
        bundled = bench_pipelines(args.bench, args.candidates)
        b_ours, b_base = evaluate_gpu(model, bundled), evaluate_gpu(None, bundled)
        print("bundled workloads (never trained on):")
        for r1, r0 in zip(b_ours.rows, b_base.rows):
            print(f"  {r1.name:16s} n={r1.n:3d} GpuNet pairwise>20% {r1.pairwise_20:.3f} top-1 regret "
                  f"{100 * r1.top1_regret:.1f}% | roofline {r0.pairwise_20:.3f} {100 * r0.top1_regret:.1f}%")
        print(f"  GpuNet   {b_ours.line()}")
        print(f"  roofline {b_base.line()}")
        metrics.update(b_ours.as_dict("bundled_"))
        metrics.update(b_base.as_dict("bundled_roofline_"))
    if args.out:
        from .dataset import read_sample_sets
        gpu = sorted({json.loads(s.device).get("gpu", [{}])[0].get("name", "?")
                      for s in read_sample_sets(args.data) if s.device})
        pt, js = save_gpu_model(model, args.out, gpu=", ".join(gpu), data_size=n, pipelines=len(data),
                                metrics=metrics, command="python -m cost_model.gpu_train " + " ".join(sys.argv[1:]
                                                                                                   if argv is None else argv))
        print(f"saved {pt} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batched prediction cost of the cost models, and of the featurization that feeds them, on one core.

    python3 bench/cost_model_bench.py [--pipelines random_8 camera_pipe ...] [--batch 256] [--reps 30]

What the beam search pays per state it scores: featurize the state (``Featurizer.batch``) and run the
network on the batch. For each pipeline (test sizes by default; the network's cost does not depend on
the sizes, only on the stage count), a beam-search-like walk (beam 8, every child of the beam, the
beam kept at random, seeded) collects partial and complete states; batches of ``--batch`` of them are

* featurized by a fresh featurizer per batch (its cache shared within the batch only: the children
  of a search step share most groups, as here), and, for reference, by the search's warm
  incremental featurizer (every state of the walk already seen once: all cache hits);
* scored by AdamsNet (Halide's baseline weights) and by our network (the shipped weights when
  present, else the default configuration), ``torch.no_grad``, one thread.

Rates are states per second of this process's CPU time (``time.process_time``: other processes on a
shared machine do not count against it); each network timing is the median of ``--reps`` calls on
the same batch after a warm-up. Writes ``bench/results/cost_model_bench.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler.dag import FunctionDAG  # noqa: E402
from autoscheduler.features import Featurizer  # noqa: E402
from autoscheduler.state import State  # noqa: E402
from cost_model.adams_net import AdamsNet  # noqa: E402
from cost_model.our_net import OurNet  # noqa: E402
from autoscheduler.cost import stage_inputs  # noqa: E402
from cost_model.train import BASELINE_WEIGHTS, load_model  # noqa: E402

TARGET = "x86-64-linux-avx2-fma-f16c-sse41"
DEFAULT_PIPELINES = ("random_8", "random_4", "camera_pipe", "local_laplacian")
OURS_WEIGHTS = HERE.parent / "cost_model" / "weights" / "ours.pt"


def collect_states(dag: Any, parallelism: int, beam: int, seed: int, want: int) -> list[State]:
    """Children of a seeded beam-search-like walk (partial and complete states), at most ``want``
    drawn evenly over the walk's steps."""
    rng = random.Random(seed)
    beam_states = [State.initial(dag, TARGET, parallelism)]
    steps: list[list[State]] = []
    while beam_states and not all(s.is_complete for s in beam_states):
        children = [c for s in beam_states if not s.is_complete for c in s.children()]
        steps.append(children)
        rng.shuffle(children)
        beam_states = children[:beam]
    every = [c for step in steps for c in step]
    if len(every) <= want:
        return every
    return random.Random(seed + 1).sample(every, want)


def cpu_time(fn: Callable[[], Any], reps: int) -> float:
    """Median CPU seconds of ``fn()`` over ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def bench_pipeline(name: str, sizes_kind: str, batch: int, parallelism: int, seed: int, reps: int,
                   models: dict[str, nn.Module]) -> dict[str, Any]:
    spec = halide_pipelines.get(name)
    sizes = dict(spec.test_sizes if sizes_kind == "test" else spec.default_sizes)
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    states = collect_states(dag, parallelism, 8, seed, 4 * batch)
    batches = [states[i:i + batch] for i in range(0, len(states) - batch + 1, batch)] or [states]
    # featurization, a fresh featurizer per batch (cache shared inside the batch only)
    feats = []
    t0 = time.process_time()
    for b in batches:
        feats.append(Featurizer(b[0].space).batch(b))
    fresh_s = (time.process_time() - t0) / sum(len(b) for b in batches)
    # the search's warm incremental featurizer: everything seen once already
    warm = Featurizer(states[0].space)
    warm.batch(states)
    t0 = time.process_time()
    for b in batches:
        warm.batch(b)
    warm_s = (time.process_time() - t0) / sum(len(b) for b in batches)
    pipe = torch.from_numpy(warm.pipeline)
    sched = torch.from_numpy(feats[0])
    n = sched.shape[0]
    row: dict[str, Any] = {
        "pipeline": name, "sizes": sizes, "stages": int(sched.shape[1]), "batch": n,
        "partial_states": sum(1 for s in batches[0] if not s.is_complete),
        "featurize_fresh_per_s": 1.0 / fresh_s if fresh_s > 0 else float("nan"),
        "featurize_warm_per_s": 1.0 / warm_s if warm_s > 0 else float("nan"),
    }
    for label, model in models.items():
        # inputs beyond the 39 features (each stage's math calls, extra schedule inputs), for a network
        # that takes them: computed per batch by the search, so timed with the featurization
        t0 = time.process_time()
        extra = stage_inputs(model, batches[0])
        extra_s = (time.process_time() - t0) / n
        with torch.no_grad():
            per_call = cpu_time(lambda: model(pipe, sched, parallelism, **extra), reps)
        row[f"{label}_per_s"] = n / per_call if per_call > 0 else float("nan")
        row[f"{label}_ms_per_batch"] = 1e3 * per_call
        row[f"{label}_stage_inputs_ms_per_batch"] = 1e3 * extra_s * n
        row[f"{label}_with_fresh_featurize_per_s"] = 1.0 / (fresh_s + extra_s + per_call / n)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pipelines", nargs="*", default=list(DEFAULT_PIPELINES))
    ap.add_argument("--sizes", choices=("test", "default"), default="test")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--parallelism", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ours", default=str(OURS_WEIGHTS),
                    help="our network's weights (default: the shipped ones; the default config if absent)")
    ap.add_argument("--out", default=str(HERE / "results" / "cost_model_bench.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        except OSError:
            pass
    adams = load_model(BASELINE_WEIGHTS).eval()
    ours_source = args.ours if Path(args.ours).exists() else "OurNet() default config, random weights"
    ours = (load_model(args.ours) if Path(args.ours).exists() else OurNet()).eval()
    assert isinstance(adams, AdamsNet) and isinstance(ours, OurNet)
    models: dict[str, nn.Module] = {"adams": adams, "ours": ours}
    rows = [bench_pipeline(n, args.sizes, args.batch, args.parallelism, args.seed, args.reps, models)
            for n in args.pipelines]
    head = (f"{'pipeline':16s} {'stages':>6s} {'batch':>5s} {'featurize/s':>11s} {'warm feat/s':>11s} "
            f"{'AdamsNet/s':>10s} {'OurNet/s':>9s} {'Adams+feat/s':>12s} {'Ours+feat/s':>11s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:16s} {r['stages']:6d} {r['batch']:5d} {r['featurize_fresh_per_s']:11.0f} "
              f"{r['featurize_warm_per_s']:11.0f} {r['adams_per_s']:10.0f} {r['ours_per_s']:9.0f} "
              f"{r['adams_with_fresh_featurize_per_s']:12.0f} {r['ours_with_fresh_featurize_per_s']:11.0f}")
    out = {"benchmark": "cost_model_bench", "target": TARGET, "single_core": True, "batch": args.batch,
           "parallelism": args.parallelism, "sizes": args.sizes, "seed": args.seed, "reps": args.reps,
           "unit": "states per CPU second (process_time), torch 1 thread",
           "models": {"adams": f"AdamsNet {BASELINE_WEIGHTS.name}, {sum(p.numel() for p in adams.parameters())} "
                               "parameters",
                      "ours": f"OurNet {ours.config.to_dict()} from {ours_source}, "
                              f"{sum(p.numel() for p in ours.parameters())} parameters"},
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "python": platform.python_version(), "torch": torch.__version__},
           "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

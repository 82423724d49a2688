"""How fast the search state makes children and the featurizer describes them, on one core.

    python3 bench/state_bench.py [--pipelines random_8 camera_pipe ...] [--beam 8] [--steps 0]

For each pipeline (at its test sizes by default, or ``--sizes default``), a beam-search-like walk:
start from the initial state, keep a beam of ``--beam`` states, expand every state of the beam into
all its children (``State.children``), featurize all children of the step in one batch
(``Featurizer.batch``, the call the beam search makes) and keep ``--beam`` of them (random,
seeded) for the next step, until the states are complete. Reported per pipeline: children made,
children per second generated, featurized (incrementally: the featurizer's per-group cache is
warm), and generated + featurized, the cache hit rate, and the featurization rate without the cache
(every group recomputed: what a non-incremental featurizer would cost) on a sample of the same
children. Single core: the work is single-threaded Python; numpy / torch are pinned to one thread,
the process to one CPU, and rates are per second of this process's CPU time (other processes on a
shared machine do not count against it).
Writes ``bench/results/state_bench.json``.
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
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import halide_pipelines  # noqa: E402
from autoscheduler.dag import FunctionDAG  # noqa: E402
from autoscheduler.features import Featurizer  # noqa: E402
from autoscheduler.state import State  # noqa: E402

TARGET = "x86-64-linux-avx2-fma-f16c-sse41"
DEFAULT_PIPELINES = ("random_8", "random_4", "camera_pipe", "local_laplacian")


def bench_pipeline(name: str, sizes_kind: str, beam: int, parallelism: int, seed: int,
                   cold_sample: int) -> dict[str, Any]:
    spec = halide_pipelines.get(name)
    sizes = dict(spec.test_sizes if sizes_kind == "test" else spec.default_sizes)
    t0 = time.process_time()
    dag = FunctionDAG.from_pipeline(spec.build(**sizes).pipeline())
    dag_s = time.process_time() - t0
    root = State.initial(dag, TARGET, parallelism)
    t0 = time.process_time()
    fz = Featurizer(root)
    setup_s = time.process_time() - t0
    rng = random.Random(seed)
    beam_states = [root]
    gen_s = feat_s = 0.0
    n_children = 0
    steps = 0
    all_children: list[State] = []
    while beam_states and not all(s.is_complete for s in beam_states):
        t0 = time.process_time()
        children = [c for s in beam_states if not s.is_complete for c in s.children()]
        t1 = time.process_time()
        fz.batch(children)
        t2 = time.process_time()
        gen_s += t1 - t0
        feat_s += t2 - t1
        n_children += len(children)
        steps += 1
        all_children.extend(children)
        rng.shuffle(children)
        beam_states = children[:beam]
    # the same work without the per-group cache, on a sample of the children
    sample = random.Random(seed + 1).sample(all_children, min(cold_sample, len(all_children)))
    cold = Featurizer(root)
    t0 = time.process_time()
    for s in sample:
        cold.clear_cache()
        cold.features(s)
    cold_s = time.process_time() - t0
    n_funcs = sum(1 for n in dag.nodes if not n.is_input)
    return {
        "pipeline": name, "sizes": sizes, "funcs": n_funcs, "stages": fz.num_stages, "steps": steps,
        "beam": beam, "children": n_children, "dag_build_s": dag_s, "featurizer_setup_s": setup_s,
        "generate_s": gen_s, "featurize_s": feat_s,
        "generated_per_s": n_children / gen_s, "featurized_per_s": n_children / feat_s,
        "generated_and_featurized_per_s": n_children / (gen_s + feat_s),
        # a group taken from the parent's memo (``State.derived``) is a hit whose key was not built
        "cache_hit_rate": (fz.hits + fz.reused) / max(1, fz.hits + fz.reused + fz.misses),
        "groups_reused_from_parent_per_child": fz.reused / max(1, n_children),
        "groups_recomputed_per_child": fz.misses / max(1, n_children),
        "uncached_featurized_per_s": len(sample) / cold_s if cold_s > 0 else float("nan"),
        "uncached_sample": len(sample),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pipelines", nargs="*", default=list(DEFAULT_PIPELINES))
    ap.add_argument("--sizes", choices=("test", "default"), default="test")
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--parallelism", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold-sample", type=int, default=300)
    ap.add_argument("--out", default=str(HERE / "results" / "state_bench.json"))
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        except OSError:
            pass
    rows = [bench_pipeline(n, args.sizes, args.beam, args.parallelism, args.seed, args.cold_sample)
            for n in args.pipelines]
    head = (f"{'pipeline':16s} {'funcs':>5s} {'stages':>6s} {'children':>8s} {'gen/s':>9s} {'feat/s':>8s} "
            f"{'gen+feat/s':>10s} {'uncached feat/s':>15s} {'hit rate':>8s} {'groups/child':>12s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:16s} {r['funcs']:5d} {r['stages']:6d} {r['children']:8d} "
              f"{r['generated_per_s']:9.0f} {r['featurized_per_s']:8.0f} {r['generated_and_featurized_per_s']:10.0f} "
              f"{r['uncached_featurized_per_s']:15.0f} {r['cache_hit_rate']:8.2f} "
              f"{r['groups_recomputed_per_child']:12.2f}")
    out = {"benchmark": "state_bench", "target": TARGET, "single_core": True, "beam": args.beam,
           "parallelism": args.parallelism, "sizes": args.sizes, "seed": args.seed,
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "python": platform.python_version()},
           "goal_children_per_s": 2000, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

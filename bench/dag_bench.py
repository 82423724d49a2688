"""Time pipeline introspection: decode (hl.serialize_pipeline + our FlatBuffers reader) and
FunctionDAG construction, per bundled workload at default sizes and for a synthetic 30-stage chain.

    python3 bench/dag_bench.py [--repeats N] [--only NAME ...]

Prints a table (median of N runs, milliseconds) and writes bench/results/dag_bench.json. The target
for the 30-stage chain is well under 100 ms for decode + DAG.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import halide as hl  # noqa: E402

import halide_pipelines  # noqa: E402
from autoscheduler.dag import FunctionDAG  # noqa: E402
from autoscheduler.ir import decode_pipeline, serialize  # noqa: E402

TARGET_MS = 100.0


def chain_pipeline(n: int = 30) -> hl.Pipeline:
    """``n`` Funcs: an ImageParam wrapper then ``n - 1`` 3-point stencils on a 512 x 512 image."""
    x, y = hl.Var("x"), hl.Var("y")
    inp = hl.ImageParam(hl.Float(32), 2, "chain_in")
    inp.dim(0).set_estimate(0, 512 + 2 * n)
    inp.dim(1).set_estimate(0, 512)
    prev = hl.Func("chain_0")
    prev[x, y] = inp[x, y]
    for i in range(1, n - 1):
        f = hl.Func(f"chain_{i}")
        f[x, y] = (prev[x, y] + prev[x + 1, y] * 2.0 + prev[x + 2, y]) * 0.25
        prev = f
    prev.set_estimates([(0, 512), (0, 512)])
    return hl.Pipeline([prev])


def measure(name: str, make: Callable[[], hl.Pipeline], repeats: int) -> dict[str, Any]:
    ser, dec, dag_ms = [], [], []
    dag = None
    for _ in range(repeats):
        p = make()
        t0 = time.perf_counter()
        serialize(p)
        t1 = time.perf_counter()
        decoded = decode_pipeline(p)
        t2 = time.perf_counter()
        dag = FunctionDAG(decoded)
        t3 = time.perf_counter()
        ser.append(1e3 * (t1 - t0))
        dec.append(1e3 * (t2 - t1))
        dag_ms.append(1e3 * (t3 - t2))
    assert dag is not None
    d, g = statistics.median(dec), statistics.median(dag_ms)
    return {"pipeline": name, "funcs": len(dag.nodes), "stages": len(dag.stages), "edges": len(dag.edges),
            "serialize_ms": round(statistics.median(ser), 3), "decode_ms": round(d, 3),
            "dag_ms": round(g, 3), "total_ms": round(d + g, 3)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    rows = []
    names = args.only or halide_pipelines.names()
    for name in names:
        spec = halide_pipelines.get(name)
        try:
            rows.append(measure(name, lambda: hl.Pipeline(spec.build().outputs), args.repeats))
        except Exception as e:  # a workload under construction must not hide the others
            rows.append({"pipeline": name, "error": f"{type(e).__name__}: {e}"})
    chain = measure("synthetic_chain_30", lambda: chain_pipeline(30), args.repeats)
    rows.append(chain)

    print(f"{'pipeline':<22} {'funcs':>5} {'stages':>6} {'edges':>5} {'decode ms':>10} {'dag ms':>8} {'total ms':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['pipeline']:<22} ERROR {r['error']}")
            continue
        print(f"{r['pipeline']:<22} {r['funcs']:>5} {r['stages']:>6} {r['edges']:>5} {r['decode_ms']:>10.1f} "
              f"{r['dag_ms']:>8.1f} {r['total_ms']:>9.1f}")
    ok = chain["total_ms"] < TARGET_MS
    print(f"30-stage chain: {chain['total_ms']:.1f} ms decode + DAG (target < {TARGET_MS:.0f} ms): "
          f"{'OK' if ok else 'OVER TARGET'}")
    out = ROOT / "bench" / "results" / "dag_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "dag_bench", "unit": "ms (median)", "repeats": args.repeats, "sizes": "default_sizes",
        "target_ms_chain30": TARGET_MS, "chain30_within_target": ok,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor()},
        "results": rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

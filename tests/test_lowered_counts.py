"""scripts/lowered_counts.py: the probe that counts what a schedule's lowered statement executes.

A hand-scheduled two-stage pipeline whose executed work is known: g(x, y) = f(x, y) + f(x+1, y) *
inp(y, x) over 64 x 64, vectorised by 16 along x and parallel over y, with f(x, y) = cos(inp(x, y))
* 2 + 1 computed per row of g (65 columns: four full vectors and a shifted tail vector).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import halide as hl
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lowered_counts", ROOT / "scripts" / "lowered_counts.py")
assert _spec is not None and _spec.loader is not None
lc = importlib.util.module_from_spec(_spec)
sys.modules["lowered_counts"] = lc   # dataclasses look their module up there
_spec.loader.exec_module(lc)


@pytest.fixture(scope="module")
def tiny_stmt(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """The printed statement and the names Halide gave f and g (unique within the process)."""
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    x, y = hl.Var("x"), hl.Var("y")
    f, g = hl.Func("f"), hl.Func("g")
    f[x, y] = hl.cos(inp[x, y]) * 2.0 + 1.0
    g[x, y] = f[x, y] + f[x + 1, y] * inp[y, x]
    f.compute_at(g, y).vectorize(x, 16)
    g.vectorize(x, 16).parallel(y)
    inp.dim(0).set_bounds(0, 80).set_stride(1)
    inp.dim(1).set_bounds(0, 80).set_stride(80)
    g.output_buffer().dim(0).set_bounds(0, 64).set_stride(1)
    g.output_buffer().dim(1).set_bounds(0, 64).set_stride(64)
    path = tmp_path_factory.mktemp("stmt") / "tiny.stmt"
    target = hl.Target("x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41")
    hl.Pipeline(g).compile_to_lowered_stmt(str(path), [inp], hl.StmtOutputFormat.Text, target)
    return path.read_text(), f.name(), g.name()


def test_counts_the_work_of_one_run(tiny_stmt: tuple[str, str, str]) -> None:
    text, f, g = tiny_stmt
    c = lc.count_stmt(text)
    t = c.total
    assert c.unknown == 0
    assert t["tasks"] == 64 and t["parfor"] == 1           # one parallel loop over the 64 rows
    assert t["allocs"] == 64 and t["alloc_bytes"] == 64 * 65 * 4   # f's row buffer, once per task
    assert t["store_dense"] == 64 * (5 + 4)                 # f: 5 vectors per row, g: 4
    assert t["load_dense"] == 64 * (5 + 2 * 4)              # f reads inp; g reads f twice
    assert t["load_gather"] == 64 * 4 * 16                  # inp(y, x): stride 80 along g's vector
    assert t["math_exp"] == 64 * 5 * 16                     # cos, per lane of f's vectors
    assert t["vec_ops"] == 64 * (5 * 3 + 4 * 2)             # f: cast, *, +; g: +, *
    per = c.per_func
    assert per[f]["math_exp"] == t["math_exp"] and "math_exp" not in per[g]
    assert per[g]["load_gather"] == t["load_gather"]


def test_expressions_and_unknowns() -> None:
    env = lc.Env({"a": 7, "b.c$1": 2})
    assert lc.evaluate("(a/b.c$1)*3 + min(a, 4)", env) == 13
    assert lc.evaluate("let t = a + 1 in select(t < 10, t % 3, 0)", env) == 2
    assert lc.evaluate("!((uint1)_halide_buffer_is_bounds_query((struct halide_buffer_t *)g.buffer))", env)
    assert lc.evaluate("a + unknown_var", env) is None
    text = ("external_plus_metadata func p (inp, g) {\n"
            "for (g.s0.y, 0, n.extent) {\n g[ramp(g.s0.y*16, 1, 16)] = x16(1.000000f)\n}\n}\n")
    c = lc.count_stmt(text)                                 # an extent it cannot evaluate counts once
    assert c.unknown == 1 and c.total["store_dense"] == 1

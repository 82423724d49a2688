"""What a schedule's lowered code executes: a probe of whether Halide's lowered statement knows what
the cost model's features miss.

The cost network sees Halide's 39 schedule features per stage (loop extents, footprints, vector
widths) plus a few of ours; it cannot see what Halide's lowering does with them: common
subexpressions, math on unrolled constant indices folded away, boundary clamps, loop partitioning,
tails. This script lowers a scheduled pipeline with every input and output shape fixed (so loop
extents fold to constants), parses the statement Halide prints
(``Pipeline.compile_to_lowered_stmt(..., StmtOutputFormat.Text)``) and walks its loop nest with
concrete extents, parallel tasks included, counting per produce-block Func and in total what one run
executes: vector and scalar arithmetic, dense vector loads and stores, gathered / scattered lanes,
libm calls, loop iterations, allocations, parallel tasks. A loop whose variable steers control flow
inside it (tails, boundary branches) is sampled at its first, middle and last iteration; others
are walked once and scaled.

It is a probe, not part of the toolkit: it reads Halide's text printer, whose format is not an API,
and an expression it cannot evaluate (a value loaded from memory, say) leaves the branch it guards
at half weight (``StmtCounts.unknown`` counts them). data/README.md has what it found (2026-11-28):
the counts alone rank held-out pipelines' schedules about as well as Halide's network; added to
``ours.pt``'s prediction they change the pairwise order by less than its noise.

    python scripts/lowered_counts.py count FILE.stmt              # counts of one statement file
    python scripts/lowered_counts.py collect --db data/samples.jsonl.gz [--db ...] --out counts.jsonl.gz
    python scripts/lowered_counts.py evaluate --db ... --counts counts.jsonl.gz [--as-searched]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# ------------------------------------------------------------------------------- expressions

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")
_FUNCS = {"min", "max", "select", "abs", "and", "or", "not", "V", "True", "False"}
_BOUNDS_QUERY = re.compile(r"\(uint1\)_halide_buffer_is_bounds_query\(\(struct halide_buffer_t \*\)[^()]*\)")
_CAST_PAREN = re.compile(r"\((?:u?int|float|bool)\d*(?:x\d+)?\)")
_CAST_FUNC = re.compile(r"\b(?:u?int|float|bool)\d+(?:x\d+)?\(")
_LET_IN = re.compile(r"^\s*let ([^ ]+) = ")


class _Unknown(Exception):
    pass


class Env(dict):  # type: ignore[type-arg]
    """Scalar values of the statement's variables; reading one not known raises."""

    def __missing__(self, key: str) -> Any:
        raise _Unknown(key)


def _python(expr: str) -> str:
    """Halide's printed integer / boolean expression as Python source reading variables from V."""
    e = _BOUNDS_QUERY.sub("False", expr)            # a real run, never a bounds query
    e = _CAST_PAREN.sub("", e)
    e = _CAST_FUNC.sub("(", e)
    e = re.sub(r"\blikely(?:_if_innermost)?\(", "(", e)
    e = e.replace("&&", " and ").replace("||", " or ")
    e = re.sub(r"!(?!=)", " not ", e)
    e = re.sub(r"(?<!/)/(?!/)", "//", e)           # Halide's integer division rounds down, as //
    e = re.sub(r"(\d+(?:\.\d+)?)f\b", r"\1", e)
    return IDENT.sub(lambda m: m.group(0) if m.group(0) in _FUNCS else f"V[{m.group(0)!r}]", e).strip()


def _select(c: Any, a: Any, b: Any) -> Any:
    return a if c else b


_code: dict[str, Any] = {}
_GLOBALS = {"min": min, "max": max, "select": _select, "abs": abs, "__builtins__": {}}


def _let_in(expr: str) -> Optional[tuple[str, str, str]]:
    m = _LET_IN.match(expr)
    if not m:
        return None
    rest, depth = expr[m.end():], 0
    for i, ch in enumerate(rest):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and rest.startswith(" in ", i):
            return m.group(1), rest[:i], rest[i + 4:]
    return None


def evaluate(expr: str, env: Env) -> Any:
    """The value of a printed scalar expression under ``env``, or None when it is not computable."""
    s = expr.strip()
    if s.startswith("(") and s.endswith(")") and s[1:].lstrip().startswith("let "):
        s = s[1:-1]
    if s.startswith("let "):
        parts = _let_in(s)
        if parts is None:
            return None
        value = evaluate(parts[1], env)
        if value is None:
            return None
        inner = Env(env)
        inner[parts[0]] = value
        return evaluate(parts[2], inner)
    code: Any = _code.get(s)
    if code is None:
        try:
            code = compile(_python(s), "<stmt>", "eval")
        except SyntaxError:
            code = False
        _code[s] = code
    if code is False:
        return None
    try:
        return eval(code, dict(_GLOBALS, V=env))  # noqa: S307 - our own translation of Halide's printer output
    except (_Unknown, ZeroDivisionError, TypeError, ValueError, OverflowError):
        return None


def idents(expr: str) -> set[str]:
    return {t for t in IDENT.findall(expr) if t not in _FUNCS}


# ------------------------------------------------------------------------------- parsing

@dataclass(eq=False)
class Node:
    """One statement: ``kind`` for / if / let / store / alloc / parfor / block / func / pred."""

    kind: str
    a: str = ""
    b: str = ""
    c: Any = ""
    body: list["Node"] = field(default_factory=list)
    els: Optional[list["Node"]] = None
    dep: Optional[dict[str, bool]] = None


_FOR = re.compile(r"^(?:\w+ )?for \(([^,]+), (.*)\) \{$")
_IF = re.compile(r"^if \((.*)\) \{$")
_FUNC = re.compile(r"^(internal|external|external_plus_metadata) func (\S+) \((.*)\) \{$")
_LET = re.compile(r"^let ([^ ]+) = (.*)$")
_STORE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.$]*)\[")
_ALLOC = re.compile(r"^allocate ([^\[]+)\[(\w+) \* (.*)\]( in \w+)?( if .*)?$")
_PARFOR = re.compile(r"halide_do_par_for\(\(halide_task_t\)::(\S+), (.*)\)$")


def split_args(s: str) -> list[str]:
    """``s`` split at its top-level commas."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse(text: str) -> dict[str, Node]:
    """The functions of a printed module (internal parallel-task closures and the pipeline itself)."""
    funcs: dict[str, Node] = {}
    stack: list[Node] = [Node("block")]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("module "):
            continue
        top = stack[-1]
        if line == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        if line.startswith("} else"):
            if len(stack) > 1:
                stack.pop()
            node = stack[-1].body[-1] if stack[-1].body else None
            if node is not None and node.kind == "if":
                node.els = []
                holder = Node("block", body=node.els)
                m = _IF.match(line[len("} else"):].strip())
                stack.append(holder)
                if m:      # "} else if (c) {": one closing brace ends both
                    inner = Node("if", m.group(1))
                    node.els.append(inner)
                    stack.pop()
                    stack.append(inner)
            continue
        m = _FUNC.match(line)
        if m:
            fn = Node("func", m.group(2), m.group(1), [p.strip() for p in m.group(3).split(",")])
            funcs[fn.a] = fn
            stack = [stack[0], fn]
            continue
        m = _FOR.match(line)
        if m:
            mn, ext = split_args(m.group(2))[:2]
            node = Node("for", m.group(1).strip(), mn, ext)
            top.body.append(node)
            stack.append(node)
            continue
        m = _IF.match(line)
        if m:
            node = Node("if", m.group(1))
            top.body.append(node)
            stack.append(node)
            continue
        if line.endswith("{"):     # produce / consume / other blocks
            words = line.split()
            node = Node("block", words[0], words[1] if len(words) > 2 else "")
            top.body.append(node)
            stack.append(node)
            continue
        m = _LET.match(line)
        if m:
            pm = _PARFOR.search(m.group(2))
            if pm:
                args = split_args(pm.group(2))
                top.body.append(Node("parfor", pm.group(1), args[0], args[1]))
            else:
                top.body.append(Node("let", m.group(1), m.group(2)))
            continue
        m = _ALLOC.match(line)
        if m:
            top.body.append(Node("alloc", m.group(1), m.group(2), m.group(3)))
            continue
        if line.startswith("predicate "):
            top.body.append(Node("pred"))
            continue
        if line.startswith(("free ", "assert(", "(struct", "halide_", "prefetch")):
            continue
        if _STORE.match(line):
            top.body.append(Node("store", _STORE.match(line).group(1), line))  # type: ignore[union-attr]
    return funcs


# ------------------------------------------------------------------------------- what a statement does

EXPENSIVE_MATH = {"exp", "log", "pow", "sin", "cos", "tan", "atan", "atan2", "tanh", "sinh", "cosh", "asin",
                  "acos", "acosh", "asinh", "atanh", "erf"}
_MATH = re.compile(r"(\((?:float|u?int)\d+(?:x(\d+))?\))?\b([a-z0-9]+)_f(?:16|32|64)\(")
"""A math call, with the type Halide prints before it: ``(float32x16)sin_f32(`` runs 16 lanes,
``(float32)cos_f32(`` one (a scalar call broadcast into a vector statement)."""
_LANES = re.compile(r"ramp\([^()]*?(?:\([^()]*\)[^()]*?)*,\s*(\d+)\)|\bx(\d+)\(|[a-z]\d+x(\d+)")
_RAMP = re.compile(r"^\s*ramp\((.*)\)(?:\s+aligned\(.*\))?\s*$")
_OPS = re.compile(r" [-+%] |\*|/|\bmin\(|\bmax\(|\bselect\(| [<>]=? | [!=]= | && | \|\| |\babs\(|"
                  r"\(float\d+x?\d*\)|\(u?int\d+x?\d*\)")
NATIVE_LANES = 16   # 32-bit lanes of one AVX-512 register

COUNTER_NAMES = ("vec_ops", "vec_div", "scal_ops", "scal_div", "load_dense", "load_gather", "load_scalar",
                 "store_dense", "store_gather", "store_scalar", "math_exp", "math_cheap", "loop_iters",
                 "allocs", "alloc_bytes", "tasks", "parfor", "predicated")


def _accesses(s: str) -> list[tuple[str, int, int]]:
    """(index text, start, end) of every NAME[...] in ``s``."""
    out = []
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_.$]*\[", s):
        i, depth = m.end(), 1
        while i < len(s) and depth:
            depth += s[i] == "["
            depth -= s[i] == "]"
            i += 1
        out.append((s[m.end():i - 1], m.start(), i))
    return out


def _access_kind(index: str, vector_lets: dict[str, tuple[str, int]]) -> tuple[str, int]:
    """dense (a ramp of stride 1), gather (any other vector index) or scalar; and its lanes."""
    core = re.sub(r"\s+aligned\([^()]*\)\s*$", "", index.strip())
    m = _RAMP.match(core)
    if m:
        parts = split_args(m.group(1))
        if len(parts) == 3:
            return ("dense" if parts[1] == "1" else "gather", int(parts[2]) if parts[2].isdigit() else NATIVE_LANES)
    if core in vector_lets:
        stride, lanes = vector_lets[core]
        return ("dense" if stride == "1" else "gather", lanes)
    names = idents(core) & vector_lets.keys()
    if "ramp(" in core or re.search(r"\bx\d+\(", core) or names:
        found = [int(a or b or d) for a, b, d in _LANES.findall(core)] + [vector_lets[n][1] for n in names]
        return ("gather", max(found) if found else NATIVE_LANES)
    return ("scalar", 1)


def statement_counts(text: str, vector_lets: dict[str, tuple[str, int]], is_store: bool) -> collections.Counter:
    """What one execution of a store line (or a let's value) does."""
    c: collections.Counter = collections.Counter()
    found = [int(a or b or d) for a, b, d in _LANES.findall(text)]
    lanes = max(found) if found else 1
    used = idents(text) & vector_lets.keys()
    vector = lanes > 1 or bool(used)
    if vector and lanes == 1:
        lanes = max(vector_lets[n][1] for n in used)
    native = max(1, math.ceil(lanes / NATIVE_LANES))
    spans = _accesses(text)
    loads = spans[1:] if is_store and spans else spans
    for index, _, _ in loads:
        kind, n = _access_kind(index, vector_lets)
        c["load_" + kind] += max(1, math.ceil(n / NATIVE_LANES)) if kind == "dense" else n
    if is_store and spans:
        kind, n = _access_kind(spans[0][0], vector_lets)
        c["store_" + kind] += max(1, math.ceil(n / NATIVE_LANES)) if kind == "dense" else n
    body = text
    for _, start, end in reversed(spans):       # arithmetic outside the load / store indices
        body = body[:start] + "L" + body[end:]
    if is_store and " = " in body:
        body = body.split(" = ", 1)[1]
    body = re.sub(r"\([a-z_ ]+\*\)", "", body)  # pointer casts: (void *), (struct halide_buffer_t *)
    ops, divs = len(_OPS.findall(body)), body.count("/")
    for typed, width, fn in _MATH.findall(body):
        c["math_exp" if fn in EXPENSIVE_MATH else "math_cheap"] += int(width) if width else 1 if typed else lanes
    if vector:
        c["vec_ops"] += ops * native
        c["vec_div"] += divs * native
    else:
        c["scal_ops"] += ops
        c["scal_div"] += divs
    return c


# ------------------------------------------------------------------------------- walking the loop nest

@dataclass
class StmtCounts:
    """Counters (``COUNTER_NAMES``) of one run: in total and per produce-block Func; ``unknown``: the
    loop extents and branch conditions that could not be evaluated."""

    total: collections.Counter[str] = field(default_factory=collections.Counter)
    per_func: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    unknown: int = 0


class _Walker:
    def __init__(self, funcs: dict[str, Node]) -> None:
        self.funcs = funcs
        self.out = StmtCounts()
        self._static: dict[tuple[int, tuple[str, ...]], collections.Counter] = {}

    def add(self, c: collections.Counter[str], weight: float, func: str) -> None:
        for k, v in c.items():
            self.out.total[k] += v * weight  # type: ignore[assignment]  # weighted counts are floats
            self.out.per_func[func][k] += v * weight  # type: ignore[assignment]

    def steers(self, node: Node, var: str) -> bool:
        """Does ``var`` (directly or through lets) decide a loop extent or a branch inside ``node``?"""
        if node.dep is None:
            node.dep = {}
        if var in node.dep:
            return node.dep[var]
        seen = {var}

        def walk(stmts: list[Node]) -> bool:
            for s in stmts:
                if s.kind == "let" and idents(s.b) & seen:
                    seen.add(s.a)
                elif s.kind == "for":
                    if (idents(s.b) | idents(s.c)) & seen or walk(s.body):
                        return True
                elif s.kind == "if":
                    if idents(s.a) & seen or walk(s.body) or (s.els is not None and walk(s.els)):
                        return True
                elif s.kind == "parfor" and idents(s.c) & seen:
                    return True
                elif s.kind == "block" and walk(s.body):
                    return True
            return False
        node.dep[var] = walk(node.body)
        return node.dep[var]

    def loop(self, node: Node, var: str, lo: int, extent: int, env: Env, vlets: dict[str, tuple[str, int]],
             weight: float, func: str) -> None:
        self.add(collections.Counter(loop_iters=extent), weight, func)
        if extent >= 2 and self.steers(node, var):
            samples = [(lo, 1.0), (lo + extent - 1, 1.0)]
            if extent >= 3:
                samples.insert(1, (lo + extent // 2, float(extent - 2)))
        else:
            samples = [(lo, float(extent))]
        for value, w in samples:
            inner = Env(env)
            inner[var] = value
            self.block(node.body, inner, dict(vlets), weight * w, func)

    def block(self, stmts: list[Node], env: Env, vlets: dict[str, tuple[str, int]], weight: float, func: str) -> None:
        for s in stmts:
            if s.kind == "let":
                value = evaluate(s.b, env) if "[" not in s.b else None
                if value is None:
                    env.pop(s.a, None)
                else:
                    env[s.a] = value
                names = idents(s.b) & vlets.keys()
                if not ("ramp(" in s.b or re.search(r"\bx\d+\(", s.b) or "[" in s.b or "_f32(" in s.b
                        or "_f64(" in s.b or names):
                    continue
                m = _RAMP.match(s.b)
                parts = split_args(m.group(1)) if m else []
                if len(parts) == 3:      # an index vector: how the loads and stores using it access memory
                    vlets[s.a] = (parts[1], int(parts[2]) if parts[2].isdigit() else NATIVE_LANES)
                    continue
                key = (id(s), tuple(sorted(names)))
                c = self._static.get(key)
                if c is None:
                    c = self._static[key] = statement_counts(s.b, vlets, False)
                if c.get("vec_ops") or c.get("load_dense") or c.get("load_gather") or "ramp(" in s.b \
                        or re.search(r"\bx\d+\(", s.b):
                    found = [int(a or b or d) for a, b, d in _LANES.findall(s.b)]
                    vlets[s.a] = ("?", max(found) if found else NATIVE_LANES)
                self.add(c, weight, func)
            elif s.kind == "store":
                key = (id(s), tuple(sorted(idents(s.b) & vlets.keys())))
                c = self._static.get(key)
                if c is None:
                    c = self._static[key] = statement_counts(s.b, vlets, True)
                self.add(c, weight, func)
            elif s.kind == "for":
                lo, extent = evaluate(s.b, env), evaluate(s.c, env)
                if extent is None:
                    self.out.unknown += 1
                    extent = 1
                if extent > 0:
                    self.loop(s, s.a, int(lo or 0), int(extent), env, vlets, weight, func)
            elif s.kind == "if":
                cond = evaluate(s.a, env)
                if cond is None:     # half weight to each branch
                    self.out.unknown += 1
                    self.block(s.body, Env(env), dict(vlets), weight * 0.5, func)
                    if s.els:
                        self.block(s.els, Env(env), dict(vlets), weight * 0.5, func)
                elif cond:
                    self.block(s.body, Env(env), dict(vlets), weight, func)
                elif s.els:
                    self.block(s.els, Env(env), dict(vlets), weight, func)
            elif s.kind == "block":
                self.block(s.body, env, vlets, weight, s.b if s.a == "produce" and s.b else func)
            elif s.kind == "alloc":
                size = evaluate(s.c, env)
                bits = re.search(r"(\d+)$", s.b)
                width = max(1, int(bits.group(1)) // 8) if bits else 4
                self.add(collections.Counter(allocs=1, alloc_bytes=(size or 0) * width), weight, func)
            elif s.kind == "parfor":
                task = self.funcs.get(s.a)
                lo, extent = evaluate(s.b, env), evaluate(s.c, env)
                if extent is None:
                    self.out.unknown += 1
                    extent = 1
                if task is None or extent <= 0:
                    continue
                self.add(collections.Counter(tasks=extent, parfor=1), weight, func)
                var = task.c[1] if len(task.c) > 1 else "_task"
                self.loop(task, var, int(lo or 0), int(extent), Env(env), dict(vlets), weight, func)
            elif s.kind == "pred":
                self.add(collections.Counter(predicated=1), weight, func)


def count_stmt(text: str) -> StmtCounts:
    """What one run of the printed module executes (``StmtCounts``)."""
    funcs = parse(text)
    walker = _Walker(funcs)
    for fn in funcs.values():
        if fn.b != "internal":
            walker.block(fn.body, Env(), {}, 1.0, "_main")
    return walker.out


# ------------------------------------------------------------------------------- lowering

def lower_scheduled(name: str, sizes: dict[str, int], target: str, trace: Any, num_threads: int) -> str:
    """The lowered statement of workload ``name`` at ``sizes`` under a measured schedule (its decision
    ``trace``, replayed at the ``num_threads`` it was searched for), every input and output shape fixed
    so that loop extents are constants."""
    import halide as hl

    from cost_model.dataset import scheduled

    spec, built, pipe, _ = scheduled(name, sizes, target, trace, num_threads)
    arrays = spec.make_inputs(**sizes)
    for key, param in built.inputs.items():
        if isinstance(param, hl.ImageParam):
            stride = 1
            for d, extent in enumerate(arrays[key].shape[::-1]):
                param.dim(d).set_bounds(0, int(extent)).set_stride(stride)
                stride *= int(extent)
    for func, shape in zip(built.outputs, built.output_shapes):
        ob, stride = func.output_buffer(), 1
        for d, extent in enumerate(shape):
            ob.dim(d).set_bounds(0, int(extent)).set_stride(stride)
            stride *= int(extent)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "lowered.stmt")
        pipe.compile_to_lowered_stmt(path, list(built.inputs.values()), hl.StmtOutputFormat.Text,
                                     hl.Target(target))
        return Path(path).read_text()


# ------------------------------------------------------------------------------- commands

def _collect(dbs: list[str], out: str) -> None:
    from cost_model.dataset import read_sample_sets

    done: set[tuple[str, str]] = set()
    if Path(out).exists():
        with gzip.open(out, "rt") as f:
            done = {(r["pipeline"], r["trace_hash"]) for r in map(json.loads, f)}
    samples = {(s.pipeline, s.trace_hash()): s for s in read_sample_sets(dbs)}
    t0 = time.time()
    with gzip.open(out, "at") as f:
        for n, (key, s) in enumerate(sorted(samples.items())):
            if key in done:
                continue
            try:
                c = count_stmt(lower_scheduled(s.pipeline, s.sizes, s.target, s.trace, s.num_threads))
            except Exception as e:  # noqa: BLE001 - a probe: report and go on
                print(f"{key[0]} {key[1][:12]}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            f.write(json.dumps({"pipeline": key[0], "trace_hash": key[1], "total": dict(c.total),
                                "per_func": {k: dict(v) for k, v in c.per_func.items()},
                                "unknown": c.unknown}) + "\n")
            if n % 200 == 0:
                print(f"{n}/{len(samples)} {time.time() - t0:.0f}s", flush=True)


def _evaluate(dbs: list[str], counts_path: str, weights: str, as_searched: bool, keys: list[str],
              ridge: float, with_model: bool = True) -> None:
    """A ridge regression of each pipeline's centred log runtimes on the model's centred log prediction
    (unless ``with_model`` is off) and log(1 + count), fitted on the training pipelines, scored on the
    held-out ones."""
    import numpy as np
    import torch

    from cost_model.dataset import load_dataset, read_sample_sets
    from cost_model.features_layout import kernel_factors
    from cost_model.metrics import pairwise_accuracy, top_k_regret
    from cost_model.train import load_model, predict

    with gzip.open(counts_path, "rt") as f:
        counts = {(r["pipeline"], r["trace_hash"]): r["total"] for r in map(json.loads, f)}
    ds = load_dataset(read_sample_sets(dbs))
    sp = ds.split()
    model = load_model(weights, check_host=False)
    torch.set_num_threads(1)
    rows: dict[str, list[tuple[Any, Any, Any]]] = {"train": [], "val": [], "test": []}
    for role, pipes in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
        for p in pipes:
            if as_searched and p.stage_extra is not None:
                p.stage_factors = kernel_factors(np.asarray(p.stage_extra, np.float32))
            idx = [i for i, t in enumerate(p.trace_hashes) if (p.name, t) in counts]
            if len(idx) < 4:
                continue
            x = np.log1p(np.array([[counts[(p.name, p.trace_hashes[i])].get(k, 0.0) for k in keys] for i in idx]))
            rows[role].append((x, np.log(predict(model, p)[idx]), p.runtimes_ms[idx]))

    def design(x: Any, logp: Any) -> Any:
        z = np.concatenate([x, logp[:, None]], 1) if with_model else x
        return z - z.mean(0)
    z = np.concatenate([design(x, lp) for x, lp, _ in rows["train"]])
    t = np.concatenate([np.log(r) - np.log(r).mean() for _, _, r in rows["train"]])
    beta = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ t)
    print("coefficients:", {k: round(float(b), 4) for k, b in zip(keys + ["model"] * with_model, beta)})
    for role in ("train", "val", "test"):
        for label in ("model", "model + counts" if with_model else "counts alone"):
            pw, t1 = [], []
            for x, lp, r in rows[role]:
                pred = np.exp(lp) if label == "model" else np.exp(design(x, lp) @ beta)
                a = pairwise_accuracy(pred, r, min_ratio=1.2)
                if np.isfinite(a):
                    pw.append(a)
                t1.append(top_k_regret(pred, r, 1))
            print(f"{role:5s} {label:15s} pipelines {len(rows[role]):3d}  pairwise >20% {np.mean(pw):.3f}  "
                  f"top-1 regret {100 * np.mean(t1):.1f}%")


def main(argv: Optional[Iterable[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", help="counts of one printed statement file")
    c.add_argument("stmt")
    co = sub.add_parser("collect", help="lower and count every successful schedule of the data sets (resumes)")
    co.add_argument("--db", action="append", required=True)
    co.add_argument("--out", required=True)
    ev = sub.add_parser("evaluate", help="the model's held-out ranking with and without the counts")
    ev.add_argument("--db", action="append", required=True)
    ev.add_argument("--counts", required=True)
    ev.add_argument("--weights", default=str(HERE.parent / "cost_model" / "weights" / "ours.pt"))
    ev.add_argument("--as-searched", action="store_true", help="the model's stage costs times the kernel factors")
    ev.add_argument("--keys", default="vec_ops,scal_ops,load_gather,store_gather,math_exp,math_cheap")
    ev.add_argument("--ridge", type=float, default=10.0)
    ev.add_argument("--without-model", action="store_true", help="fit the counts alone")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "count":
        text = gzip.open(args.stmt, "rt").read() if args.stmt.endswith(".gz") else Path(args.stmt).read_text()
        res = count_stmt(text)
        for k in COUNTER_NAMES:
            print(f"{k:14s} {res.total.get(k, 0.0):.6g}")
        print(f"{'unknown':14s} {res.unknown}")
    elif args.cmd == "collect":
        _collect(args.db, args.out)
    else:
        _evaluate(args.db, args.counts, args.weights, args.as_searched, args.keys.split(","), args.ridge,
                  not args.without_model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Halide's own autoschedulers (Adams2019, Anderson2021, Li2018, Mullapudi2016) as baselines.

The plugins ship in the ``halide`` wheel. A bad parameter makes the C++ side abort the whole process
(``terminate called after throwing``), and the plugins keep process-global state, so parameters are
validated here first and every search runs in a spawned worker process. The worker receives the
pipeline as ``hl.serialize_pipeline`` bytes and returns Halide's C++ schedule source, its featurization
and a table of names; :func:`to_python_source` turns that C++ (or Li2018's printout) into the Python
schedule source every other part of the toolkit applies, measures and stores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import halide as hl

from .errors import BaselineError, TargetError

# name -> (library stem, {parameter: type}); the keys and types are exactly what the 21.0 plugins accept.
PLUGINS: dict[str, tuple[str, dict[str, type]]] = {
    "Adams2019": ("adams2019", {
        "parallelism": int, "beam_size": int, "random_dropout": int, "random_dropout_seed": int,
        "weights_path": str, "disable_subtiling": int, "disable_memoized_features": int,
        "disable_memoized_blocks": int, "memory_limit": int}),
    "Anderson2021": ("anderson2021", {
        "parallelism": int, "beam_size": int, "random_dropout": int, "random_dropout_seed": int,
        "weights_path": str, "disable_subtiling": int, "randomize_tilings": int,
        "search_space_options": str, "freeze_inline_compute_root": int, "partial_schedule_path": str,
        "num_passes": int, "stack_factor": float, "shared_memory_limit_kb": int,
        "shared_memory_sm_limit_kb": int, "active_block_limit": int, "active_warp_limit": int}),
    "Li2018": ("li2018", {"parallelism": int}),
    "Mullapudi2016": ("mullapudi2016", {
        "parallelism": int, "last_level_cache_size": int, "balance": float,
        "experimental_gpu_schedule": int}),
}
GPU_ONLY = {"Anderson2021"}


def plugin_path(name: str) -> str:
    stem = PLUGINS[name][0]
    return os.path.join(os.path.dirname(hl.__file__), "lib64", f"libautoschedule_{stem}.so")


_loaded: set[str] = set()


def load_plugin(name: str) -> None:
    """Load one plugin into this process (idempotent)."""
    if name not in _loaded:
        hl.load_plugin(plugin_path(name))
        _loaded.add(name)


def parse_target(target: str | None) -> hl.Target:
    """A Halide target from a string (``host``, ``host-cuda``, a full triple); one-line error if bad."""
    if target is None or target == "":
        return hl.get_host_target()
    if not hl.Target.validate_target_string(target):
        raise TargetError(f"bad target string '{target}': use 'host', 'host-cuda' or a Halide target "
                          "such as 'x86-64-linux-avx2-fma'")
    return hl.Target(target)


def validate_params(name: str, params: dict[str, Any]) -> dict[str, str]:
    """Check keys and types before the plugin sees them (a bad one would abort the process)."""
    if name not in PLUGINS:
        raise BaselineError(f"unknown autoscheduler '{name}'; choose one of {sorted(PLUGINS)}")
    allowed = PLUGINS[name][1]
    out: dict[str, str] = {}
    for key, value in params.items():
        if key not in allowed:
            raise BaselineError(f"{name} has no parameter '{key}'; it accepts {sorted(allowed)}")
        kind = allowed[key]
        if kind is int:
            if isinstance(value, bool):
                value = int(value)
            if not (isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value))):
                raise BaselineError(f"{name} parameter '{key}' must be an integer, got {value!r}")
            out[key] = str(int(value))
        elif kind is float:
            try:
                out[key] = repr(float(value))
            except (TypeError, ValueError):
                raise BaselineError(f"{name} parameter '{key}' must be a number, got {value!r}") from None
        else:
            out[key] = str(value)
    return out


@dataclass
class FuncNames:
    """Names the schedule source refers to, by realization index: Func name, pure args, RVars per update."""

    name: str
    args: list[str]
    rvars: list[list[str]]


@dataclass
class BaselineResult:
    """What one plugin search produced for one pipeline."""

    autoscheduler: str
    params: dict[str, str]
    target: str
    cpp_source: str
    featurization: bytes
    search_time_s: float
    names: list[FuncNames]
    loop_nest: str
    stderr: str = ""
    python_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _name_table(p: hl.Pipeline) -> list[FuncNames]:
    from .schedules import pipeline_funcs
    table = []
    for f in pipeline_funcs(p):
        rv = [[r.name() for r in f.rvars(u)] for u in range(f.num_update_definitions())]
        table.append(FuncNames(f.name(), [str(a) for a in f.args()], rv))
    return table


def _worker_pipeline(data: bytes | None, spec: tuple[str, dict[str, int]] | None) -> hl.Pipeline:
    """The pipeline inside the worker: rebuilt from its spec when bundled, else deserialized."""
    if spec is not None:
        import halide_pipelines
        return halide_pipelines.get(spec[0]).build(**spec[1]).pipeline()
    assert data is not None
    return hl.deserialize_pipeline(data, {})


def _search_worker(data: bytes | None, spec: tuple[str, dict[str, int]] | None, name: str,
                   params: dict[str, str], target: str, debug: bool, repeats: int = 0) -> BaselineResult:
    """Runs in a spawned process: rebuild, search, and report."""
    from .loop_nest import capture_fd2, loop_nest
    if debug:
        os.environ["HL_DEBUG_AUTOSCHEDULE"] = "1"
    load_plugin(name)
    p = _worker_pipeline(data, spec)
    names = _name_table(p)
    t = hl.Target(target)
    with capture_fd2() as box:
        start = time.perf_counter()
        r = p.apply_autoscheduler(t, hl.AutoschedulerParams(name, params))
        elapsed = time.perf_counter() - start
    nest = loop_nest(p)
    result = BaselineResult(name, params, str(t), r.schedule_source, bytes(r.featurization), elapsed,
                            names, nest, stderr=box[0])
    if repeats > 0 and spec is not None:
        # Time the schedule exactly as the plugin applied it (no translation involved).
        import halide_pipelines
        from .timing import time_pipeline
        s = halide_pipelines.get(spec[0])
        built = s.build(**spec[1])
        p = built.pipeline()
        p.apply_autoscheduler(t, hl.AutoschedulerParams(name, params))
        inputs = s.make_inputs(0, **spec[1])
        result.extra["timing"] = time_pipeline(built, p, inputs, t, repeats=repeats)
        result.extra["outputs"] = halide_pipelines.realize(built, inputs, t, pipeline=p)
    return result


def default_params(name: str, target: hl.Target, cores: int | None = None) -> dict[str, Any]:
    """Parameters that make each plugin a strong baseline on this machine."""
    n = cores or os.cpu_count() or 1
    if name == "Anderson2021":
        return {"parallelism": 132}  # streaming multiprocessors of an H100/H200
    if name == "Mullapudi2016" and target.has_feature(hl.TargetFeature.CUDA):
        return {"parallelism": 128, "experimental_gpu_schedule": 1}
    return {"parallelism": n}


def search(pipeline: hl.Pipeline, name: str, params: dict[str, Any] | None = None,
           target: str | hl.Target | None = None, *, spec: tuple[str, dict[str, int]] | None = None,
           timeout_s: float = 600.0, debug: bool = False, time_repeats: int = 0) -> BaselineResult:
    """Run one Halide autoscheduler on a copy of ``pipeline`` in a worker; the pipeline is untouched.

    ``spec`` = (bundled name, sizes) rebuilds the pipeline in the worker; otherwise the worker
    deserializes ``hl.serialize_pipeline`` bytes. The result's ``python_source`` applies the same
    schedule to ``pipeline`` (or a fresh build of it). With ``time_repeats`` > 0 and a ``spec``, the
    worker also times the schedule as the plugin applied it (``extra['timing']``) and returns its
    outputs on the spec's seed-0 inputs (``extra['outputs']``).
    """
    t = target if isinstance(target, hl.Target) else parse_target(target)
    if name in GPU_ONLY and not t.has_gpu_feature():
        raise BaselineError(f"{name} schedules GPU targets only; use a target such as 'host-cuda'")
    checked = validate_params(name, default_params(name, t) if params is None else params)
    data = None if spec is not None else hl.serialize_pipeline(pipeline)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        fut = pool.submit(_search_worker, data, spec, name, checked, str(t), debug, time_repeats)
        try:
            result = fut.result(timeout=timeout_s)
        except FutureTimeout:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            raise BaselineError(f"{name} did not finish within {timeout_s:.0f} s") from None
        except BrokenProcessPool:
            raise BaselineError(f"{name} crashed while scheduling (the plugin aborted the worker)") from None
        except Exception as e:  # Halide's user_error inside the worker
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BaselineError(f"{name} failed: {first}") from None
    try:
        result.python_source = to_python_source(result.cpp_source, result.names)
    except BaselineError as e:
        result.extra["translation_error"] = str(e)
    return result


# ---------------------------------------------------------------------------------------------
# C++ schedule source -> Python schedule source

_KEYWORDS = {"and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
             "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
             "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "hl",
             "pipeline", "None", "True", "False"}


def _py(ident: str) -> str:
    ident = ident.replace("$", "_S")
    return ident + "_" if ident in _KEYWORDS else ident


def _stage_dims(names: list[FuncNames], func: int, update: int | None) -> list[tuple[str, str]]:
    """Initial loop dims of a stage, innermost first: (kind, python expr). Updates: RVars then pure."""
    fn = names[func]
    dims: list[tuple[str, str]] = []
    if update is not None:
        dims += [("rvar", f"pipeline.get_func({func}).rvars({update})[{k}]")
                 for k in range(len(fn.rvars[update]))]
    # Pure dims by position, not by name: generated Funcs (propagate_adjoints) get Var names from a
    # process-global counter, so a rebuilt pipeline's names differ from the worker's.
    dims += [("var", f"pipeline.get_func({func}).args()[{j}]") for j in range(len(fn.args))]
    return dims


_FUNC_DECL = re.compile(r"^(?:Func|auto)\s+(\w+)\s*=\s*pipeline\.get_func\((\d+)\);$")
_DIM_DECL = re.compile(
    r"^(Var|RVar)\s+([\w$]+)\((\w+)(?:\.update\((\d+)\))?\.get_schedule\(\)\.(dims|rvars)\(\)"
    r"\[(\d+)\]\.var\);$")
_NEW_VAR = re.compile(r'^(Var|RVar)\s+(\w+)\("([^"]*)"\);$')
_ARG_VAR = re.compile(r"^Var\s+(\w+)\s*=\s*(\w+)\.args\(\)\[(\d+)\];$")


def _translate_expr(text: str, funcs: dict[str, str]) -> str:
    text = re.sub(r"TailStrategy::(\w+)", r"hl.TailStrategy.\1", text)
    text = re.sub(r"MemoryType::(\w+)", r"hl.MemoryType.\1", text)
    text = re.sub(r"LoopAlignStrategy::(\w+)", r"hl.LoopAlignStrategy.\1", text)
    text = re.sub(r"\.in\(", ".in_(", text)
    text = text.replace("({", "(").replace("})", ")")  # reorder({a, b}) -> reorder(a, b)
    return re.sub(r"(?<![\w$.\"'])([A-Za-z_]\w*(?:\$\w+)?)",
                  lambda m: funcs.get(m.group(1), _py(m.group(1)) if "$" in m.group(1) else m.group(1)),
                  text)


def to_python_source(cpp: str, names: list[FuncNames]) -> str:
    """Translate a plugin's schedule source (Adams2019/Anderson2021/Mullapudi2016 C++, or Li2018's
    printout) into Python schedule source over ``pipeline.get_func(i)``.

    Only the regular subset these plugins emit is understood; anything else raises BaselineError.
    """
    by_name = {fn.name: i for i, fn in enumerate(names)}
    out: list[str] = []
    funcs: dict[str, str] = {}   # C++ identifier -> Python identifier
    declared: set[str] = set()
    li2018 = "pipeline.get_func" not in cpp
    statements = _statements(cpp)
    for stmt in statements:
        if stmt in ("{", "}") or stmt.startswith("//") or stmt.startswith("auto pipeline"):
            continue
        if stmt.startswith("using ") or stmt.startswith("#"):
            continue
        m = _FUNC_DECL.match(stmt)
        if m:
            funcs[m.group(1)] = _py(m.group(1))
            out.append(f"{_py(m.group(1))} = pipeline.get_func({m.group(2)})")
            continue
        m = _DIM_DECL.match(stmt)
        if m:
            kind, var, fname, upd, which, k = m.groups()
            idx = _func_index(fname, out)
            dims = _stage_dims(names, idx, None if upd is None else int(upd))
            if which == "rvars":
                dims = [d for d in dims if d[0] == "rvar"]
            out.append(f"{_py(var)} = {dims[int(k)][1]}")
            declared.add(var)
            continue
        m = _NEW_VAR.match(stmt)
        if m:
            kind, var, label = m.groups()
            out.append(f"{_py(var)} = hl.{kind}({label!r})")
            declared.add(var)
            continue
        m = _ARG_VAR.match(stmt)
        if m:
            var, fname, k = m.groups()
            out.append(f"{_py(var)} = {_py(fname)}.args()[{k}]")
            declared.add(var)
            continue
        if li2018:
            out.extend(_li2018_statement(stmt, names, by_name, declared))
            continue
        head = re.match(r"^(\w+)", stmt)
        if head is None or head.group(1) not in funcs:
            raise BaselineError(f"cannot translate schedule statement: {stmt[:80]}")
        out.append("(" + _translate_expr(stmt.rstrip(";"), funcs) + ")")
    return _declare_free_vars(out)


def _declare_free_vars(lines: list[str]) -> str:
    """Plugins refer to a Func's pure Vars by name without always declaring them (Mullapudi2016's
    ``reorder(c, x, ...)``); a Var with the same name is the same Var, so declare the free ones."""
    import ast
    code = "\n".join(lines) + "\n"
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise BaselineError(f"translated schedule does not parse: {e.msg} (line {e.lineno})") from None
    assigned: set[str] = {"hl", "pipeline"}
    free: list[str] = []
    for stmt in tree.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                    and node.id not in assigned and node.id not in free:
                free.append(node.id)
        if isinstance(stmt, ast.Assign):
            assigned.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    head = [f"{name} = hl.Var({name!r})" for name in free]
    return "\n".join(head + lines) + "\n"


def _func_index(cpp_name: str, out: list[str]) -> int:
    for line in out:
        m = re.match(rf"^{re.escape(_py(cpp_name))} = pipeline\.get_func\((\d+)\)$", line)
        if m:
            return int(m.group(1))
    raise BaselineError(f"schedule source uses Func '{cpp_name}' before declaring it")


def _statements(cpp: str) -> list[str]:
    """Split C++ source into statements (chains span lines; braces stand alone)."""
    stmts: list[str] = []
    cur = ""
    for raw in cpp.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line in ("{", "}") and not cur:
            stmts.append(line)
            continue
        cur = f"{cur} {line}".strip() if cur else line
        if cur.endswith(";"):
            stmts.append(re.sub(r"\s*\.\s*", ".", cur).replace("( ", "(").replace(" )", ")"))
            cur = ""
    if cur:
        stmts.append(cur)
    return [re.sub(r"^(\w+(?:\$\w+)?(?:\.update\(\d+\))?)\s+\.", r"\1.", s) for s in stmts]


def _li2018_statement(stmt: str, names: list[FuncNames], by_name: dict[str, int],
                      declared: set[str]) -> list[str]:
    """Li2018 prints ``f$1.compute_root().split(x,v1,v2,8,ShiftInwards)...;`` with Func names."""
    m = re.match(r"^([\w$]+)((?:\.update\(\d+\))?)(\..*);$", stmt)
    if not m or m.group(1) not in by_name:
        raise BaselineError(f"cannot translate Li2018 statement: {stmt[:80]}")
    idx = by_name[m.group(1)]
    upd = m.group(2)
    update = int(upd[8:-1]) if upd else None
    rvar_names = names[idx].rvars[update] if update is not None else []
    lines: list[str] = []
    body = m.group(3)
    # parallel(v, task_size, tail) splits with a fresh name from Halide's global counter, which differs
    # between processes; spell the split out with a stable inner name instead.
    body = re.sub(r"\.parallel\((\w+),(\w+),(\w+)\)",
                  lambda mm: f".split({mm.group(1)},{mm.group(1)},{mm.group(1)}_task,{mm.group(2)},"
                             f"{mm.group(3)}).parallel({mm.group(1)})", body)
    body = re.sub(r"\b(ShiftInwards|GuardWithIf|RoundUp|Auto|PredicateLoads|PredicateStores|"
                  r"RoundUpAndBlend|ShiftInwardsAndBlend)\b", r"hl.TailStrategy.\1", body)
    for ident in sorted(set(re.findall(r"(?<![.\w$])([A-Za-z_][\w$]*)(?=[,)])", body))):
        if ident.startswith("hl") or ident in declared:
            continue
        if ident in rvar_names:
            lines.append(f"{_py(ident)} = pipeline.get_func({idx}).rvars({update})"
                         f"[{rvar_names.index(ident)}]")
        else:
            lines.append(f"{_py(ident)} = hl.Var({ident!r})")
        declared.add(ident)
    body = re.sub(r"(?<![.\w$])([A-Za-z_][\w$]*)(?=[,)])",
                  lambda mm: mm.group(1) if mm.group(1).startswith("hl") else _py(mm.group(1)), body)
    lines.append(f"(pipeline.get_func({idx}){upd}{body})")
    return lines

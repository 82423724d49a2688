"""A name-independent fingerprint of a pipeline's algorithm and estimates.

``canonical_hash`` is the key of the measurement database: the same algorithm with the same
estimates must hash the same however often it was built in a process (Halide renames a second
``Func("f")`` to ``f$1``, unnamed RDoms to ``r12``, unnamed Params to ``p3``), and any change of the
algorithm or of an estimate must change the hash. So the decoded IR is written out with every
user- or Halide-chosen name replaced by a position:

- Funcs by realization index (``F0``, ``F1``, ... the ``pipeline.get_func(i)`` index that schedules
  address), their pure Vars by position (``v0``, ``v1``, ...);
- RVars by stage and position in the stage's RDom list (``s1r0``), Let names by first appearance;
- Params / ImageParams / constant Buffers by order of first use; any other name with Halide's
  ``$n`` uniquifying suffix stripped.

Schedules are not part of it (only ``Func.bound``, which constrains the algorithm's domain).
One caveat is inherited from Halide: the realization order breaks ties between sibling Funcs by name,
so two builds whose names sort differently get different indices, hence different hashes; that is
intended, as a schedule recorded against ``get_func(i)`` would not transfer either.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Optional, Union

from . import nodes as ir
from .schema import CallType

_SUFFIX = re.compile(r"\$\d+")


def strip_suffix(name: str) -> str:
    """``f$3`` -> ``f``: remove Halide's uniquifying ``$n`` suffixes."""
    return _SUFFIX.sub("", name)


class _Encoder:
    def __init__(self, p: ir.Pipeline) -> None:
        self.p = p
        self.funcs = {f.name: i for i, f in enumerate(p.funcs)}
        self.params: dict[str, str] = {}
        self.buffers: dict[str, str] = {}
        self.local: dict[str, str] = {}
        self.lets = 0
        self.out: list[str] = []

    # -- names
    def param(self, name: str) -> str:
        if name not in self.params:
            self.params[name] = f"P{len(self.params)}"
        return self.params[name]

    def buffer(self, name: str) -> str:
        if name not in self.buffers:
            self.buffers[name] = f"B{len(self.buffers)}"
        return self.buffers[name]

    def var(self, v: ir.Variable) -> str:
        if v.param_name:
            base = self.param(v.param_name)
            return base + v.name[len(v.param_name):] if v.name.startswith(v.param_name) else base + "?" + strip_suffix(v.name)
        if v.image_name:
            base = self.buffer(v.image_name)
            return base + v.name[len(v.image_name):] if v.name.startswith(v.image_name) else base + "?" + strip_suffix(v.name)
        local = self.local.get(v.name)
        if local is not None:
            return local
        return "?" + strip_suffix(v.name)

    # -- exprs
    def expr(self, e: Optional[ir.Expr]) -> str:
        if e is None:
            return "_"
        t = type(e)
        if t is ir.IntImm or t is ir.UIntImm:
            return f"{e.value}:{e.type}"  # type: ignore[attr-defined]
        if t is ir.FloatImm:
            return f"{float(e.value).hex()}:{e.type}"  # type: ignore[attr-defined]
        if t is ir.Variable:
            assert isinstance(e, ir.Variable)
            return f"{self.var(e)}:{e.type}"
        if isinstance(e, ir.BinaryOp):
            return f"({t.__name__} {self.expr(e.a)} {self.expr(e.b)})"
        if isinstance(e, ir.Call):
            if e.call_type == CallType.Halide and e.name in self.funcs:
                callee = f"F{self.funcs[e.name]}"
            elif e.param_name:
                callee = self.param(e.param_name)
            elif e.image_name:
                callee = self.buffer(e.image_name)
            else:
                callee = strip_suffix(e.name)
            args = " ".join(self.expr(a) for a in e.args)
            return f"(Call {callee} {int(e.call_type)} {e.value_index} {e.type} {args})"
        if isinstance(e, ir.Let):
            value = self.expr(e.value)
            saved = self.local.get(e.name)
            self.local[e.name] = f"l{self.lets}"
            self.lets += 1
            body = self.expr(e.body)
            name = self.local[e.name]
            if saved is None:
                del self.local[e.name]
            else:
                self.local[e.name] = saved
            return f"(Let {name} {value} {body})"
        if isinstance(e, (ir.Cast, ir.Reinterpret)):
            return f"({t.__name__} {e.type} {self.expr(e.value)})"
        if isinstance(e, ir.StringImm):
            return repr(e.value)
        if isinstance(e, ir.Load):
            src = self.param(e.param_name) if e.param_name else (
                self.buffer(e.image_name) if e.image_name else strip_suffix(e.name))
            return f"(Load {src} {e.type} {self.expr(e.index)} {self.expr(e.predicate)})"
        if isinstance(e, ir.Ramp):
            return f"(Ramp {self.expr(e.base)} {self.expr(e.stride)} {e.lanes})"
        if isinstance(e, ir.Broadcast):
            return f"(Broadcast {self.expr(e.value)} {e.lanes})"
        if isinstance(e, ir.Shuffle):
            return f"(Shuffle {' '.join(self.expr(v) for v in e.vectors)} {list(e.indices)})"
        if isinstance(e, ir.VectorReduce):
            return f"(VectorReduce {int(e.op)} {e.lanes} {self.expr(e.value)})"
        # Not, Select
        return f"({t.__name__} {' '.join(self.expr(c) for c in e.children())})"

    def exprs(self, es: Iterable[Optional[ir.Expr]]) -> str:
        return "[" + " ".join(self.expr(e) for e in es) + "]"

    # -- structure
    def definition(self, d: ir.Definition, stage: int) -> str:
        for j, rv in enumerate(d.rvars):
            self.local[rv.var] = f"s{stage}r{j}"
        rvars = " ".join(f"({self.expr(rv.min)} {self.expr(rv.extent)})" for rv in d.rvars)
        specs = " ".join(f"(spec {self.expr(s.condition)} "
                         f"{self.definition(s.definition, stage) if s.definition else '_'})"
                         for s in d.specializations)
        return (f"(def rvars=[{rvars}] args={self.exprs(d.args)} values={self.exprs(d.values)} "
                f"pred={self.expr(d.predicate)} {specs})")

    def bounds(self, bs: tuple[ir.Bound, ...], f: ir.Func) -> str:
        items = []
        for b in bs:
            var = f"v{f.args.index(b.var)}" if b.var in f.args else "?" + strip_suffix(b.var)
            items.append(f"({var} {self.expr(b.min)} {self.expr(b.extent)} {self.expr(b.modulus)} "
                         f"{self.expr(b.remainder)})")
        return "[" + " ".join(sorted(items)) + "]"

    def func(self, i: int, f: ir.Func) -> str:
        self.local = {a: f"v{j}" for j, a in enumerate(f.args)}
        self.lets = 0
        types = ",".join(str(t) for t in f.output_types)
        stages = " ".join(self.definition(d, s) for s, d in enumerate(f.definitions))
        ext = ""
        if f.is_extern:
            eargs = []
            for a in f.extern_arguments:
                if a.func_index >= 0 and a.func_index < len(self.p.file_func_names):
                    name = self.p.file_func_names[a.func_index]
                    eargs.append(f"F{self.funcs.get(name, -1)}")
                elif a.image_param_name:
                    eargs.append(self.param(a.image_param_name))
                elif a.buffer_name:
                    eargs.append(self.buffer(a.buffer_name))
                else:
                    eargs.append(self.expr(a.expr))
            ext = (f" extern={strip_suffix(f.extern_function_name)}({' '.join(eargs)}) "
                   f"proxy={self.expr(f.extern_proxy_expr)}")
        return (f"(F{i} dims={f.dimensions} types={types} stages=[{stages}] "
                f"estimates={self.bounds(f.estimates, f)} bounds={self.bounds(f.bounds, f)}{ext})")

    def parameter(self, p: ir.Parameter) -> str:
        self.local = {}
        if p.is_buffer:
            dims = " ".join(f"({self.expr(c.min)} {self.expr(c.extent)} {self.expr(c.stride)} "
                            f"{self.expr(c.min_estimate)} {self.expr(c.extent_estimate)})"
                            for c in p.buffer_constraints)
            return f"(image {p.type} {p.dimensions} [{dims}])"
        return (f"(scalar {p.type} est={self.expr(p.scalar_estimate)} min={self.expr(p.scalar_min)} "
                f"max={self.expr(p.scalar_max)})")

    def encode(self) -> str:
        parts = [self.func(i, f) for i, f in enumerate(self.p.funcs)]
        parts.append("outputs=" + ",".join(f"F{self.funcs[n]}" for n in self.p.output_names))
        # Parameters in order of first use; Func output-buffer Parameters are the Funcs themselves.
        by_name = {p.name: p for p in self.p.parameters if p.name not in self.funcs}
        for name in sorted(by_name, key=strip_suffix):
            self.param(name)  # unused ones get the next names, in stripped-name order
        for name, canon in list(self.params.items()):
            p = by_name.get(name)
            parts.append(f"{canon}=" + (self.parameter(p) if p is not None else "(unknown)"))
        bufs = {b.name: b for b in self.p.buffers}
        for name, canon in list(self.buffers.items()):
            b = bufs.get(name)
            if b is None:
                parts.append(f"{canon}=(unknown)")
            else:
                dims = " ".join(f"({d.min} {d.extent} {d.stride})" for d in b.dims)
                parts.append(f"{canon}=(buffer {b.type} [{dims}] {hashlib.sha256(b.data).hexdigest()})")
        return "\n".join(parts)


def canonical_text(pipeline: Union[ir.Pipeline, Any]) -> str:
    """The canonical, name-free text of the algorithm and estimates (what ``canonical_hash`` hashes)."""
    if not isinstance(pipeline, ir.Pipeline):
        from .decode import decode_pipeline

        pipeline = decode_pipeline(pipeline)
    return _Encoder(pipeline).encode()


def canonical_hash(pipeline: Union[ir.Pipeline, Any]) -> str:
    """sha256 hex of the pipeline's algorithm plus estimates with canonicalised names.

    Accepts an ``hl.Pipeline`` (decoded here, including ImageParam/Param estimates) or an already
    decoded ``ir.Pipeline``.
    """
    return hashlib.sha256(canonical_text(pipeline).encode("utf-8")).hexdigest()

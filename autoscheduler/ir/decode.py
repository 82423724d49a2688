"""Read ``hl.serialize_pipeline`` bytes (FlatBuffers, schema ``halide_ir.fbs``) into ``nodes``.

The reader is written against the schema with the ``flatbuffers`` runtime's ``Tab`` (no generated
code): ``schema.VT`` gives the vtable offset of every field. Halide writes the Funcs in alphabetical
order; this module puts them in realization order, either the order of a live ``hl.Pipeline``'s
``get_func(i)`` or, for bare bytes, Halide's own ``topological_order`` recomputed from the calls.

Parameters the pipeline reads (ImageParams, Params) are "external": the file keeps only their name,
type and dimensions. ``decode_pipeline`` therefore also asks the live ``hl.Parameter`` objects for
their estimates and constraints, and converts those ``hl.Expr`` into this IR by serializing them as
the values of a throwaway Func (Halide's Python Exprs cannot be walked).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Mapping, Optional, Sequence

from flatbuffers import number_types as N
from flatbuffers.table import Table

from ..errors import IRVersionError, UnsupportedPipelineError
from . import nodes as ir
from .schema import (SUPPORTED_SERIALIZATION_VERSIONS, VT, CallType, DimType, ExprKind,
                     ExternArgType, TypeCode, VectorReduceOp)

_U8, _I8, _I32, _I64, _U64, _F64, _BOOL = (N.Uint8Flags, N.Int8Flags, N.Int32Flags, N.Int64Flags,
                                           N.Uint64Flags, N.Float64Flags, N.BoolFlags)
_UOFF = N.UOffsetTFlags

# ---------------------------------------------------------------------------------------------
# Field access helpers (absent field -> default, as FlatBuffers specifies)

_I32S = struct.Struct("<i")
_U32S = struct.Struct("<I")
_U16S = struct.Struct("<H")


class Tab(Table):
    """``flatbuffers.table.Tab`` with the vtable located once and reads through precompiled
    ``struct`` formats: the generic ``Tab.Get`` checks every number, which dominates decode time."""

    __slots__ = ("vt", "vt_len")

    def __init__(self, buf: Any, pos: int) -> None:
        self.Bytes = buf  # type: ignore[misc]
        self.Pos = pos  # type: ignore[misc]
        self.vt = pos - _I32S.unpack_from(buf, pos)[0]
        self.vt_len = _U16S.unpack_from(buf, self.vt)[0]

    def Offset(self, vtableOffset: int) -> int:  # noqa: N802 - flatbuffers' name
        if vtableOffset < self.vt_len:
            return _U16S.unpack_from(self.Bytes, self.vt + vtableOffset)[0]  # type: ignore[no-any-return]
        return 0

    def indirect(self, off: int) -> int:
        return off + _U32S.unpack_from(self.Bytes, off)[0]  # type: ignore[no-any-return]


_FMT = {id(_U8): struct.Struct("<B"), id(_I8): struct.Struct("<b"), id(_I32): _I32S,
        id(_I64): struct.Struct("<q"), id(_U64): struct.Struct("<Q"), id(_F64): struct.Struct("<d"),
        id(_BOOL): struct.Struct("<?")}


def _scalar(t: Tab, vt: int, flags: Any, default: Any = 0) -> Any:
    o = t.Offset(vt)
    return _FMT[id(flags)].unpack_from(t.Bytes, o + t.Pos)[0] if o else default


def _str(t: Tab, vt: int) -> str:
    o = t.Offset(vt)
    if not o:
        return ""
    p = t.indirect(o + t.Pos)
    n = _U32S.unpack_from(t.Bytes, p)[0]
    return bytes(t.Bytes[p + 4:p + 4 + n]).decode("utf-8")


def _table(t: Tab, vt: int) -> Optional[Tab]:
    o = t.Offset(vt)
    return Tab(t.Bytes, t.indirect(o + t.Pos)) if o else None


def _vector(t: Tab, vt: int) -> tuple[int, int]:
    """(position of the first element, length) of a vector field; (0, 0) when absent."""
    o = t.Offset(vt)
    if not o:
        return 0, 0
    p = t.indirect(o + t.Pos)
    return p + 4, _U32S.unpack_from(t.Bytes, p)[0]


def _tables(t: Tab, vt: int) -> list[Tab]:
    v, n = _vector(t, vt)
    b = t.Bytes
    return [Tab(b, t.indirect(v + 4 * i)) for i in range(n)]


def _strings(t: Tab, vt: int) -> list[str]:
    v, n = _vector(t, vt)
    out = []
    b = t.Bytes
    for i in range(n):
        p = t.indirect(v + 4 * i)
        ln = _U32S.unpack_from(b, p)[0]
        out.append(bytes(b[p + 4:p + 4 + ln]).decode("utf-8"))
    return out


def _ints(t: Tab, vt: int, flags: Any, size: int) -> list[int]:
    v, n = _vector(t, vt)
    fmt = _FMT[id(flags)]
    return [fmt.unpack_from(t.Bytes, v + size * i)[0] for i in range(n)]


def _bytes(t: Tab, vt: int) -> bytes:
    v, n = _vector(t, vt)
    return bytes(t.Bytes[v:v + n])


# ---------------------------------------------------------------------------------------------
# Types and Exprs

_TYPE_VT = VT["Type"]
_type_cache: dict[tuple[int, int, int], ir.Type] = {}


def _type(t: Optional[Tab]) -> ir.Type:
    if t is None:
        return ir.Type(TypeCode.Int, 0, 0)
    key = (_scalar(t, _TYPE_VT["code"], _I8), _scalar(t, _TYPE_VT["bits"], _U8),
           _scalar(t, _TYPE_VT["lanes"], _I32))
    ty = _type_cache.get(key)
    if ty is None:
        ty = _type_cache[key] = ir.Type(TypeCode(key[0]), key[1], key[2])
    return ty


class _ExprReader:
    """Decodes Expr unions; interns ReductionDomains (each Variable of an RDom repeats it)."""

    def __init__(self) -> None:
        self._rdoms: dict[int, Optional[ir.ReductionDomain]] = {}
        self._binops: dict[int, type] = {
            ExprKind.Add: ir.Add, ExprKind.Sub: ir.Sub, ExprKind.Mul: ir.Mul, ExprKind.Div: ir.Div,
            ExprKind.Mod: ir.Mod, ExprKind.Min: ir.Min, ExprKind.Max: ir.Max, ExprKind.EQ: ir.EQ,
            ExprKind.NE: ir.NE, ExprKind.LT: ir.LT, ExprKind.LE: ir.LE, ExprKind.GT: ir.GT,
            ExprKind.GE: ir.GE, ExprKind.And: ir.And, ExprKind.Or: ir.Or}
        self._readers: dict[int, Callable[[Tab], Optional[ir.Expr]]] = {
            ExprKind.IntImm: self._int_imm, ExprKind.UIntImm: self._uint_imm,
            ExprKind.FloatImm: self._float_imm, ExprKind.StringImm: self._string_imm,
            ExprKind.Cast: self._cast, ExprKind.Reinterpret: self._reinterpret,
            ExprKind.Not: self._not, ExprKind.Select: self._select, ExprKind.Load: self._load,
            ExprKind.Ramp: self._ramp, ExprKind.Broadcast: self._broadcast, ExprKind.Let: self._let,
            ExprKind.Call: self._call, ExprKind.Variable: self._variable,
            ExprKind.Shuffle: self._shuffle, ExprKind.VectorReduce: self._vector_reduce,
            ExprKind.UndefinedExpr: lambda t: None}

    def field(self, t: Tab, vts: Mapping[str, int], name: str) -> Optional[ir.Expr]:
        """The Expr union field ``name`` of table ``t`` (None when absent or undefined)."""
        kind = _scalar(t, vts[name + "_type"], _U8)
        if not kind:
            return None
        o = t.Offset(vts[name])
        if not o:
            return None
        return self.expr(kind, Tab(t.Bytes, t.indirect(o + t.Pos)))

    def vector(self, t: Tab, vts: Mapping[str, int], name: str) -> tuple[ir.Expr, ...]:
        """A vector-of-Expr field; an undefined element is an error (Halide never writes one)."""
        kinds = _ints(t, vts[name + "_type"], _U8, 1)
        tabs = _tables(t, vts[name])
        out = []
        for k, tab in zip(kinds, tabs):
            e = self.expr(k, tab)
            if e is None:
                raise IRVersionError("serialized pipeline has an undefined Expr inside an Expr list; "
                                     "the file is corrupt or of another serialization version")
            out.append(e)
        return tuple(out)

    def expr(self, kind: int, t: Tab) -> Optional[ir.Expr]:
        cls = self._binops.get(kind)
        if cls is not None:
            vts = VT["BinaryOp"]
            a = self.field(t, vts, "a")
            b = self.field(t, vts, "b")
            if a is None or b is None:
                raise IRVersionError(f"serialized {ExprKind(kind).name} node lacks an operand; "
                                     "the file is corrupt or of another serialization version")
            return cls(a, b)  # type: ignore[no-any-return]
        reader = self._readers.get(kind)
        if reader is None:
            raise IRVersionError(f"unknown Expr kind {kind} in serialized pipeline; it was written by a "
                                 "Halide version this decoder does not read")
        return reader(t)

    def _req(self, t: Tab, vts: Mapping[str, int], name: str, node: str) -> ir.Expr:
        e = self.field(t, vts, name)
        if e is None:
            raise IRVersionError(f"serialized {node} node lacks its '{name}'; the file is corrupt or of "
                                 "another serialization version")
        return e

    def _int_imm(self, t: Tab) -> ir.Expr:
        v = VT["IntImm"]
        return ir.IntImm(_scalar(t, v["value"], _I64), _type(_table(t, v["type"])))

    def _uint_imm(self, t: Tab) -> ir.Expr:
        v = VT["UIntImm"]
        return ir.UIntImm(_scalar(t, v["value"], _U64), _type(_table(t, v["type"])))

    def _float_imm(self, t: Tab) -> ir.Expr:
        v = VT["FloatImm"]
        return ir.FloatImm(_scalar(t, v["value"], _F64, 0.0), _type(_table(t, v["type"])))

    def _string_imm(self, t: Tab) -> ir.Expr:
        return ir.StringImm(_str(t, VT["StringImm"]["value"]))

    def _cast(self, t: Tab) -> ir.Expr:
        v = VT["Cast"]
        return ir.Cast(self._req(t, v, "value", "Cast"), _type(_table(t, v["type"])))

    def _reinterpret(self, t: Tab) -> ir.Expr:
        v = VT["Reinterpret"]
        return ir.Reinterpret(self._req(t, v, "value", "Reinterpret"), _type(_table(t, v["type"])))

    def _not(self, t: Tab) -> ir.Expr:
        return ir.Not(self._req(t, VT["Not"], "a", "Not"))

    def _select(self, t: Tab) -> ir.Expr:
        v = VT["Select"]
        return ir.Select(self._req(t, v, "condition", "Select"), self._req(t, v, "true_value", "Select"),
                         self._req(t, v, "false_value", "Select"))

    def _load(self, t: Tab) -> ir.Expr:
        v = VT["Load"]
        al = _table(t, v["alignment"])
        mr = None
        if al is not None:
            va = VT["ModulusRemainder"]
            mr = ir.ModulusRemainder(_scalar(al, va["modulus"], _I64), _scalar(al, va["remainder"], _I64))
        return ir.Load(_str(t, v["name"]), self.field(t, v, "predicate"), self.field(t, v, "index"),
                       _str(t, v["image_name"]), _str(t, v["param_name"]), mr, _type(_table(t, v["type"])))

    def _ramp(self, t: Tab) -> ir.Expr:
        v = VT["Ramp"]
        return ir.Ramp(self._req(t, v, "base", "Ramp"), self._req(t, v, "stride", "Ramp"),
                       _scalar(t, v["lanes"], _I32))

    def _broadcast(self, t: Tab) -> ir.Expr:
        v = VT["Broadcast"]
        return ir.Broadcast(self._req(t, v, "value", "Broadcast"), _scalar(t, v["lanes"], _I32))

    def _let(self, t: Tab) -> ir.Expr:
        v = VT["Let"]
        return ir.Let(_str(t, v["name"]), self._req(t, v, "value", "Let"), self._req(t, v, "body", "Let"))

    def _call(self, t: Tab) -> ir.Expr:
        v = VT["Call"]
        return ir.Call(_str(t, v["name"]), self.vector(t, v, "args"), CallType(_scalar(t, v["call_type"], _U8)),
                       _scalar(t, v["func_index"], _I32), _scalar(t, v["value_index"], _I32),
                       _str(t, v["image_name"]), _str(t, v["param_name"]), _type(_table(t, v["type"])))

    def _variable(self, t: Tab) -> ir.Expr:
        v = VT["Variable"]
        rd_tab = _table(t, v["reduction_domain"])
        return ir.Variable(_str(t, v["name"]), _type(_table(t, v["type"])), _str(t, v["param_name"]),
                           _str(t, v["image_name"]), self.rdom(rd_tab) if rd_tab is not None else None)

    def _shuffle(self, t: Tab) -> ir.Expr:
        v = VT["Shuffle"]
        return ir.Shuffle(self.vector(t, v, "vectors"), tuple(_ints(t, v["indices"], _I32, 4)))

    def _vector_reduce(self, t: Tab) -> ir.Expr:
        v = VT["VectorReduce"]
        return ir.VectorReduce(self._req(t, v, "value", "VectorReduce"),
                               VectorReduceOp(_scalar(t, v["reduction_op"], _U8)), _scalar(t, v["lanes"], _I32))

    def rvar(self, t: Tab) -> ir.ReductionVariable:
        v = VT["ReductionVariable"]
        return ir.ReductionVariable(_str(t, v["var"]), self.field(t, v, "min"), self.field(t, v, "extent"))

    def rdom(self, t: Tab) -> Optional[ir.ReductionDomain]:
        v = VT["ReductionDomain"]
        if not _scalar(t, v["defined"], _BOOL, False):
            return None
        key = t.Pos
        if key in self._rdoms:
            return self._rdoms[key]
        rd = ir.ReductionDomain(tuple(self.rvar(r) for r in _tables(t, v["domain"])),
                                self.field(t, v, "predicate"), bool(_scalar(t, v["frozen"], _BOOL, False)))
        # Interning by content too: Halide writes one copy of the RDom per Variable that uses it.
        for other in self._rdoms.values():
            if other == rd:
                rd = other
                break
        self._rdoms[key] = rd
        return rd


# ---------------------------------------------------------------------------------------------
# Funcs and definitions


def _definition(r: _ExprReader, t: Tab) -> ir.Definition:
    v = VT["Definition"]
    rvars: tuple[ir.ReductionVariable, ...] = ()
    dims: tuple[ir.Dim, ...] = ()
    splits: tuple[ir.Split, ...] = ()
    ss = _table(t, v["stage_schedule"])
    if ss is not None:
        vs = VT["StageSchedule"]
        rvars = tuple(r.rvar(x) for x in _tables(ss, vs["rvars"]))
        vd = VT["Dim"]
        dims = tuple(ir.Dim(_str(d, vd["var"]), _scalar(d, vd["for_type"], _I8),
                            DimType(_scalar(d, vd["dim_type"], _U8))) for d in _tables(ss, vs["dims"]))
        vsp = VT["Split"]
        splits = tuple(ir.Split(_str(s, vsp["old_var"]), _str(s, vsp["outer"]), _str(s, vsp["inner"]),
                                _scalar(s, vsp["split_type"], _U8)) for s in _tables(ss, vs["splits"]))
    vspec = VT["Specialization"]
    specs = []
    for s in _tables(t, v["specializations"]):
        d = _table(s, vspec["definition"])
        specs.append(ir.Specialization(r.field(s, vspec, "condition"),
                                       _definition(r, d) if d is not None else None))
    return ir.Definition(is_init=bool(_scalar(t, v["is_init"], _BOOL, False)),
                         values=r.vector(t, v, "values"), args=r.vector(t, v, "args"),
                         predicate=_drop_true(r.field(t, v, "predicate")), rvars=rvars, dims=dims,
                         splits=splits, specializations=tuple(specs),
                         source_location=_str(t, v["source_location"]))


def _drop_true(e: Optional[ir.Expr]) -> Optional[ir.Expr]:
    """Halide stores an absent predicate as the constant ``true``; model it as None."""
    if isinstance(e, ir.UIntImm) and e.type.is_bool and e.value == 1:
        return None
    return e


def _bound(r: _ExprReader, t: Tab) -> ir.Bound:
    v = VT["Bound"]
    return ir.Bound(_str(t, v["var"]), r.field(t, v, "min"), r.field(t, v, "extent"),
                    r.field(t, v, "modulus"), r.field(t, v, "remainder"))


def _loop_level(t: Optional[Tab]) -> Optional[ir.LoopLevel]:
    if t is None:
        return None
    v = VT["LoopLevel"]
    return ir.LoopLevel(_str(t, v["func_name"]), _scalar(t, v["stage_index"], _I32),
                        _str(t, v["var_name"]), bool(_scalar(t, v["is_rvar"], _BOOL, False)))


def _func(r: _ExprReader, t: Tab) -> ir.Func:
    v = VT["Func"]
    sched = _table(t, v["func_schedule"])
    estimates: tuple[ir.Bound, ...] = ()
    bounds: tuple[ir.Bound, ...] = ()
    compute_level = store_level = None
    if sched is not None:
        vs = VT["FuncSchedule"]
        estimates = tuple(_bound(r, b) for b in _tables(sched, vs["estimates"]))
        bounds = tuple(_bound(r, b) for b in _tables(sched, vs["bounds"]))
        compute_level = _loop_level(_table(sched, vs["compute_level"]))
        store_level = _loop_level(_table(sched, vs["store_level"]))
    init_t = _table(t, v["init_def"])
    init = _definition(r, init_t) if init_t is not None else None
    if init is not None and not init.values:
        init = None  # an extern Func has no definition
    va = VT["ExternFuncArgument"]
    ext_args = tuple(ir.ExternArgument(ExternArgType(_scalar(a, va["arg_type"], _U8)),
                                       _scalar(a, va["func_index"], _I32, -1), _str(a, va["buffer_name"]),
                                       r.field(a, va, "expr"), _str(a, va["image_param_name"]))
                     for a in _tables(t, v["extern_arguments"]))
    return ir.Func(
        name=_str(t, v["name"]), origin_name=_str(t, v["origin_name"]),
        args=tuple(_strings(t, v["args"])),
        output_types=tuple(_type(x) for x in _tables(t, v["output_types"])),
        init=init, updates=tuple(_definition(r, d) for d in _tables(t, v["updates"])),
        estimates=estimates, bounds=bounds, compute_level=compute_level, store_level=store_level,
        required_types=tuple(_type(x) for x in _tables(t, v["required_types"])),
        required_dims=_scalar(t, v["required_dims"], _I32, -1),
        extern_function_name=_str(t, v["extern_function_name"]), extern_arguments=ext_args,
        extern_proxy_expr=r.field(t, v, "extern_proxy_expr"),
        output_buffer_names=tuple(_strings(t, v["output_buffers_names"])),
        frozen=bool(_scalar(t, v["frozen"], _BOOL, False)))


def _parameter(r: _ExprReader, t: Tab) -> Optional[ir.Parameter]:
    v = VT["Parameter"]
    if not _scalar(t, v["defined"], _BOOL, False):
        return None
    vb = VT["BufferConstraint"]
    bcs = tuple(ir.BufferConstraint(r.field(b, vb, "min"), r.field(b, vb, "extent"), r.field(b, vb, "stride"),
                                    r.field(b, vb, "min_estimate"), r.field(b, vb, "extent_estimate"))
                for b in _tables(t, v["buffer_constraints"]))
    o = t.Offset(v["scalar_data"])
    scalar_data = _scalar(t, v["scalar_data"], _U64) if o else None
    return ir.Parameter(name=_str(t, v["name"]), is_buffer=bool(_scalar(t, v["is_buffer"], _BOOL, False)),
                        type=_type(_table(t, v["type"])), dimensions=_scalar(t, v["dimensions"], _I32),
                        external=False, buffer_constraints=bcs,
                        scalar_estimate=r.field(t, v, "scalar_estimate"), scalar_min=r.field(t, v, "scalar_min"),
                        scalar_max=r.field(t, v, "scalar_max"), scalar_default=r.field(t, v, "scalar_default"),
                        scalar_data=scalar_data, host_alignment=_scalar(t, v["host_alignment"], _I32))


def _external_parameter(t: Tab) -> ir.Parameter:
    v = VT["ExternalParameter"]
    return ir.Parameter(name=_str(t, v["name"]), is_buffer=bool(_scalar(t, v["is_buffer"], _BOOL, False)),
                        type=_type(_table(t, v["type"])), dimensions=_scalar(t, v["dimensions"], _I32),
                        external=True)


def _buffer(t: Tab) -> Optional[ir.Buffer]:
    v = VT["Buffer"]
    if not _scalar(t, v["defined"], _BOOL, False):
        return None
    vd = VT["BufferDimension"]
    dims = tuple(ir.BufferDim(_scalar(d, vd["min"], _I32), _scalar(d, vd["extent"], _I32),
                              _scalar(d, vd["stride"], _I32)) for d in _tables(t, v["dims"]))
    return ir.Buffer(_str(t, v["name"]), _type(_table(t, v["type"])), dims, _bytes(t, v["data"]))


# ---------------------------------------------------------------------------------------------
# Realization order


def direct_callees(f: ir.Func) -> list[str]:
    """Names of the Funcs ``f`` calls (its own name excluded), in Halide's ``std::map`` order."""
    names: set[str] = set()
    exprs: list[Optional[ir.Expr]] = []
    for d in f.definitions:
        exprs.extend(d.values)
        exprs.extend(d.args)
        exprs.append(d.predicate)
        for rv in d.rvars:
            exprs.extend((rv.min, rv.extent))
        for sp in d.specializations:
            exprs.append(sp.condition)
            if sp.definition is not None:
                exprs.extend(sp.definition.values)
                exprs.extend(sp.definition.args)
    for a in f.extern_arguments:
        exprs.append(a.expr)
    for e in exprs:
        for n in ir.walk(e):
            if isinstance(n, ir.Call) and n.call_type == CallType.Halide:
                names.add(n.name)
            elif isinstance(n, ir.Variable) and n.reduction_domain is not None:
                for rv in n.reduction_domain.domain:
                    for sub in (rv.min, rv.extent):
                        for m in ir.walk(sub):
                            if isinstance(m, ir.Call) and m.call_type == CallType.Halide:
                                names.add(m.name)
    names.discard(f.name)
    return sorted(names, key=lambda s: s.encode("utf-8"))


def topological_order(funcs: Mapping[str, ir.Func], outputs: Sequence[str],
                      extern_callees: Optional[Mapping[str, list[str]]] = None) -> list[str]:
    """Halide's ``topological_order``: DFS post-order from each output, callees in name order."""
    graph = {n: direct_callees(f) for n, f in funcs.items()}
    if extern_callees:
        for n, cs in extern_callees.items():
            graph[n] = sorted(set(graph[n]) | set(cs), key=lambda s: s.encode("utf-8"))
    order: list[str] = []
    visited: set[str] = set()
    for out in outputs:
        if out in visited:
            continue
        # Iterative DFS (pipelines can be deep): (node, next callee index)
        visited.add(out)
        stack: list[tuple[str, int]] = [(out, 0)]
        while stack:
            node, i = stack[-1]
            callees = graph.get(node, [])
            if i < len(callees):
                stack[-1] = (node, i + 1)
                c = callees[i]
                if c not in visited:
                    visited.add(c)
                    stack.append((c, 0))
            else:
                stack.pop()
                order.append(node)
    return order


# ---------------------------------------------------------------------------------------------
# Entry points


def _root(data: bytes) -> Tab:
    if len(data) < 8:
        raise IRVersionError(f"not a serialized Halide pipeline ({len(data)} bytes); "
                             "pass the bytes of hl.serialize_pipeline")
    pos = struct.unpack_from("<I", data, 0)[0]
    if pos + 4 > len(data):
        raise IRVersionError("not a serialized Halide pipeline (root offset out of range); "
                             "pass the bytes of hl.serialize_pipeline")
    try:
        return Tab(bytes(data) if not isinstance(data, (bytes, bytearray)) else data, pos)
    except struct.error:
        raise IRVersionError("not a serialized Halide pipeline (vtable out of range); "
                             "pass the bytes of hl.serialize_pipeline") from None


def read_versions(data: bytes) -> tuple[str, str]:
    """(halide_version, serialization_version) as written in the file."""
    root = _root(data)
    v = VT["Pipeline"]
    try:
        return _str(root, v["halide_version"]), _str(root, v["serialization_version"])
    except Exception as e:  # garbage offsets raise struct / index / unicode errors
        raise IRVersionError(f"not a serialized Halide pipeline ({type(e).__name__} reading its "
                             "header); pass the bytes of hl.serialize_pipeline") from None


def check_version(data: bytes) -> tuple[str, str]:
    halide_version, ser_version = read_versions(data)
    if ser_version not in SUPPORTED_SERIALIZATION_VERSIONS:
        raise IRVersionError(
            f"serialized pipeline has serialization version '{ser_version or '?'}' (Halide "
            f"'{halide_version or '?'}'); this decoder reads {', '.join(SUPPORTED_SERIALIZATION_VERSIONS)} "
            "(Halide 21.x): install halide>=21,<22")
    return halide_version, ser_version


def decode_bytes(data: bytes, order: Optional[Sequence[str]] = None,
                 external_parameters: Optional[Mapping[str, ir.Parameter]] = None) -> ir.Pipeline:
    """Decode serialized pipeline bytes. ``order`` (Func names in realization order) defaults to
    Halide's topological order recomputed from the calls. ``external_parameters`` replace the bare
    external-parameter entries of the file (e.g. with estimates)."""
    halide_version, ser_version = check_version(data)
    root = _root(data)
    v = VT["Pipeline"]
    r = _ExprReader()
    try:
        file_funcs = [_func(r, t) for t in _tables(root, v["funcs"])]
        outputs = tuple(_strings(root, v["output_names"]))
        params: list[ir.Parameter] = []
        for t in _tables(root, v["parameters"]):
            p = _parameter(r, t)
            if p is not None:
                params.append(p)
        for t in _tables(root, v["external_parameters"]):
            p = _external_parameter(t)
            if external_parameters and p.name in external_parameters:
                p = external_parameters[p.name]
            params.append(p)
        buffers = [b for b in (_buffer(t) for t in _tables(root, v["buffers"])) if b is not None]
        num_req = len(_tables(root, v["requirements"]))
    except IRVersionError:
        raise
    except Exception as e:  # struct.error / IndexError / ValueError on a damaged file
        raise IRVersionError(f"serialized pipeline could not be read ({type(e).__name__}: {e}); the file "
                             "is damaged or not written by Halide 21") from None
    by_name = {f.name: f for f in file_funcs}
    file_names = tuple(f.name for f in file_funcs)
    order_was_derived = order is None
    if order is None:
        ext: dict[str, list[str]] = {}
        for f in file_funcs:
            cs = [file_names[a.func_index] for a in f.extern_arguments
                  if a.arg_type == ExternArgType.FuncArg and 0 <= a.func_index < len(file_names)]
            if cs:
                ext[f.name] = cs
        order = topological_order(by_name, outputs, ext)
    missing = set(by_name) - set(order)
    if missing and order_was_derived:
        # only a schedule adds Funcs that no Func calls: the wrappers ``Func.in_()`` makes
        raise UnsupportedPipelineError(
            f"Func(s) {sorted(missing)[:3]} are called by no Func of the pipeline: wrappers that "
            "Func.in_() made when a schedule was applied; build a fresh, unscheduled pipeline")
    if missing or len(order) != len(by_name):
        raise IRVersionError(f"realization order does not cover the pipeline's Funcs (missing "
                             f"{sorted(missing)[:3]}); the order given is not this pipeline's")
    return ir.Pipeline(funcs=tuple(by_name[n] for n in order), output_names=outputs,
                       parameters=tuple(params), buffers=tuple(buffers), file_func_names=file_names,
                       halide_version=halide_version, serialization_version=ser_version,
                       num_requirements=num_req)


def _live_func_names(pipeline: Any) -> list[str]:
    names: list[str] = []
    i = 0
    while True:
        try:
            f = pipeline.get_func(i)
        except Exception:  # HalideError past the last index
            return names
        names.append(f.name())
        i += 1


def _external_parameter_details(params: Mapping[str, Any], bare: Mapping[str, ir.Parameter]) -> dict[str, ir.Parameter]:
    """Estimates and constraints of live ``hl.Parameter`` objects, as this IR.

    All the ``hl.Expr`` are put, as a Tuple, into one throwaway Func, which is serialized and decoded.
    """
    import halide as hl

    slots: list[tuple[str, str, int]] = []  # (param, field, dim)
    exprs: list[Any] = []

    def add(pname: str, fieldname: str, dim: int, e: Any) -> None:
        if e is not None and e.defined():
            slots.append((pname, fieldname, dim))
            exprs.append(e)

    for name, p in params.items():
        if name not in bare:
            continue
        if p.is_buffer():
            for d in range(p.dimensions()):
                add(name, "min", d, p.min_constraint(d))
                add(name, "extent", d, p.extent_constraint(d))
                add(name, "stride", d, p.stride_constraint(d))
                add(name, "min_estimate", d, p.min_constraint_estimate(d))
                add(name, "extent_estimate", d, p.extent_constraint_estimate(d))
        else:
            add(name, "scalar_estimate", 0, p.estimate())
            add(name, "scalar_min", 0, p.min_value())
            add(name, "scalar_max", 0, p.max_value())
            add(name, "scalar_default", 0, p.default_value())
    values: list[ir.Expr] = []
    if exprs:
        holder = hl.Func("__estimates_holder")
        holder[()] = hl.Tuple(exprs) if len(exprs) > 1 else exprs[0]
        sub = decode_bytes(bytes(hl.serialize_pipeline(hl.Pipeline([holder]))))
        init = sub.func(sub.output_names[0]).init
        assert init is not None
        values = list(init.values)
    per: dict[str, dict[str, Any]] = {}
    for (pname, fieldname, dim), val in zip(slots, values):
        per.setdefault(pname, {}).setdefault(fieldname, {})[dim] = val
    out: dict[str, ir.Parameter] = {}
    for name, b in bare.items():
        f = per.get(name, {})
        if b.is_buffer:
            bcs = tuple(ir.BufferConstraint(*(f.get(k, {}).get(d) for k in
                                              ("min", "extent", "stride", "min_estimate", "extent_estimate")))
                        for d in range(b.dimensions))
            out[name] = ir.Parameter(b.name, True, b.type, b.dimensions, True, buffer_constraints=bcs)
        else:
            out[name] = ir.Parameter(b.name, False, b.type, b.dimensions, True,
                                     scalar_estimate=f.get("scalar_estimate", {}).get(0),
                                     scalar_min=f.get("scalar_min", {}).get(0),
                                     scalar_max=f.get("scalar_max", {}).get(0),
                                     scalar_default=f.get("scalar_default", {}).get(0))
    return out


def serialize(pipeline: Any) -> tuple[bytes, dict[str, Any]]:
    """``hl.serialize_pipeline`` bytes and the live external ``hl.Parameter`` objects by name."""
    import halide as hl

    data, params = hl.serialize_pipeline(pipeline, get_params=True)
    return bytes(data), dict(params)


def decode_pipeline(pipeline: Any, verify_order: bool = False) -> ir.Pipeline:
    """Decode a live ``hl.Pipeline``: Funcs in its ``get_func(i)`` order, external Parameters with
    their estimates and constraints.

    The order is Halide's ``topological_order`` recomputed here (``get_func(i)`` recomputes it in
    C++ on every call, so matching all names costs O(n^2)); the last Func is checked against
    ``get_func`` and, on any disagreement or with ``verify_order``, every name is matched.
    """
    data, params = serialize(pipeline)
    check_version(data)
    root = _root(data)
    bare = {p.name: p for p in (_external_parameter(t) for t in _tables(root, VT["Pipeline"]["external_parameters"]))}
    details = _external_parameter_details(params, bare)
    decoded = decode_bytes(data, order=None, external_parameters=details)
    names = [f.name for f in decoded.funcs]
    if verify_order:
        live = _live_func_names(pipeline)
    else:
        try:
            last = pipeline.get_func(len(names) - 1).name() if names else None
        except Exception:  # fewer Funcs than decoded: fall back to matching every name
            last = None
        live = names if names and last == names[-1] else _live_func_names(pipeline)
    if live != names:
        decoded = decode_bytes(data, order=live, external_parameters=details)
    return decoded

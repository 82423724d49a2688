"""autoscheduler.ir: the decoder of hl.serialize_pipeline bytes, checked against Halide's Python API,
against hand-built FlatBuffers for the node kinds front-end code cannot make, and the canonical hash."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

import halide as hl

from autoscheduler.errors import IRVersionError
from autoscheduler import ir
from autoscheduler.ir import (canonical_hash, canonical_text, decode_bytes, decode_pipeline, read_versions,
                              serialize)
from autoscheduler.ir.schema import TABLES, ExprKind

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import ir_cases  # noqa: E402

CASES = ir_cases.case_names()


def _live_funcs(p: hl.Pipeline) -> list:
    out = []
    while True:
        try:
            out.append(p.get_func(len(out)))
        except Exception:
            return out


def _func(dec: ir.Pipeline, base: str) -> ir.Func:
    """The Func whose name is ``base`` up to Halide's ``$n`` uniquifying suffix."""
    found = [f for f in dec.funcs if ir.strip_suffix(f.name) == base]
    assert len(found) == 1, (base, [f.name for f in dec.funcs])
    return found[0]


def _expr_num(e: hl.Expr) -> float:
    """Value of a constant hl.Expr from its repr (tests may read printed text)."""
    m = re.search(r":\s*(-?[\d.e+-]+)f?>$", repr(e))
    assert m, repr(e)
    return float(m.group(1))


def test_version_of_installed_halide():
    x = hl.Var("x")
    f = hl.Func("f")
    f[x] = x
    data, _ = serialize(hl.Pipeline([f]))
    assert read_versions(data) == ("21.0.0", "18.0.1")
    assert decode_bytes(data).serialization_version == "18.0.1"


def test_unsupported_version_is_a_clear_error():
    x = hl.Var("x")
    f = hl.Func("f")
    f[x] = x
    data, _ = serialize(hl.Pipeline([f]))
    assert data.count(b"18.0.1") == 1
    with pytest.raises(IRVersionError) as e:
        decode_bytes(data.replace(b"18.0.1", b"19.2.0"))
    msg = str(e.value)
    assert "19.2.0" in msg and "18.0.1" in msg and "\n" not in msg
    with pytest.raises(IRVersionError):
        decode_bytes(b"\x00\x01")
    with pytest.raises(IRVersionError):
        decode_bytes(bytes(64))
    with pytest.raises(IRVersionError):
        decode_bytes(data[: len(data) // 3])
    rng = np.random.default_rng(0)
    for _ in range(50):  # garbage never escapes as another exception type
        junk = rng.integers(0, 256, size=int(rng.integers(8, 300)), dtype=np.uint8).tobytes()
        with pytest.raises(IRVersionError):
            decode_bytes(junk)


@pytest.mark.parametrize("case", CASES)
def test_decode_matches_python_api(case):
    outs = ir_cases.build_case(case)
    p = hl.Pipeline(outs)
    live = _live_funcs(p)
    dec = decode_pipeline(p, verify_order=True)
    # realization order == get_func(i) order; the bytes alone give the same order
    assert [f.name for f in dec.funcs] == [f.name() for f in live]
    data, _ = serialize(p)
    assert [f.name for f in decode_bytes(data).funcs] == [f.name() for f in live]
    assert sorted(dec.file_func_names) == sorted(f.name() for f in live)
    assert list(dec.output_names) == [o.name() for o in outs]
    for f, lf in zip(dec.funcs, live):
        assert list(f.args) == [str(a) for a in lf.args()], f.name
        assert len(f.updates) == lf.num_update_definitions(), f.name
        if not f.is_extern:
            assert [(t.bits, t.lanes) for t in f.output_types] == [(t.bits(), t.lanes()) for t in lf.types()]
            assert [t.is_float for t in f.output_types] == [t.is_float() for t in lf.types()]
            assert len(f.init.values) == len(lf.types())
        for u, d in enumerate(f.updates):
            rvars = lf.rvars(u)
            assert [rv.var for rv in d.rvars] == [rv.name() for rv in rvars], f.name
            for rv, lrv in zip(d.rvars, rvars):
                # Func.rvars() loses the bounds (undefined Exprs) unless Halide kept them
                assert rv.min is not None and rv.extent is not None
                if lrv.min().defined():
                    assert isinstance(rv.min, ir.IntImm) and rv.min.value == _expr_num(lrv.min())
                    assert isinstance(rv.extent, ir.IntImm) and rv.extent.value == _expr_num(lrv.extent())
            assert len(d.args) == len(lf.update_args(u))
            # RVars appear as Variables carrying their reduction domain
            rv_vars = {n.name: n for e in d.values + d.args for n in ir.walk(e)
                       if isinstance(n, ir.Variable) and n.reduction_domain is not None}
            for name, v in rv_vars.items():
                assert name in [rv.var for rv in v.reduction_domain.domain]
    # estimates of outputs and ImageParams against what the build set
    if case.startswith("spec:"):
        import halide_pipelines

        spec = halide_pipelines.get(case[5:])
        built = spec.build(**spec.test_sizes)
        p2 = hl.Pipeline(built.outputs)
        dec2 = decode_pipeline(p2)
        for out, shape in zip(built.outputs, built.output_shapes):
            f = dec2.func(out.name())
            assert [(b.var, b.min.value, b.extent.value) for b in f.estimates] == \
                [(a, 0, int(e)) for a, e in zip(f.args, shape)]
        arrays = spec.make_inputs(0, **spec.test_sizes)
        for key, prm in built.inputs.items():
            dp = dec2.parameter(prm.name())
            if isinstance(prm, hl.ImageParam):
                if dp is None:
                    continue  # an input the algorithm does not read
                shape = list(reversed(np.asarray(arrays[key]).shape))
                assert [(c.min_estimate.value, c.extent_estimate.value) for c in dp.buffer_constraints] == \
                    [(0, e) for e in shape], prm.name()
            elif dp is not None:
                assert dp.scalar_estimate is not None, prm.name()
                want = _expr_num(prm.parameter().estimate())
                assert float(dp.scalar_estimate.value) == pytest.approx(want, rel=1e-6), prm.name()


def test_rdom_predicate_and_where_bounds():
    dec = decode_pipeline(hl.Pipeline(ir_cases.rdom_updates()))
    acc = _func(dec, "rd_acc")
    upd = acc.updates[0]
    assert [(ir.strip_suffix(rv.var), rv.min.value, rv.extent.value) for rv in upd.rvars] == \
        [("rd_r$x", 0, 5), ("rd_r$y", 0, 5)]
    assert isinstance(upd.predicate, ir.LE)  # r.x <= r.y
    assert {upd.predicate.a.name, upd.predicate.b.name} == {rv.var for rv in upd.rvars}
    scan = _func(dec, "rd_scan").updates[0]
    assert [(rv.min.value, rv.extent.value) for rv in scan.rvars] == [(1, 35)]
    assert [ir.strip_suffix(d.var) for d in scan.dims if d.var != "__outermost"] == ["rd_s$x", "y"]
    assert [d.is_pure for d in scan.dims][:2] == [False, True]


def test_params_estimates_and_constants():
    x = hl.Var("x")
    inp = hl.ImageParam(hl.UInt(16), 2, "img")
    inp.dim(0).set_estimate(3, 17)
    inp.dim(1).set_estimate(0, 9)
    gain = hl.Param(hl.Float(32), "gain")
    gain.set_estimate(2.5)
    gain.set_range(0.0, 10.0)
    n = hl.Param(hl.Int(32), "n")
    n.set_estimate(7)
    f = hl.Func("pf")
    f[x] = hl.f32(inp[x, 0]) * gain + hl.f32(n) + hl.f32(inp.width())
    f.set_estimates([(0, 17)])
    dec = decode_pipeline(hl.Pipeline([f]))
    img = dec.parameter("img")
    assert img.external and img.is_buffer and img.dimensions == 2 and img.type.bits == 16
    assert [(c.min_estimate.value, c.extent_estimate.value) for c in img.buffer_constraints] == [(3, 17), (0, 9)]
    g = dec.parameter("gain")
    assert g.scalar_estimate.value == 2.5 and g.scalar_min.value == 0.0 and g.scalar_max.value == 10.0
    assert dec.parameter("n").scalar_estimate.value == 7
    names = {(v.name, v.param_name) for v in ir.walk(_func(dec, "pf").init.values[0]) if isinstance(v, ir.Variable)}
    assert ("gain", "gain") in names and ("n", "n") in names and ("img.extent.0", "img") in names
    # the wrapper Func of the ImageParam carries the same estimates (what bytes-only decoding uses)
    wrapper = _func(dec, "img_im")
    assert [(b.min.value, b.extent.value) for b in wrapper.estimates] == [(3, 17), (0, 9)]


def test_expr_kinds_from_frontend():
    x, y = hl.Var("x"), hl.Var("y")
    inp = hl.ImageParam(hl.Float(32), 1, "kin")
    inp.dim(0).set_estimate(0, 10)
    g = hl.Func("kg")
    g[x] = inp[x]
    f = hl.Func("kf")
    e = hl.select((x > 2) & (x == 5).logical_not() | (x <= 1) | (x >= 8), hl.sin(g[x]), hl.f32(hl.u8(x) % 3))
    e = e + hl.f32(hl.max(x, 1) - hl.min(x / 2, 3) * 2) + hl.reinterpret(hl.Float(32), hl.u32(x))
    f[x] = hl.print_when(x == 3, e, "value")
    f.set_estimates([(0, 10)])
    dec = decode_pipeline(hl.Pipeline([f]))  # names may carry $n when another test built kf first
    kinds = {type(n).__name__ for n in ir.walk(dec.func(f.name()).init.values[0])}
    for k in ("Select", "And", "Or", "Not", "EQ", "GT", "GE", "LE", "Call", "Cast", "Mod", "Div", "Mul", "Sub",
              "Add", "Max", "Min", "Reinterpret", "StringImm", "IntImm", "UIntImm", "Variable"):
        assert k in kinds, k
    calls = {n.name: n for n in ir.walk(dec.func(f.name()).init.values[0]) if isinstance(n, ir.Call)}
    assert calls[g.name()].call_type == ir.CallType.Halide and calls[g.name()].func_index == dec.file_func_names.index(g.name())
    assert calls["sin_f32"].call_type == ir.CallType.PureExtern
    assert dec.func(g.name()).init.values[0].call_type == ir.CallType.Halide  # via the ImageParam's Func
    wrapper = _func(dec, "kin_im")
    assert wrapper.init.values[0].call_type == ir.CallType.Image and wrapper.init.values[0].param_name == "kin"


# ---- node kinds only lowering produces: hand-built FlatBuffers in the same schema

class _FB:
    """A tiny FlatBuffers writer for schema tables (slot numbering from ``schema.TABLES``)."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(1024)

    def _slots(self, table: str) -> dict[str, tuple[int, str]]:
        out, slot = {}, 0
        for name, kind in TABLES[table]:
            if kind.startswith("u:") or kind.startswith("[u:"):
                out[name + "_type"] = (slot, "uint8" if kind.startswith("u:") else "[uint8]")
                slot += 1
            out[name] = (slot, kind)
            slot += 1
        return out

    def vec(self, offsets, elem="offset"):
        b = self.b
        if elem == "offset":
            b.StartVector(4, len(offsets), 4)
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
        elif elem == "uint8":
            b.StartVector(1, len(offsets), 1)
            for o in reversed(offsets):
                b.PrependUint8(o)
        else:
            b.StartVector(4, len(offsets), 4)
            for o in reversed(offsets):
                b.PrependInt32(o)
        return b.EndVector()

    def table(self, table: str, **vals):
        slots = self._slots(table)
        b = self.b
        b.StartObject(max(s for s, _ in slots.values()) + 1)
        for name, v in vals.items():
            slot, kind = slots[name]
            if kind == "uint8":
                b.PrependUint8Slot(slot, v, 255 if v == 0 else 0)
            elif kind == "int8":
                b.PrependInt8Slot(slot, v, 127 if v == 0 else 0)
            elif kind == "int32":
                b.PrependInt32Slot(slot, v, 1 << 30)
            elif kind == "int64":
                b.PrependInt64Slot(slot, v, 1 << 60)
            elif kind == "bool":
                b.PrependBoolSlot(slot, v, not v)
            else:
                b.PrependUOffsetTRelativeSlot(slot, v, 0)
        return b.EndObject()

    def string(self, s):
        return self.b.CreateString(s)

    def type(self, code=0, bits=32, lanes=1):
        return self.table("Type", code=code, bits=bits, lanes=lanes)

    def expr(self, kind: ExprKind, table: str, **vals):
        return (int(kind), self.table(table, **vals))

    def var(self, name, lanes=1):
        n = self.string(name)
        return self.expr(ExprKind.Variable, "Variable", name=n, type=self.type(lanes=lanes))

    def int(self, v):
        return self.expr(ExprKind.IntImm, "IntImm", value=v, type=self.type())


def _union_fields(fields: dict, name: str, e) -> None:
    fields[name + "_type"], fields[name] = e


def test_every_expr_kind_decodes_from_schema_bytes():
    fb = _FB()
    x = fb.var("x")
    ramp = {}
    _union_fields(ramp, "base", x)
    _union_fields(ramp, "stride", fb.int(2))
    ramp_e = fb.expr(ExprKind.Ramp, "Ramp", lanes=8, **ramp)
    bc = {}
    _union_fields(bc, "value", fb.int(3))
    bcast = fb.expr(ExprKind.Broadcast, "Broadcast", lanes=8, **bc)
    add = {}
    _union_fields(add, "a", ramp_e)
    _union_fields(add, "b", bcast)
    add_e = fb.expr(ExprKind.Add, "BinaryOp", **add)
    ld = {}
    _union_fields(ld, "index", add_e)
    load_e = fb.expr(ExprKind.Load, "Load", name=fb.string("buf"), type=fb.type(2, 32, 8), **ld)
    vr = {}
    _union_fields(vr, "value", load_e)
    vred = fb.expr(ExprKind.VectorReduce, "VectorReduce", reduction_op=4, lanes=2, **vr)
    sh_types = fb.vec([vred[0], vred[0]], "uint8")
    sh_vals = fb.vec([vred[1], vred[1]])
    shuffle = fb.expr(ExprKind.Shuffle, "Shuffle", vectors_type=sh_types, vectors=sh_vals,
                      indices=fb.vec([0, 3], "int32"))
    rv = {}
    _union_fields(rv, "value", shuffle)
    reinterp = fb.expr(ExprKind.Reinterpret, "Reinterpret", type=fb.type(1, 32, 2), **rv)
    let = {}
    _union_fields(let, "value", reinterp)
    _union_fields(let, "body", fb.var("t", lanes=2))
    let_e = fb.expr(ExprKind.Let, "Let", name=fb.string("t"), **let)
    # Func f(x) = let_e; Pipeline {funcs, output_names, versions}
    dfields = {"values_type": fb.vec([let_e[0]], "uint8"), "values": fb.vec([let_e[1]])}
    x2 = fb.var("x")
    dfields["args_type"] = fb.vec([x2[0]], "uint8")
    dfields["args"] = fb.vec([x2[1]])
    init = fb.table("Definition", is_init=True, **dfields)
    fname = fb.string("f")
    args = fb.vec([fb.string("x")])
    otypes = fb.vec([fb.type(1, 32, 2)])
    func = fb.table("Func", name=fname, args=args, output_types=otypes, init_def=init)
    funcs = fb.vec([func])
    outs = fb.vec([fb.string("f")])
    root = fb.table("Pipeline", funcs=funcs, output_names=outs, halide_version=fb.string("21.0.0"),
                    serialization_version=fb.string("18.0.1"))
    fb.b.Finish(root)
    dec = decode_bytes(bytes(fb.b.Output()))
    v = dec.funcs[0].init.values[0]
    assert isinstance(v, ir.Let) and v.name == "t"
    r = v.value
    assert isinstance(r, ir.Reinterpret) and r.type == ir.Type(ir.TypeCode.UInt, 32, 2)
    s = r.value
    assert isinstance(s, ir.Shuffle) and s.indices == (0, 3) and len(s.vectors) == 2
    vr_ = s.vectors[0]
    assert isinstance(vr_, ir.VectorReduce) and vr_.op == ir.VectorReduceOp.Max and vr_.lanes == 2
    ld_ = vr_.value
    assert isinstance(ld_, ir.Load) and ld_.name == "buf" and ld_.type.lanes == 8
    a = ld_.index
    assert isinstance(a, ir.Add) and a.type.lanes == 8
    assert isinstance(a.a, ir.Ramp) and a.a.lanes == 8 and a.a.stride == ir.IntImm(2, ir.INT32)
    assert isinstance(a.b, ir.Broadcast) and a.b.lanes == 8 and a.b.value.value == 3
    assert s.type.lanes == 2 and vr_.type.lanes == 2


# ---- canonical hash

def _unnamed_pipeline(extent: int = 3, est: int = 100, k: float = 2.0) -> hl.Pipeline:
    x = hl.Var()
    f, g = hl.Func(), hl.Func()
    r = hl.RDom([(0, extent)])
    im = hl.ImageParam(hl.Float(32), 1)
    f[x] = im[x] * k
    g[x] = 0.0
    g[x] += f[x + r]
    g.set_estimates([(0, est)])
    im.dim(0).set_estimate(0, est + extent)
    return hl.Pipeline([g])


def test_canonical_hash_is_name_independent_and_sensitive():
    a, b = _unnamed_pipeline(), _unnamed_pipeline()
    # Halide renamed the second build (f$n / r12 / p3 ...): the raw names differ, the hash does not
    names_a = [f.name() for f in _live_funcs(a)]
    names_b = [f.name() for f in _live_funcs(b)]
    assert names_a != names_b
    assert canonical_hash(a) == canonical_hash(b)
    h = canonical_hash(_unnamed_pipeline())
    assert len(h) == 64 and int(h, 16) >= 0
    assert canonical_hash(_unnamed_pipeline(extent=4)) != h       # RDom extent
    assert canonical_hash(_unnamed_pipeline(est=101)) != h        # output / input estimate
    assert canonical_hash(_unnamed_pipeline(k=3.0)) != h          # a constant of the algorithm
    text = canonical_text(decode_pipeline(a))
    assert "$" not in text and "F0" in text and "s1r0" in text


@pytest.mark.parametrize("case", ["rdom_updates", "tuples", "histogram", "spec:conv_layer", "spec:blur"])
def test_canonical_hash_same_for_rebuilt_pipelines(case):
    names = [n for n in CASES if n == case]
    assert names, f"case {case} is not registered"
    h1 = canonical_hash(ir_cases.build_pipeline(case))
    h2 = canonical_hash(ir_cases.build_pipeline(case))
    assert h1 == h2


def test_canonical_hash_distinguishes_workloads():
    hashes = {canonical_hash(ir_cases.build_pipeline(c)) for c in ir_cases.CASES}
    assert len(hashes) == len(ir_cases.CASES)


def test_canonical_hash_of_param_estimate():
    def build(est: float) -> hl.Pipeline:
        x = hl.Var("x")
        p = hl.Param(hl.Float(32), "scale")
        p.set_estimate(est)
        f = hl.Func("sf")
        f[x] = hl.f32(x) * p
        f.set_estimates([(0, 8)])
        return hl.Pipeline([f])

    assert canonical_hash(build(1.0)) == canonical_hash(build(1.0))
    assert canonical_hash(build(1.0)) != canonical_hash(build(2.0))

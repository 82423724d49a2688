"""A small emulation of Halide's ``simplify`` and ``common_subexpression_elimination``.

Adams2019 featurizes each stage after ``common_subexpression_elimination(simplify(e))``, which Python
cannot call. This module applies the canonicalising rewrites that change operation counts in
typical pipelines (constant folding; ``x - c`` to ``x + (-c)``; constants moved to the right of
commutative ops; nested constant additions and multiplications merged; ``(x + c) * d`` distributed;
``a > b`` to ``b < a``; constant shifts to multiplications and divisions; lets substituted), and
counts CSE's effect exactly as Halide's algorithm extracts shared subexpressions (``cse_counts``).
Anything the real simplifier would do beyond this shows up as a per-stage difference in the
featurization oracle test.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Callable, Optional, Union

from ..ir import nodes as ir
from ..ir.schema import CallType, TypeCode


def _is_const(e: ir.Expr) -> bool:
    return isinstance(e, (ir.IntImm, ir.UIntImm, ir.FloatImm))


def _cval(e: ir.Expr) -> Optional[float | int]:
    if isinstance(e, (ir.IntImm, ir.UIntImm, ir.FloatImm)):
        return e.value
    return None


def make_const(t: ir.Type, v: float | int) -> ir.Expr:
    """An immediate of type ``t`` holding ``v`` (wrapped / rounded as Halide folds)."""
    if t.is_float:
        fv = float(v)
        if t.bits == 32 and math.isfinite(fv):
            fv = struct.unpack("f", struct.pack("f", fv))[0]
        return ir.FloatImm(fv, t)
    iv = int(v)
    if t.code == TypeCode.UInt:
        return ir.UIntImm(iv & ((1 << t.bits) - 1), t)
    if t.bits < 64:
        span = 1 << t.bits
        iv = (iv + (span >> 1)) % span - (span >> 1)
    return ir.IntImm(iv, t)


def _fold(op: Any, a: float | int, b: float | int, t: ir.Type) -> Optional[ir.Expr]:
    if op is ir.Add:
        return make_const(t, a + b)
    if op is ir.Sub:
        return make_const(t, a - b)
    if op is ir.Mul:
        return make_const(t, a * b)
    if op is ir.Min:
        return make_const(t, min(a, b))
    if op is ir.Max:
        return make_const(t, max(a, b))
    if op is ir.Div:
        if t.is_float:
            return make_const(t, a / b) if b != 0 else None
        if b == 0:
            return make_const(t, 0)
        # Halide: Euclidean division (remainder always non-negative)
        q = (int(a) - (int(a) % abs(int(b)))) // int(b)
        return make_const(t, q)
    if op is ir.Mod:
        if t.is_float:
            return make_const(t, a - b * math.floor(a / b)) if b != 0 else None
        if b == 0:
            return make_const(t, 0)
        return make_const(t, int(a) % abs(int(b)))
    return None


def _cmp_fold(op: Any, a: float | int, b: float | int) -> Optional[bool]:
    table: dict[Any, bool] = {ir.EQ: a == b, ir.NE: a != b, ir.LT: a < b, ir.LE: a <= b, ir.GT: a > b, ir.GE: a >= b}
    return table.get(op)


_Num = Optional[Union[float, int]]

# Halide's IRNodeType order ("strength"): commutative ops put the stronger operand first.
_RANK: dict[type, int] = {t: i for i, t in enumerate((
    ir.IntImm, ir.UIntImm, ir.FloatImm, ir.StringImm, ir.Broadcast, ir.Cast, ir.Reinterpret, ir.Variable,
    ir.Add, ir.Sub, ir.Mod, ir.Mul, ir.Div, ir.Min, ir.Max, ir.EQ, ir.NE, ir.LT, ir.LE, ir.GT, ir.GE,
    ir.And, ir.Or, ir.Not, ir.Select, ir.Load, ir.Ramp, ir.Call, ir.Let, ir.Shuffle, ir.VectorReduce))}


def _should_commute(a: ir.Expr, b: ir.Expr) -> bool:
    ra, rb = _RANK.get(type(a), 99), _RANK.get(type(b), 99)
    if ra != rb:
        return ra < rb
    if isinstance(a, ir.Variable) and isinstance(b, ir.Variable):
        return a.name > b.name
    return False


def _no_overflow_int(t: ir.Type) -> bool:
    return t.code == TypeCode.Int and t.bits >= 32


def _no_overflow(t: ir.Type) -> bool:
    return t.is_float or _no_overflow_int(t)


def _neg_const(e: ir.Expr) -> bool:
    v = _cval(e)
    return v is not None and v < 0 and (not isinstance(e, ir.IntImm) or -v < (1 << (e.type.bits - 1)))


def _cmod(a: float | int, b: float | int) -> float | int:
    if isinstance(a, float) or isinstance(b, float):
        return a - b * math.floor(a / b)
    return a % abs(b)


def _cdiv(a: float | int, b: float | int, t: ir.Type) -> float | int:
    if t.is_float:
        return a / b
    return int(a) // int(b)


def _common_factor(p: ir.Mul, q: ir.Mul) -> Optional[tuple[ir.Expr, ir.Expr, ir.Expr, bool]]:
    """For p = x*y (or y*x) and q = z*y (or y*z): (x, z, y, y_on_the_right)."""
    if p.b == q.b:
        return p.a, q.a, p.b, True
    if p.b == q.a:
        return p.a, q.b, p.b, True
    if p.a == q.b:
        return p.b, q.a, p.a, False
    if p.a == q.a:
        return p.b, q.b, p.a, False
    return None


def _mk(M: Callable[[ir.Expr, ir.Expr], ir.Expr], inner: ir.Expr, y: ir.Expr, y_right: bool) -> ir.Expr:
    return M(inner, y) if y_right else M(y, inner)


_TRUE = ir.UIntImm(1, ir.BOOL)
_FALSE = ir.UIntImm(0, ir.BOOL)


class Simplifier:
    """Bottom-up rewriting; lets are substituted (CSE re-extracts what is shared)."""

    def __init__(self) -> None:
        self._memo: dict[int, ir.Expr] = {}

    def __call__(self, e: ir.Expr) -> ir.Expr:
        return self.mutate(e, {})

    def mutate(self, e: ir.Expr, lets: dict[str, ir.Expr]) -> ir.Expr:
        if not lets:
            hit = self._memo.get(id(e))
            if hit is not None:
                return hit
        r = self._mutate(e, lets)
        if not lets:
            self._memo[id(e)] = r
            self._keep = getattr(self, "_keep", [])
            self._keep.append(e)  # keep ids alive while memoised
        return r

    def _mutate(self, e: ir.Expr, lets: dict[str, ir.Expr]) -> ir.Expr:
        t = type(e)
        m: Callable[[ir.Expr], ir.Expr] = lambda x: self.mutate(x, lets)  # noqa: E731
        if t is ir.Variable:
            assert isinstance(e, ir.Variable)
            return lets.get(e.name, e)
        if isinstance(e, ir.BinaryOp):
            return self._binary(t, m(e.a), m(e.b))
        if t is ir.Not:
            assert isinstance(e, ir.Not)
            return self._not(m(e.a))
        if t is ir.Select:
            assert isinstance(e, ir.Select)
            c, a, b = m(e.condition), m(e.true_value), m(e.false_value)
            cv = _cval(c)
            if cv is not None:
                return a if cv else b
            if a == b:
                return a
            if isinstance(c, ir.Not):
                return ir.Select(c.a, b, a)
            if isinstance(c, ir.LE):  # select(x <= y, a, b) -> select(y < x, b, a)
                return ir.Select(ir.LT(c.b, c.a), b, a)
            if isinstance(c, ir.NE):  # select(x != y, a, b) -> select(x == y, b, a)
                return ir.Select(ir.EQ(c.a, c.b), b, a)
            return ir.Select(c, a, b)
        if t is ir.Cast:
            assert isinstance(e, ir.Cast)
            v = m(e.value)
            if v.type == e.type:
                return v
            cv = _cval(v)
            if cv is not None:
                if e.type.is_float or not isinstance(cv, float):
                    return make_const(e.type, cv)
                return make_const(e.type, math.trunc(cv))
            return ir.Cast(v, e.type)
        if t is ir.Let:
            # Like Halide, substitute only trivial values; other lets stay opaque to the rewrites
            # of the body (CSE removes them afterwards, see remove_lets).
            assert isinstance(e, ir.Let)
            value = m(e.value)
            if _is_const(value) or isinstance(value, ir.Variable):
                inner = dict(lets)
                inner[e.name] = value
                return self.mutate(e.body, inner)
            shadow = dict(lets)
            shadow.pop(e.name, None)
            body = self.mutate(e.body, shadow)
            if not any(isinstance(n, ir.Variable) and n.name == e.name for n in ir.walk(body)):
                return body
            return ir.Let(e.name, value, body)
        if t is ir.Call:
            assert isinstance(e, ir.Call)
            args = tuple(m(a) for a in e.args)
            if e.call_type in (CallType.Intrinsic, CallType.PureIntrinsic) and len(args) == 2 \
                    and e.name in ("shift_left", "shift_right") and not e.type.is_float:
                k = _cval(args[1])
                if isinstance(k, int) and 0 <= k < e.type.bits:
                    c = make_const(e.type, 1 << k)
                    if _cval(c) == 1 << k:
                        return self._binary(ir.Mul if e.name == "shift_left" else ir.Div, args[0], c)
            if e.call_type in (CallType.Intrinsic, CallType.PureIntrinsic) and len(args) == 2 \
                    and e.name == "bitwise_and" and e.type.code == TypeCode.UInt:
                k = _cval(args[1])
                if isinstance(k, int) and k > 0 and (k + 1) & k == 0:
                    return self._binary(ir.Mod, args[0], make_const(e.type, k + 1))
            return ir.Call(e.name, args, e.call_type, e.func_index, e.value_index, e.image_name,
                           e.param_name, e.type)
        if t is ir.Broadcast:
            assert isinstance(e, ir.Broadcast)
            return ir.Broadcast(m(e.value), e.lanes)
        if t is ir.Ramp:
            assert isinstance(e, ir.Ramp)
            return ir.Ramp(m(e.base), m(e.stride), e.lanes)
        if t is ir.Reinterpret:
            assert isinstance(e, ir.Reinterpret)
            return ir.Reinterpret(m(e.value), e.type)
        return e

    def _not(self, a: ir.Expr) -> ir.Expr:
        cv = _cval(a)
        if cv is not None:
            return _FALSE if cv else _TRUE
        if isinstance(a, ir.Not):
            return a.a
        if isinstance(a, ir.LT):
            return ir.LE(a.b, a.a)
        if isinstance(a, ir.LE):
            return ir.LT(a.b, a.a)
        if isinstance(a, ir.EQ):
            return ir.NE(a.a, a.b)
        if isinstance(a, ir.NE):
            return ir.EQ(a.a, a.b)
        return ir.Not(a)

    def _binary(self, op: Any, a: ir.Expr, b: ir.Expr) -> ir.Expr:
        ca, cb = _cval(a), _cval(b)
        ty = a.type
        if issubclass(op, ir.CmpOp):
            return self._cmp(op, a, b, ca, cb)
        if ca is not None and cb is not None:
            r = _fold(op, ca, cb, ty)
            if r is not None:
                return r
        if op in (ir.Add, ir.Mul, ir.Min, ir.Max) and _should_commute(a, b):
            a, b, ca, cb = b, a, cb, ca
        if op is ir.Add:
            return self._add(a, b, ca, cb, ty)
        if op is ir.Sub:
            return self._sub(a, b, ca, cb, ty)
        if op is ir.Mul:
            return self._mul(a, b, ca, cb, ty)
        if op is ir.Div:
            if cb == 1:
                return a
            if ty.is_float and cb is not None and cb != 0:
                return self._mul(a, make_const(ty, 1.0 / cb), None, _cval(make_const(ty, 1.0 / cb)), ty)
            return ir.Div(a, b)
        if op is ir.Mod:
            if cb == 1 and not ty.is_float:
                return make_const(ty, 0)
            return ir.Mod(a, b)
        if op is ir.Min or op is ir.Max:
            if a == b:
                return a
            return op(a, b)  # type: ignore[no-any-return]
        return op(a, b)  # type: ignore[no-any-return]

    # The rules below are a subset of Halide's Simplify_{Add,Sub,Mul}.cpp, in Halide's order.
    def _add(self, a: ir.Expr, b: ir.Expr, ca: _Num, cb: _Num, ty: ir.Type) -> ir.Expr:
        A, S, M = self._A, self._S, self._M
        if cb == 0:
            return a
        if ca == 0:
            return b
        if a == b:
            return M(a, make_const(ty, 2))
        if isinstance(a, ir.Add) and _cval(a.b) is not None:
            if cb is not None:
                return A(a.a, _fold(ir.Add, _cval(a.b), cb, ty) or b)  # type: ignore[arg-type]
            return A(A(a.a, b), a.b)
        if isinstance(b, ir.Add) and _cval(b.b) is not None:
            return A(A(a, b.a), b.b)
        if isinstance(a, ir.Sub) and _cval(a.a) is not None:
            if cb is not None:
                return S(_fold(ir.Add, _cval(a.a), cb, ty) or a.a, a.b)  # type: ignore[arg-type]
            return A(S(b, a.b), a.a)
        if isinstance(a, ir.Sub) and a.b == b:
            return a.a
        if isinstance(b, ir.Sub) and b.b == a:
            return b.a
        if isinstance(b, ir.Sub) and _cval(b.a) is not None:
            return A(S(a, b.b), b.a)
        if isinstance(a, ir.Sub) and isinstance(b, ir.Sub):
            if a.b == b.a:
                return S(a.a, b.b)
            if a.a == b.b:
                return S(b.a, a.b)
        if isinstance(b, ir.Mul) and _neg_const(b.b):
            return S(a, M(b.a, make_const(ty, -_cval(b.b))))  # type: ignore[operator]
        if isinstance(a, ir.Mul) and _neg_const(a.b) and cb is None:
            return S(b, M(a.a, make_const(ty, -_cval(a.b))))  # type: ignore[operator]
        if isinstance(a, ir.Mul) and isinstance(b, ir.Mul):
            if a.b == b.b:
                return M(A(a.a, b.a), a.b)
            if a.b == b.a:
                return M(A(a.a, b.b), a.b)
            if a.a == b.b:
                return M(a.a, A(a.b, b.a))
            if a.a == b.a:
                return M(a.a, A(a.b, b.b))
            c0, c1 = _cval(a.b), _cval(b.b)
            if c0 is not None and c1 is not None:
                if c0 != 0 and _cmod(c1, c0) == 0:
                    return M(A(a.a, M(b.a, make_const(ty, _cdiv(c1, c0, ty)))), a.b)
                if c1 != 0 and _cmod(c0, c1) == 0:
                    return M(A(M(a.a, make_const(ty, _cdiv(c0, c1, ty))), b.a), b.b)
        if _no_overflow(ty):
            if isinstance(b, ir.Mul) and b.a == a:
                return M(a, A(b.b, make_const(ty, 1)))
            if isinstance(b, ir.Mul) and b.b == a:
                return M(A(b.a, make_const(ty, 1)), a)
            if isinstance(a, ir.Mul) and a.a == b:
                return M(b, A(a.b, make_const(ty, 1)))
            if isinstance(a, ir.Mul) and a.b == b and cb is None:
                return M(A(a.a, make_const(ty, 1)), b)
        return ir.Add(a, b)

    def _sub(self, a: ir.Expr, b: ir.Expr, ca: _Num, cb: _Num, ty: ir.Type) -> ir.Expr:
        A, S, M = self._A, self._S, self._M
        if cb == 0:
            return a
        if cb is not None and ty.code != TypeCode.UInt:
            return A(a, make_const(ty, -cb))
        if a == b:
            return make_const(ty, 0)
        zero = make_const(ty, 0)
        if isinstance(a, ir.Add):
            if a.a == b:
                return a.b
            if a.b == b:
                return a.a
        if isinstance(b, ir.Add):
            if b.a == a:
                return S(zero, b.b)
            if b.b == a:
                return S(zero, b.a)
        if isinstance(a, ir.Sub) and a.a == b:
            return S(zero, a.b)
        if isinstance(a, ir.Add) and _cval(a.b) is not None:
            c0 = _cval(a.b)
            if isinstance(b, ir.Sub) and _cval(b.a) is not None:
                return A(A(a.a, b.b), _fold(ir.Sub, c0, _cval(b.a), ty) or a.b)  # type: ignore[arg-type]
            if isinstance(b, ir.Add) and _cval(b.b) is not None:
                return A(S(a.a, b.a), _fold(ir.Sub, c0, _cval(b.b), ty) or a.b)  # type: ignore[arg-type]
            return A(S(a.a, b), a.b)
        if isinstance(a, ir.Sub) and _cval(a.a) is not None:
            c0 = _cval(a.a)
            if isinstance(b, ir.Sub) and _cval(b.a) is not None:
                return A(S(b.b, a.b), _fold(ir.Sub, c0, _cval(b.a), ty) or a.a)  # type: ignore[arg-type]
            if isinstance(b, ir.Add) and _cval(b.b) is not None:
                return S(_fold(ir.Sub, c0, _cval(b.b), ty) or a.a, A(a.b, b.a))  # type: ignore[arg-type]
        if isinstance(b, ir.Sub):
            return A(a, S(b.b, b.a))
        if isinstance(b, ir.Mul) and _neg_const(b.b):
            return A(a, M(b.a, make_const(ty, -_cval(b.b))))  # type: ignore[operator]
        if isinstance(b, ir.Add) and _cval(b.b) is not None:
            return S(S(a, b.a), b.b)
        if isinstance(a, ir.Mul) and isinstance(b, ir.Mul):
            if a.b == b.b:
                return M(S(a.a, b.a), a.b)
            if a.b == b.a:
                return M(S(a.a, b.b), a.b)
            if a.a == b.b:
                return M(a.a, S(a.b, b.a))
            if a.a == b.a:
                return M(a.a, S(a.b, b.b))
        if isinstance(b, ir.Mul) and isinstance(a, (ir.Add, ir.Sub)):
            # (u + x*y) - z*y -> u + (x - z)*y, (u - x*y) - z*y -> u - (x + z)*y, and the mirrored forms
            for xy, u, plus_first in ((a.b, a.a, True), (a.a, a.b, False)):
                if not isinstance(xy, ir.Mul):
                    continue
                common = _common_factor(xy, b)
                if common is None:
                    continue
                x_, z_, y_, y_right = common
                if isinstance(a, ir.Add):
                    return A(u, _mk(M, S(x_, z_), y_, y_right))
                if plus_first:  # (u - x*y) - z*y
                    return S(u, _mk(M, A(x_, z_), y_, y_right))
                return S(_mk(M, S(x_, z_), y_, y_right), u)  # (x*y - u) - z*y
        if isinstance(a, ir.Mul) and isinstance(b, (ir.Add, ir.Sub)):
            for zy, u, first in ((b.b, b.a, False), (b.a, b.b, True)):
                if not isinstance(zy, ir.Mul):
                    continue
                common = _common_factor(a, zy)
                if common is None:
                    continue
                x_, z_, y_, y_right = common
                if isinstance(b, ir.Add):
                    return S(_mk(M, S(x_, z_), y_, y_right), u)
                if not first:  # x*y - (u - z*y)
                    return S(_mk(M, A(x_, z_), y_, y_right), u)
                return A(_mk(M, S(x_, z_), y_, y_right), u)  # x*y - (z*y - u)
        if isinstance(a, ir.Add) and isinstance(b, ir.Add):
            if a.a == b.a:
                return S(a.b, b.b)
            if a.a == b.b:
                return S(a.b, b.a)
            if a.b == b.a:
                return S(a.a, b.b)
            if a.b == b.b:
                return S(a.a, b.a)
        if isinstance(a, ir.Add) and isinstance(a.a, ir.Add):
            if a.a.a == b:
                return A(a.a.b, a.b)
            if a.a.b == b:
                return A(a.a.a, a.b)
        if _no_overflow(ty):
            if isinstance(a, ir.Mul) and a.a == b:
                return M(b, S(a.b, make_const(ty, 1)))
            if isinstance(a, ir.Mul) and a.b == b:
                return M(S(a.a, make_const(ty, 1)), b)
            if isinstance(b, ir.Mul) and b.a == a:
                return M(a, S(make_const(ty, 1), b.b))
            if isinstance(b, ir.Mul) and b.b == a:
                return M(S(make_const(ty, 1), b.a), a)
        if _no_overflow_int(ty) and isinstance(a, ir.Mul) and isinstance(b, ir.Mul):
            c0, c1 = _cval(a.b), _cval(b.b)
            if c0 is not None and c1 is not None:
                if c1 != 0 and _cmod(c0, c1) == 0:
                    return M(S(M(a.a, make_const(ty, _cdiv(c0, c1, ty))), b.a), b.b)
                if c0 != 0 and _cmod(c1, c0) == 0:
                    return M(S(a.a, M(b.a, make_const(ty, _cdiv(c1, c0, ty)))), a.b)
        return ir.Sub(a, b)

    def _mul(self, a: ir.Expr, b: ir.Expr, ca: _Num, cb: _Num, ty: ir.Type) -> ir.Expr:
        A, S, M = self._A, self._S, self._M
        if cb == 0 or ca == 0:
            return make_const(ty, 0)
        if cb == 1:
            return a
        if ca == 1:
            return b
        if cb is not None:
            if isinstance(a, ir.Add) and _cval(a.b) is not None:
                return A(M(a.a, b), _fold(ir.Mul, _cval(a.b), cb, ty) or b)  # type: ignore[arg-type]
            if isinstance(a, ir.Sub) and _cval(a.a) is not None:
                return A(M(a.b, make_const(ty, -cb)), _fold(ir.Mul, _cval(a.a), cb, ty) or b)  # type: ignore[arg-type]
        if isinstance(a, ir.Sub) and _cval(a.a) == 0:
            return S(a.a, M(a.b, b))
        if isinstance(b, ir.Sub) and _cval(b.a) == 0:
            return S(b.a, M(a, b.b))
        if isinstance(a, ir.Sub) and _neg_const(b):
            return M(S(a.b, a.a), make_const(ty, -cb))  # type: ignore[operator]
        if isinstance(a, ir.Mul) and _cval(a.b) is not None:
            if cb is not None:
                return M(a.a, _fold(ir.Mul, _cval(a.b), cb, ty) or b)  # type: ignore[arg-type]
            return M(M(a.a, b), a.b)
        if isinstance(b, ir.Mul) and _cval(b.b) is not None:
            return M(M(a, b.a), b.b)
        return ir.Mul(a, b)

    def _A(self, a: ir.Expr, b: ir.Expr) -> ir.Expr:
        return self._binary(ir.Add, a, b)

    def _S(self, a: ir.Expr, b: ir.Expr) -> ir.Expr:
        return self._binary(ir.Sub, a, b)

    def _M(self, a: ir.Expr, b: ir.Expr) -> ir.Expr:
        return self._binary(ir.Mul, a, b)

    def _cmp(self, op: Any, a: ir.Expr, b: ir.Expr, ca: Optional[float | int], cb: Optional[float | int]) -> ir.Expr:
        if op is ir.And or op is ir.Or:
            if ca is not None:
                a, b, ca, cb = b, a, cb, ca
            if cb is not None:
                if op is ir.And:
                    return a if cb else _FALSE
                return _TRUE if cb else a
            if a == b:
                return a
            return op(a, b)  # type: ignore[no-any-return]
        if ca is not None and cb is not None:
            r = _cmp_fold(op, ca, cb)
            if r is not None:
                return _TRUE if r else _FALSE
        if op is ir.GT:
            return self._cmp(ir.LT, b, a, cb, ca)
        if op is ir.GE:
            return self._cmp(ir.LE, b, a, cb, ca)
        if op in (ir.EQ, ir.NE) and ca is not None and cb is None:
            a, b = b, a
        return op(a, b)  # type: ignore[no-any-return]


def simplify(e: ir.Expr) -> ir.Expr:
    return Simplifier()(e)


def remove_lets(e: ir.Expr, scope: Optional[dict[str, ir.Expr]] = None) -> ir.Expr:
    """Substitute every let (CSE's first step); shared subtrees stay shared."""
    scope = scope or {}
    if not any(isinstance(n, ir.Let) for n in ir.walk(e)):
        return e
    return _RemoveLets().run(e, scope)


class _RemoveLets:
    def run(self, e: ir.Expr, scope: dict[str, ir.Expr]) -> ir.Expr:
        if isinstance(e, ir.Let):
            inner = dict(scope)
            inner[e.name] = self.run(e.value, scope)
            return self.run(e.body, inner)
        if isinstance(e, ir.Variable):
            return scope.get(e.name, e)
        kids = e.children()
        if not kids:
            return e
        new = tuple(self.run(c, scope) for c in kids)
        if all(a is b for a, b in zip(new, kids)):
            return e
        return _rebuild(e, new)


def _rebuild(e: ir.Expr, kids: tuple[ir.Expr, ...]) -> ir.Expr:
    """``e`` with its children (in ``children()`` order) replaced."""
    if isinstance(e, ir.BinaryOp):
        return type(e)(kids[0], kids[1])
    if isinstance(e, ir.Not):
        return ir.Not(kids[0])
    if isinstance(e, ir.Select):
        return ir.Select(kids[0], kids[1], kids[2])
    if isinstance(e, ir.Cast):
        return ir.Cast(kids[0], e.type)
    if isinstance(e, ir.Reinterpret):
        return ir.Reinterpret(kids[0], e.type)
    if isinstance(e, ir.Call):
        return ir.Call(e.name, kids, e.call_type, e.func_index, e.value_index, e.image_name, e.param_name, e.type)
    if isinstance(e, ir.Broadcast):
        return ir.Broadcast(kids[0], e.lanes)
    if isinstance(e, ir.Ramp):
        return ir.Ramp(kids[0], kids[1], e.lanes)
    if isinstance(e, ir.Let):
        return ir.Let(e.name, kids[0], kids[1])
    if isinstance(e, ir.Shuffle):
        return ir.Shuffle(kids, e.indices)
    if isinstance(e, ir.VectorReduce):
        return ir.VectorReduce(kids[0], e.op, e.lanes)
    if isinstance(e, ir.Load):
        it = iter(kids)
        pred = next(it) if e.predicate is not None else None
        idx = next(it) if e.index is not None else None
        return ir.Load(e.name, pred, idx, e.image_name, e.param_name, e.alignment, e.type)
    return e


# ---------------------------------------------------------------------------------------------
# CSE (Halide's CSE.cpp): which shared subexpressions become lets


def should_extract(e: ir.Expr) -> bool:
    if _is_const(e) or isinstance(e, ir.Variable):
        return False
    if isinstance(e, ir.Broadcast):
        return should_extract(e.value)
    if isinstance(e, ir.Cast):
        return should_extract(e.value)
    if isinstance(e, (ir.Add, ir.Sub, ir.Mul, ir.Div)):
        return not (_is_const(e.a) or _is_const(e.b))
    if isinstance(e, ir.Ramp):
        return not _is_const(e.stride)
    return True


class GVN:
    """Structural numbering of Expr nodes (equal subtrees get equal numbers)."""

    def __init__(self) -> None:
        self.table: dict[tuple, int] = {}
        self.by_id: dict[int, int] = {}
        self._keep: list[ir.Expr] = []

    def number(self, e: ir.Expr) -> int:
        n = self.by_id.get(id(e))
        if n is not None:
            return n
        key = self._key(e)
        n = self.table.setdefault(key, len(self.table))
        self.by_id[id(e)] = n
        self._keep.append(e)
        return n

    def _key(self, e: ir.Expr) -> tuple:
        kids = tuple(self.number(c) for c in e.children())
        if isinstance(e, ir.Call):
            return (ir.Call, e.name, e.call_type, e.value_index, e.type, kids)
        if isinstance(e, ir.Variable):
            return (ir.Variable, e.name, e.type)
        if isinstance(e, (ir.IntImm, ir.UIntImm, ir.FloatImm)):
            return (type(e), e.value, e.type)
        if isinstance(e, (ir.Cast, ir.Reinterpret)):
            return (type(e), e.type, kids)
        if isinstance(e, (ir.Ramp, ir.Broadcast)):
            return (type(e), e.lanes, kids)
        if isinstance(e, ir.Let):
            return (ir.Let, e.name, kids)
        return (type(e), kids)


def extracted(e: ir.Expr, gvn: GVN) -> set[int]:
    """GVN numbers of the subexpressions Halide's CSE would bind to lets in ``e`` (lets removed)."""
    counts: dict[int, int] = {}
    seen: set[int] = set()
    stack = [e]
    while stack:
        n = stack.pop()
        if not should_extract(n):
            stack.extend(n.children())
            continue
        k = gvn.number(n)
        counts[k] = counts.get(k, 0) + 1
        if k not in seen:
            seen.add(k)
            stack.extend(n.children())
    return {k for k, c in counts.items() if c > 1}

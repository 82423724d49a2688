"""Interval arithmetic over the decoded Expr trees, with symbolic endpoints compiled to Python.

Bounds inference asks: for a box of a consumer stage's loops (each loop ``j`` spanning
``[lo[j], hi[j]]``), which box of a producer does the stage read? The answer is computed once per
edge, symbolically: every endpoint is an affine form over the consumer's loop bounds (``Lin``), or a
small expression over such forms (``Op``: min, max, floor division, ...) where the index is not
affine, or ``None`` where the access is unbounded (data-dependent; the DAG then falls back to the
producer's estimated region and flags it). The endpoints are compiled into a Python lambda, so a
search can re-evaluate a footprint for any tile in a microsecond or two.

The rules follow Halide's ``Bounds.cpp`` for the constructs pipelines use: affine terms, min / max /
clamp / select, division and modulo by constants (floor semantics), casts, lets, ``likely`` and the
promise-clamped intrinsics, constant shifts and masks, and the value bounds of a called Func or
narrow-typed input for data-dependent indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from ..errors import EstimateError
from ..ir import nodes as ir
from ..ir.schema import CallType, TypeCode

Num = Union[int, float, Fraction]


class Lin:
    """An affine form ``const + sum(coeff * symbol)``; symbols are ``(side, index)`` with side
    ``0`` for a loop's min and ``1`` for its max."""

    __slots__ = ("const", "terms")

    def __init__(self, const: Num = 0, terms: Optional[dict[tuple[int, int], Num]] = None) -> None:
        self.const = const
        self.terms: dict[tuple[int, int], Num] = terms or {}

    @staticmethod
    def sym(side: int, index: int) -> "Lin":
        return Lin(0, {(side, index): 1})

    def is_const(self) -> bool:
        return not self.terms

    def add(self, o: "Lin", sign: int = 1) -> "Lin":
        terms = dict(self.terms)
        for k, c in o.terms.items():
            v = terms.get(k, 0) + sign * c
            if v:
                terms[k] = v
            else:
                terms.pop(k, None)
        return Lin(self.const + sign * o.const, terms)

    def scale(self, c: Num) -> "Lin":
        if not c:
            return Lin(0)
        return Lin(self.const * c, {k: v * c for k, v in self.terms.items()})

    def minus(self, o: "Lin") -> Optional[Num]:
        """``self - o`` when it is a constant, else None."""
        d = self.add(o, -1)
        return d.const if d.is_const() else None

    def __repr__(self) -> str:
        return f"Lin({self.const}, {self.terms})"


@dataclass(frozen=True)
class Op:
    """A non-affine endpoint: ``kind`` in min, max, fdiv (floor division by int), tdiv (true
    division), mul, mod, trunc, floor, ceil; ``args`` endpoints or numbers."""

    kind: str
    args: tuple["End", ...]


End = Union[Lin, Op, None]  # None: unbounded (-inf for a min, +inf for a max)


@dataclass
class Interval:
    lo: End
    hi: End

    @staticmethod
    def const(v: Num) -> "Interval":
        return Interval(Lin(v), Lin(v))

    @staticmethod
    def everything() -> "Interval":
        return Interval(None, None)

    def const_value(self) -> Optional[Num]:
        lo, hi = self.lo, self.hi
        if isinstance(lo, Lin) and isinstance(hi, Lin) and lo.is_const() and hi.is_const() and lo.const == hi.const:
            return lo.const
        return None

    def numeric(self) -> Optional[tuple[Num, Num]]:
        lo, hi = self.lo, self.hi
        if isinstance(lo, Lin) and isinstance(hi, Lin) and lo.is_const() and hi.is_const():
            return lo.const, hi.const
        return None


# ---------------------------------------------------------------------------------------------
# Endpoint arithmetic


def _num(e: End) -> Optional[Num]:
    return e.const if isinstance(e, Lin) and e.is_const() else None


def e_add(a: End, b: End, sign: int = 1) -> End:
    if a is None or b is None:
        return None
    if isinstance(a, Lin) and isinstance(b, Lin):
        return a.add(b, sign)
    if sign < 0:
        b = e_scale(b, -1)
    return Op("add", (a, b))


def e_scale(a: End, c: Num) -> End:
    if a is None:
        return None
    if isinstance(a, Lin):
        return a.scale(c)
    if c == 1:
        return a
    return Op("mul", (a, Lin(c)))


def _minmax(kind: str, a: End, b: End) -> End:
    if isinstance(a, Lin) and isinstance(b, Lin):
        d = a.minus(b)
        if d is not None:
            return (a if d <= 0 else b) if kind == "min" else (a if d >= 0 else b)
    if a == b:
        return a
    return Op(kind, (a, b))


def e_min(a: End, b: End, lo_side: bool) -> End:
    """min of two endpoints; ``None`` is -inf on a min side (absorbing) and +inf on a max side."""
    if a is None or b is None:
        if lo_side:
            return None
        return b if a is None else a
    return _minmax("min", a, b)


def e_max(a: End, b: End, lo_side: bool) -> End:
    if a is None or b is None:
        if not lo_side:
            return None
        return b if a is None else a
    return _minmax("max", a, b)


def e_fdiv(a: End, c: int) -> End:
    """floor(a / c) for a positive integer c."""
    if a is None:
        return None
    if c == 1:
        return a
    if isinstance(a, Lin):
        if a.is_const():
            return Lin(_floordiv(a.const, c))
        if all(isinstance(v, int) and v % c == 0 for v in a.terms.values()) and isinstance(a.const, int):
            return Lin(_floordiv(a.const, c), {k: v // c for k, v in a.terms.items()})
    return Op("fdiv", (a, Lin(c)))


def _floordiv(a: Num, c: Num) -> Num:
    if isinstance(a, float) or isinstance(c, float):
        return math.floor(a / c)
    return a // c  # type: ignore[operator]


_UNARY: dict[str, Callable[[Any], Any]] = {"trunc": math.trunc, "floor": math.floor, "ceil": math.ceil}


def e_unary(kind: str, a: End) -> End:
    if a is None:
        return None
    v = _num(a)
    if v is not None:
        return Lin(int(_UNARY[kind](v)))
    return Op(kind, (a,))


# ---------------------------------------------------------------------------------------------
# Compilation of endpoints into Python


def end_source(e: End, names: tuple[str, str] = ("lo", "hi"), unbounded: str = "None") -> str:
    """Python source for an endpoint over the lists named ``names`` (loop mins, loop maxes)."""
    if e is None:
        return unbounded
    if isinstance(e, Lin):
        parts = []
        for (side, idx), c in sorted(e.terms.items()):
            s = f"{names[side]}[{idx}]"
            parts.append(s if c == 1 else f"{_lit(c)}*{s}")
        if e.const or not parts:
            parts.append(_lit(e.const))
        return " + ".join(parts)
    a = [end_source(x, names, unbounded) for x in e.args]
    if e.kind in ("min", "max"):
        return f"{e.kind}({a[0]}, {a[1]})"
    if e.kind == "add":
        return f"({a[0]}) + ({a[1]})"
    if e.kind == "mul":
        return f"({a[0]}) * ({a[1]})"
    if e.kind == "fdiv":
        return f"_fdiv({a[0]}, {a[1]})"
    if e.kind == "tdiv":
        return f"({a[0]}) / ({a[1]})"
    if e.kind in ("trunc", "floor", "ceil"):
        return f"int(_math.{e.kind}({a[0]}))"
    raise ValueError(f"unknown endpoint kind {e.kind}")


def _lit(c: Num) -> str:
    if isinstance(c, Fraction):
        return f"_F({c.numerator}, {c.denominator})" if c.denominator != 1 else str(c.numerator)
    return repr(c)


_GLOBALS = {"_fdiv": _floordiv, "_math": math, "_F": Fraction, "min": min, "max": max, "int": int}


def compile_box(ends: Sequence[tuple[End, End]]) -> Callable[[Sequence[int], Sequence[int]], list[tuple[int, int]]]:
    """``f(lo, hi) -> [(min, max), ...]`` evaluating each pair of endpoints (none may be None)."""
    body = ", ".join(f"({end_source(a)}, {end_source(b)})" for a, b in ends)
    fn = eval(f"lambda lo, hi: [{body}]", dict(_GLOBALS))  # noqa: S307 - source built above
    return fn  # type: ignore[no-any-return]


def eval_end(e: End, lo: Sequence[Num], hi: Sequence[Num]) -> Optional[Num]:
    """Evaluate an endpoint numerically (None stays None)."""
    if e is None:
        return None
    if isinstance(e, Lin):
        v: Num = e.const
        for (side, idx), c in e.terms.items():
            v = v + c * (lo[idx] if side == 0 else hi[idx])
        return v
    args = [eval_end(a, lo, hi) for a in e.args]
    if any(a is None for a in args):
        return None
    k = e.kind
    if k == "min":
        return min(args)  # type: ignore[type-var]
    if k == "max":
        return max(args)  # type: ignore[type-var]
    if k == "add":
        return args[0] + args[1]  # type: ignore[operator]
    if k == "mul":
        return args[0] * args[1]  # type: ignore[operator]
    if k == "fdiv":
        return _floordiv(args[0], args[1])  # type: ignore[arg-type]
    if k == "tdiv":
        return args[0] / args[1]  # type: ignore[operator]
    return int(_UNARY[k](args[0]))


# ---------------------------------------------------------------------------------------------
# The interval evaluator


def type_bounds(t: ir.Type) -> Interval:
    """Bounds implied by a type alone: only narrow integers are bounded (as in Halide)."""
    if t.code == TypeCode.UInt and t.bits <= 16:
        return Interval(Lin(0), Lin((1 << t.bits) - 1))
    if t.code == TypeCode.Int and t.bits <= 16:
        return Interval(Lin(-(1 << (t.bits - 1))), Lin((1 << (t.bits - 1)) - 1))
    return Interval.everything()


class ParamEstimates:
    """Scalar Param estimates and ImageParam dimension estimates, by Variable name."""

    def __init__(self, pipeline: ir.Pipeline) -> None:
        self.values: dict[str, Num] = {}
        self.missing: dict[str, str] = {}  # variable name -> description for the error
        for p in pipeline.parameters:
            if not p.external:
                continue
            if p.is_buffer:
                for d, bc in enumerate(p.buffer_constraints):
                    self._set(f"{p.name}.min.{d}", bc.min_estimate, f"ImageParam '{p.name}' dimension {d} (min)")
                    self._set(f"{p.name}.extent.{d}", bc.extent_estimate,
                              f"ImageParam '{p.name}' dimension {d} (extent)")
            else:
                self._set(p.name, p.scalar_estimate, f"Param '{p.name}'")

    def _set(self, name: str, e: Optional[ir.Expr], what: str) -> None:
        v = const_value(e)
        if v is None:
            self.missing[name] = what
        else:
            self.values[name] = v

    def get(self, var: ir.Variable) -> Num:
        v = self.values.get(var.name)
        if v is not None:
            return v
        p = var.param_name
        if var.name == p:
            raise EstimateError(f"no estimate for Param '{p}'; call {p}.set_estimate(value) before autoscheduling")
        parts = var.name[len(p):].split(".") if var.name.startswith(p + ".") else []
        if len(parts) == 3 and parts[1] in ("min", "extent") and parts[2].isdigit():
            d = parts[2]
            raise EstimateError(f"no estimate for dimension {d} of ImageParam '{p}'; call "
                                f"{p}.dim({d}).set_estimate(min, extent) before autoscheduling")
        raise EstimateError(f"the pipeline uses '{var.name}' of parameter '{p}', which has no estimate; "
                            "autoscheduling needs constant estimates for it")


def const_value(e: Optional[ir.Expr]) -> Optional[Num]:
    """The value of a constant Expr (immediates, possibly under casts and negation), else None."""
    if isinstance(e, (ir.IntImm, ir.UIntImm)):
        return e.value
    if isinstance(e, ir.FloatImm):
        return e.value
    if isinstance(e, ir.Cast):
        v = const_value(e.value)
        if v is None:
            return None
        return _cast_number(v, e.type)
    return None


def _cast_number(v: Num, t: ir.Type) -> Num:
    if t.is_float:
        return float(v)
    iv = int(math.trunc(v))
    if t.bits < 64 or t.code == TypeCode.UInt:
        lo, hi = (0, (1 << t.bits) - 1) if t.code == TypeCode.UInt else (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1)
        if t.bits == 1:
            return 1 if v else 0
        if not lo <= iv <= hi:
            span = 1 << t.bits
            iv = (iv - lo) % span + lo
    return iv


@dataclass
class EvalFlags:
    data_dependent: bool = False
    depends_on_estimate: bool = False


_PASS_THROUGH = {"likely", "likely_if_innermost", "strict_float", "promise_clamped", "unsafe_promise_clamped"}


class BoundsEvaluator:
    """Computes ``Interval``s of Exprs in a scope of variable intervals.

    ``func_values(name, value_index)`` gives the value bounds of a called Func (data-dependent
    indices); Param Variables use ``estimates``. Each ``bounds`` call records in ``flags`` whether the
    result depended on a data-dependent load or on a Param estimate.
    """

    def __init__(self, estimates: ParamEstimates,
                 func_values: Callable[[str, int], Interval]) -> None:
        self.estimates = estimates
        self.func_values = func_values
        self.flags = EvalFlags()

    def bounds(self, e: ir.Expr, scope: Mapping[str, Interval]) -> Interval:
        self.flags = EvalFlags()
        return self._b(e, dict(scope))

    def _b(self, e: ir.Expr, scope: dict[str, Interval]) -> Interval:
        t = type(e)
        if t is ir.IntImm or t is ir.UIntImm:
            return Interval.const(e.value)  # type: ignore[attr-defined]
        if t is ir.FloatImm:
            return Interval.const(e.value)  # type: ignore[attr-defined]
        if t is ir.Variable:
            assert isinstance(e, ir.Variable)
            iv = scope.get(e.name)
            if iv is not None:
                return iv
            if e.param_name:
                self.flags.depends_on_estimate = True
                return Interval.const(self.estimates.get(e))
            return Interval.everything()
        if t is ir.Add or t is ir.Sub:
            assert isinstance(e, ir.BinaryOp)
            a, b = self._b(e.a, scope), self._b(e.b, scope)
            if t is ir.Add:
                return self._wrap(Interval(e_add(a.lo, b.lo), e_add(a.hi, b.hi)), e.type)
            return self._wrap(Interval(e_add(a.lo, b.hi, -1), e_add(a.hi, b.lo, -1)), e.type)
        if t is ir.Mul:
            assert isinstance(e, ir.Mul)
            return self._wrap(self._mul(self._b(e.a, scope), self._b(e.b, scope)), e.type)
        if t is ir.Div:
            assert isinstance(e, ir.Div)
            return self._div(self._b(e.a, scope), self._b(e.b, scope), e.type)
        if t is ir.Mod:
            assert isinstance(e, ir.Mod)
            return self._mod(self._b(e.a, scope), self._b(e.b, scope), e.type)
        if t is ir.Min or t is ir.Max:
            assert isinstance(e, ir.BinaryOp)
            a, b = self._b(e.a, scope), self._b(e.b, scope)
            if t is ir.Min:
                return Interval(e_min(a.lo, b.lo, True), e_min(a.hi, b.hi, False))
            return Interval(e_max(a.lo, b.lo, True), e_max(a.hi, b.hi, False))
        if isinstance(e, ir.CmpOp) or t is ir.Not:
            return Interval(Lin(0), Lin(1))
        if t is ir.Select:
            assert isinstance(e, ir.Select)
            a, b = self._b(e.true_value, scope), self._b(e.false_value, scope)
            return Interval(e_min(a.lo, b.lo, True), e_max(a.hi, b.hi, False))
        if t is ir.Cast:
            assert isinstance(e, ir.Cast)
            return self._cast(self._b(e.value, scope), e.value.type, e.type)
        if t is ir.Let:
            assert isinstance(e, ir.Let)
            inner = dict(scope)
            inner[e.name] = self._b(e.value, scope)
            return self._b(e.body, inner)
        if t is ir.Call:
            assert isinstance(e, ir.Call)
            return self._call(e, scope)
        if t is ir.Broadcast:
            assert isinstance(e, ir.Broadcast)
            return self._b(e.value, scope)
        if t is ir.Ramp:
            assert isinstance(e, ir.Ramp)
            base = self._b(e.base, scope)
            span = self._mul(self._b(e.stride, scope), Interval(Lin(0), Lin(e.lanes - 1)))
            return Interval(e_add(base.lo, span.lo), e_add(base.hi, span.hi))
        return type_bounds(e.type)

    @staticmethod
    def _wrap(iv: Interval, t: ir.Type) -> Interval:
        """Narrow integer arithmetic can overflow: outside the type's range, use the type's range."""
        if t.code in (TypeCode.Int, TypeCode.UInt) and t.bits <= 16:
            tb = type_bounds(t)
            n = iv.numeric()
            tn = tb.numeric()
            assert tn is not None
            if n is None or n[0] < tn[0] or n[1] > tn[1]:
                return tb
        return iv

    def _mul(self, a: Interval, b: Interval) -> Interval:
        cb = b.const_value()
        if cb is None and a.const_value() is not None:
            a, b = b, a
            cb = b.const_value()
        if cb is not None:
            if cb >= 0:
                return Interval(e_scale(a.lo, cb), e_scale(a.hi, cb))
            return Interval(e_scale(a.hi, cb), e_scale(a.lo, cb))
        na, nb = a.numeric(), b.numeric()
        if na is not None and nb is not None:
            ps = [x * y for x in na for y in nb]
            return Interval(Lin(min(ps)), Lin(max(ps)))
        if a.lo is None or a.hi is None or b.lo is None or b.hi is None:
            return Interval.everything()
        corners = [Op("mul", (x, y)) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        lo: End = corners[0]
        hi: End = corners[0]
        for c in corners[1:]:
            lo, hi = Op("min", (lo, c)), Op("max", (hi, c))
        return Interval(lo, hi)

    def _div(self, a: Interval, b: Interval, t: ir.Type) -> Interval:
        cb = b.const_value()
        if t.is_float:
            if cb is not None and cb != 0:
                inv = 1.0 / float(cb)
                return self._mul(a, Interval.const(inv))
            return Interval.everything()
        if cb is not None and isinstance(cb, int) and cb != 0:
            if cb > 0:
                return Interval(e_fdiv(a.lo, cb), e_fdiv(a.hi, cb))
            # floor division by a negative constant: Halide rounds so the remainder is positive
            neg = Interval(e_scale(a.hi, -1), e_scale(a.lo, -1))
            q = Interval(e_fdiv(neg.lo, -cb), e_fdiv(neg.hi, -cb))
            return q
        nb = b.numeric()
        na = a.numeric()
        if nb is not None and na is not None and nb[0] > 0:
            qs = [_floordiv(x, y) for x in na for y in nb]
            return Interval(Lin(min(qs)), Lin(max(qs)))
        if nb is not None and nb[0] > 0 and a.lo is not None and a.hi is not None:
            lo: End = Op("min", (Op("fdiv", (a.lo, Lin(nb[0]))), Op("fdiv", (a.lo, Lin(nb[1])))))
            hi: End = Op("max", (Op("fdiv", (a.hi, Lin(nb[0]))), Op("fdiv", (a.hi, Lin(nb[1])))))
            return Interval(lo, hi)
        return type_bounds(t)

    def _mod(self, a: Interval, b: Interval, t: ir.Type) -> Interval:
        nb = b.numeric()
        if nb is None:
            return type_bounds(t)
        m: Any = max(abs(nb[0]), abs(nb[1]))  # type: ignore[call-overload]
        if t.is_float:
            return Interval(Lin(0.0), Lin(float(m)))
        if m == 0:
            return Interval.const(0)
        na = a.numeric()
        if na is not None and nb[0] == nb[1] and na[0] >= 0 and _floordiv(na[0], m) == _floordiv(na[1], m):
            return Interval(Lin(na[0] % m), Lin(na[1] % m))
        return Interval(Lin(0), Lin(m - 1))

    def _cast(self, a: Interval, src: ir.Type, dst: ir.Type) -> Interval:
        if dst.is_float:
            return a
        lo, hi = a.lo, a.hi
        if src.is_float:
            lo, hi = e_unary("trunc", lo), e_unary("trunc", hi)
        tb = type_bounds(dst)
        tn = tb.numeric()
        if tn is None:
            return Interval(lo, hi)  # 32/64-bit integers: assume no overflow, as Halide does
        n = Interval(lo, hi).numeric()
        if n is not None and tn[0] <= n[0] and n[1] <= tn[1]:
            return Interval(lo, hi)
        if src.code in (TypeCode.Int, TypeCode.UInt) and not src.is_float and src.bits <= dst.bits and \
                (src.code == dst.code or (src.code == TypeCode.UInt and src.bits < dst.bits)):
            return Interval(lo, hi)
        return tb

    def _call(self, e: ir.Call, scope: dict[str, Interval]) -> Interval:
        if e.call_type in (CallType.Halide, CallType.Image):
            self.flags.data_dependent = True
            if e.call_type == CallType.Halide:
                return self.func_values(e.name, e.value_index)
            return type_bounds(e.type)
        name = e.name
        if name in _PASS_THROUGH and e.args:
            v = self._b(e.args[0], scope)
            if name in ("promise_clamped", "unsafe_promise_clamped") and len(e.args) == 3:
                lo, hi = self._b(e.args[1], scope), self._b(e.args[2], scope)
                return Interval(e_max(v.lo, lo.lo, True), e_min(v.hi, hi.hi, False))
            return v
        if name in ("shift_left", "shift_right") and len(e.args) == 2:
            k = self._b(e.args[1], scope).const_value()
            if isinstance(k, int) and 0 <= k < 63:
                a = self._b(e.args[0], scope)
                if name == "shift_left":
                    return self._wrap(Interval(e_scale(a.lo, 1 << k), e_scale(a.hi, 1 << k)), e.type)
                return Interval(e_fdiv(a.lo, 1 << k), e_fdiv(a.hi, 1 << k))
            return type_bounds(e.type)
        if name == "bitwise_and" and len(e.args) == 2 and not e.type.is_float:
            a, b = self._b(e.args[0], scope), self._b(e.args[1], scope)
            na, nb = a.numeric(), b.numeric()
            masks = [x for x in (na, nb) if x is not None and x[0] >= 0]
            if masks:
                m = min(x[1] for x in masks)
                return Interval(Lin(0), Lin(m))
            return type_bounds(e.type)
        if name == "abs" and e.args:
            a = self._b(e.args[0], scope)
            n = a.numeric()
            if n is not None:
                lo_n, hi_n = float(n[0]), float(n[1])
                if lo_n >= 0:
                    return a
                if hi_n <= 0:
                    return Interval(Lin(-n[1]), Lin(-n[0]))
                return Interval(Lin(0), Lin(-n[0] if -lo_n > hi_n else n[1]))
            return Interval(Lin(0), None)
        for prefix, kind in (("floor_f", "floor"), ("ceil_f", "ceil"), ("trunc_f", "trunc"), ("round_f", "round")):
            if name.startswith(prefix) and e.args:
                a = self._b(e.args[0], scope)
                if kind == "round":
                    return Interval(e_unary("floor", a.lo), e_unary("ceil", a.hi))
                return Interval(e_unary(kind, a.lo), e_unary(kind, a.hi))
        return type_bounds(e.type)

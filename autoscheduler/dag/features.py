"""Adams2019's pipeline (algorithm) features of a stage, and the load Jacobians of its calls.

Layout (``PipelineFeatures`` version 3 in Halide's ``Featurization.h``): a 7-entry type mask, then
a 24 x 7 op histogram (rows ``OP_NAMES``, columns ``TYPE_NAMES``), then four 4 x 7 access matrices
(pointwise, transpose, broadcast, slice; rows ``ACCESS_NAMES``). The network reads rows 7.. as a
40 x 7 block. The counting follows ``FunctionDAG.cpp``'s Featurizer: it visits each value (and each
store index) after simplification and CSE; Casts are not counted (Halide's visitor has no Cast case);
``GT``/``GE`` count as ``LT``/``LE``; the transpose / broadcast tests are kept exactly as Halide
writes them (issue #8692: the two names are swapped relative to their comments; the shipped
weights were trained that way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from ..ir import nodes as ir
from ..ir.schema import CallType
from .simplify import GVN, Simplifier, extracted, remove_lets

OP_NAMES: tuple[str, ...] = ("Const", "Cast", "Variable", "Param", "Add", "Sub", "Mod", "Mul", "Div",
                             "Min", "Max", "EQ", "NE", "LT", "LE", "And", "Or", "Not", "Select",
                             "ImageCall", "FuncCall", "SelfCall", "ExternCall", "Let")
TYPE_NAMES: tuple[str, ...] = ("Bool", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double")
ACCESS_NAMES: tuple[str, ...] = ("LoadFunc", "LoadSelf", "LoadImage", "Store")
PATTERN_NAMES: tuple[str, ...] = ("Pointwise", "Transpose", "Broadcast", "Slice")
NUM_PIPELINE_FEATURES = 7 + 24 * 7 + 4 * 4 * 7  # 287
_OP = {n: i for i, n in enumerate(OP_NAMES)}
_ACC = {n: i for i, n in enumerate(ACCESS_NAMES)}

#: Row names of the 40 x 7 network block (24 op rows, then pattern x access rows).
ROW_NAMES: tuple[str, ...] = OP_NAMES + tuple(f"{p}.{a}" for p in PATTERN_NAMES for a in ACCESS_NAMES)

Jacobian = tuple[tuple[Optional[Fraction], ...], ...]


LIBM_MATH = frozenset({"tanh", "sin", "cos", "tan", "atan", "atan2", "asin", "acos", "sinh", "cosh",
                       "asinh", "acosh", "atanh"})
"""Math calls that run element by element (trigonometric and hyperbolic functions, libm calls that
do not vectorise): tens of times an add per point. Halide's op histogram counts them as
``ExternCall`` like ``sqrt``, one instruction; per-stage profiles of the training schedules
(``autoscheduler.stage_profile``) showed the network of 2026-11-26 giving tanh, sin and atan stages
1/3.6-1/5 of their measured share of the time and sqrt stages 31x theirs, which it cannot avoid
without telling them apart."""
POLY_MATH = frozenset({"exp", "log", "pow", "erf"})
"""Math calls that cost a polynomial each (about ten to twenty vector instructions)."""
MATH_CLASSES = 2
"""Columns of :func:`math_calls`: (``LIBM_MATH`` calls, ``POLY_MATH`` calls) per point."""


def math_calls(exprs: Sequence[ir.Expr]) -> np.ndarray:
    """Calls per point of the costly math functions in a stage's expressions, by class (columns
    ``LIBM_MATH``, ``POLY_MATH``); float32 [2]. Names are Halide's (``tanh_f32``, ``exp_f64``)."""
    return class_counts(math_call_deps(exprs)[0])


def class_counts(calls: "MathDeps") -> np.ndarray:
    """float32 [2]: how many of ``calls`` (:func:`math_call_deps`) fall in each class."""
    out = np.zeros(MATH_CLASSES, dtype=np.float32)
    for c, _ in calls:
        out[c] += 1
    return out


def _math_class(n: ir.Expr) -> int:
    """Column of a costly math call in :func:`math_calls` (0 ``LIBM_MATH``, 1 ``POLY_MATH``), -1 otherwise."""
    if isinstance(n, ir.Call) and n.call_type in (CallType.Extern, CallType.PureExtern):
        base = n.name.rsplit("_f", 1)[0] if n.name.endswith(("_f16", "_f32", "_f64")) else n.name
        if base in LIBM_MATH:
            return 0
        if base in POLY_MATH:
            return 1
    return -1


class _Reads:
    """The variables an expression reads (pure Vars and RVars), Let names resolved to what their
    values read; Params and buffer fields (``input.extent.0``) left out: constant over any loop."""

    def __init__(self, exprs: Sequence[ir.Expr]) -> None:
        self.lets: dict[str, ir.Expr] = {}
        for e in exprs:
            for n in ir.walk(e):
                if isinstance(n, ir.Let):
                    self.lets[n.name] = n.value
        self.resolved: dict[str, frozenset[str]] = {}

    def __call__(self, e: ir.Expr, busy: frozenset[str] = frozenset()) -> frozenset[str]:
        out: set[str] = set()
        for n in ir.walk(e):
            if not isinstance(n, ir.Variable) or n.param_name or n.image_name:
                continue
            if n.name in self.lets and n.name not in busy:
                if n.name not in self.resolved:
                    self.resolved[n.name] = self(self.lets[n.name], busy | {n.name})
                out |= self.resolved[n.name]
            elif n.name not in self.lets and "." not in n.name:
                out.add(n.name)
        return frozenset(out)


MathDeps = tuple[tuple[int, frozenset[str]], ...]
CallArgDeps = tuple[tuple[str, tuple[frozenset[str], ...]], ...]


def math_call_deps(exprs: Sequence[ir.Expr]) -> tuple[MathDeps, CallArgDeps]:
    """What loop-invariant hoisting needs of a stage's expressions: each costly math call's class
    (:func:`math_calls` column) with the variables its arguments read, and each call of a Func with
    the variables each of its arguments reads (to follow an inlined Func's math into its consumer).

    Why: Halide hoists a loop-invariant call out of the loops its arguments do not depend on, so a
    ``cos`` of a channel index runs once per channel, not once per point; random_55's fastest
    schedules (8-12 ms) run a few ``cos`` per channel where the slow ones (18-70 ms) run one per
    point, which the per-point count cannot tell apart. ``features.math_inputs`` turns these sets
    and a state's loop nests into the calls executed."""
    reads = _Reads(exprs)
    calls: list[tuple[int, frozenset[str]]] = []
    funcs: list[tuple[str, tuple[frozenset[str], ...]]] = []
    for e in exprs:
        for n in ir.walk(e):
            c = _math_class(n)
            if c >= 0:
                assert isinstance(n, ir.Call)
                deps: frozenset[str] = frozenset()
                for a in n.args:
                    deps |= reads(a)
                calls.append((c, deps))
            elif isinstance(n, ir.Call) and n.call_type == CallType.Halide:
                funcs.append((n.name, tuple(reads(a) for a in n.args)))
    return tuple(calls), tuple(funcs)


def classify_type(t: ir.Type) -> int:
    """Column of a type in the histograms (Halide's ``classify_type``)."""
    if t.is_float:
        return 6 if t.bits > 32 else 5
    if t.bits == 1:
        return 0
    if t.bits <= 8:
        return 1
    if t.bits <= 16:
        return 2
    if t.bits <= 32:
        return 3
    return 4


@dataclass
class PipelineFeatures:
    """Integer features of one stage in Halide's layout (see the module docstring)."""

    types_in_use: np.ndarray = field(default_factory=lambda: np.zeros(7, dtype=np.int64))
    op_histogram: np.ndarray = field(default_factory=lambda: np.zeros((24, 7), dtype=np.int64))
    # [pattern][access][type]: pattern 0 pointwise, 1 transpose, 2 broadcast, 3 slice
    accesses: np.ndarray = field(default_factory=lambda: np.zeros((4, 4, 7), dtype=np.int64))

    def matrix(self) -> np.ndarray:
        """The 40 x 7 block the cost network reads (rows ``ROW_NAMES``)."""
        return np.concatenate([self.op_histogram, self.accesses.reshape(16, 7)], axis=0)

    def vector(self) -> np.ndarray:
        """All 287 features in Halide's memory order (type mask first)."""
        return np.concatenate([self.types_in_use, self.op_histogram.ravel(), self.accesses.ravel()])

    @staticmethod
    def from_vector(v: Sequence[float]) -> "PipelineFeatures":
        a = np.rint(np.asarray(v, dtype=np.float64)).astype(np.int64)
        if a.size != NUM_PIPELINE_FEATURES:
            raise ValueError(f"expected {NUM_PIPELINE_FEATURES} pipeline features, got {a.size}")
        return PipelineFeatures(a[:7].copy(), a[7:175].reshape(24, 7).copy(), a[175:].reshape(4, 4, 7).copy())

    def differences(self, other: "PipelineFeatures") -> list[str]:
        """Readable list of the cells where two featurizations differ (``row[type]: self vs other``)."""
        mine, theirs = self.matrix(), other.matrix()
        out = []
        for r, c in zip(*np.nonzero(mine != theirs)):
            out.append(f"{ROW_NAMES[r]}[{TYPE_NAMES[c]}]: {int(mine[r, c])} vs {int(theirs[r, c])}")
        return out


@dataclass(frozen=True)
class LoadJacobian:
    """d(producer coordinate i) / d(consumer loop j) for one distinct access, and how many accesses
    share it. Entries are exact Fractions, or None where the derivative is not a constant."""

    matrix: Jacobian
    count: int = 1


# ---------------------------------------------------------------------------------------------
# Derivatives of index expressions (Halide's Featurizer::differentiate)


class Differentiator:
    """Rational derivative of an index Expr w.r.t. a loop variable, or None where not constant."""

    def __init__(self, loop_vars: Sequence[str]) -> None:
        self.loop_vars = set(loop_vars)
        self._memo: dict[int, tuple[frozenset[str], ir.Expr]] = {}

    def uses(self, e: ir.Expr, v: str, lets: dict[str, ir.Expr]) -> bool:
        names = self._names(e)
        if v in names:
            return True
        return any(n in lets and self.uses(lets[n], v, lets) for n in names)

    def _names(self, e: ir.Expr) -> frozenset[str]:
        """Variable names in ``e`` (memoised per node)."""
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[0]
        if isinstance(e, ir.Variable):
            r = frozenset((e.name,))
        else:
            kids = e.children()
            r = frozenset().union(*(self._names(c) for c in kids)) if kids else frozenset()
        self._memo[id(e)] = (r, e)
        return r

    def d(self, e: ir.Expr, v: str, lets: Optional[dict[str, ir.Expr]] = None) -> Optional[Fraction]:
        lets = lets if lets is not None else {}
        if not self.uses(e, v, lets):
            return Fraction(0)
        if isinstance(e, ir.Variable):
            if e.name == v:
                return Fraction(1)
            if e.name in self.loop_vars or e.param_name:
                return Fraction(0)
            if e.name in lets:
                return self.d(lets[e.name], v, lets)
            return None
        if isinstance(e, ir.Add):
            a, b = self.d(e.a, v, lets), self.d(e.b, v, lets)
            return None if a is None or b is None else a + b
        if isinstance(e, ir.Sub):
            a, b = self.d(e.a, v, lets), self.d(e.b, v, lets)
            return None if a is None or b is None else a - b
        if isinstance(e, ir.Mul):
            cb = ir.as_const_int(e.b)
            if cb is not None:
                a = self.d(e.a, v, lets)
                return None if a is None else a * cb
            return None
        if isinstance(e, ir.Div):
            cb = ir.as_const_int(e.b)
            if cb is not None and cb != 0:
                a = self.d(e.a, v, lets)
                return None if a is None else a / cb
            return None
        if isinstance(e, ir.Let):
            inner = dict(lets)
            inner[e.name] = e.value
            return self.d(e.body, v, inner)
        if isinstance(e, ir.Call) and e.name == "likely" and e.call_type in (CallType.Intrinsic,
                                                                             CallType.PureIntrinsic):
            return self.d(e.args[0], v, lets)
        return None

    def jacobian(self, args: Sequence[ir.Expr], loop_vars: Sequence[str],
                 lets: Optional[dict[str, ir.Expr]] = None) -> Jacobian:
        return tuple(tuple(self.d(a, v, lets) for v in loop_vars) for a in args)


def classify_access(matrix: Jacobian, n_loops: int) -> tuple[bool, bool, bool, bool]:
    """(pointwise, transpose, broadcast, slice) exactly as Halide's ``visit_memory_access``."""
    n_args = len(matrix)
    ones_row = [0] * n_args
    zeros_row = [0] * n_args
    ones_col = [0] * n_loops
    zeros_col = [0] * n_loops
    pointwise = n_args == n_loops
    for i, row in enumerate(matrix):
        for j in range(n_loops):
            dv = row[j]
            is0 = dv is not None and dv == 0
            is1 = dv is not None and dv == 1
            zeros_row[i] += is0
            ones_row[i] += is1
            zeros_col[j] += is0
            ones_col[j] += is1
            pointwise &= is1 if i == j else is0
    transpose = n_args == n_loops
    broadcast = True
    slice_ = True
    for i in range(n_args):
        single_one = ones_row[i] == 1 and zeros_row[i] == n_loops - 1
        all_zero = zeros_row[i] == n_loops
        transpose &= single_one
        broadcast &= single_one
        slice_ &= single_one or all_zero
    for j in range(n_loops):
        single_one = ones_col[j] == 1 and zeros_col[j] == n_args - 1
        all_zero = zeros_col[j] == n_args
        transpose &= single_one or all_zero
        broadcast &= single_one
        slice_ &= single_one
    return pointwise, transpose, broadcast, slice_


# ---------------------------------------------------------------------------------------------
# The featurizer


class StageFeaturizer:
    """Computes one stage's PipelineFeatures and the post-CSE load Jacobians per producer."""

    def __init__(self, func_name: str, loop_vars: Sequence[str], simplifier: Optional[Simplifier] = None) -> None:
        self.func_name = func_name
        self.loop_vars = tuple(loop_vars)
        self.diff = Differentiator(loop_vars)
        self.simplify = simplifier or Simplifier()
        self.features = PipelineFeatures()
        self.jacobians: dict[str, list[LoadJacobian]] = {}

    def _bucket(self, op: str, t: ir.Type) -> None:
        c = classify_type(t)
        self.features.types_in_use[c] = 1
        self.features.op_histogram[_OP[op], c] += 1

    def _access(self, name: str, t: ir.Type, args: Sequence[ir.Expr], kind: str,
                lets: dict[str, ir.Expr]) -> None:
        matrix = self.diff.jacobian(args, self.loop_vars, lets)
        flags = classify_access(matrix, len(self.loop_vars))
        c = classify_type(t)
        for p, flag in enumerate(flags):
            self.features.accesses[p, _ACC[kind], c] += int(flag)
        if kind in ("LoadFunc",):
            js = self.jacobians.setdefault(name, [])
            for i, j in enumerate(js):
                if j.matrix == matrix:
                    js[i] = LoadJacobian(matrix, j.count + 1)
                    break
            else:
                js.append(LoadJacobian(matrix, 1))

    def run(self, definition: ir.Definition) -> PipelineFeatures:
        for v in definition.values:
            store_args = [remove_lets(self.simplify(a)) for a in definition.args]
            self._access(self.func_name, v.type, store_args, "Store", {})
            self.visit_cse(remove_lets(self.simplify(v)))
        for a in definition.args:
            self.visit_cse(remove_lets(self.simplify(a)))
        return self.features

    def visit_cse(self, e: ir.Expr) -> None:
        """Count ops of ``e`` as Halide would after ``common_subexpression_elimination``."""
        gvn = GVN()
        ext = extracted(e, gvn)
        if not ext:
            self._visit(e, gvn, set(), {})
            return
        # Lets wrap the whole expression (one per extracted subexpression, typed as the result);
        # each extracted value is visited once, every use of it is a Variable.
        order: list[ir.Expr] = []
        seen: set[int] = set()
        for n in ir.walk(e):
            k = gvn.number(n)
            if k in ext and k not in seen:
                seen.add(k)
                order.append(n)
        lets: dict[str, ir.Expr] = {}
        for n in order:
            lets[f"__cse{gvn.number(n)}"] = n
        for n in reversed(order):  # innermost (dependencies) first, as Halide's let nest
            self._bucket("Let", e.type)
            self._visit(n, gvn, ext, lets, root=True)
        self._visit(e, gvn, ext, lets)

    def _visit(self, e: ir.Expr, gvn: GVN, ext: set[int], lets: dict[str, ir.Expr], root: bool = False) -> None:
        if ext and not root and gvn.number(e) in ext:
            self._bucket("Variable", e.type)
            return
        t = type(e)
        if t is ir.Variable:
            assert isinstance(e, ir.Variable)
            self._bucket("Param" if e.param_name else "Variable", e.type)
            return
        if t is ir.IntImm or t is ir.UIntImm or t is ir.FloatImm:
            self._bucket("Const", e.type)
            return
        if t is ir.Call:
            assert isinstance(e, ir.Call)
            for a in e.args:
                self._visit(a, gvn, ext, lets)
            if e.call_type == CallType.Halide:
                if e.name == self.func_name:
                    self._access(e.name, e.type, e.args, "LoadSelf", lets)
                    self._bucket("SelfCall", e.type)
                else:
                    self._access(e.name, e.type, e.args, "LoadFunc", lets)
                    self._bucket("FuncCall", e.type)
            elif e.call_type in (CallType.Extern, CallType.PureExtern, CallType.Intrinsic, CallType.PureIntrinsic):
                self._bucket("ExternCall", e.type)
            elif e.call_type == CallType.Image:
                self._access(e.name, e.type, e.args, "LoadImage", lets)
                self._bucket("ImageCall", e.type)
            return
        name = _COUNTED.get(t)
        if name is not None:
            self._bucket(name, e.type)
        for c in e.children():
            self._visit(c, gvn, ext, lets)


_COUNTED: dict[type, str] = {
    ir.Add: "Add", ir.Sub: "Sub", ir.Mul: "Mul", ir.Mod: "Mod", ir.Div: "Div", ir.Min: "Min",
    ir.Max: "Max", ir.EQ: "EQ", ir.NE: "NE", ir.LT: "LT", ir.LE: "LE", ir.GT: "LT", ir.GE: "LE",
    ir.And: "And", ir.Or: "Or", ir.Not: "Not", ir.Select: "Select", ir.Let: "Let"}

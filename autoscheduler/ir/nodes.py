"""Typed, immutable Python IR of a Halide pipeline: Types, every Expr node kind, Funcs, Parameters.

These mirror the tables of Halide's serialization schema (``halide_ir.fbs``), minus scheduling detail
the introspection never needs. Exprs are frozen dataclasses; a missing (undefined) Expr is ``None``.
The ``type`` of a node is a field where Halide stores it (immediates, Cast, Call, Variable, Load, ...)
and a property derived from the operands elsewhere, exactly as Halide's ``IR.cpp`` derives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Union

from .schema import CallType, DimType, ExternArgType, TypeCode, VectorReduceOp


@dataclass(frozen=True, slots=True)
class Type:
    """A Halide scalar or vector type: code (Int/UInt/Float/Handle/BFloat), bits, lanes."""

    code: TypeCode
    bits: int
    lanes: int = 1

    @property
    def is_float(self) -> bool:
        return self.code in (TypeCode.Float, TypeCode.BFloat)

    @property
    def is_int(self) -> bool:
        return self.code == TypeCode.Int

    @property
    def is_uint(self) -> bool:
        return self.code == TypeCode.UInt

    @property
    def is_bool(self) -> bool:
        return self.code == TypeCode.UInt and self.bits == 1

    @property
    def bytes(self) -> int:
        """Bytes of one lane (bool counts as one byte, as in Halide)."""
        return (self.bits + 7) // 8

    def with_lanes(self, lanes: int) -> "Type":
        return self if lanes == self.lanes else Type(self.code, self.bits, lanes)

    def element_of(self) -> "Type":
        return self.with_lanes(1)

    def __str__(self) -> str:
        names = {TypeCode.Int: "int", TypeCode.UInt: "uint", TypeCode.Float: "float",
                 TypeCode.Handle: "handle", TypeCode.BFloat: "bfloat"}
        s = "bool" if self.is_bool else f"{names.get(self.code, '?')}{self.bits}"
        return s if self.lanes == 1 else f"{s}x{self.lanes}"


INT32 = Type(TypeCode.Int, 32)
BOOL = Type(TypeCode.UInt, 1)


class Expr:
    """Base of every expression node. Subclasses are frozen dataclasses with a ``type``."""

    __slots__ = ()
    type: Type

    def children(self) -> tuple["Expr", ...]:
        return ()


@dataclass(frozen=True, slots=True)
class IntImm(Expr):
    value: int
    type: Type


@dataclass(frozen=True, slots=True)
class UIntImm(Expr):
    value: int
    type: Type


@dataclass(frozen=True, slots=True)
class FloatImm(Expr):
    value: float
    type: Type


@dataclass(frozen=True, slots=True)
class StringImm(Expr):
    value: str

    @property
    def type(self) -> Type:  # type: ignore[override]
        return Type(TypeCode.Handle, 64)


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    value: Expr
    type: Type

    def children(self) -> tuple[Expr, ...]:
        return (self.value,)


@dataclass(frozen=True, slots=True)
class Reinterpret(Expr):
    value: Expr
    type: Type

    def children(self) -> tuple[Expr, ...]:
        return (self.value,)


@dataclass(frozen=True, slots=True)
class BinaryOp(Expr):
    """Arithmetic binary node: the result has the operands' type."""

    a: Expr
    b: Expr

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.a.type

    def children(self) -> tuple[Expr, ...]:
        return (self.a, self.b)


@dataclass(frozen=True, slots=True)
class Add(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Sub(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Mul(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Div(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Mod(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Min(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class Max(BinaryOp):
    pass


@dataclass(frozen=True, slots=True)
class CmpOp(BinaryOp):
    """Comparison or logical binary node: the result is bool with the operands' lanes."""

    @property
    def type(self) -> Type:  # type: ignore[override]
        return BOOL.with_lanes(self.a.type.lanes)


@dataclass(frozen=True, slots=True)
class EQ(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class NE(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class LT(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class LE(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class GT(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class GE(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class And(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class Or(CmpOp):
    pass


@dataclass(frozen=True, slots=True)
class Not(Expr):
    a: Expr

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.a.type

    def children(self) -> tuple[Expr, ...]:
        return (self.a,)


@dataclass(frozen=True, slots=True)
class Select(Expr):
    condition: Expr
    true_value: Expr
    false_value: Expr

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.true_value.type

    def children(self) -> tuple[Expr, ...]:
        return (self.condition, self.true_value, self.false_value)


@dataclass(frozen=True, slots=True)
class ModulusRemainder:
    modulus: int
    remainder: int


@dataclass(frozen=True, slots=True)
class Load(Expr):
    name: str
    predicate: Optional[Expr]
    index: Optional[Expr]
    image_name: str
    param_name: str
    alignment: Optional[ModulusRemainder]
    type: Type

    def children(self) -> tuple[Expr, ...]:
        return tuple(e for e in (self.predicate, self.index) if e is not None)


@dataclass(frozen=True, slots=True)
class Ramp(Expr):
    base: Expr
    stride: Expr
    lanes: int

    @property
    def type(self) -> Type:  # type: ignore[override]
        t = self.base.type
        return t.with_lanes(t.lanes * self.lanes)

    def children(self) -> tuple[Expr, ...]:
        return (self.base, self.stride)


@dataclass(frozen=True, slots=True)
class Broadcast(Expr):
    value: Expr
    lanes: int

    @property
    def type(self) -> Type:  # type: ignore[override]
        t = self.value.type
        return t.with_lanes(t.lanes * self.lanes)

    def children(self) -> tuple[Expr, ...]:
        return (self.value,)


@dataclass(frozen=True, slots=True)
class Let(Expr):
    name: str
    value: Expr
    body: Expr

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.body.type

    def children(self) -> tuple[Expr, ...]:
        return (self.value, self.body)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A call: to a Func (``Halide``; ``name`` is the Func's name, ``func_index`` its index in the
    file's alphabetical Func list, ``value_index`` the Tuple element), an input image (``Image``;
    ``param_name`` names the ImageParam, ``image_name`` a constant Buffer), or an intrinsic/extern."""

    name: str
    args: tuple[Expr, ...]
    call_type: CallType
    func_index: int
    value_index: int
    image_name: str
    param_name: str
    type: Type

    def children(self) -> tuple[Expr, ...]:
        return self.args

    @property
    def is_func_call(self) -> bool:
        return self.call_type == CallType.Halide

    @property
    def is_image_call(self) -> bool:
        return self.call_type == CallType.Image


@dataclass(frozen=True, slots=True)
class ReductionVariable:
    """One RVar: its name and the min/extent Exprs of its range."""

    var: str
    min: Optional[Expr]
    extent: Optional[Expr]


@dataclass(frozen=True, slots=True)
class ReductionDomain:
    """An RDom: its RVars (innermost first) and its ``where`` predicate (``None`` if none)."""

    domain: tuple[ReductionVariable, ...]
    predicate: Optional[Expr]
    frozen: bool = False


@dataclass(frozen=True, slots=True)
class Variable(Expr):
    """A named variable: a pure Var, an RVar (``reduction_domain`` set), a Let name, a scalar Param
    (``param_name`` set, name == param name) or a buffer field such as ``input.extent.0``."""

    name: str
    type: Type
    param_name: str = ""
    image_name: str = ""
    reduction_domain: Optional[ReductionDomain] = None


@dataclass(frozen=True, slots=True)
class Shuffle(Expr):
    vectors: tuple[Expr, ...]
    indices: tuple[int, ...]

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.vectors[0].type.with_lanes(len(self.indices))

    def children(self) -> tuple[Expr, ...]:
        return self.vectors


@dataclass(frozen=True, slots=True)
class VectorReduce(Expr):
    value: Expr
    op: VectorReduceOp
    lanes: int

    @property
    def type(self) -> Type:  # type: ignore[override]
        return self.value.type.with_lanes(self.lanes)

    def children(self) -> tuple[Expr, ...]:
        return (self.value,)


AnyExpr = Union[IntImm, UIntImm, FloatImm, StringImm, Cast, Reinterpret, Add, Sub, Mul, Div, Mod,
                Min, Max, EQ, NE, LT, LE, GT, GE, And, Or, Not, Select, Load, Ramp, Broadcast, Let,
                Call, Variable, Shuffle, VectorReduce]


def walk(e: Optional[Expr]) -> Iterator[Expr]:
    """Every node of an Expr tree, parents before children (iterative: trees can be deep)."""
    if e is None:
        return
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        ch = n.children()
        if ch:
            stack.extend(reversed(ch))


def as_const_int(e: Optional[Expr]) -> Optional[int]:
    """The value of an integer immediate (IntImm / UIntImm, possibly under a Broadcast), else None."""
    if isinstance(e, (IntImm, UIntImm)):
        return e.value
    if isinstance(e, Broadcast):
        return as_const_int(e.value)
    return None


# ---------------------------------------------------------------------------------------------
# Funcs, definitions, parameters, the pipeline


@dataclass(frozen=True, slots=True)
class Dim:
    """A loop of a stage as scheduled (innermost first): its variable and whether it is pure."""

    var: str
    for_type: int
    dim_type: DimType

    @property
    def is_pure(self) -> bool:
        return self.dim_type == DimType.PureVar or self.dim_type == DimType.PureRVar

    @property
    def is_rvar(self) -> bool:
        return self.dim_type != DimType.PureVar


@dataclass(frozen=True, slots=True)
class Split:
    """A scheduling split/fuse/rename already applied to a stage (autoscheduling needs none)."""

    old_var: str
    outer: str
    inner: str
    split_type: int


@dataclass(frozen=True, slots=True)
class Specialization:
    condition: Optional[Expr]
    definition: Optional["Definition"]


@dataclass(frozen=True, slots=True)
class Definition:
    """One stage of a Func: ``values[i]`` is stored at ``args`` (pure Vars for the init definition,
    any Exprs for updates), under ``predicate``; ``rvars`` are the RVars the stage loops over
    (innermost first, with min/extent Exprs); ``dims`` its loop order as scheduled (innermost
    first, ``__outermost`` last)."""

    is_init: bool
    values: tuple[Expr, ...]
    args: tuple[Expr, ...]
    predicate: Optional[Expr]
    rvars: tuple[ReductionVariable, ...]
    dims: tuple[Dim, ...]
    splits: tuple[Split, ...] = ()
    specializations: tuple[Specialization, ...] = ()
    source_location: str = ""


@dataclass(frozen=True, slots=True)
class Bound:
    """``Func.bound`` / ``Func.set_estimate`` on one pure dimension (``var``)."""

    var: str
    min: Optional[Expr]
    extent: Optional[Expr]
    modulus: Optional[Expr] = None
    remainder: Optional[Expr] = None


@dataclass(frozen=True, slots=True)
class LoopLevel:
    func_name: str
    stage_index: int
    var_name: str
    is_rvar: bool

    @property
    def is_inlined(self) -> bool:
        return self.var_name == "__inlined" or (self.func_name == "" and self.var_name == "")

    @property
    def is_root(self) -> bool:
        return self.var_name == "__root"


@dataclass(frozen=True, slots=True)
class ExternArgument:
    arg_type: ExternArgType
    func_index: int
    buffer_name: str
    expr: Optional[Expr]
    image_param_name: str


@dataclass(frozen=True, slots=True)
class Func:
    """A Halide Function: pure ``args``, per-value ``output_types``, the init definition and the
    updates, the estimates / bounds of its pure dims and, for an extern stage, the extern call."""

    name: str
    origin_name: str
    args: tuple[str, ...]
    output_types: tuple[Type, ...]
    init: Optional[Definition]
    updates: tuple[Definition, ...]
    estimates: tuple[Bound, ...]
    bounds: tuple[Bound, ...]
    compute_level: Optional[LoopLevel] = None
    store_level: Optional[LoopLevel] = None
    required_types: tuple[Type, ...] = ()
    required_dims: int = -1
    extern_function_name: str = ""
    extern_arguments: tuple[ExternArgument, ...] = ()
    extern_proxy_expr: Optional[Expr] = None
    output_buffer_names: tuple[str, ...] = ()
    frozen: bool = False

    @property
    def dimensions(self) -> int:
        return len(self.args)

    @property
    def is_extern(self) -> bool:
        return self.extern_function_name != ""

    @property
    def definitions(self) -> tuple[Definition, ...]:
        """The stages: the init definition, then each update."""
        return ((self.init,) if self.init is not None else ()) + self.updates

    def estimate(self, var: str) -> Optional[Bound]:
        for b in self.estimates:
            if b.var == var:
                return b
        return None


@dataclass(frozen=True, slots=True)
class BufferConstraint:
    """Constraints and estimates of one dimension of a buffer Parameter (each an Expr or None)."""

    min: Optional[Expr] = None
    extent: Optional[Expr] = None
    stride: Optional[Expr] = None
    min_estimate: Optional[Expr] = None
    extent_estimate: Optional[Expr] = None


@dataclass(frozen=True, slots=True)
class Parameter:
    """An ImageParam (``is_buffer``) or scalar Param. ``external`` Parameters are those the pipeline
    reads (Halide writes only their name, type and dimensions into the file); their estimates come
    from the live ``hl.Parameter`` when decoding from an ``hl.Pipeline``, else they are None."""

    name: str
    is_buffer: bool
    type: Type
    dimensions: int
    external: bool
    buffer_constraints: tuple[BufferConstraint, ...] = ()
    scalar_estimate: Optional[Expr] = None
    scalar_min: Optional[Expr] = None
    scalar_max: Optional[Expr] = None
    scalar_default: Optional[Expr] = None
    scalar_data: Optional[int] = None
    host_alignment: int = 0


@dataclass(frozen=True, slots=True)
class BufferDim:
    min: int
    extent: int
    stride: int


@dataclass(frozen=True, slots=True)
class Buffer:
    """A constant ``hl.Buffer`` embedded in the pipeline (e.g. a lookup table), with its bytes."""

    name: str
    type: Type
    dims: tuple[BufferDim, ...]
    data: bytes = field(repr=False, default=b"")


@dataclass(frozen=True)
class Pipeline:
    """A decoded pipeline. ``funcs`` are in realization order (``hl.Pipeline.get_func(i)`` order),
    producers before consumers; ``file_func_names`` is the file's own (alphabetical) order, which
    ``Call.func_index`` refers to."""

    funcs: tuple[Func, ...]
    output_names: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    buffers: tuple[Buffer, ...]
    file_func_names: tuple[str, ...]
    halide_version: str
    serialization_version: str
    num_requirements: int = 0
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({f.name: i for i, f in enumerate(self.funcs)})

    def index_of(self, name: str) -> int:
        """Realization index of a Func by name (KeyError if absent)."""
        return self._index[name]

    def func(self, name: str) -> Func:
        return self.funcs[self._index[name]]

    def parameter(self, name: str) -> Optional[Parameter]:
        for p in self.parameters:
            if p.name == name:
                return p
        return None

    @property
    def outputs(self) -> tuple[Func, ...]:
        return tuple(self.func(n) for n in self.output_names)

"""Halide's IR in Python: decode ``hl.serialize_pipeline`` bytes into typed frozen dataclasses.

``decode_pipeline(hl.Pipeline)`` / ``decode_bytes(bytes)`` return an ``ir.Pipeline`` (Funcs in
realization order); ``canonical_hash(hl.Pipeline)`` is the name-independent sha256 key of the
algorithm plus its estimates. Only this package reads Halide's IR.
"""

from __future__ import annotations

from .canonical import canonical_hash, canonical_text, strip_suffix
from .decode import (check_version, decode_bytes, decode_pipeline, direct_callees, read_versions,
                     serialize, topological_order)
from .printer import expr_str
from .nodes import (BOOL, INT32, Add, And, Bound, Broadcast, Buffer, BufferConstraint, Call, Cast,
                    CmpOp, BinaryOp, Definition, Dim, Div, EQ, Expr, ExternArgument, FloatImm, Func, GE,
                    GT, IntImm, LE, LT, Let, Load, LoopLevel, Max, Min, Mod, Mul, NE, Not, Or,
                    Parameter, Pipeline, Ramp, ReductionDomain, ReductionVariable, Reinterpret,
                    Select, Shuffle, Specialization, Split, StringImm, Sub, Type, UIntImm, Variable,
                    VectorReduce, as_const_int, walk)
from .schema import (SUPPORTED_SERIALIZATION_VERSIONS, CallType, DimType, ExprKind, TypeCode,
                     VectorReduceOp)

__all__ = [
    "canonical_hash", "canonical_text", "strip_suffix", "expr_str", "check_version", "decode_bytes",
    "decode_pipeline", "direct_callees", "read_versions", "serialize", "topological_order",
    "BOOL", "INT32", "Add", "And", "Bound", "Broadcast", "Buffer", "BufferConstraint", "Call", "Cast",
    "CmpOp", "BinaryOp", "Definition", "Dim", "Div", "EQ", "Expr", "ExternArgument", "FloatImm",
    "Func", "GE", "GT", "IntImm", "LE", "LT", "Let", "Load", "LoopLevel", "Max", "Min", "Mod", "Mul",
    "NE", "Not", "Or", "Parameter", "Pipeline", "Ramp", "ReductionDomain", "ReductionVariable",
    "Reinterpret", "Select", "Shuffle", "Specialization", "Split", "StringImm", "Sub", "Type",
    "UIntImm", "Variable", "VectorReduce", "as_const_int", "walk",
    "SUPPORTED_SERIALIZATION_VERSIONS", "CallType", "DimType", "ExprKind", "TypeCode", "VectorReduceOp",
]

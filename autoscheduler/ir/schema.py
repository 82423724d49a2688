"""The layout of Halide's serialized pipeline (``src/halide_ir.fbs``), as data.

One source of truth for the reader: every table's fields in declaration order, from which the
FlatBuffers vtable slot of each field follows (a union field or a vector of unions takes two slots: the
type tag first, then the value). Written against the schema of Halide v21.0.0, serialization version
18.0.1 (compatible with the 18.0.0 layout: only trailing fields and enum values differ, which a reader
does not depend on).

Only the tables the introspection reads are listed; Stmt bodies (``Pipeline.requirements``) are not
decoded.
"""

from __future__ import annotations

from enum import IntEnum

#: Serialization versions whose layout this reader follows (``Pipeline.serialization_version``).
SUPPORTED_SERIALIZATION_VERSIONS: tuple[str, ...] = ("18.0.0", "18.0.1")

# Field kinds: "u:<Union>" a union (2 slots), "[u:<Union>]" a vector of unions (2 slots), anything
# else one slot.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "Range": (("min", "u:Expr"), ("extent", "u:Expr")),
    "ModulusRemainder": (("modulus", "int64"), ("remainder", "int64")),
    "IntImm": (("value", "int64"), ("type", "Type")),
    "UIntImm": (("value", "uint64"), ("type", "Type")),
    "FloatImm": (("value", "float64"), ("type", "Type")),
    "StringImm": (("value", "string"),),
    "Cast": (("value", "u:Expr"), ("type", "Type")),
    "Reinterpret": (("value", "u:Expr"), ("type", "Type")),
    "BinaryOp": (("a", "u:Expr"), ("b", "u:Expr")),  # Add, Sub, ..., Or share this layout
    "Not": (("a", "u:Expr"),),
    "Select": (("condition", "u:Expr"), ("true_value", "u:Expr"), ("false_value", "u:Expr")),
    "Load": (("name", "string"), ("predicate", "u:Expr"), ("index", "u:Expr"),
             ("image_name", "string"), ("param_name", "string"), ("alignment", "ModulusRemainder"),
             ("type", "Type")),
    "Ramp": (("base", "u:Expr"), ("stride", "u:Expr"), ("lanes", "int32")),
    "Broadcast": (("value", "u:Expr"), ("lanes", "int32")),
    "Let": (("name", "string"), ("value", "u:Expr"), ("body", "u:Expr")),
    "Call": (("name", "string"), ("args", "[u:Expr]"), ("call_type", "uint8"),
             ("func_index", "int32"), ("value_index", "int32"), ("image_name", "string"),
             ("param_name", "string"), ("type", "Type")),
    "ReductionVariable": (("var", "string"), ("min", "u:Expr"), ("extent", "u:Expr")),
    "ReductionDomain": (("defined", "bool"), ("domain", "[ReductionVariable]"),
                        ("predicate", "u:Expr"), ("frozen", "bool")),
    "Variable": (("name", "string"), ("type", "Type"), ("param_name", "string"),
                 ("image_name", "string"), ("reduction_domain", "ReductionDomain")),
    "Shuffle": (("vectors", "[u:Expr]"), ("indices", "[int32]")),
    "VectorReduce": (("value", "u:Expr"), ("reduction_op", "uint8"), ("lanes", "int32")),
    "UndefinedExpr": (),
    "Type": (("code", "int8"), ("bits", "uint8"), ("lanes", "int32")),
    "Bound": (("var", "string"), ("min", "u:Expr"), ("extent", "u:Expr"), ("modulus", "u:Expr"),
              ("remainder", "u:Expr")),
    "StorageDim": (("var", "string"), ("alignment", "u:Expr"), ("bound", "u:Expr"),
                   ("fold_factor", "u:Expr"), ("fold_forward", "bool")),
    "LoopLevel": (("func_name", "string"), ("stage_index", "int32"), ("var_name", "string"),
                  ("is_rvar", "bool"), ("locked", "bool")),
    "WrapperRef": (("func_name", "string"), ("func_index", "int32")),
    "FuncSchedule": (("store_level", "LoopLevel"), ("compute_level", "LoopLevel"),
                     ("hoist_storage_level", "LoopLevel"), ("storage_dims", "[StorageDim]"),
                     ("bounds", "[Bound]"), ("estimates", "[Bound]"), ("wrappers", "[WrapperRef]"),
                     ("memory_type", "int8"), ("memoized", "bool"), ("async", "bool"),
                     ("ring_buffer", "u:Expr"), ("memoize_eviction_key", "u:Expr")),
    "Specialization": (("condition", "u:Expr"), ("definition", "Definition"),
                       ("failure_message", "string")),
    "Split": (("old_var", "string"), ("outer", "string"), ("inner", "string"), ("factor", "u:Expr"),
              ("exact", "bool"), ("tail", "uint8"), ("split_type", "uint8")),
    "Dim": (("var", "string"), ("for_type", "int8"), ("device_api", "int8"), ("dim_type", "uint8"),
            ("partition_policy", "int8")),
    "FuseLoopLevel": (("fuse_level", "LoopLevel"), ("align_dimension_names", "[string]"),
                      ("align_strategies", "[uint8]")),
    "FusedPair": (("func_1", "string"), ("func_2", "string"), ("stage_1", "int32"),
                  ("stage_2", "int32"), ("var_name", "string")),
    "StageSchedule": (("rvars", "[ReductionVariable]"), ("splits", "[Split]"), ("dims", "[Dim]"),
                      ("prefetches", "[PrefetchDirective]"), ("fuse_level", "FuseLoopLevel"),
                      ("fused_pairs", "[FusedPair]"), ("touched", "bool"),
                      ("allow_race_conditions", "bool"), ("atomic", "bool"),
                      ("override_atomic_associativity_test", "bool")),
    "Definition": (("is_init", "bool"), ("predicate", "u:Expr"), ("values", "[u:Expr]"),
                   ("args", "[u:Expr]"), ("stage_schedule", "StageSchedule"),
                   ("specializations", "[Specialization]"), ("source_location", "string")),
    "BufferConstraint": (("min", "u:Expr"), ("extent", "u:Expr"), ("stride", "u:Expr"),
                         ("min_estimate", "u:Expr"), ("extent_estimate", "u:Expr")),
    "Parameter": (("defined", "bool"), ("is_buffer", "bool"), ("type", "Type"),
                  ("dimensions", "int32"), ("name", "string"), ("host_alignment", "int32"),
                  ("buffer_constraints", "[BufferConstraint]"), ("memory_type", "int8"),
                  ("scalar_data", "uint64"), ("scalar_default", "u:Expr"),
                  ("scalar_min", "u:Expr"), ("scalar_max", "u:Expr"),
                  ("scalar_estimate", "u:Expr")),
    "ExternalParameter": (("is_buffer", "bool"), ("type", "Type"), ("dimensions", "int32"),
                          ("name", "string")),
    "ExternFuncArgument": (("arg_type", "uint8"), ("func_index", "int32"),
                           ("buffer_name", "string"), ("expr", "u:Expr"),
                           ("image_param_name", "string")),
    "BufferDimension": (("min", "int32"), ("extent", "int32"), ("stride", "int32")),
    "Buffer": (("defined", "bool"), ("name", "string"), ("type", "Type"), ("dimensions", "int32"),
               ("dims", "[BufferDimension]"), ("data", "[uint8]")),
    "Func": (("name", "string"), ("origin_name", "string"), ("output_types", "[Type]"),
             ("required_types", "[Type]"), ("required_dims", "int32"), ("args", "[string]"),
             ("func_schedule", "FuncSchedule"), ("init_def", "Definition"),
             ("updates", "[Definition]"), ("debug_file", "string"),
             ("output_buffers_names", "[string]"), ("extern_arguments", "[ExternFuncArgument]"),
             ("extern_function_name", "string"), ("extern_mangling", "uint8"),
             ("extern_function_device_api", "int8"), ("extern_proxy_expr", "u:Expr"),
             ("trace_loads", "bool"), ("trace_stores", "bool"), ("trace_realizations", "bool"),
             ("trace_tags", "[string]"), ("no_profiling", "bool"), ("frozen", "bool")),
    "Pipeline": (("funcs", "[Func]"), ("output_names", "[string]"), ("requirements", "[u:Stmt]"),
                 ("func_names_in_order", "[string]"), ("parameters", "[Parameter]"),
                 ("external_parameters", "[ExternalParameter]"), ("buffers", "[Buffer]"),
                 ("halide_version", "string"), ("serialization_version", "string")),
}


def _vtable_offsets() -> dict[str, dict[str, int]]:
    """Byte offset in the vtable of every field (``<field>_type`` for a union's tag)."""
    out: dict[str, dict[str, int]] = {}
    for table, fields in TABLES.items():
        slots: dict[str, int] = {}
        slot = 0
        for name, kind in fields:
            if kind.startswith("u:") or kind.startswith("[u:"):
                slots[name + "_type"] = 4 + 2 * slot
                slot += 1
            slots[name] = 4 + 2 * slot
            slot += 1
        out[table] = slots
    return out


VT: dict[str, dict[str, int]] = _vtable_offsets()


class ExprKind(IntEnum):
    """The tags of ``union Expr`` (0 is FlatBuffers' NONE)."""

    NONE = 0
    IntImm = 1
    UIntImm = 2
    FloatImm = 3
    StringImm = 4
    Cast = 5
    Reinterpret = 6
    Add = 7
    Sub = 8
    Mul = 9
    Div = 10
    Mod = 11
    Min = 12
    Max = 13
    EQ = 14
    NE = 15
    LT = 16
    LE = 17
    GT = 18
    GE = 19
    And = 20
    Or = 21
    Not = 22
    Select = 23
    Load = 24
    Ramp = 25
    Broadcast = 26
    Let = 27
    Call = 28
    Variable = 29
    Shuffle = 30
    VectorReduce = 31
    UndefinedExpr = 32


class TypeCode(IntEnum):
    """``enum TypeCode`` (same values as ``halide_type_code_t``)."""

    Int = 0
    UInt = 1
    Float = 2
    Handle = 3
    BFloat = 4


class CallType(IntEnum):
    """``enum CallType``."""

    Image = 0
    Extern = 1
    ExternCPlusPlus = 2
    PureExtern = 3
    Halide = 4
    Intrinsic = 5
    PureIntrinsic = 6


class VectorReduceOp(IntEnum):
    """``enum VectorReduceOp``."""

    Add = 0
    SaturatingAdd = 1
    Mul = 2
    Min = 3
    Max = 4
    And = 5
    Or = 6


class DimType(IntEnum):
    """``enum DimType``: which loops of a stage are pure."""

    PureVar = 0
    PureRVar = 1
    ImpureRVar = 2


class ForType(IntEnum):
    """``enum ForType``."""

    Serial = 0
    Parallel = 1
    Vectorized = 2
    Unrolled = 3
    Extern = 4
    GPUBlock = 5
    GPUThread = 6
    GPULane = 7


class ExternArgType(IntEnum):
    """``enum ExternFuncArgumentType``."""

    UndefinedArg = 0
    FuncArg = 1
    BufferArg = 2
    ExprArg = 3
    ImageParamArg = 4


class MemoryType(IntEnum):
    """``enum MemoryType``."""

    Auto = 0
    Heap = 1
    Stack = 2
    Register = 3
    GPUShared = 4
    GPUTexture = 5
    LockedCache = 6
    VTCM = 7
    AMXTile = 8

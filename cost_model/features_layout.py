"""The Adams2019 feature layout: the one place that says which number sits where.

Halide's Adams2019 autoscheduler (``src/autoschedulers/adams2019/Featurization.h``) describes every
stage of a pipeline with two blocks of numbers:

* **schedule features**: 39 doubles that depend on the schedule (``ScheduleFeatures``, version 3),
  listed in :data:`SCHEDULE_FEATURE_NAMES` in the order the cost network reads them;
* **pipeline features**: 287 ints that depend only on the algorithm (``PipelineFeatures``,
  version 3): a 7-entry mask of the scalar types in use, a 24x7 histogram of operations by result
  type, and four 4x7 access-pattern matrices. The network ignores the mask and reads the remaining
  280 ints as a 40x7 matrix (:data:`PIPELINE_ROW_NAMES` by :data:`SCALAR_TYPE_NAMES`).

A *featurization* (``AutoSchedulerResults.featurization``, or a generator's ``.featurization`` file)
is a run of float32 records of ``39 + 287 = 326`` values, one per stage: for each non-input Func in
the autoscheduler's DAG order (outputs first, inputs last), its stages from the last update
definition back to the pure definition. The cost model numbers stages in the same order, and stage
0 (the first output's last stage) is the one its store-cost term treats as "the final output".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscheduler.errors import ToolkitError

PIPELINE_FEATURES_VERSION = 3
"""``PipelineFeatures::version()`` of the layout described here (and of Halide's baseline weights)."""

SCHEDULE_FEATURES_VERSION = 3
"""``ScheduleFeatures::version()`` of the layout described here (and of Halide's baseline weights)."""

# --- schedule features ---------------------------------------------------------------------------

_SCHEDULE_FEATURES: tuple[tuple[str, str], ...] = (
    ("num_realizations",
     "Times storage for the stage is allocated: the product of the loops outside its store site."),
    ("num_productions",
     "Times a tile of the stage is computed: the product of the loops outside its compute site "
     "(at least num_realizations)."),
    ("points_computed_per_realization", "Innermost-loop iterations per allocation."),
    ("points_computed_per_production", "Innermost-loop iterations per computed tile."),
    ("points_computed_total",
     "Innermost-loop iterations over the whole program (about num_realizations times the "
     "per-realization count; sliding windows make it approximate)."),
    ("points_computed_minimum",
     "Points the output strictly needs; independent of the schedule, a reference for recompute."),
    ("innermost_loop_extent", "Trip count of the innermost loop nest."),
    ("innermost_pure_loop_extent", "Trip count of the pure (non-reduction) innermost loops."),
    ("unrolled_loop_extent", "Product of the unrolling factors, if the loop is unrolled."),
    ("inner_parallelism",
     "Parallel tasks launched to produce the stage; 1 unless it is computed at root, where all "
     "parallelism is placed."),
    ("outer_parallelism",
     "How many instances of the stage may run at once: the product of the enclosing parallel "
     "loops (1 at root)."),
    ("bytes_at_realization",
     "Bytes of the region computed at the store site (storage folding not counted)."),
    ("bytes_at_production",
     "Bytes of the region computed per tile at the compute site (storage folding counted)."),
    ("bytes_at_root", "Bytes the stage would take if computed at root; a schedule-independent reference."),
    ("innermost_bytes_at_realization", "bytes_at_realization along the innermost storage dimension only."),
    ("innermost_bytes_at_production", "bytes_at_production along the innermost storage dimension only."),
    ("innermost_bytes_at_root", "bytes_at_root along the innermost storage dimension only."),
    ("inlined_calls", "For an inlined Func: the total number of calls made to it."),
    ("unique_bytes_read_per_realization",
     "Unique bytes loaded from all inputs over one trip of the loop containing the allocation."),
    ("unique_lines_read_per_realization",
     "Unique contiguous segments (lines) loaded over one trip of the loop containing the allocation."),
    ("allocation_bytes_read_per_realization",
     "Sum of the sizes of the allocations read at this site: a hint of their locality."),
    ("working_set", "Sum of the temporary allocations live while one tile of the stage is computed."),
    ("vector_size", "SIMD lanes the stage is computed with."),
    ("native_vector_size",
     "Native SIMD width for the narrowest type the stage uses; a schedule-independent reference."),
    ("num_vectors", "SIMD vectors computed."),
    ("num_scalars", "Scalars computed (loop tails, unvectorised loops)."),
    ("scalar_loads_per_vector",
     "Loads done as scalars per vector computed (gathers), amortised over unrolled loops."),
    ("vector_loads_per_vector", "Vector loads per vector computed."),
    ("scalar_loads_per_scalar", "Loads per scalar computed."),
    ("bytes_at_task",
     "Memory footprint written by one parallel task (the union of regions when the stage is "
     "computed finer than a consumer's task)."),
    ("innermost_bytes_at_task", "bytes_at_task along the innermost storage dimension only."),
    ("unique_bytes_read_per_vector", "Memory footprint read while computing one vector."),
    ("unique_lines_read_per_vector", "Contiguous segments read while computing one vector."),
    ("unique_bytes_read_per_task",
     "Bytes a parallel task reads from data computed outside it (traffic from other cores)."),
    ("unique_lines_read_per_task", "Contiguous segments a parallel task reads from outside it."),
    ("working_set_at_task", "Sum of the live allocations at the parallel-task site."),
    ("working_set_at_production", "Sum of the live allocations at the compute site."),
    ("working_set_at_realization", "Sum of the live allocations at the store site."),
    ("working_set_at_root", "Sum of the live allocations at root."),
)

SCHEDULE_FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in _SCHEDULE_FEATURES)
"""The 39 schedule features in Adams2019's order (``ScheduleFeatures`` field order)."""

SCHEDULE_FEATURE_DOCS: dict[str, str] = dict(_SCHEDULE_FEATURES)
"""What each schedule feature measures, in our words."""

SCHEDULE_FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(SCHEDULE_FEATURE_NAMES)}
"""Schedule feature name -> position in a record and in the network's input."""

NUM_SCHEDULE_FEATURES = len(SCHEDULE_FEATURE_NAMES)
assert NUM_SCHEDULE_FEATURES == 39

EXTRA_INPUT_NAMES: tuple[str, ...] = ("scatter_store_lanes", "gathered_self_load_lanes", "accumulator_stall")
"""Per-stage schedule inputs beyond Halide's 39 that our network can take (computed by
``autoscheduler.features.extra_inputs``, which says what each holds); not part of a record."""

NUM_EXTRA_INPUTS = len(EXTRA_INPUT_NAMES)

ACCUMULATOR_STALL = EXTRA_INPUT_NAMES.index("accumulator_stall")
"""The extra input that is the kernel factor less one (``kernel_terms.stage_factors - 1``)."""


def kernel_factors(extra: Any) -> Any:
    """Each stage's kernel factor (the search's multiplier of its predicted cost) from its extra
    inputs [..., 3], so that who has the extra inputs never computes the factors a second time."""
    return 1.0 + extra[..., ACCUMULATOR_STALL]

# --- pipeline features ---------------------------------------------------------------------------

SCALAR_TYPE_NAMES: tuple[str, ...] = ("Bool", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double")
"""Columns of every pipeline-feature matrix: result-type buckets (signed and unsigned ints share a
bucket of their width)."""

OP_TYPE_NAMES: tuple[str, ...] = (
    "Const", "Cast", "Variable", "Param", "Add", "Sub", "Mod", "Mul", "Div", "Min", "Max",
    "EQ", "NE", "LT", "LE", "And", "Or", "Not", "Select",
    "ImageCall",   # loads from an input buffer
    "FuncCall",    # calls to another pipeline stage
    "SelfCall",    # recursive calls of a Func to itself
    "ExternCall",  # math intrinsics, typically
    "Let",
)
"""Rows of the operation histogram (``PipelineFeatures::OpType``)."""

ACCESS_TYPE_NAMES: tuple[str, ...] = ("LoadFunc", "LoadSelf", "LoadImage", "Store")
"""Rows of each access-pattern matrix (``PipelineFeatures::AccessType``)."""

ACCESS_PATTERN_NAMES: tuple[str, ...] = ("pointwise", "transpose", "broadcast", "slice")
"""The four access-pattern matrices in memory order. Halide issue #8692: the transpose and
broadcast classifications are swapped relative to their own comments in Halide; the shipped weights
were trained that way, so the names here follow the field names, not the comments."""

PIPELINE_ROW_NAMES: tuple[str, ...] = (
    tuple(f"op_{op}" for op in OP_TYPE_NAMES)
    + tuple(f"{pattern}_{access}" for pattern in ACCESS_PATTERN_NAMES for access in ACCESS_TYPE_NAMES)
)
"""The 40 rows of the network's pipeline input: 24 operation rows, then pattern-major access rows
(``pointwise_LoadFunc``, ``pointwise_LoadSelf``, ..., ``slice_Store``)."""

TYPE_MASK_SIZE = len(SCALAR_TYPE_NAMES)
"""Leading ``types_in_use`` entries of ``PipelineFeatures``; not fed to the network."""

PIPELINE_ROWS = len(PIPELINE_ROW_NAMES)
PIPELINE_COLS = len(SCALAR_TYPE_NAMES)
NUM_PIPELINE_FEATURES = TYPE_MASK_SIZE + PIPELINE_ROWS * PIPELINE_COLS
"""Ints in ``PipelineFeatures``: 7 + 24*7 + 4*4*7 = 287."""

RECORD_FLOATS = NUM_SCHEDULE_FEATURES + NUM_PIPELINE_FEATURES
"""Float32 values per stage in a featurization: 39 + 287 = 326."""

RECORD_BYTES = 4 * RECORD_FLOATS

assert (PIPELINE_ROWS, PIPELINE_COLS, NUM_PIPELINE_FEATURES) == (40, 7, 287)

PIPELINE_OFFSET = NUM_SCHEDULE_FEATURES + TYPE_MASK_SIZE
"""Offset of the network's 40x7 block inside a record: record[46:326] is that block, row-major
(row = op or access kind, column = scalar type), exactly how ``DefaultCostModel`` copies it."""


def pipeline_row(name: str) -> int:
    """The row of the 40x7 pipeline block named ``op_<Op>`` or ``<pattern>_<Access>``."""
    return PIPELINE_ROW_NAMES.index(name)


@dataclass(frozen=True)
class Featurization:
    """A featurization split into the network's inputs, stages in the cost model's order.

    ``pipeline``: float32 [stages, 40, 7]; ``schedule``: float32 [stages, 39];
    ``type_mask``: float32 [stages, 7] (``types_in_use``, kept for inspection only).
    """

    pipeline: np.ndarray
    schedule: np.ndarray
    type_mask: np.ndarray

    @property
    def num_stages(self) -> int:
        return int(self.schedule.shape[0])


class FeaturizationFormatError(ToolkitError, ValueError):
    """Bytes that are not a whole number of Adams2019 stage records."""


def parse_featurization(data: bytes | bytearray | memoryview) -> Featurization:
    """Split Adams2019 featurization bytes (little-endian float32 records of 326 values)."""
    raw = bytes(data)
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise FeaturizationFormatError(
            f"featurization of {len(raw)} bytes is not a positive multiple of {RECORD_BYTES} "
            f"(one {RECORD_FLOATS}-float record per stage)")
    records = np.frombuffer(raw, dtype="<f4").reshape(-1, RECORD_FLOATS).astype(np.float32)
    schedule = records[:, :NUM_SCHEDULE_FEATURES]
    mask = records[:, NUM_SCHEDULE_FEATURES:PIPELINE_OFFSET]
    pipeline = records[:, PIPELINE_OFFSET:].reshape(-1, PIPELINE_ROWS, PIPELINE_COLS)
    return Featurization(pipeline=np.ascontiguousarray(pipeline),
                         schedule=np.ascontiguousarray(schedule),
                         type_mask=np.ascontiguousarray(mask))


def build_featurization(pipeline: np.ndarray, schedule: np.ndarray,
                        type_mask: np.ndarray | None = None) -> bytes:
    """The inverse of :func:`parse_featurization`: records in Halide's byte layout.

    ``type_mask`` defaults to "a type is in use if any op-histogram entry of it is non-zero".
    """
    pipeline = np.asarray(pipeline, dtype=np.float32).reshape(-1, PIPELINE_ROWS, PIPELINE_COLS)
    schedule = np.asarray(schedule, dtype=np.float32).reshape(-1, NUM_SCHEDULE_FEATURES)
    if pipeline.shape[0] != schedule.shape[0]:
        raise ValueError(f"{pipeline.shape[0]} pipeline-feature stages but "
                         f"{schedule.shape[0]} schedule-feature stages")
    if type_mask is None:
        type_mask = (pipeline[:, :len(OP_TYPE_NAMES), :] != 0).any(axis=1).astype(np.float32)
    type_mask = np.asarray(type_mask, dtype=np.float32).reshape(-1, TYPE_MASK_SIZE)
    records = np.concatenate([schedule, type_mask, pipeline.reshape(pipeline.shape[0], -1)], axis=1)
    return records.astype("<f4").tobytes()


__all__ = [
    "PIPELINE_FEATURES_VERSION", "SCHEDULE_FEATURES_VERSION",
    "SCHEDULE_FEATURE_NAMES", "SCHEDULE_FEATURE_DOCS", "SCHEDULE_FEATURE_INDEX", "NUM_SCHEDULE_FEATURES",
    "SCALAR_TYPE_NAMES", "OP_TYPE_NAMES", "ACCESS_TYPE_NAMES", "ACCESS_PATTERN_NAMES",
    "PIPELINE_ROW_NAMES", "TYPE_MASK_SIZE", "PIPELINE_ROWS", "PIPELINE_COLS", "NUM_PIPELINE_FEATURES",
    "RECORD_FLOATS", "RECORD_BYTES", "PIPELINE_OFFSET", "pipeline_row",
    "Featurization", "FeaturizationFormatError", "parse_featurization", "build_featurization",
]

"""The FunctionDAG of a pipeline (stages, loops, edges, footprints, Adams2019 pipeline features).

``FunctionDAG.from_pipeline(hl.Pipeline)`` builds it; ``describe(dag)`` prints it.
"""

from __future__ import annotations

from .describe import describe
from .features import (ACCESS_NAMES, OP_NAMES, PATTERN_NAMES, ROW_NAMES, TYPE_NAMES, LoadJacobian,
                       PipelineFeatures, classify_access)
from .graph import (Box, BoundInfo, CallSite, Edge, FunctionDAG, Loop, Node, Span, Stage, box_points)

__all__ = ["describe", "ACCESS_NAMES", "OP_NAMES", "PATTERN_NAMES", "ROW_NAMES", "TYPE_NAMES",
           "LoadJacobian", "PipelineFeatures", "classify_access", "Box", "BoundInfo", "CallSite", "Edge",
           "FunctionDAG", "Loop", "Node", "Span", "Stage", "box_points"]

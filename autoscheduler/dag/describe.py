"""Text description of a FunctionDAG (``autoschedule run PIPELINE --describe``)."""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

from .graph import Edge, FunctionDAG, box_points


def _frac(c: Optional[Fraction]) -> str:
    if c is None:
        return "_"
    return str(c.numerator) if c.denominator == 1 else f"{c.numerator}/{c.denominator}"


def _edge_line(e: Edge) -> str:
    fp = " x ".join(f"[{s.min},{s.max}]" for s in e.footprint_at_estimates) or "scalar"
    flags = []
    if not e.all_bounds_linear:
        flags.append("non-affine")
    if e.data_dependent:
        flags.append("data-dependent (estimate fallback)")
    jac = "; ".join(f"{j.count}x[" + " | ".join(" ".join(_frac(c) for c in row) for row in j.matrix) + "]"
                    for j in e.load_jacobians)
    extra = f" ({', '.join(flags)})" if flags else ""
    return (f"    <- {e.producer.name}: {e.calls} call(s), footprint {fp}{extra}"
            + (f", jacobians {jac}" if jac else ""))


def describe(dag: FunctionDAG) -> str:
    """One line per stage (loops innermost first with their extents at the estimates), then its
    incoming edges with the producer footprint at the estimates and the load Jacobians."""
    lines = [f"FunctionDAG: {len(dag.nodes)} Funcs, {len(dag.stages)} stages, {len(dag.edges)} edges "
             f"(realization order; index = pipeline.get_func(i))"]
    for n in dag.nodes:
        kind = ["input" if n.is_input else "", "output" if n.is_output else "",
                "pointwise" if n.is_pointwise and not n.is_input else "", "wrapper" if n.is_wrapper else ""]
        kinds = ",".join(k for k in kind if k)
        types = ",".join(str(t) for t in n.output_types)
        region = " x ".join(f"[{s.min},{s.max}]" for s in n.region_computed) or "scalar"
        lines.append(f"[{n.index}] {n.name}({', '.join(n.args)}) {types} {kinds} region {region} "
                     f"({n.bytes_per_point * box_points(n.region_computed)} bytes)"
                     + (f" <- ImageParam '{n.input_param}'" if n.input_param else ""))
        if n.is_input:
            continue
        for s in n.stages:
            loops = " ".join(f"{l.var}{'*' if l.rvar else ''}{'' if l.pure else '!'}:{b.extent}"
                             for l, b in zip(s.loops, s.loop_bounds)) or "(scalar)"
            lines.append(f"  stage {s.name}: loops {loops}; {s.points} points")
            for e in s.incoming_edges:
                lines.append(_edge_line(e))
    lines.append("(loops innermost first; * RVar, ! not pure; footprints at the estimates)")
    return "\n".join(lines)

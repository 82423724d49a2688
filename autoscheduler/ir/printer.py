"""Halide-like text of decoded Exprs, for messages, ``describe`` and debugging."""

from __future__ import annotations

from typing import Optional

from . import nodes as ir

_BIN: dict[type, str] = {ir.Add: "+", ir.Sub: "-", ir.Mul: "*", ir.Div: "/", ir.Mod: "%", ir.EQ: "==", ir.NE: "!=",
        ir.LT: "<", ir.LE: "<=", ir.GT: ">", ir.GE: ">=", ir.And: "&&", ir.Or: "||"}


def expr_str(e: Optional[ir.Expr]) -> str:
    """``e`` printed roughly as Halide prints it (``(x + -1)``, ``f(x, y)``, ``float32(a)``)."""
    if e is None:
        return "<undefined>"
    if isinstance(e, (ir.IntImm, ir.UIntImm)):
        if e.type.is_bool:
            return "true" if e.value else "false"
        return str(e.value) if e.type.code == ir.TypeCode.Int and e.type.bits == 32 else f"({e.type}){e.value}"
    if isinstance(e, ir.FloatImm):
        return f"{e.value}f" if e.type.bits == 32 else f"(float{e.type.bits}){e.value}"
    if isinstance(e, ir.StringImm):
        return repr(e.value)
    if isinstance(e, ir.Variable):
        return e.name
    op = _BIN.get(type(e))
    if op is not None:
        assert isinstance(e, ir.BinaryOp)
        return f"({expr_str(e.a)} {op} {expr_str(e.b)})"
    if isinstance(e, (ir.Min, ir.Max)):
        return f"{type(e).__name__.lower()}({expr_str(e.a)}, {expr_str(e.b)})"
    if isinstance(e, ir.Not):
        return f"!{expr_str(e.a)}"
    if isinstance(e, ir.Select):
        return f"select({expr_str(e.condition)}, {expr_str(e.true_value)}, {expr_str(e.false_value)})"
    if isinstance(e, ir.Cast):
        return f"{e.type}({expr_str(e.value)})"
    if isinstance(e, ir.Reinterpret):
        return f"reinterpret<{e.type}>({expr_str(e.value)})"
    if isinstance(e, ir.Call):
        args = ", ".join(expr_str(a) for a in e.args)
        suffix = f"[{e.value_index}]" if e.call_type == ir.CallType.Halide and e.value_index else ""
        return f"{e.name}({args}){suffix}"
    if isinstance(e, ir.Let):
        return f"(let {e.name} = {expr_str(e.value)} in {expr_str(e.body)})"
    if isinstance(e, ir.Load):
        return f"{e.name}[{expr_str(e.index)}]"
    if isinstance(e, ir.Ramp):
        return f"ramp({expr_str(e.base)}, {expr_str(e.stride)}, {e.lanes})"
    if isinstance(e, ir.Broadcast):
        return f"x{e.lanes}({expr_str(e.value)})"
    if isinstance(e, ir.Shuffle):
        return f"shuffle({', '.join(expr_str(v) for v in e.vectors)}; {list(e.indices)})"
    if isinstance(e, ir.VectorReduce):
        return f"vector_reduce_{e.op.name.lower()}({expr_str(e.value)}, {e.lanes})"
    return f"<{type(e).__name__}>"

"""Reading an answer written in NumPy (``dW = 1/m * np.dot(dZ, X.T)``) into the spec language.

Python's own parser gives the tree (nothing is evaluated); a whitelist of NumPy calls and methods
is rewritten to the spec's spelling, and every other call is an error located in the answer.
``np.sum(E, axis=1)`` without ``keepdims=True`` drops the axis, as NumPy does, so an answer that
forgets it has the shape NumPy would give it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

from backprop.support.errors import SpecError

#: np.f(x) that the spec writes f(x).
_SAME = {"exp", "log", "tanh", "sqrt", "abs", "maximum", "minimum", "where", "sign", "log1p", "expm1", "sin",
         "cos", "clip", "transpose", "reshape", "eye", "ones", "zeros", "sum", "mean", "max", "min", "trace"}
#: np.linalg.f(x) that the spec writes f(x).
_LINALG = {"inv", "det", "solve"}
_BINARY = {"dot": ast.MatMult, "matmul": ast.MatMult, "multiply": ast.Mult, "divide": ast.Div,
           "true_divide": ast.Div, "add": ast.Add, "subtract": ast.Sub, "power": ast.Pow}
_REDUCE = {"sum", "mean", "max", "min"}


def read_numpy(text: str, aliases: Mapping[str, str]) -> str:
    """``text`` (``NAME = EXPR`` in NumPy) as a claim in the spec language."""
    lhs, eq, rhs = text.partition("=")
    if not eq:
        raise SpecError("a claim reads dNAME = EXPR, e.g. dW1 = dZ @ X.T", 0, 1)
    col0 = len(lhs) + 1
    try:
        tree = ast.parse(rhs.strip(), mode="eval")
    except SyntaxError as e:
        raise SpecError(f"syntax error: {e.msg}", 0, col0 + len(rhs) - len(rhs.lstrip()) + (e.offset or 1)) from None
    out = _Rewrite(rhs.strip(), col0 + len(rhs) - len(rhs.lstrip()), aliases).visit(tree)
    name = lhs.strip()
    name = aliases.get(name, name) if not name.startswith("d") else "d" + aliases.get(name[1:], name[1:])
    return f"{name} = {ast.unparse(out)}"


class _Rewrite(ast.NodeTransformer):
    def __init__(self, text: str, col0: int, aliases: Mapping[str, str]) -> None:
        self.text = text
        self.col0 = col0
        self.aliases = aliases

    def fail(self, node: ast.AST, message: str) -> SpecError:
        return SpecError(message, 0, self.col0 + getattr(node, "col_offset", 0) + 1)

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802
        name = node.id
        if name in self.aliases:
            name = self.aliases[name]
        elif name.startswith("d") and name[1:] in self.aliases:
            name = "d" + self.aliases[name[1:]]
        return ast.copy_location(ast.Name(name, ast.Load()), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:  # noqa: N802
        if node.attr != "T":
            raise self.fail(node, f"'.{node.attr}' has no reading here (of attributes, only .T)")
        return ast.copy_location(ast.Attribute(self.visit(node.value), "T", ast.Load()), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802
        func = node.func
        args = [self.visit(a) for a in node.args]
        keywords = {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy"):
            return ast.copy_location(self._np(func.attr, args, keywords, node), node)
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "linalg"
                and isinstance(func.value.value, ast.Name) and func.value.value.id in ("np", "numpy")):
            if func.attr not in _LINALG or keywords:
                raise self.fail(node, f"np.linalg.{func.attr} has no reading here (of np.linalg: {', '.join(sorted(_LINALG))})")
            return ast.copy_location(ast.Call(ast.Name(func.attr, ast.Load()), args, []), node)
        if isinstance(func, ast.Attribute):
            return ast.copy_location(self._method(func, args, keywords, node), node)
        return ast.copy_location(ast.Call(func, args, [ast.keyword(k, self.visit(v)) for k, v in keywords.items()]),
                                 node)

    def _np(self, name: str, args: list[ast.expr], kw: dict[str | None, ast.expr], node: ast.Call) -> ast.expr:
        if name in _BINARY and len(args) == 2 and not kw:
            return ast.BinOp(args[0], _BINARY[name](), args[1])
        if name == "square" and len(args) == 1:
            return ast.BinOp(args[0], ast.Pow(), ast.Constant(2))
        if name in ("ones", "zeros") and len(args) == 1 and isinstance(args[0], ast.Tuple):
            return ast.Call(ast.Name(name, ast.Load()), list(args[0].elts), [])
        if name in _REDUCE:
            return self._reduce(name, args[0] if args else None, kw, node)
        if name in _SAME:
            return ast.Call(ast.Name(name, ast.Load()), args, [ast.keyword(k, self.visit(v)) for k, v in kw.items()])
        raise self.fail(node, f"np.{name} has no reading here (the spec language has {', '.join(sorted(_SAME))})")

    def _method(self, func: ast.Attribute, args: list[ast.expr], kw: dict[str | None, ast.expr],
                node: ast.Call) -> ast.expr:
        obj = self.visit(func.value)
        if func.attr == "dot" and len(args) == 1:
            return ast.BinOp(obj, ast.MatMult(), args[0])
        if func.attr in _REDUCE:
            return self._reduce(func.attr, obj, kw, node)
        if func.attr == "astype":  # (Z > 0).astype(float): the mask itself
            return obj
        if func.attr == "reshape":
            return ast.Call(ast.Name("reshape", ast.Load()), [obj, ast.List(list(args), ast.Load())], [])
        raise self.fail(node, f".{func.attr}(...) has no reading here")

    def _reduce(self, name: str, x: ast.expr | None, kw: dict[str | None, ast.expr], node: ast.Call) -> ast.expr:
        if x is None:
            raise self.fail(node, f"np.{name} needs an array")
        axis = kw.get("axis")
        keep = kw.get("keepdims")
        call = ast.Call(ast.Name(name, ast.Load()), [x], [ast.keyword("axis", axis)] if axis is not None else [])
        if axis is None or (isinstance(keep, ast.Constant) and keep.value is True):
            return call
        return ast.Call(ast.Name("_drop_axis", ast.Load()), [call, axis], [])


def drop_axis_calls(claim: str, shape_of: Callable[[str], tuple | None]) -> str:
    """``_drop_axis(sum(E, axis=1), 1)`` → ``reshape(sum(E, axis=1), [n])``: the rank NumPy gives
    without keepdims, with the dims the spec knows (the reading is spec text a student can run)."""
    tree = ast.parse(claim.split("=", 1)[1].strip(), mode="eval")

    class Drop(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802
            self.generic_visit(node)
            if isinstance(node.func, ast.Name) and node.func.id == "_drop_axis":
                inner, axis = node.args
                shape = shape_of(ast.unparse(inner))
                if shape is None or not isinstance(axis, ast.Constant) or not isinstance(axis.value, int):
                    return inner
                kept = [str(d) for k, d in enumerate(shape) if k != axis.value % max(len(shape), 1)]
                return ast.Call(ast.Name("reshape", ast.Load()), [inner, ast.List(
                    [ast.Name(d, ast.Load()) if not d.isdigit() else ast.Constant(int(d)) for d in kept],
                    ast.Load())], [])
            return node

    return f"{claim.split('=', 1)[0].strip()} = {ast.unparse(Drop().visit(tree))}"

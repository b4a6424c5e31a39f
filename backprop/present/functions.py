"""``@backprop.network``: a Python function as a network, with its derivation and its LaTeX view.

The translation of the function's source into a :class:`~backprop.language.model.Model` is
the language's (:func:`backprop.language.pyfunc.model_of`); this module is what the decorator
adds on top of it, which needs the stages after the language: the derivation
(:func:`backprop.engine.pipeline.get_derivation`) and the function rendered by latexify-py in the
course notation (:func:`function_latex`; ``.latex()`` and ``_repr_latex_`` in Jupyter).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import sympy

from backprop.engine.pipeline import get_derivation
from backprop.expr import ir
from backprop.expr.ops import FUNCTIONS
from backprop.expr.printing import LatexPrinter
from backprop.language.expression import ExprBuilder
from backprop.language.model import Model
from backprop.language.pyfunc import Shape, Source, model_of
from backprop.support import naming
from backprop.support.errors import SpecError
from backprop.support.notation import display_fractions, juxtapose, juxtaposed, latex_name

F = TypeVar("F", bound=Callable[..., Any])


def network(
    fn: F | None = None,
    *,
    inputs: Mapping[str, Shape] | None = None,
    params: Mapping[str, Shape] | Iterable[str] | None = None,
    name: str | None = None,
    **shapes: Shape,
) -> Any:
    """Read a forward pass written as a Python function into a :class:`Model`.

    Shapes are strings of dims and an optional input domain: ``"n m"``,
    ``"c m onehot"``, ``"1 m"``; ``""`` or ``None`` is a scalar. Say which names
    are inputs and which are params with ``inputs={...}`` and ``params={...}``,
    or give every shape as a keyword (``X="n m", W1="k n"``) and name the params
    with ``params=("W1", ...)`` or by making them keyword-only (after ``*``).
    The function's arguments are exactly the declared names; its body is
    assignments ``NAME = EXPR`` and a final ``return`` of the loss, in the spec
    language. Errors are :class:`SpecError` at the Python file's line and column.
    """

    def decorate(f: F) -> F:
        model = model_of(f, inputs=inputs, params=params, name=name, shapes=shapes)
        _attach(f, model)
        return f

    return decorate(fn) if fn is not None else decorate


def _attach(f: Any, model: Model) -> None:
    f.model = model
    f.derivation = get_derivation(model)
    f.latex = lambda style="function": function_latex(f, style=style)
    f._repr_latex_ = lambda: "$$" + function_latex(f) + "$$"


# ---------------------------------------------------------------------------
# The function as LaTeX (latexify), in the course notation
# ---------------------------------------------------------------------------

_PH = "zqnet"


def _probe_head(fname: str, axis: int | None) -> str | None:
    r"""The LaTeX head of a spec function from its registry form: sigmoid -> \sigma, sum(axis=0) -> colsum."""
    op = FUNCTIONS[fname]
    kids = [sympy.MatrixSymbol(f"{_PH}arg{i}", 3, 4) for i in range(op.arity)]
    if fname == "leaky_relu":
        kids[1] = sympy.MatrixSymbol(f"{_PH}arg1", 1, 1)
    if op.attrs:
        e = ir.node(op.name, kids[0], ir.axes_attr(axis))
    else:
        e = ir.node(op.name, *kids)
    tex = LatexPrinter().doprint(e)
    args = ", ".join(latex_name(k.name) for k in kids)
    suffix = r"\left(" + args + r"\right)"
    # latexify sets its own \mathopen{} before the parenthesis
    return tex[: -len(suffix)].removesuffix(r"\mathopen{}") if tex.endswith(suffix) else None


class _MathView(ast.NodeTransformer):
    """Spec-language calls -> their registry heads; matrix ``*`` -> ⊙; ``.T`` -> ᵀ; names -> notation."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.table: dict[str, str] = {}
        self.names = {n: model.symbol(n) for n in model.names()}

    def placeholder(self, tex: str) -> str:
        return naming.placeholder(self.table, tex, _PH)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:  # noqa: N802
        node.decorator_list = []
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        node.body = [self.visit(s) for s in body]
        for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
            a.arg = self.placeholder(latex_name(a.arg))
        node.args.args, node.args.kwonlyargs = node.args.posonlyargs + node.args.args + node.args.kwonlyargs, []
        node.args.posonlyargs = []
        return node

    def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802
        if not node.id.startswith(_PH):
            node.id = self.placeholder(latex_name(node.id))
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:  # noqa: N802
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in FUNCTIONS:
            return self.generic_visit(node)
        axis = next((kw.value.value for kw in node.keywords if kw.arg == "axis" and isinstance(kw.value, ast.Constant)), None)
        args = [self.visit(a) for a in node.args]
        head = _probe_head(fname, axis)
        if head is None:  # a form that is not HEAD(args): |x|, √x -- latexify's own rules render it
            return ast.Call(ast.Name(fname, ast.Load()), args, [])
        return ast.Call(ast.Name(self.placeholder(head), ast.Load()), args, [])

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:  # noqa: N802
        if node.attr == "T":
            return ast.BinOp(self.visit(node.value), ast.Pow(), ast.Name(self.placeholder(r"\top"), ast.Load()))
        return self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:  # noqa: N802
        elementwise = isinstance(node.op, ast.Mult) and not (self._scalar(node.left) or self._scalar(node.right))
        node = self.generic_visit(node)
        if elementwise:
            node.op = ast.Mod()  # rendered \mathbin{\%}, replaced by \odot
        return juxtapose(node)

    def _scalar(self, e: ast.expr) -> bool:
        """Whether an operand is a scalar, from the model's shapes (rebuilt through the same whitelist)."""
        try:
            built = ExprBuilder(ast.unparse(e), 0, self.names, self.model.dims).build()
        except SpecError:
            return False
        return ir.is_scalar(built)


def function_latex(fn: Callable[..., Any], style: str = "function") -> str:
    """The decorated function rendered by latexify-py, every name in the course notation (W₁, ŷ, σ, ⊙), a
    matrix product written W₁ X and fractions at display size, as the derivation sets them."""
    import latexify
    import latexify.codegen
    import latexify.transformers

    model = getattr(fn, "model", None) or model_of(fn)
    tree = Source.of(fn).tree
    view = _MathView(model)
    tree = ast.fix_missing_locations(view.visit(tree))
    module = ast.Module([tree], [])
    if style == "algorithmic":
        tex = latexify.codegen.AlgorithmicCodegen(use_math_symbols=True).visit(module)
    elif style == "function":
        tex = latexify.codegen.FunctionCodegen(use_math_symbols=True, use_signature=True).visit(module)
    else:
        raise ValueError(f"style is 'function' or 'algorithmic', got {style!r}")
    table = view.table

    def sub(m: re.Match) -> str:
        return table[m.group(1) or m.group(2)]

    tex = re.sub(rf"\\mathrm\{{({_PH}\d+)\}}|\b({_PH}\d+)\b", sub, tex)
    return display_fractions(juxtaposed(tex.replace(r" \mathbin{\%} ", r" \odot ")))



__all__ = ["network", "function_latex"]

"""``backprop codegen SPEC --latex``: the generated forward and backward functions as LaTeX.

The functions are imported from the generated module (a real file, so their
source is real) and rendered by latexify-py's algorithmic code generator --
latexify's own pipeline (parse the function, replace augmented assignments,
generate), with one extra AST pass, :class:`MathView`, that makes NumPy idioms
latexify-friendly:

- a NumPy form of a registry operation (``np.maximum(Z, 0)``,
  ``dZ.sum(axis=1, keepdims=True)``, ``_sigmoid(Z)``, ``A.T``) is recognized by
  matching the very form the registry printed, and shown with that operation's
  LaTeX function name (ReLU, rowsum, σ, ᵀ) -- so code and derivation read alike;
- ``a * b`` of two matrices is shown as ``a ⊙ b``; products with a scalar and
  matrix products keep latexify's ``·``;
- plumbing (the docstring, the shape check, reading dims) is left out, and the
  cache and gradient dicts are shown as tuples;
- every identifier is shown in the derivation's notation
  (:func:`backprop.support.notation.latex_name`; gradients as ∂L/∂W₁).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import latexify
import latexify.transformers
import sympy
from sympy import MatrixSymbol

from backprop.codegen.emit import derivation_of, generate, spec_label
from backprop.codegen.header import stamp
from backprop.codegen.loader import load_source
from backprop.codegen.lower import Program, lower
from backprop.codegen.printer import NumpyPrinter
from backprop.codegen.stmt import TempSymbol
from backprop.codegen.templates import environment
from backprop.engine.chain import at_loop
from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.expr.ir import NODE_CLASSES, OpNode, TensorSymbol
from backprop.expr.ops import AXIS_REQUIRED, REGISTRY
from backprop.expr.printing import LatexPrinter, grad_symbol
from backprop.language.model import Model
from backprop.support import naming
from backprop.support.deepstack import deep_stack
from backprop.support.errors import ShapeError, UnsupportedError
from backprop.support.naming import helper_name
from backprop.support.notation import display_fractions, juxtapose, juxtaposed, latex_name

_PLACEHOLDER = "zqph"
#: Operations latexify already renders as arithmetic (BinOp / UnaryOp).
_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "pow", "neg", "matmul"})
#: Operations whose NumPy call is shown by :meth:`MathView._numpy` rather than by a pattern: every
#: ``np.where`` (where's own, leaky_step's) reads as cases.
_SHOWN_BY_CALL = frozenset({"where"})
_PLUMBING_CALLS = frozenset({"_check_shapes"})
#: Conversions that do not change a value: shown as their argument.
_IDENTITY_CALLS = frozenset({"_scalar", "_weak"})
#: NumPy calls the printer uses for arithmetic on Python numbers (printer.IEEE_FORMS): shown as the operator.
_OPERATOR_CALLS: dict[str, ast.operator] = {"divide": ast.Div(), "float_power": ast.Pow()}


@dataclass(frozen=True)
class Pattern:
    """The NumPy form of one operation, with its operands as wildcards, and its LaTeX head."""

    ast: ast.expr
    arity: int
    head: str  # e.g. \operatorname{ReLU}; "^T" for a transpose


def _probe(op_name: str, attrs: tuple) -> OpNode:
    kids = [TempSymbol(f"_operand{i}", 3, 3) for i in range(REGISTRY[op_name].arity)]
    return NODE_CLASSES[op_name](*kids, *attrs)


def _attr_variants(op_name: str) -> list[tuple]:
    """Attribute values to print an operation's form with: every axis choice it allows."""
    attrs = REGISTRY[op_name].attrs
    if attrs == ("axis",):
        axes = [(0,), (1,)] if op_name in AXIS_REQUIRED else [(0, 1), (0,), (1,)]
        return [(sympy.Tuple(*a),) for a in axes]
    if attrs:
        return []  # broadcast: shown as its operand (see MathView)
    return [()]


def patterns(printer: NumpyPrinter) -> list[Pattern]:
    """One pattern per registry operation (and axis variant) that latexify cannot read as arithmetic."""
    out: list[Pattern] = []
    latex = LatexPrinter()
    for name in sorted(REGISTRY):
        if name in _ARITHMETIC or name in _SHOWN_BY_CALL:
            continue
        for attrs in _attr_variants(name):
            try:  # a probe of square operands some rows refuse (labels' lookups): written as a call
                e = _probe(name, attrs)
            except ShapeError:
                continue
            try:
                code = printer.doprint(e)
            except UnsupportedError:  # a variant with no NumPy form is simply never matched
                continue
            head = _head(latex.doprint(e), [latex.doprint(k) for k in e.children])
            tree = ast.parse(code, mode="eval").body
            if head is not None and not isinstance(tree, ast.Name):  # stop_gradient(x) is x: a wildcard matches all
                out.append(Pattern(tree, len(e.children), head))
    # fewer operands first: the more specific form wins (relu's np.maximum(x, 0) before maximum's)
    return sorted(out, key=lambda p: p.arity)


def _head(tex: str, args: list[str]) -> str | None:
    r"""The function name of a LaTeX form: ``\sigma\left(x\right)`` -> ``\sigma``; ``x^{\top}`` -> ``^T``;
    ``x^{-1}`` -> ``^-1`` and ``x^{-1} y`` -> ``^-1 @`` (an inverse, a solve)."""
    call = r"\left(" + ", ".join(args) + r"\right)"
    if tex.endswith(call):  # latexify sets its own \mathopen{} before the parenthesis
        return tex[: -len(call)].removesuffix(r"\mathopen{}")
    if len(args) == 1 and tex == args[0] + r"^{\top}":
        return "^T"
    if len(args) == 1 and tex == args[0] + "^{-1}":  # inv(A): A⁻¹
        return "^-1"
    if len(args) == 2 and tex == f"{args[0]}^{{-1}} {args[1]}":  # solve(A, B): A⁻¹ B
        return "^-1 @"
    return None


# ---------------------------------------------------------------------------
# Matching code against patterns
# ---------------------------------------------------------------------------


def _match(pattern: ast.AST, node: ast.AST, binding: dict[int, ast.expr]) -> bool:
    if isinstance(pattern, ast.Name) and pattern.id.startswith("_operand"):
        i = int(pattern.id[len("_operand"):])
        if i in binding:
            return ast.dump(binding[i]) == ast.dump(node)
        binding[i] = node  # type: ignore[assignment]
        return True
    if type(pattern) is not type(node):
        return False
    for fname, pval in ast.iter_fields(pattern):
        nval = getattr(node, fname, None)
        if fname in ("ctx", "type_comment", "kind"):
            continue
        if isinstance(pval, list):
            if not isinstance(nval, list) or len(pval) != len(nval):
                return False
            if not all(_match(p, n, binding) if isinstance(p, ast.AST) else p == n for p, n in zip(pval, nval)):
                return False
        elif isinstance(pval, ast.AST):
            if not isinstance(nval, ast.AST) or not _match(pval, nval, binding):
                return False
        elif pval != nval:
            return False
    return True


def _fold_in_place(body: list[ast.stmt]) -> list[ast.stmt]:
    """A product computed in place (``dZ = dA`` then ``dZ = dZ * A``, as latexify reads
    ``dZ *= A``) shown as the one product it is: ``dZ = dA * A``."""
    out: list[ast.stmt] = []
    for s in body:
        prev = out[-1] if out else None
        if (
            isinstance(s, ast.Assign) and isinstance(prev, ast.Assign)
            and len(s.targets) == len(prev.targets) == 1
            and isinstance(s.targets[0], ast.Name) and isinstance(prev.targets[0], ast.Name)
            and s.targets[0].id == prev.targets[0].id
            and isinstance(s.value, ast.BinOp) and isinstance(s.value.op, (ast.Mult, ast.Add, ast.Sub))
            and isinstance(s.value.left, ast.Name) and s.value.left.id == s.targets[0].id
        ):
            prev.value = ast.BinOp(prev.value, s.value.op, s.value.right)
            continue
        out.append(_out_of_place(s))
    return out


def _out_of_place(s: ast.stmt) -> ast.stmt:
    """An activation computed in place shown as the function it is: ``_sigmoid_(Z)`` as
    ``_sigmoid(Z)``, ``np.tanh(Z, out=Z)`` as ``np.tanh(Z)``."""
    names = {helper_name(op.numpy_inplace_helper): helper_name(op.numpy_helper)
             for op in REGISTRY.values() if op.numpy_inplace_helper and op.numpy_helper}
    for node in ast.walk(s):
        if isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords if k.arg != "out"]
            if isinstance(node.func, ast.Name) and node.func.id in names:
                node.func.id = names[node.func.id]
    return s


class MathView(ast.NodeTransformer):
    """Rewrite a generated function's AST into constructs latexify renders as math."""

    def __init__(self, pats: list[Pattern], scalars: set[str], values: dict[str, Value] | None = None) -> None:
        self.pats = pats
        self.scalars = set(scalars)
        self.heads: dict[str, str] = {}
        self.values = values or {}

    # --- statements ------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:  # noqa: N802
        body = _fold_in_place([s for s in node.body if not self._plumbing(s)])
        node.body = [self.visit(s) for s in body]
        return node

    def _plumbing(self, s: ast.stmt) -> bool:
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
            return True  # docstring
        if isinstance(s, ast.Delete):
            return True  # memory bookkeeping: an intermediate dropped after its last use
        if isinstance(s, ast.Try):
            return True  # the shape check: a lookup of shapes accepted before, else _check_shapes
        if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id in self.values for t in s.targets):
            return True  # a temporary shown as the value it holds (see Value): its definition would read X ← X
        value = getattr(s, "value", None)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in _PLUMBING_CALLS:
            return True
        return isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name) and value.value.id == "dims"

    def visit_Assign(self, node: ast.Assign) -> ast.Assign:  # noqa: N802
        node.value = self.visit(node.value)
        if self._is_scalar(node.value):
            self.scalars |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        return node

    # --- expressions -----------------------------------------------------
    def visit_Dict(self, node: ast.Dict) -> ast.expr:  # noqa: N802
        """backward's ``{"W1": dW1, ...}``: its values, as a tuple."""
        return ast.Tuple([self.visit(v) for v in node.values], ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.expr:  # noqa: N802
        if isinstance(node.func, ast.Name) and node.func.id in _IDENTITY_CALLS and len(node.args) == 1:
            return self.visit(node.args[0])
        func = node.func
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "np"
                and func.attr in _OPERATOR_CALLS and len(node.args) == 2):
            left, right = (self.visit(a) for a in node.args)
            return ast.BinOp(left, _OPERATOR_CALLS[func.attr], right)
        return self._exp_of_value(node) or self._op(node) or self._numpy(node) or self.generic_visit(node)

    def _exp_of_value(self, node: ast.Call) -> ast.expr | None:
        """``np.exp(t1)`` of a kept logsoftmax(Z₂) as the softmax(Z₂) the derivation writes."""
        f = node.func
        if not (isinstance(f, ast.Attribute) and f.attr == "exp" and len(node.args) == 1):
            return None
        arg = node.args[0]
        value = self.values.get(arg.id) if isinstance(arg, ast.Name) else None
        if value is None or value.exp is None:
            return None
        return ast.Name(self._head(value.exp), ast.Load())

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:  # noqa: N802
        """``1.0 - A`` (a float for NumPy's speed) shown as the 1 − A it is."""
        if type(node.value) is float and node.value.is_integer():
            return ast.Constant(int(node.value))
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:  # noqa: N802
        return self._op(node) or self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:  # noqa: N802
        hit = self._op(node)
        if hit is not None:
            return hit
        node = self.generic_visit(node)
        if isinstance(node.op, ast.Mult) and not (self._is_scalar(node.left) or self._is_scalar(node.right)):
            node.op = ast.Mod()  # rendered \mathbin{\%}, replaced by \odot
        return juxtapose(node)

    def visit_Compare(self, node: ast.Compare) -> ast.expr:  # noqa: N802
        """A mask as the derivation writes it, an Iverson bracket [A > 0] (latexify's list brackets)."""
        hit = self._op(node)
        return hit if hit is not None else ast.List([self.generic_visit(node)], ast.Load())

    def _op(self, node: ast.expr) -> ast.expr | None:
        for pat in self.pats:
            binding: dict[int, ast.expr] = {}
            if _match(pat.ast, node, binding) and len(binding) == pat.arity:
                args = [self.visit(binding[i]) for i in range(pat.arity)]
                if pat.head == "^T":
                    return ast.BinOp(args[0], ast.Pow(), ast.Name(self._head(r"\top"), ast.Load()))
                if pat.head in ("^-1", "^-1 @"):
                    inverse = ast.BinOp(args[0], ast.Pow(), ast.UnaryOp(ast.USub(), ast.Constant(1)))
                    return inverse if pat.head == "^-1" else juxtapose(ast.BinOp(inverse, ast.MatMult(), args[1]))
                return ast.Call(ast.Name(self._head(pat.head), ast.Load()), args, [])
        return None

    def _numpy(self, node: ast.Call) -> ast.expr | None:
        """NumPy calls no registry form covers as a whole: broadcasts, copies and dtype casts show
        their operand (a value), ``np.heaviside(x, 0)`` the step [x > 0], ``np.where(c, a, b)``
        cases."""
        f = node.func
        if not isinstance(f, ast.Attribute):
            return None
        if f.attr in ("broadcast_to", "copy") and node.args:
            return self.visit(node.args[0])
        if f.attr == "heaviside" and node.args:  # ReLU′ as a number: [x > 0]
            return self.visit(ast.Compare(node.args[0], [ast.Gt()], [ast.Constant(0)]))
        if f.attr == "astype":
            return self.visit(f.value)
        if f.attr == "vdot" and len(node.args) == 2 and ast.dump(node.args[0]) == ast.dump(node.args[1]):
            square = ast.BinOp(self.visit(node.args[0]), ast.Pow(), ast.Constant(2))
            return ast.Call(ast.Name(self._head(r"\sum"), ast.Load()), [square], [])  # a sum of squares
        if f.attr == "where" and len(node.args) == 3:
            test, body, orelse = (self.visit(a) for a in node.args)
            return ast.IfExp(test, body, orelse)
        return None

    def _head(self, tex: str) -> str:
        return naming.placeholder(self.heads, tex, f"{_PLACEHOLDER}f")

    def _is_scalar(self, e: ast.expr) -> bool:
        if isinstance(e, ast.Constant):
            return True
        if isinstance(e, ast.Name):
            return e.id in self.scalars or self.heads.get(e.id) == r"\top"
        if isinstance(e, ast.UnaryOp):
            return self._is_scalar(e.operand)
        if isinstance(e, ast.BinOp):
            return self._is_scalar(e.left) and self._is_scalar(e.right)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            return self.heads.get(e.func.id) in (r"\sum", r"\operatorname{mean}")
        return False


@dataclass(frozen=True)
class Value:
    """A temporary the code keeps, shown as the value it holds, in the derivation's LaTeX
    (logsoftmax(Z₂), not t₁); ``exp``: the LaTeX of its exponential, where the derivation has a
    name for it (softmax(Z₂) for exp(logsoftmax(Z₂)))."""

    latex: str
    exp: str | None = None


#: The exponential of an operation's value, by the operation: exp(logsoftmax(x)) = softmax(x).
_EXP_OF = {"log_softmax": "softmax"}


def named_values(program: Program, sources: list[str]) -> dict[str, Value]:
    """Temporaries that hold one registry function of named values (``t1 = _log_softmax(Z2)``),
    assigned once and never updated in place: the derivation writes that value, not a temporary."""
    stores: dict[str, int] = {}
    for src in sources:
        for node in ast.walk(ast.parse(textwrap.dedent(src))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AugAssign) else []
            for t in targets:
                if isinstance(t, ast.Name):
                    stores[t.id] = stores.get(t.id, 0) + 1
    printer = LatexPrinter()
    out: dict[str, Value] = {}
    for st in program.stmts:
        e = st.expr
        if not (isinstance(st.symbol, TempSymbol) and isinstance(e, OpNode) and e.op.name not in _ARITHMETIC):
            continue
        if not all(isinstance(c, MatrixSymbol) and not isinstance(c, TensorSymbol) for c in e.children):
            continue
        py = program.name(st.symbol)
        if stores.get(py) != 1:
            continue
        exp = _EXP_OF.get(e.op.name)
        out[py] = Value(printer.doprint(e), printer.doprint(NODE_CLASSES[exp](*e.children, *e.attrs)) if exp else None)
    return out


# ---------------------------------------------------------------------------
# Identifiers in the derivation's notation
# ---------------------------------------------------------------------------


def notation(program: Program, values: dict[str, Value] | None = None) -> dict[str, str]:
    """Python name -> LaTeX, for every name the generated functions use (a kept value as what it holds)."""
    names = program.names
    out: dict[str, str] = {}
    for (kind, name), py in names.of.items():
        if kind in ("var", "dim"):
            out[py] = latex_name(name)
        elif kind == "grad":
            out[py] = LatexPrinter().doprint(grad_symbol(name, (1, 1)))
        else:
            out[py] = latex_name(py)
    out["cache"] = r"\mathrm{cache}"
    out.update({py: "{" + v.latex + "}" for py, v in (values or {}).items()})  # braced: A^{-1} takes a ^T
    return out


class _Rename(ast.NodeTransformer):
    """Every identifier -> a placeholder latexify prints verbatim (replaced afterwards)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.back: dict[str, str] = {}

    def _ph(self, name: str) -> str:
        if name not in self.table:
            return name
        key = f"{_PLACEHOLDER}v{sorted(self.table).index(name)}"
        self.back[key] = self.table[name]
        return key

    def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802
        if not node.id.startswith(_PLACEHOLDER):
            node.id = self._ph(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self._ph(node.arg)
        return node


def _substitute(tex: str, table: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        return table[m.group(1) or m.group(2)]

    pattern = rf"\\mathrm\{{({_PLACEHOLDER}[a-z]\d+)\}}|\b({_PLACEHOLDER}[a-z]\d+)\b"
    tex = re.sub(pattern, sub, tex)
    return display_fractions(juxtaposed(tex.replace(r" \mathbin{\%} ", r" \odot ")))


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def function_latex(fn: Callable[..., Any], program: Program, values: dict[str, Value] | None = None) -> str:
    """One generated function as an algorithmic block (latexify), in the derivation's notation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    tree.body[0].name = fn.__name__.lstrip("_")  # _forward does forward's work
    tree = latexify.transformers.AugAssignReplacer().visit(tree)
    scalars = {program.names.dim(d) for d in program.model.dims}
    scalars |= {program.name(s.symbol) for s in program.stmts if s.symbol.shape == (1, 1)}
    scalars |= {program.names.var(d.name) for d in program.decls if d.scalar}
    view = MathView(patterns(program.printer), scalars, values)
    tree = ast.fix_missing_locations(view.visit(tree))
    rename = _Rename(notation(program, values))
    tree = rename.visit(tree)
    tex = latexify.codegen.AlgorithmicCodegen(use_math_symbols=True).visit(tree)
    return _substitute(tex, {**view.heads, **rename.back})


def to_latex(spec: str | Model | Derivation) -> tuple[str, str]:
    """(forward, backward) of ``spec``'s generated module, each an algorithmic LaTeX block. A loop's
    module is not rendered (its notes are: ``backprop derive --format latex``): said at the loop."""
    d = derivation_of(spec)
    if isinstance(d, TimeDerivation):
        raise at_loop(d.model, "the generated functions of a loop are not rendered as LaTeX yet: 'backprop derive "
                               "--format latex' prints its backpropagation through time")
    program = lower(d)
    module: ModuleType = load_source(generate(d), d.model.name)
    fns = (module._forward, module.backward)
    values = named_values(program, [inspect.getsource(f) for f in fns])
    return function_latex(fns[0], program, values), function_latex(fns[1], program, values)


@deep_stack
def latex_document(spec: str | Model | Derivation, output: str | None = None, label: str | None = None) -> str:
    """A standalone LaTeX document (pdflatex) showing the generated forward and backward functions."""
    d = derivation_of(spec)
    forward, backward = to_latex(d)
    body = environment(latex=True).get_template("functions.tex.j2").render(
        name=d.model.name, forward=forward, backward=backward,
    )
    name = label or spec_label(spec)
    return stamp(body, name, output or f"{d.model.name}.tex", comment="%", flags="--latex")


__all__ = ["to_latex", "latex_document", "function_latex"]

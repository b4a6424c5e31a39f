"""Hand-derivation claims, ``dNAME = EXPR``: parsed with the spec language's own machinery.

A claim is ∂L/∂NAME for a param or an intermediate (including the
pre-activations the chain rule names), written with the spec's names, dims
and functions, plus ``dOTHER`` for the derived gradient of another variable,
``(E > 0)`` for the indicator [E > 0] and ``ones(r, c)``. The right side is
parsed by :class:`ClaimExprBuilder`, a :class:`~backprop.language.expression.ExprBuilder` --
a whitelist walk over Python's ``ast``; nothing is evaluated. Every error is
a :class:`~backprop.support.errors.SpecError` located in the claim.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy
from sympy import Basic

from backprop.engine.derivation import Derivation
from backprop.expr import ir
from backprop.expr.ir import shape_of
from backprop.expr.ops import FUNCTIONS
from backprop.expr.printing import GradSymbol
from backprop.language.expression import ExprBuilder, suggest
from backprop.language.parse import IDENT
from backprop.support.deepstack import MAX_CLAIM_NESTING
from backprop.support.errors import ShapeError, SpecError
from backprop.support.naming import grad_name
from backprop.verification.forms import read_answer


@dataclass(frozen=True)
class Claim:
    """One parsed claim: ∂L/∂``name`` is ``expr`` (as written: ``text``)."""

    name: str
    text: str
    rhs: str
    expr: Basic
    file: str = "<claim 1>"
    line: int = 1
    #: the answer as the student wrote it, when it was read from another notation (LaTeX, NumPy)
    answer: str = ""


@dataclass(frozen=True)
class ClaimSource:
    """Where a claim's text comes from, for compiler-style error positions."""

    text: str
    file: str
    line: int = 1
    #: the answer as written, when ``text`` is its reading in the spec language
    answer: str = ""


class ClaimExprBuilder(ExprBuilder):
    """The spec language plus what hand derivations need.

    ``(E > 0)`` is the indicator [E > 0] (ReLU′), ``ones(r, c)`` a matrix of
    ones (a row sum written ``dZ @ ones(m, 1)``), and a matrix product whose
    shapes do not fit says which rearrangement would.
    """

    #: the shape the whole claim should have (for hints)
    want: tuple[Basic, Basic] | None = None
    #: a claim with thousands of terms is ordinary (and is never compiled)
    max_nesting = MAX_CLAIM_NESTING
    too_deep_hint = ""

    def build(self) -> Basic:
        """As the spec parser's, but an expression that ends too early is reported at its end."""
        try:
            ast.parse(self.text, mode="eval")
        except SyntaxError as e:
            if not e.offset and self.text.strip():
                end = self.col0 + len(self.text.rstrip()) + 1
                raise SpecError("syntax error: the expression ends too early (an operand is missing?)", 0, end) from None
        return super().build()

    def visit_Compare(self, node: ast.Compare) -> Basic:  # noqa: N802
        if len(node.ops) == 1:
            op, left, right = node.ops[0], node.left, node.comparators[0]
            if isinstance(op, (ast.Gt, ast.GtE)) and _is_zero(right):
                return ir.node("step", self.visit(left))
            if isinstance(op, (ast.Lt, ast.LtE)) and _is_zero(left):
                return ir.node("step", self.visit(right))
        return super().visit_Compare(node)  # a mask [A > B], [A <= B], as in a spec

    def visit_Call(self, node: ast.Call) -> Basic:  # noqa: N802
        if isinstance(node.func, ast.Name) and node.func.id == "ones" and "ones" not in self.names:
            if len(node.args) != 2 or node.keywords:
                raise self.fail(node, "ones takes two dimensions: ones(rows, cols), e.g. ones(m, 1)")
            r, c = (self._dim(a) for a in node.args)
            return ir.broadcast_to(sympy.Integer(1), (r, c))
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in FUNCTIONS and name in NOTATION:
            raise self.fail(node, f"'{ast.get_source_segment(self.text, node.func)}(...)' is written {NOTATION[name]} here")
        if isinstance(node.func, ast.Attribute) and name in FUNCTIONS:
            raise self.fail(node, f"'{ast.get_source_segment(self.text, node.func)}' is written {name}(...) here")
        return super().visit_Call(node)

    def _dim(self, node: ast.AST) -> Basic:
        if isinstance(node, ast.Name) and node.id in self.dims:
            return self.dims[node.id]
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value > 0:
            return sympy.Integer(node.value)
        known = ", ".join(sorted(self.dims)) or "none"
        raise self.fail(node, f"a dimension must be a dimension name ({known}) or a positive integer")

    def visit_BinOp(self, node: ast.BinOp) -> Basic:  # noqa: N802
        if isinstance(node.op, ast.BitXor) and _leftmost(node.right) == "T":  # X^T, X^T @ Y
            left = ast.get_source_segment(self.text, node.left) or "X"
            raise SpecError(f"for a transpose write {left}.T, not {left}^T", 0, self._op_col(node, "^"))
        if (isinstance(node.op, ast.Div) and isinstance(node.left, ast.Name) and node.left.id in _LOSS_D
                and node.left.id not in self.names and _leftmost(node.right) not in (None, "")):
            rest = ast.get_source_segment(self.text, node.right) or ""
            if rest.startswith("d") and rest[1:] in self.names:  # dL/dZ
                raise self.fail(node, f"∂L/∂{rest[1:]} is written {rest} here")
        if isinstance(node.op, ast.Mult):
            return self._product(node)
        if not isinstance(node.op, ast.MatMult):
            return super().visit_BinOp(node)
        left, right = self.visit(node.left), self.visit(node.right)
        try:
            return ir.matmul(left, right)
        except ShapeError as e:
            rewrite = self._matmul_hint(node, left, right)
            hint = f" (did you mean {rewrite}?)" if rewrite else ""
            fix = (*self.span(node), rewrite, hint) if rewrite else None
            raise SpecError(f"shape mismatch: {e}{hint}", 0, self._op_col(node, "@"), shapes=True, fix=fix) from None

    def _product(self, node: ast.BinOp) -> Basic:
        """``*`` is elementwise; when the shapes only fit a matrix product, say so."""
        left, right = self.visit(node.left), self.visit(node.right)
        try:
            return ir.mul(left, right)
        except ShapeError as e:
            try:
                ir.matmul(left, right)
                hint = " (for a matrix product write @)"
            except ShapeError:
                hint = ""
            raise SpecError(f"shape mismatch: {e}{hint}", 0, self._op_col(node, "*"), shapes=True) from None

    def _matmul_hint(self, node: ast.BinOp, a: Basic, b: Basic) -> str:
        """A rearrangement of ``a @ b`` whose shapes fit: swapped and/or transposed ('' if none).

        For the claim's outermost product, one giving the gradient's shape is preferred.
        """
        if len(shape_of(a)) != 2 or len(shape_of(b)) != 2:
            return ""  # the shape error already points to einsum
        (ar, ac), (br, bc) = shape_of(a), shape_of(b)
        sa, sb = (self._src(node.left, left=True), self._src(node.left, left=False))
        ra, rb = (self._src(node.right, left=True), self._src(node.right, left=False))
        ta, tb = self._t(node.left), self._t(node.right)
        options = [  # (fits, result shape, text)
            (bc == ar, (br, ac), f"{ra} @ {sb}"),
            (ar == br, (ac, bc), f"{ta} @ {rb}"),
            (ac == bc, (ar, br), f"{sa} @ {tb}"),
            (bc == ac, (br, ar), f"{ra} @ {ta}"),
            (br == ar, (bc, ac), f"{tb} @ {sb}"),
        ]
        fits = [(shape, hint) for ok, shape, hint in options if ok]
        whole = (ast.get_source_segment(self.text, node) or "").strip() == self.text.strip()
        if whole and self.want is not None:
            fits = [f for f in fits if f[0] == self.want] + [f for f in fits if f[0] != self.want]
        return fits[0][1] if fits else ""

    def _src(self, node: ast.AST, left: bool) -> str:
        """Operand source text, parenthesized when it would not stay one operand of ``@``."""
        s = ast.get_source_segment(self.text, node) or "?"
        loose = isinstance(node, ast.BinOp) and (
            isinstance(node.op, (ast.Add, ast.Sub)) or (not left and not isinstance(node.op, ast.Pow)))
        return f"({s})" if loose or (isinstance(node, ast.UnaryOp) and not left) else s

    def _t(self, node: ast.AST) -> str:
        """Operand transposed, in spec syntax: X -> X.T, X.T -> X, a + b -> (a + b).T."""
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return ast.get_source_segment(self.text, node.value) or "?"
        s = ast.get_source_segment(self.text, node) or "?"
        return f"{s}.T" if isinstance(node, (ast.Name, ast.Call, ast.Attribute)) else f"({s}).T"


#: what hand derivations (and NumPy) call things -> how a claim writes them
NOTATION = {
    "σ": "sigmoid(...)", "sigma": "sigmoid(...)", "dot": "A @ B", "matmul": "A @ B", "transpose": "A.T",
    "ReLU": "relu(...)", "Relu": "relu(...)", "ones_like": "ones(rows, cols)", "diag": "an elementwise product *",
}


#: Errors of a claim that another notation may read (implicit multiplication: 1/m (p - y)).
_NOT_SPEC = ("syntax error", "is not a function", "not callable", "unknown function", "is written", "for a transpose")

_LOSS_D = frozenset({"dL", "dloss", "dJ", "dC", "dcost"})


def _leftmost(node: ast.AST) -> str | None:
    """The name an expression starts with (``T`` in ``T @ Y``)."""
    while isinstance(node, ast.BinOp):
        node = node.left
    return node.id if isinstance(node, ast.Name) else None


def _is_zero(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 0


class ClaimParser:
    """Parses claims against one derivation: the names, gradients and dims it offers."""

    def __init__(self, deriv: Derivation) -> None:
        self.deriv = deriv
        model = deriv.model
        self.names: dict[str, Basic] = {n: d.symbol for n, d in model.decls.items()}
        self.names.update({eq.name: eq.symbol for eq in deriv.equations})
        self.grads = [s.target for s in deriv.steps]
        for s in deriv.steps:
            self.names[grad_name(s.target)] = s.grad
        self.reserved: dict[str, str] = {}
        for n in list(model.decls) + [eq.name for eq in deriv.equations]:
            if n not in self.grads:
                self.reserved[grad_name(n)] = self._no_gradient(n)

    def _no_gradient(self, name: str) -> str:
        """Why ``dNAME`` names no gradient."""
        model = self.deriv.model
        if name == self.deriv.loss.name:
            return f"'d{name}' is ∂L/∂L = 1 ({name} is the loss): write 1"
        if name in model.decls and model.decls[name].kind == "input":
            return f"'d{name}' is not a gradient here: {name} is an input, which has no gradient"
        return f"'d{name}' is not a gradient here: no param reaches the loss through {name}"

    def about(self) -> str:
        """The gradients a claim can be about, for error messages."""
        params = [n for n in self.deriv.params if n in self.grads]
        inter = [eq.name for eq in self.deriv.equations if eq.name in self.grads and eq.name not in params]
        out = "params (" + ", ".join(params) + ")"
        if inter:
            out += " and intermediates (" + ", ".join(inter) + ")"
        return out

    def read(self, src: ClaimSource, aliases: Mapping[str, str] | None = None) -> ClaimSource:
        """``src`` read into the spec language from the notation it is written in (LaTeX, NumPy, the
        derivation's Unicode), course names renamed by ``aliases``; raises :class:`SpecError` located
        in the answer."""
        try:
            reading = read_answer(src.text, self.shape_of, aliases, plain_ok=self._reads_plainly)
        except SpecError as e:
            if not e.line:
                e.line = src.line
            raise e.at(src.file, src.text) from None
        if not reading.translated:
            return src
        return ClaimSource(reading.claim, src.file, src.line, answer=src.text.strip())

    def shape_of(self, text: str) -> tuple | None:
        """The shape of a spec-language expression over the claim's names, or None."""
        try:
            builder = ClaimExprBuilder(text, 0, self.names, self.deriv.model.dims, reserved=self.reserved)
            builder.examples = self.deriv.model.examples
            return tuple(shape_of(builder.build()))
        except (SpecError, ShapeError, RecursionError):
            return None

    def _reads_plainly(self, text: str) -> bool:
        """Whether ``text`` is a claim in the spec language: it parses, or fails for a reason no
        other notation would change (a shape, an unknown name)."""
        try:
            self._parse(text, ClaimSource(text, "<claim>"))
        except SpecError as e:
            return e.shapes or not any(w in e.message for w in _NOT_SPEC)
        return True

    def parse(self, src: ClaimSource) -> Claim:
        """Parse one claim; raises :class:`SpecError` located in ``src``."""
        raw = src.text
        try:
            return self._parse(raw, src)
        except SpecError as e:
            if not e.line:
                e.line = src.line
            raise e.at(src.file, raw) from None

    def _parse(self, raw: str, src: ClaimSource) -> Claim:
        line = raw.split("#", 1)[0].rstrip()
        first = len(line) - len(line.lstrip()) + 1
        m = re.match(r"\s*([^=]*?)\s*=(?!=)", line)
        if not line.strip() or not m:
            raise SpecError("a claim reads dNAME = EXPR, e.g. dW1 = dZ @ X.T", 0, first)
        lhs, lcol = m.group(1), m.start(1) + 1
        name = self._target(lhs, lcol)
        col0 = m.end() + len(line[m.end():]) - len(line[m.end():].lstrip())
        rhs = line[col0:]
        if not rhs.strip():
            raise SpecError(f"nothing after '=': write ∂L/∂{name}, e.g. d{name} = ...", 0, m.end() + 1)
        builder = ClaimExprBuilder(rhs, col0, self.names, self.deriv.model.dims, reserved=self.reserved)
        builder.examples = self.deriv.model.examples  # a convolution's examples axis, as the spec's
        builder.want = self.deriv.step(name).shape
        expr = builder.build()
        own = grad_name(name)
        if any(g.name == own for g in expr.atoms(GradSymbol)):
            hit = re.search(rf"(?<![\w.]){own}(?!\w)", rhs)
            col = col0 + (hit.start() if hit else 0) + 1
            raise SpecError(f"the claim for {own} uses {own} itself: write it in terms of other quantities", 0, col)
        return Claim(name, line.strip(), rhs.strip(), expr, src.file, src.line, src.answer)

    def _target(self, lhs: str, col: int) -> str:
        model = self.deriv.model
        if not IDENT.fullmatch(lhs):
            raise SpecError(f"the left of '=' must be dNAME, the gradient of a variable NAME; got '{lhs}'", 0, col)
        grads = [grad_name(n) for n in self.grads]
        if lhs in grads:
            return lhs[1:]
        if lhs == grad_name(self.deriv.loss.name):
            raise SpecError(f"{lhs[1:]} is the loss itself (∂L/∂L = 1); claims are about {self.about()}", 0, col)
        if lhs in self.reserved:
            raise SpecError(f"{self.reserved[lhs]}; claims are about {self.about()}", 0, col)
        if lhs in self.names or lhs in model.dims:
            what = f"write d{lhs} for ∂L/∂{lhs}" if grad_name(lhs) in grads else f"claims are about {self.about()}"
            raise SpecError(f"the left of '=' is a gradient dNAME, not '{lhs}': {what}", 0, col)
        raise SpecError(
            f"'{lhs}' is not the gradient of a variable of {model.name}{suggest(lhs, grads)}; "
            f"claims are about {self.about()}", 0, col,
        )


def claim_sources(claims: str | Sequence[str], file: str = "<claims>") -> list[ClaimSource]:
    """One source per claim: list items are ``<claim N>``; a string is a claims file (one a line)."""
    if isinstance(claims, str):
        lines = claims.splitlines()
        if len(lines) == 1:
            return [ClaimSource(lines[0], "<claim 1>", 1)]
        return [ClaimSource(t, file, i) for i, t in enumerate(lines, 1) if t.split("#", 1)[0].strip()]
    return [ClaimSource(t, f"<claim {i}>", 1) for i, t in enumerate(claims, 1)]

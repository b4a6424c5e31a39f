"""One spec expression -> a model expression, over a whitelist of Python syntax-tree nodes.

The text is parsed by Python's ``ast`` and rebuilt node type by node type by
:class:`ExprBuilder`: a node type with no ``visit_`` method is refused with a message, and user
text is never evaluated. This is separate from the line scanner (:mod:`backprop.language.parse`)
because every other reader of expressions -- Python functions (:mod:`backprop.language.pyfunc`),
hand-derived gradient claims (:mod:`backprop.verification.claims`) -- reuses it as it is.
Every error is a :class:`~backprop.support.errors.SpecError` with a column.
"""

from __future__ import annotations

import ast
import difflib
import re
import unicodedata
from collections.abc import Callable, Container, Mapping

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import fmt_shape, shape_of
from backprop.expr.ops import AXIS_FUNCTIONS, AXIS_REQUIRED, FUNCTIONS
from backprop.language.constants import NAMED_CONSTANTS, constant_problem, power_problem
from backprop.language.conv_syntax import ConvCalls
from backprop.language.select_syntax import SelectCalls
from backprop.language.tensor_syntax import TensorCalls
from backprop.support.deepstack import MAX_NESTING
from backprop.support.errors import ShapeError, SpecError

_BINOPS: dict[type, tuple[str, Callable[[Basic, Basic], Basic]]] = {
    ast.Add: ("+", ir.add),
    ast.Sub: ("-", ir.sub),
    ast.Mult: ("*", ir.mul),
    ast.Div: ("/", ir.div),
    ast.Pow: ("**", ir.power),
    ast.MatMult: ("@", ir.matmul),
}
_UNSUPPORTED: dict[type, str] = {
    ast.Lambda: "lambda expressions are not supported",
    ast.ListComp: "comprehensions are not supported",
    ast.SetComp: "comprehensions are not supported",
    ast.DictComp: "comprehensions are not supported",
    ast.GeneratorExp: "comprehensions are not supported",
    ast.IfExp: "conditional expressions are not supported: write where(C, A, B)",
    ast.BoolOp: "'and'/'or' are not supported",
    ast.JoinedStr: "strings are not supported",
    ast.List: "lists are not supported here (only as reshape's shape or transpose's axes)",
    ast.Tuple: "tuples are not supported",
    ast.Dict: "dicts are not supported",
    ast.Set: "sets are not supported",
    ast.NamedExpr: "':=' is not supported",
    ast.Starred: "'*' unpacking is not supported",
    ast.Await: "'await' is not supported",
    ast.Yield: "'yield' is not supported",
    ast.YieldFrom: "'yield' is not supported",
    ast.Slice: "a slice a:b is written inside a subscript, X[a:b, :]",
}


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate, or nothing."""
    by_lower = {c.lower(): c for c in sorted(candidates, reverse=True)}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


#: Symbols course notes write that the spec language spells as functions.
MATH_SYMBOLS = {"σ": "sigmoid(...)", "Σ": "sum(...)"}


def check_identifiers(text: str, col0: int = 0, ascii_only: bool = False) -> None:
    """SpecError at the first identifier that NFKC normalization changes (``𝐰``, fullwidth ``ｂ``),
    showing both forms; with ``ascii_only`` (a spec line, where every word names something the spec
    declares), at any other non-ASCII one (``xé``) too. A claim's ``σ(Z)`` is left to the claim
    parser, which says how the spec language writes it.

    Python's ``ast`` reads such an identifier as its normal form -- ``𝐰`` as
    ``w`` -- so the spec would silently mean a name it does not show. The
    column is found in the raw text (``ast`` only knows the normalized name).
    """
    for m in re.finditer(r"\w+", text):
        word = m.group()
        if word.isascii():
            continue
        start = next((i for i in range(len(word)) if word[i:].isidentifier()), None)
        if start is None:
            continue
        word = word[start:]
        if word.isascii():  # a non-identifier lead (an Arabic-Indic digit before 'A') left only ASCII
            continue
        normal = unicodedata.normalize("NFKC", word)
        if normal == word:
            if not ascii_only:
                continue
            if word in MATH_SYMBOLS:
                raise SpecError(f"'{word}' is written {MATH_SYMBOLS[word]} here", 0, col0 + m.start() + start + 1)
            i = next(i for i, ch in enumerate(word) if not ch.isascii())
            raise SpecError(
                f"name '{word}' has '{word[i]}' (U+{ord(word[i]):04X} "
                f"{unicodedata.name(word[i], 'UNNAMED')}): names are ASCII letters, digits and '_', "
                "so that the generated module and the LaTeX spell them alike",
                0, col0 + m.start() + start + i + 1,
            )
        i = next(i for i, ch in enumerate(word) if unicodedata.normalize("NFKC", ch) != ch)
        ch = word[i]
        what = f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}"
        detail = f"{what}" if word == ch else f"its '{ch}', {what}, reads as '{unicodedata.normalize('NFKC', ch)}'"
        raise SpecError(
            f"identifier '{word}' ({detail}) would be read as '{normal}': Python normalizes identifiers "
            f"(NFKC); write '{normal}' if that is the name you mean",
            0, col0 + m.start() + start + i + 1,
        )


def nesting(tree: ast.AST) -> int:
    """Levels of nesting below ``tree``, walked iteratively (a 100,000-term sum is that deep)."""
    deepest = 0
    todo = [(tree, 0)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((c, depth + 1) for c in ast.iter_child_nodes(node))
    return deepest


def _byte_to_char(text: str, offset: int) -> int:
    return len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))


def _constant_problem(value: Basic) -> str | None:
    """Why a translated value is a constant without a float64 value (see :mod:`~backprop.language.constants`)."""
    if ir.is_const(value):
        return constant_problem(value)
    if isinstance(value, ir.OpNode) and value.op.name == "pow":
        base, exponent = value.children
        return power_problem(base, exponent, ir.is_const(exponent))
    if isinstance(value, ir.OpNode) and value.op.name == "div" and value.children[1].is_zero:
        return "division by zero"
    return None


#: Reductions that are the identity on one entry (a mean is too, but keeps its node as it always has).
_PICKS = frozenset({"max", "min", "logsumexp"})


def _keeps_value(shape: ir.Shape, axes: int | tuple[int, ...] | None) -> bool:
    """Every reduced axis has length 1 (a scalar over every axis): the reduction is the identity."""
    if ir.is_scalar_shape(shape):
        return True
    return axes is not None and all(shape[a] == 1 for a in ((axes,) if isinstance(axes, int) else axes))


class ExprBuilder(TensorCalls, SelectCalls, ConvCalls):
    """Rebuild an ``ast`` expression as a model expression, node type by node type.

    ``names`` maps each visible name to its value; ``later`` maps names that
    are assigned further down to their line (for a precise error).
    """

    #: the deepest expression accepted, so every later stage stays within its stack budget
    max_nesting = MAX_NESTING
    too_deep_hint = "; split it across assignments"

    def __init__(
        self,
        text: str,
        col0: int,
        names: Mapping[str, Basic],
        dims: Mapping[str, sympy.Symbol],
        later: Mapping[str, int] | None = None,
        reserved: Mapping[str, str] | None = None,
        masks: Container[str] = frozenset(),
        labels: Mapping[str, Basic] | None = None,
    ) -> None:
        self.text, self.col0 = text, col0
        self.names, self.dims = names, dims
        self.later = later or {}
        self.reserved = reserved or {}
        self.masks = masks
        self.labels = labels

    # --- entry ---------------------------------------------------------------
    def build(self) -> Basic:
        check_identifiers(self.text, self.col0)
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as e:
            # Python reports offset 0 when the text ends too early: point past its end.
            offset = e.offset if e.offset else len(self.text.rstrip()) + 1
            col = self.col0 + offset
            msg = e.msg
            if "never closed" in msg or "unmatched" in msg or "does not match" in msg:
                msg = f"unbalanced parentheses: {msg}"
            elif msg.startswith("invalid syntax"):
                msg = "invalid syntax" if e.offset else "the expression ends too early"
            raise SpecError(f"syntax error: {msg}", 0, col) from None
        except (RecursionError, MemoryError):  # Python's own parser gave up
            raise SpecError(self._too_deep(), 0, self.col0 + 1) from None
        depth = nesting(tree.body)
        if depth > self.max_nesting:
            raise SpecError(self._too_deep(depth), 0, self.col0 + 1)
        try:
            return self.visit(tree.body)
        except RecursionError:  # not expected within the bound: still a message, not a traceback
            raise SpecError(self._too_deep(), 0, self.col0 + 1) from None

    def _too_deep(self, depth: int | None = None) -> str:
        levels = f" ({depth} levels)" if depth is not None else ""
        return (f"expression too deeply nested{levels}: the limit is {self.max_nesting} levels "
                f"(a sum of n terms is n levels deep){self.too_deep_hint}")

    def col(self, node: ast.AST) -> int:
        return self.col0 + _byte_to_char(self.text, node.col_offset) + 1

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Where ``node``'s text is in the source line: 0-based character offsets, end excluded."""
        return self.col(node) - 1, self.col0 + _byte_to_char(self.text, node.end_col_offset or 0)

    def fail(self, node: ast.AST, message: str) -> SpecError:
        return SpecError(message, 0, self.col(node))

    def shape_fail(self, node: ast.AST, e: ShapeError, col: int | None = None) -> SpecError:
        """A shape rule's rejection, located: well-formed text whose shapes do not fit."""
        return SpecError(f"shape mismatch: {e}", 0, self.col(node) if col is None else col, shapes=True)

    def visit(self, node: ast.AST) -> Basic:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            msg = _UNSUPPORTED.get(type(node), f"unsupported syntax: {type(node).__name__}")
            raise self.fail(node, msg)
        result = method(node)
        problem = _constant_problem(result)
        if problem is not None:
            raise self.fail(node, problem)
        return result

    # --- leaves --------------------------------------------------------------
    def visit_Constant(self, node: ast.Constant) -> Basic:  # noqa: N802
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            what = "strings" if isinstance(v, (str, bytes)) else f"{type(v).__name__} literals"
            raise self.fail(node, f"{what} are not supported; only real numbers")
        if isinstance(v, float) and not (v == v and abs(v) != float("inf")):
            raise self.fail(node, "number is not finite")
        return sympy.Integer(v) if isinstance(v, int) else sympy.Rational(repr(v))

    def visit_Name(self, node: ast.Name) -> Basic:  # noqa: N802
        name = node.id
        if name in self.names:
            return self.names[name]
        if name in self.dims:
            return self.dims[name]
        if name in NAMED_CONSTANTS:
            return NAMED_CONSTANTS[name]
        if name in FUNCTIONS:
            raise self.fail(node, f"'{name}' is a function: call it, as in {name}(...)")
        if name in self.later:
            raise self.fail(node, f"'{name}' is used before it is assigned (line {self.later[name]})")
        if name in self.reserved:
            raise self.fail(node, self.reserved[name])
        known = sorted(set(self.names) | set(self.dims))
        raise self.fail(node, f"undefined name '{name}'{suggest(name, known)}")

    # --- operators -----------------------------------------------------------
    def _op_col(self, node: ast.BinOp, symbol: str) -> int:
        start = node.left.end_col_offset or 0
        between = self.text.encode("utf-8")[start : node.right.col_offset].decode("utf-8", "ignore")
        idx = between.find(symbol)
        base = _byte_to_char(self.text, start)
        return self.col0 + base + (idx if idx >= 0 else 0) + 1

    def visit_BinOp(self, node: ast.BinOp) -> Basic:  # noqa: N802
        entry = _BINOPS.get(type(node.op))
        if entry is None:
            sym = {ast.Mod: "%", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|",
                   ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}.get(type(node.op), "?")
            hint = " (for powers write **)" if sym == "^" else ""
            raise self.fail(node, f"operator '{sym}' is not supported{hint}")
        symbol, make = entry
        left, right = self.visit(node.left), self.visit(node.right)
        try:
            return make(left, right)
        except ShapeError as e:
            raise self.shape_fail(node, e, self._op_col(node, symbol)) from None

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Basic:  # noqa: N802
        if isinstance(node.op, ast.USub):
            return ir.neg(self.visit(node.operand))
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        sym = {ast.Not: "not", ast.Invert: "~"}.get(type(node.op), "?")
        raise self.fail(node, f"operator '{sym}' is not supported")

    def visit_Attribute(self, node: ast.Attribute) -> Basic:  # noqa: N802
        if node.attr != "T":
            raise self.fail(node, f"attribute '.{node.attr}' is not supported; only .T (transpose)")
        value = self.visit(node.value)
        try:
            return ir.transpose(value)
        except ShapeError as e:
            raise self.shape_fail(node, e) from None

    # --- calls ---------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> Basic:  # noqa: N802
        known = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, f"only the known functions can be called ({known})")
        fname = node.func.id
        if fname not in FUNCTIONS:
            if fname in self.names or fname in self.dims:
                raise self.fail(node, f"'{fname}' is not a function; known functions: {known}")
            raise self.fail(node, f"unknown function '{fname}'{suggest(fname, list(FUNCTIONS))}; known functions: {known}")
        op = FUNCTIONS[fname]
        special = getattr(self, f"call_{op.name}", None)
        if special is not None:  # a tensor form reads its own arguments (subscripts, a shape, axes)
            return special(node)
        return self.registry_call(node, fname)

    def registry_call(self, node: ast.Call, fname: str) -> Basic:
        """A call of a registry function with value arguments (and ``axis=`` where it takes one)."""
        op = FUNCTIONS[fname]
        axis = self._axis(node, fname)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, "'*' unpacking is not supported")
        if len(node.args) != op.arity:
            raise self.fail(node, f"{fname} takes {op.arity} argument{'s' * (op.arity > 1)}: {fname}{op.signature}, "
                                  f"got {len(node.args)}")
        args = [self.visit(a) for a in node.args]
        if fname == "leaky_relu" and not ir.is_scalar(args[1]):
            raise self.fail(node.args[1], f"the slope of leaky_relu must be a scalar, got {fmt_shape(shape_of(args[1]))}")
        try:
            if fname in AXIS_FUNCTIONS:
                axes = self._check_axis(node, fname, axis, shape_of(args[0]))
                if fname == "sum":
                    return ir.total(args[0], axes) if axis is None or not ir.is_scalar(args[0]) else args[0]
                if fname in _PICKS and _keeps_value(shape_of(args[0]), axes):
                    return args[0]  # the max (or log-sum-exp) of one entry is that entry
                return ir.node(op.name, args[0], ir.axes_attr(axes, len(shape_of(args[0]))))
            return ir.node(op.name, *args)
        except ShapeError as e:
            raise self.shape_fail(node, e) from None

    def _axis(self, node: ast.Call, fname: str) -> tuple[ast.expr, int | tuple[int, ...]] | None:
        """The ``axis=`` keyword as written: an integer, or a tuple of them (sum, mean)."""
        axis = None
        for kw in node.keywords:
            if kw.arg != "axis" or fname not in AXIS_FUNCTIONS:
                what = f"'{kw.arg}='" if kw.arg else "'**'"
                raise self.fail(kw.value, f"{fname} takes no keyword argument {what}")
            v = kw.value
            items = v.elts if isinstance(v, ast.Tuple) and fname not in AXIS_REQUIRED else [v]
            if not items or not all(isinstance(i, ast.Constant) and type(i.value) is int for i in items):
                shown = ast.get_source_segment(self.text, v) or "?"
                several = " or a tuple of them, as axis=(0, 2)" if fname not in AXIS_REQUIRED else ""
                raise self.fail(v, f"axis must be a whole number{several}, got {shown}")
            values = tuple(i.value for i in items)
            axis = (v, values if isinstance(v, ast.Tuple) else values[0])
        if axis is None and fname in AXIS_REQUIRED:
            if fname == "concat":
                raise self.fail(node, "concat needs the axis to join along: concat(A, B, axis=0)")
            raise self.fail(node, f"{fname} needs axis=0 (each column) or axis=1 (each row)")
        return axis

    def _check_axis(self, node: ast.Call, fname: str, axis: tuple[ast.expr, int | tuple[int, ...]] | None,
                    shape: ir.Shape) -> int | tuple[int, ...] | None:
        """The axes, checked against the operand's rank: a matrix's are 0 (down each column) and
        1 (along each row); a tensor's, 0 to its rank − 1. A negative axis counts from the end."""
        if axis is None:
            return None
        where, value = axis
        rank = len(shape)
        values = (value,) if isinstance(value, int) else value
        bad = next((a for a in values if not -rank <= a < rank), None)
        if bad is None and len({a % rank for a in values}) != len(values):
            raise self.fail(where, f"axis names the same axis twice: {ast.get_source_segment(self.text, where)}")
        if bad is not None:
            if rank == 2:
                raise self.fail(
                    where, f"axis must be 0 (down each column, giving 1×c) or 1 (along each row, giving r×1), got {bad}"
                )
            raise self.fail(where, f"axis {bad} is out of range for {fmt_shape(shape)} (rank {rank}): "
                                   f"axes are 0 to {rank - 1}")
        normal = tuple(a % rank for a in values)
        return normal[0] if isinstance(value, int) else normal

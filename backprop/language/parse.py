"""Spec text -> :class:`~backprop.language.model.Model`.

Declarations are scanned by hand (for exact error columns); each expression is
parsed by Python's ``ast`` and rebuilt from a whitelist of node types by
:class:`ExprBuilder` -- user text is never evaluated. Every error is a
:class:`~backprop.support.errors.SpecError` with a line and column.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import re
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import fmt_shape, shape_of
from backprop.expr.ops import AXIS_FUNCTIONS, AXIS_REQUIRED, FUNCTIONS
from backprop.language.constants import constant_problem, power_problem
from backprop.language.model import DOMAINS, KINDS, Assign, Decl, Model
from backprop.support.bundled import SPEC_SUFFIX, example_names, examples_dir
from backprop.support.deepstack import MAX_NESTING, deep_stack
from backprop.support.errors import ShapeError, SpecError
from backprop.support.reading import read_user_text

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BINOPS: dict[type, tuple[str, Callable[[Basic, Basic], Basic]]] = {
    ast.Add: ("+", ir.add),
    ast.Sub: ("-", ir.sub),
    ast.Mult: ("*", ir.mul),
    ast.Div: ("/", ir.div),
    ast.Pow: ("**", ir.power),
    ast.MatMult: ("@", ir.matmul),
}
_UNSUPPORTED: dict[type, str] = {
    ast.Subscript: "subscripts are not supported: the language works on whole matrices",
    ast.Lambda: "lambda expressions are not supported",
    ast.ListComp: "comprehensions are not supported",
    ast.SetComp: "comprehensions are not supported",
    ast.DictComp: "comprehensions are not supported",
    ast.GeneratorExp: "comprehensions are not supported",
    ast.IfExp: "conditional expressions are not supported (for [Z > 0] use relu)",
    ast.Compare: "comparisons are not supported",
    ast.BoolOp: "'and'/'or' are not supported",
    ast.JoinedStr: "strings are not supported",
    ast.List: "lists are not supported",
    ast.Tuple: "tuples are not supported",
    ast.Dict: "dicts are not supported",
    ast.Set: "sets are not supported",
    ast.NamedExpr: "':=' is not supported",
    ast.Starred: "'*' unpacking is not supported",
    ast.Await: "'await' is not supported",
    ast.Yield: "'yield' is not supported",
    ast.YieldFrom: "'yield' is not supported",
    ast.Slice: "slices are not supported",
}


def dim_symbol(name: str) -> sympy.Symbol:
    """Dimensions are positive-integer symbols; one per name."""
    return sympy.Symbol(name, integer=True, positive=True)


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate, or nothing."""
    by_lower = {c.lower(): c for c in sorted(candidates, reverse=True)}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


def check_identifiers(text: str, col0: int = 0) -> None:
    """SpecError at the first identifier that NFKC normalization changes (``𝐰``, fullwidth ``ｂ``).

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
        normal = unicodedata.normalize("NFKC", word)
        if normal == word:
            continue
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
        return power_problem(base, exponent, ir.is_const(exponent)) if ir.is_const(base) else None
    if isinstance(value, ir.OpNode) and value.op.name == "div" and value.children[1].is_zero:
        return "division by zero"
    return None


class ExprBuilder:
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
    ) -> None:
        self.text, self.col0 = text, col0
        self.names, self.dims = names, dims
        self.later = later or {}
        self.reserved = reserved or {}

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

    def fail(self, node: ast.AST, message: str) -> SpecError:
        return SpecError(message, 0, self.col(node))

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
            raise SpecError(f"shape mismatch: {e}", 0, self._op_col(node, symbol)) from None

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
        return ir.transpose(self.visit(node.value))

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
        axis = self._axis(node, fname)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, "'*' unpacking is not supported")
        if len(node.args) != op.arity:
            want = "(E, slope)" if op.arity == 2 else "(E)"
            raise self.fail(node, f"{fname} takes {op.arity} argument{'s' * (op.arity > 1)}: {fname}{want}, got {len(node.args)}")
        args = [self.visit(a) for a in node.args]
        if fname == "leaky_relu" and not ir.is_scalar(args[1]):
            raise self.fail(node.args[1], f"the slope of leaky_relu must be a scalar, got {fmt_shape(shape_of(args[1]))}")
        try:
            if fname in AXIS_FUNCTIONS:
                if fname == "sum":
                    return ir.total(args[0], axis) if axis is None or not ir.is_scalar(args[0]) else args[0]
                return ir.node(op.name, args[0], ir.axes_attr(axis))
            return ir.node(op.name, *args)
        except ShapeError as e:
            raise self.fail(node, f"shape mismatch: {e}") from None

    def _axis(self, node: ast.Call, fname: str) -> int | None:
        axis: int | None = None
        for kw in node.keywords:
            if kw.arg != "axis" or fname not in AXIS_FUNCTIONS:
                what = f"'{kw.arg}='" if kw.arg else "'**'"
                raise self.fail(kw.value, f"{fname} takes no keyword argument {what}")
            v = kw.value
            if not (isinstance(v, ast.Constant) and type(v.value) is int and v.value in (0, 1)):
                shown = ast.get_source_segment(self.text, v) or "?"
                raise self.fail(
                    v, f"axis must be 0 (down each column, giving 1×c) or 1 (along each row, giving r×1), got {shown}"
                )
            axis = v.value
        if axis is None and fname in AXIS_REQUIRED:
            raise self.fail(node, f"{fname} needs axis=0 (each column) or axis=1 (each row)")
        return axis


# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------


class SpecParser:
    """Line-by-line parser; keeps just enough state for precise errors."""

    def __init__(self, text: str, path: str, name: str) -> None:
        self.text, self.path, self.name = text, path, name
        self.model = Model(name=name, source=text, path=path)
        self.lines_of: dict[str, int] = {}
        self.assign_lines: dict[str, int] = {}

    def error(self, message: str, line: int, col: int) -> SpecError:
        src = self.text.splitlines()[line - 1] if 0 < line <= len(self.text.splitlines()) else None
        return SpecError(message, line, col, self.path, src)

    def parse(self) -> Model:
        lines = self.text.splitlines()
        self.assign_lines = self._scan_assignments(lines)
        for no, raw in enumerate(lines, 1):
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            try:
                check_identifiers(line)
                self._statement(line, no)
            except SpecError as e:
                if not e.line:
                    e.line = no
                raise e.at(self.path, raw) from None
        self._finish(lines)
        return self.model

    @staticmethod
    def _scan_assignments(lines: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for no, raw in enumerate(lines, 1):
            m = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", raw.split("#", 1)[0])
            if m and m.group(1) not in KINDS:
                found.setdefault(m.group(1), no)
        return found

    def _statement(self, line: str, no: int) -> None:
        m = re.match(r"(\s*)([A-Za-z_]\w*)", line)
        if m and m.group(2) in KINDS and (len(line) == m.end() or line[m.end()].isspace()):
            self._declaration(line, no, m.group(2), m.end())
            return
        eq = re.match(r"\s*([^=]*?)\s*=(?!=)", line)
        if eq:
            self._assignment(line, no, eq)
            return
        col = (m.start(2) if m else len(line) - len(line.lstrip())) + 1
        word = m.group(2) if m else line.strip().split()[0]
        hint = suggest(word, list(KINDS))
        raise SpecError(
            f"unknown statement '{word}'{hint}: expected 'input NAME[rows, cols]', "
            "'param NAME[rows, cols]' or 'NAME = EXPR'", no, col
        )

    # --- names ---------------------------------------------------------------
    def _check_name(self, name: str, no: int, col: int, declaring: bool) -> None:
        if keyword.iskeyword(name) or keyword.issoftkeyword(name):
            raise SpecError(f"'{name}' is a Python keyword and cannot be a name", no, col)
        if name in FUNCTIONS:
            raise SpecError(f"'{name}' is a function name and cannot name a variable", no, col)
        if name in self.model.dims:
            raise SpecError(f"'{name}' is a dimension name and cannot name a variable", no, col)
        if name in self.model.decls:
            first = self.model.decls[name]
            what = "duplicate declaration of" if declaring else "cannot assign"
            raise SpecError(f"{what} '{name}' (declared as {first.kind} on line {first.line})", no, col)
        if name in self.lines_of:
            raise SpecError(f"'{name}' is assigned twice (first on line {self.lines_of[name]})", no, col)
        if name.startswith("d") and name[1:] in self.lines_of | {k: 0 for k in self.model.decls}:
            raise SpecError(f"'{name}' is reserved: it means the gradient of {name[1:]}", no, col)
        if "d" + name in self.lines_of or "d" + name in self.model.decls:
            raise SpecError(f"'{name}' would make 'd{name}' mean its gradient, but 'd{name}' is already a variable", no, col)

    # --- declarations --------------------------------------------------------
    def _declaration(self, line: str, no: int, kind: str, pos: int) -> None:
        rest = line[pos:]
        pos += len(rest) - len(rest.lstrip())
        m = IDENT.match(line, pos)
        if not m:
            raise SpecError(f"expected a name after '{kind}'", no, pos + 1)
        name, ncol = m.group(), pos + 1
        pos = m.end()
        self._check_name(name, no, ncol, declaring=True)
        dims: list[Basic] = [sympy.Integer(1), sympy.Integer(1)]
        scalar = True
        if pos < len(line) and line[pos] == "[":
            close = line.find("]", pos)
            if close < 0:
                raise SpecError("unbalanced '[': expected ']' after the dimensions", no, pos + 1)
            dims = self._dims(line, pos + 1, close, no, name)
            scalar = False
            pos = close + 1
        words = line[pos:].split()
        domain = None
        if words:
            wcol = line.index(words[0], pos) + 1
            if len(words) > 1:
                raise SpecError(f"unexpected '{words[1]}' after the declaration", no, line.index(words[1], wcol) + 1)
            if kind == "param":
                raise SpecError(f"a param takes no domain; got '{words[0]}'", no, wcol)
            if words[0] not in DOMAINS:
                raise SpecError(
                    f"unknown domain '{words[0]}'{suggest(words[0], list(DOMAINS))}; expected one of {', '.join(DOMAINS)}",
                    no, wcol,
                )
            domain = words[0]
        symbol = MatrixSymbol(name, dims[0], dims[1])
        self.model.decls[name] = Decl(name, kind, symbol, domain, scalar, no)

    def _dims(self, line: str, start: int, end: int, no: int, name: str) -> list[Basic]:
        parts = line[start:end].split(",")
        if len(parts) != 2:
            raise SpecError(f"'{name}' needs two dimensions [rows, cols], got {len(parts)}", no, start + 1)
        out: list[Basic] = []
        col = start
        for part in parts:
            tok = part.strip()
            tcol = col + (len(part) - len(part.lstrip())) + 1
            col += len(part) + 1
            if re.fullmatch(r"[+-]?\d+", tok):
                if int(tok) <= 0:
                    raise SpecError(f"dimension must be a positive integer, got {tok}", no, tcol)
                out.append(sympy.Integer(int(tok)))
            elif IDENT.fullmatch(tok):
                out.append(self._dim_name(tok, no, tcol))
            elif not tok:
                raise SpecError("empty dimension: expected a name or a positive integer", no, tcol)
            else:
                raise SpecError(f"dimension must be a name or a positive integer, got '{tok}'", no, tcol)
        return out

    def _dim_name(self, tok: str, no: int, col: int) -> sympy.Symbol:
        if tok in self.model.dims:
            return self.model.dims[tok]
        if keyword.iskeyword(tok) or tok in FUNCTIONS:
            raise SpecError(f"'{tok}' cannot name a dimension", no, col)
        if tok in self.model.decls or tok in self.assign_lines:
            raise SpecError(f"'{tok}' names a variable and cannot also name a dimension", no, col)
        self.model.dims[tok] = dim_symbol(tok)
        return self.model.dims[tok]

    # --- assignments ---------------------------------------------------------
    def _assignment(self, line: str, no: int, eq: re.Match) -> None:
        target = eq.group(1)
        tcol = eq.start(1) + 1
        if not IDENT.fullmatch(target):
            raise SpecError(f"the left of '=' must be a single name, got '{target}'", no, tcol)
        self._check_name(target, no, tcol, declaring=False)
        col0 = eq.end() + len(line[eq.end():]) - len(line[eq.end():].lstrip())
        names = {n: d.symbol for n, d in self.model.decls.items()}
        names.update({a.name: a.symbol for a in self.model.assigns})
        later = {n: ln for n, ln in self.assign_lines.items() if ln >= no}
        reserved = {
            "d" + n: f"'d{n}' means the gradient of {n}; it can be used in claims, not in a spec"
            for n in names
        }
        expr = ExprBuilder(line[col0:], col0, names, self.model.dims, later, reserved).build()
        shape = shape_of(expr)
        symbol = MatrixSymbol(target, shape[0], shape[1])
        self.model.assigns.append(Assign(target, expr, symbol, no, line[col0:].strip()))
        self.lines_of[target] = no

    # --- whole-spec checks ---------------------------------------------------
    def _finish(self, lines: list[str]) -> None:
        last = max(len(lines), 1)
        m = self.model
        if not m.decls and not m.assigns:
            raise self.error("empty spec: declare inputs and params, then assignments (the last one is the loss)", 1, 1)
        if not m.params:
            raise self.error("no params: declare at least one 'param NAME[rows, cols]' to differentiate", last, 1)
        if not m.assigns:
            raise self.error("no assignments: the last assignment defines the loss", last, 1)
        loss = m.loss
        if not ir.is_scalar(loss.symbol):
            col = lines[loss.line - 1].index(loss.name) + 1
            raise self.error(
                f"the loss '{loss.name}' must be a scalar, but it is {fmt_shape(loss.shape)}: "
                f"reduce it, e.g. sum(...) or mean(...)", loss.line, col
            )
        used = self._loss_dependencies()
        for p in m.params:
            if p.name not in used:
                col = lines[p.line - 1].index(p.name) + 1
                raise self.error(f"param '{p.name}' is declared but the loss does not depend on it", p.line, col)

    def _loss_dependencies(self) -> set[str]:
        deps = {a.name: {s.name for s in ir.variables(a.expr)} for a in self.model.assigns}
        seen: set[str] = set()
        todo = [self.model.loss.name]
        while todo:
            n = todo.pop()
            for d in deps.get(n, ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen


@deep_stack
def parse_spec(text: str, path: str = "<spec>", name: str | None = None) -> Model:
    """Parse spec text into a shape-checked model (raises SpecError)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError("not a text file: it contains a NUL byte", line, 1, path)
    stem = name or Path(path).stem.strip("<>") or "network"
    return SpecParser(text, path, stem).parse()


# ---------------------------------------------------------------------------
# Files and bundled examples
# ---------------------------------------------------------------------------


def read_spec(spec: str) -> tuple[str, str]:
    """Return (text, display path) for a spec path or bundled example name."""
    p = Path(spec)
    if not p.exists() and not spec.endswith(SPEC_SUFFIX) and "/" not in spec:
        bundled = examples_dir() / f"{spec}{SPEC_SUFFIX}"
        if bundled.is_file():
            spec = str(bundled)
    missing = f"no such file or bundled example (bundled: {', '.join(example_names())})"
    return read_user_text(spec, "spec file", missing), spec


@deep_stack
def load(spec: str) -> Model:
    """Load a model from a spec path or a bundled example's name."""
    text, path = read_spec(spec)
    return parse_spec(text, path=path, name=Path(path).stem)

"""Spec text -> :class:`~backprop.language.model.Model`: the line scanner.

Declarations are scanned by hand (for exact error columns); each expression is
handed to :class:`~backprop.language.expression.ExprBuilder`, which rebuilds it from a
whitelist of syntax-tree nodes -- user text is never evaluated. The scanner holds the
statement-level rules: names, dimensions, domains, declared before use, a scalar loss every
param reaches. Every error is a :class:`~backprop.support.errors.SpecError` with a line and column.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import fmt_shape, shape_of
from backprop.expr.ops import FUNCTIONS
from backprop.expr.ops_select import is_mask
from backprop.language.domains import DOMAINS
from backprop.language.domains import parse as parse_domain
from backprop.language.expression import check_identifiers, suggest
from backprop.language.loop_syntax import FOR, INDEXED_TARGET, LoopStatements, indent
from backprop.language.model import KINDS, Assign, Decl, Model
from backprop.support.bundled import SPEC_SUFFIX, example_names, examples_dir
from backprop.support.deepstack import deep_stack
from backprop.support.errors import SpecError
from backprop.support.reading import read_user_text

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A domain after a declaration's shape: a word, with an argument in parentheses or not (labels(c)).
DOMAIN_WORD = re.compile(r"(\w+)(?:\s*\(([^()]*)\))?")
#: The statement naming the dim that counts examples: ``examples m``.
EXAMPLES = "examples"
#: The most axes a declared value may have (NumPy's own limit is 64; a spec needing more is a mistake).
MAX_RANK = 16


def dim_symbol(name: str) -> sympy.Symbol:
    """Dimensions are positive-integer symbols; one per name."""
    return sympy.Symbol(name, integer=True, positive=True)


class SpecParser(LoopStatements):
    """Line-by-line parser; keeps just enough state for precise errors (a loop's block is read whole,
    once it ends)."""

    def __init__(self, text: str, path: str, name: str) -> None:
        self.text, self.path, self.name = text, path, name
        self.model = Model(name=name, source=text, path=path)
        self.lines_of: dict[str, int] = {}
        self.examples_at: tuple[int, int] | None = None  # the line and column of 'examples m'
        self.assign_lines: dict[str, int] = {}
        #: names holding a 0/1 mask: binary inputs and values assigned a comparison (where's conditions)
        self.masks: set[str] = set()
        #: labels inputs -> their number of classes (onehot and take check against it)
        self.labels: dict[str, Basic] = {}
        self._init_loops()

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
            with self._located(lines, no):
                check_identifiers(line, ascii_only=True)
                if self.open_loop is not None and indent(line) > self.open_loop[1]:
                    self.block.append((no, line))
                    continue
                if self.open_loop is not None:
                    self._close_loop()
                self._statement(line, no)
        with self._located(lines, len(lines)):
            self._finish_loops()
        self._finish(lines)
        return self.model

    @contextmanager
    def _located(self, lines: list[str], no: int) -> Iterator[None]:
        """A SpecError raised reading line ``no`` (or a line it names: a loop's block is read at its end)
        gets the file and its source line."""
        try:
            yield
        except SpecError as e:
            if not e.line:
                e.line = no
            raise e.at(self.path, lines[e.line - 1] if 0 < e.line <= len(lines) else None) from None

    @staticmethod
    def _scan_assignments(lines: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for no, raw in enumerate(lines, 1):
            code = raw.split("#", 1)[0]
            plain, indexed = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", code), INDEXED_TARGET.match(code)
            first_state = indexed is not None and indexed.group(3).strip() == "0"  # H[0]: H is assigned in its loop
            name = plain.group(1) if plain else indexed.group(2) if indexed and not first_state else None
            if name is not None and name not in KINDS:
                found.setdefault(name, no)
        return found

    def _statement(self, line: str, no: int) -> None:
        m = re.match(r"(\s*)([A-Za-z_]\w*)", line)
        if m and m.group(2) in KINDS and (len(line) == m.end() or line[m.end()].isspace()):
            self._declaration(line, no, m.group(2), m.end())
            return
        if m and m.group(2) == EXAMPLES and re.fullmatch(r"\s+\S.*", line[m.end():]) and "=" not in line:
            self._examples(line, no, m.end())
            return
        if FOR.match(line):
            self._loop_header(line, no, FOR.match(line))
            return
        indexed = INDEXED_TARGET.match(line)
        if indexed:
            self._first_state(line, no, indexed)
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

    def _examples(self, line: str, no: int, pos: int) -> None:
        """``examples m``: the dim that counts examples (checked against the inputs at the end)."""
        words = line[pos:].split()
        col = line.index(words[0], pos) + 1
        if len(words) > 1:
            raise SpecError(f"unexpected '{words[1]}': 'examples' names one dim, e.g. 'examples m'",
                            no, line.index(words[1], col) + 1)
        if not IDENT.fullmatch(words[0]):
            raise SpecError(f"'examples' names a dim, e.g. 'examples m'; got '{words[0]}'", no, col)
        if self.examples_at is not None:
            raise SpecError(f"the examples dim is already declared (line {self.examples_at[0]})", no, pos - len(EXAMPLES) + 1)
        self.model.examples = words[0]
        self.examples_at = (no, col)

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
        domain = self._domain(line, pos, no, kind, name, dims)
        symbol = ir.symbol(name, tuple(dims))
        self.model.decls[name] = Decl(name, kind, symbol, domain, scalar, no)
        if domain == "binary":
            self.masks.add(name)
        arg = parse_domain(domain)[1] if domain else None
        if arg is not None:  # labels(c): its number of classes, for onehot and take to check
            self.labels[name] = sympy.Integer(int(arg)) if arg.isdigit() else self.model.dims[arg]

    def _domain(self, line: str, pos: int, no: int, kind: str, name: str, dims: list[Basic]) -> str | None:
        """The domain after a declaration's shape, as the model keeps it: ``onehot``, ``labels(c)``."""
        rest = line[pos:]
        if not rest.strip():
            return None
        wcol = pos + len(rest) - len(rest.lstrip()) + 1
        m = DOMAIN_WORD.match(line, wcol - 1)
        word = m.group(1) if m else rest.split()[0]
        if m is None or line[m.end():].strip():
            after = line[m.end():].split() if m else rest.split()[1:]
            if after:
                raise SpecError(f"unexpected '{after[0]}' after the declaration", no, line.index(after[0], wcol) + 1)
        if kind == "param":
            raise SpecError(f"a param takes no domain; got '{word}'", no, wcol)
        if word not in DOMAINS:
            raise SpecError(f"unknown domain '{word}'{suggest(word, list(DOMAINS))}; expected one of {', '.join(DOMAINS)}",
                            no, wcol)
        row = DOMAINS[word]
        arg = m.group(2) if m else None
        if row.argument and arg is None:
            raise SpecError(f"{word} needs {row.argument}: {word}(c)", no, wcol)
        if arg is not None and not row.argument:
            raise SpecError(f"{word} takes no argument", no, line.index("(", wcol) + 1)
        wrong = row.shape_rule(tuple(dims)) if row.shape_rule else None
        if wrong:
            raise SpecError(f"{wrong}; '{name}' is declared {fmt_shape(tuple(dims))}", no, wcol)
        if arg is None:
            return word
        acol = line.index("(", wcol) + 2 + (len(m.group(2)) - len(m.group(2).lstrip()))
        arg = arg.strip()
        if re.fullmatch(r"\d+", arg):
            if int(arg) < 2:
                raise SpecError(f"{word} needs at least 2 classes, got {arg}", no, acol)
        elif IDENT.fullmatch(arg):
            self._dim_name(arg, no, acol)
        else:
            raise SpecError(f"{word}'s argument is {row.argument}, a dim name or a whole number; got '{arg}'", no, acol)
        return f"{word}({arg})"

    def _dims(self, line: str, start: int, end: int, no: int, name: str) -> list[Basic]:
        parts = line[start:end].split(",")
        if len(parts) > MAX_RANK:
            raise SpecError(f"'{name}' has {len(parts)} dimensions: at most {MAX_RANK} are supported", no, start + 1)
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
        expr = self._expression(line[col0:], col0, no)
        if is_mask(expr, self.masks):
            self.masks.add(target)
        shape = shape_of(expr)
        symbol = ir.symbol(target, shape)
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
        if m.loops and m.loops[-1].position == len(m.assigns):
            r = m.loops[-1]
            raise self.error(f"the spec ends with a loop: the loss, a scalar, is the last assignment, after the "
                             f"loop (reading its steps, e.g. {r.sequences[0].name if r.sequences else 'H'}[{r.length}])",
                             r.line, indent(lines[r.line - 1]) + 1)
        loss = m.loss
        if not ir.is_scalar(loss.symbol):
            col = lines[loss.line - 1].index(loss.name) + 1
            raise self.error(
                f"the loss (the last assignment, '{loss.name}' at line {loss.line}) must be a scalar, "
                f"but it is {fmt_shape(loss.shape)}: reduce it, e.g. sum(...) or mean(...)", loss.line, col
            )
        if self.examples_at is not None:
            self._check_examples(*self.examples_at)
        self._check_classes(lines)
        used = self._loss_dependencies(ir.variables)
        reached = self._loss_dependencies(ir.differentiable_reads)
        for p in m.params:
            col = lines[p.line - 1].index(p.name) + 1
            if p.name not in used:
                raise self.error(f"param '{p.name}' is declared but the loss (the last assignment, "
                                 f"'{m.loss.name}' at line {m.loss.line}) does not depend on it", p.line, col)
            if p.name not in reached:
                raise self.error(
                    f"param '{p.name}' reaches the loss only through stop_gradient(...), a comparison or "
                    "where's condition, which pass no gradient: its gradient would always be 0 (declare "
                    "it an input if it is held fixed)", p.line, col)

    def _check_classes(self, lines: list[str]) -> None:
        """The number of classes of labels(c) is the length of an axis declared somewhere (W[c, d]):
        the generated code reads every dim from the arrays it is given."""
        shaped = {s for d in self.model.decls.values() for s in d.symbol.shape}
        for name, c in self.labels.items():
            if c.is_Symbol and c not in shaped:
                decl = self.model.decls[name]
                raise self.error(f"'{name}' is declared labels({c}), but no input or param has an axis of length "
                                 f"{c}: declare one (e.g. the classifier's weights W[{c}, h]) or write the number, "
                                 f"labels(10)", decl.line, lines[decl.line - 1].index(f"({c}") + 2)

    def _check_examples(self, line: int, col: int) -> None:
        name, m = self.model.examples, self.model
        if name not in m.dims:
            dims = f" (its dims: {', '.join(m.dims)})" if m.dims else ""
            raise self.error(f"'{name}' is not a dim of this spec{suggest(name or '', list(m.dims))}: "
                             f"'examples' names the dim that counts examples{dims}", line, col)
        if not any(m.examples_axis(d.name) is not None for d in m.inputs):
            raise self.error(f"no input has an axis of length {name}: the examples dim sizes the data, "
                             f"e.g. 'input X[{name}, n]'", line, col)

    def _loss_dependencies(self, reads: Callable[[Basic], set[MatrixSymbol]]) -> set[str]:
        """The names the loss reads, directly or through assignments, by ``reads`` (every read, or only
        those a gradient flows back through)."""
        deps = {a.name: {s.name for s in reads(a.expr)} for a in self.model.assigns}
        for r in self.model.loops:  # a step's symbols (H[t-1], X[:, t]) stand for the values they read
            named = r.sequence_of | r.source_of
            for a in r.body:
                deps[a.name] = {named.get(s.name, s.name) for s in reads(a.expr)}
            for s in r.states:
                if s.init is not None:
                    deps[f"{s.name}[0]"] = {x.name for x in reads(s.init)}  # H[0], read by name after the loop too
                    deps[s.name] |= {f"{s.name}[0]"}
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

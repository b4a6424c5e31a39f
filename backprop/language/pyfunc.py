"""A network written as a Python function -> :class:`~backprop.language.model.Model`.

::

    @backprop.network(inputs={"X": "n m", "Y": "c m onehot"},
                    params={"W1": "h n", "b1": "h 1", "W2": "c h", "b2": "c 1"})
    def mlp(X, Y, W1, b1, W2, b2):
        A1 = relu(W1 @ X + b1)
        return -sum(Y * log_softmax(W2 @ A1 + b2, axis=0)) / m

The function is never called or executed: its SOURCE is read (``inspect`` +
``ast`` + ``tokenize``), each statement is turned into the equivalent spec
line -- the decorator's shapes become declarations, ``NAME = EXPR`` stays,
``return EXPR`` becomes the loss -- and the spec text goes through
:func:`backprop.language.parse.parse_spec`, the same whitelist and checks as a spec file.
Every character of the spec text remembers where it came from, so an error
points at the Python file's line and column.

This module is the translation only (:func:`model_of`). The ``@backprop.network`` decorator,
which also attaches the derivation and the LaTeX view, is
:mod:`backprop.present.functions`: it needs the engine, which sits above the language.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backprop.language.domains import DOMAINS
from backprop.language.model import Model
from backprop.language.parse import parse_spec
from backprop.support.errors import SpecError
from backprop.support.escape import visible
from backprop.support.naming import fresh

Shape = str | int | tuple | list | None
#: (file line, file column), both 1-based
Pos = tuple[int, int]

_STATEMENTS = {
    ast.For: "a for loop", ast.While: "a while loop", ast.If: "an if statement", ast.With: "a with block",
    ast.AugAssign: "an augmented assignment (each name is assigned once)", ast.AnnAssign: "an annotated assignment",
    ast.Expr: "an expression statement", ast.Import: "an import", ast.ImportFrom: "an import",
    ast.FunctionDef: "a nested function", ast.Pass: "'pass'", ast.Try: "a try block", ast.Delete: "'del'",
    ast.Global: "'global'", ast.Nonlocal: "'nonlocal'", ast.Assert: "'assert'", ast.Raise: "'raise'",
}


# ---------------------------------------------------------------------------
# Reading the function's source
# ---------------------------------------------------------------------------


@dataclass
class Source:
    """The function's source lines, where they sit in their file, and its parse tree."""

    path: str
    lines: list[str]  # the function's lines, as in the file
    first: int  # file line number of lines[0]
    tree: ast.FunctionDef
    offset: int  # lines prepended so that an indented function parses

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Source:
        try:
            lines, first = inspect.getsourcelines(fn)
            path = inspect.getsourcefile(fn) or "<function>"
        except (OSError, TypeError) as e:
            raise SpecError(
                f"cannot read the source of {getattr(fn, '__name__', fn)!r} ({e}): define it in a .py file "
                "or a notebook cell", 0, 0, "<function>",
            ) from None
        text = "".join(lines)
        offset = 0
        if lines and lines[0][:1] in (" ", "\t"):  # a method or a nested function: parse it inside a block
            text, offset = "if 1:\n" + text, 1
        module = ast.parse(text)
        node = module.body[0].body[0] if offset else module.body[0]  # type: ignore[attr-defined]
        if not isinstance(node, ast.FunctionDef):
            raise SpecError("@network decorates a plain function (def, not async def or a class)", first, 1, path)
        return cls(path, [ln.rstrip("\n") for ln in lines], first, node, offset)

    def line_text(self, row: int) -> str:
        """A line of the parsed text (1-based, counting the prepended block line)."""
        i = row - 1 - self.offset
        return self.lines[i] if 0 <= i < len(self.lines) else ""

    def pos(self, row: int, char_col: int) -> Pos:
        """Parsed-text (row, 0-based character column) -> file (line, 1-based column)."""
        return (self.first + row - 1 - self.offset, char_col + 1)

    def node_pos(self, node: ast.AST) -> Pos:
        row = node.lineno  # type: ignore[attr-defined]
        line = self.line_text(row)
        col = len(line.encode("utf-8")[: node.col_offset].decode("utf-8", errors="ignore"))  # type: ignore[attr-defined]
        return self.pos(row, col)

    def tokens(self) -> list[tokenize.TokenInfo]:
        text = ("if 1:\n" if self.offset else "") + "\n".join(self.lines) + "\n"
        return list(tokenize.generate_tokens(io.StringIO(text).readline))

    def error(self, message: str, at: Pos) -> SpecError:
        line, col = at
        src = self.lines[line - self.first] if 0 <= line - self.first < len(self.lines) else None
        return SpecError(message, line, col, self.path, src)


# ---------------------------------------------------------------------------
# Spec text with a position map
# ---------------------------------------------------------------------------


@dataclass
class MappedSpec:
    """Spec lines, each character mapped back to a position in the Python file."""

    lines: list[str] = field(default_factory=list)
    where: list[list[Pos]] = field(default_factory=list)

    def add(self, text: str, at: Pos | list[Pos]) -> None:
        self.lines.append(text)
        self.where.append(at if isinstance(at, list) else [at] * max(len(text), 1))

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def relabel_lines(self, message: str) -> str:
        """'first on line 3' in a parser message -> the Python file's line."""

        def sub(m: re.Match) -> str:
            n = int(m.group(1))
            return f"line {self.where[n - 1][0][0]}" if 0 < n <= len(self.where) and self.where[n - 1] else m.group()

        return re.sub(r"\bline (\d+)", sub, message)

    def locate(self, line: int, col: int) -> Pos | None:
        if not 0 < line <= len(self.where):
            return None
        where = self.where[line - 1]
        if not where:
            return None
        i = min(max(col - 1, 0), len(where) - 1)
        row, c = where[i]
        return (row, c + max(col - 1 - i, 0))


def _statement_text(src: Source, tokens: list[tokenize.TokenInfo], node: ast.stmt) -> tuple[str, list[Pos]]:
    """One statement as a single line from its tokens (comments dropped), each character's file position."""
    start = (node.lineno, _char_col(src, node.lineno, node.col_offset))
    end = (node.end_lineno, _char_col(src, node.end_lineno, node.end_col_offset))  # type: ignore[arg-type]
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    text, where = "", []
    prev: tokenize.TokenInfo | None = None
    for tok in tokens:
        if tok.type in skip or tok.start < start or tok.end > end:  # type: ignore[operator]
            continue
        if prev is not None:
            gap = tok.start[1] - prev.end[1] if tok.start[0] == prev.end[0] else 1
            text += " " * gap
            where += [src.pos(prev.end[0], prev.end[1])] * gap
        text += tok.string
        where += [src.pos(tok.start[0], tok.start[1] + i) for i in range(len(tok.string))]
        prev = tok
    return text, where


def _char_col(src: Source, row: int, byte_col: int) -> int:
    return len(src.line_text(row).encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


# ---------------------------------------------------------------------------
# Declarations from the decorator
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    name: str
    kind: str  # input | param
    dims: tuple[str, ...]
    domain: str | None

    def spec_line(self) -> str:
        shape = f"[{', '.join(self.dims)}]" if self.dims else ""
        return f"{self.kind} {self.name}{shape}" + (f" {self.domain}" if self.domain else "")


def _shape_words(shape: Shape) -> list[str]:
    if shape is None:
        return []
    if isinstance(shape, int):
        return [str(shape)]
    if isinstance(shape, (tuple, list)):
        return [str(s) for s in shape]
    if isinstance(shape, str):
        return [w for w in re.split(r"[\s,\[\]()×]+", shape) if w]
    raise TypeError(f"a shape is a string like 'n m' or a tuple like ('n', 'm'), got {shape!r}")


def _declared(name: str, kind: str, shape: Shape) -> tuple[Declared, str | None]:
    """The declaration, and a problem with it (reported at the decorator) or None."""
    words = _shape_words(shape)
    domain = None
    if words and words[-1] in DOMAINS:
        domain = words.pop()
        if kind == "param":
            return Declared(name, kind, tuple(words), None), f"a param takes no domain; got '{domain}' for '{name}'"
    if words == ["scalar"]:
        words = []
    if len(words) not in (0, 2):
        return Declared(name, kind, tuple(words), domain), (
            f"'{name}' needs two dimensions 'rows cols' (or none for a scalar), got {' '.join(words) or 'none'}"
        )
    return Declared(name, kind, tuple(words), domain), None


# ---------------------------------------------------------------------------
# The function's declarations and body as spec lines
# ---------------------------------------------------------------------------


def model_of(
    fn: Callable[..., Any],
    *,
    inputs: Mapping[str, Shape] | None = None,
    params: Mapping[str, Shape] | Iterable[str] | None = None,
    name: str | None = None,
    shapes: Mapping[str, Shape] | None = None,
) -> Model:
    """The :class:`Model` a decorated function's source describes (see :func:`backprop.network`)."""
    src = Source.of(fn)
    decl_at = _decorator_positions(src)
    declared = _declarations(src, decl_at, inputs, params, shapes or {})
    spec = MappedSpec()
    doc = ast.get_docstring(src.tree)
    for line in (doc or "").split("\n\n")[0].splitlines():  # the description renderers show
        # a spec comment is one line of text: a control character (NUL, ESC, ...) is shown, not kept
        spec.add(f"# {visible(line)}".rstrip(), src.node_pos(src.tree.body[0]))
    for d in declared:
        spec.add(d.spec_line(), decl_at.get(d.name, decl_at[""]))
    _body(src, spec, {d.name for d in declared})
    try:
        return parse_spec(spec.text, path=src.path, name=name or fn.__name__)
    except SpecError as e:
        message = spec.relabel_lines(e.message)
        where = spec.locate(e.line, e.col) if e.line else None
        raise src.error(message, where or src.node_pos(src.tree)) from None


def _decorator_positions(src: Source) -> dict[str, Pos]:
    """Where each name's shape is written in the decorator (the string), '' -> the decorator itself."""
    out: dict[str, Pos] = {}
    for dec in src.tree.decorator_list:
        if not isinstance(dec, ast.Call):
            continue
        at = src.node_pos(dec)
        out.setdefault("", (at[0], max(at[1] - 1, 1)))  # the '@'
        for kw in dec.keywords:
            if isinstance(kw.value, ast.Dict):
                for k, v in zip(kw.value.keys, kw.value.values):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        out[k.value] = src.node_pos(v)
            elif kw.arg:
                out[kw.arg] = src.node_pos(kw.value)
    out.setdefault("", src.node_pos(src.tree))
    return out


def _arguments(src: Source) -> tuple[list[ast.arg], set[str]]:
    a = src.tree.args
    if a.vararg or a.kwarg or a.defaults or any(d is not None for d in a.kw_defaults):
        raise src.error("a network function takes plain arguments: no defaults, *args or **kwargs", src.node_pos(src.tree))
    return [*a.posonlyargs, *a.args, *a.kwonlyargs], {k.arg for k in a.kwonlyargs}


def _declarations(
    src: Source,
    decl_at: Mapping[str, Pos],
    inputs: Mapping[str, Shape] | None,
    params: Mapping[str, Shape] | Iterable[str] | None,
    shapes: Mapping[str, Shape],
) -> list[Declared]:
    """One declaration per argument, in the order of the arguments."""
    args, keyword_only = _arguments(src)
    kinds: dict[str, tuple[str, Shape]] = {}
    param_names: set[str] = set()
    if isinstance(params, Mapping):
        given = [(n, "param", s) for n, s in params.items()]
    else:
        given, param_names = [], {str(n) for n in params or ()}
    given += [(n, "input", s) for n, s in (inputs or {}).items()]
    given += [(n, "param" if n in param_names or n in keyword_only else "input", s) for n, s in shapes.items()]
    for n, kind, s in given:
        if n in kinds:
            raise src.error(f"'{n}' is given a shape twice", decl_at.get(n, decl_at[""]))
        kinds[n] = (kind, s)
    for n in param_names - set(kinds):
        raise src.error(f"params names '{n}', which has no shape: add {n}='rows cols'", decl_at[""])
    arg_names = [a.arg for a in args]
    for a in args:
        if a.arg not in kinds:
            raise src.error(
                f"argument '{a.arg}' has no shape: declare it in @network(inputs={{...}}) or params={{...}}",
                src.node_pos(a),
            )
    for n in kinds:
        if n not in arg_names:
            raise src.error(f"'{n}' is declared but is not an argument of {src.tree.name}()", decl_at.get(n, decl_at[""]))
    if not any(kind == "param" for kind, _ in kinds.values()):
        raise src.error(
            "no params: declare them with params={'W1': 'k n', ...}, name them with params=('W1', ...), "
            "or make them keyword-only arguments (after *)", decl_at[""],
        )
    out = []
    for n in arg_names:
        d, problem = _declared(n, *kinds[n])
        if problem:
            raise src.error(problem, decl_at.get(n, decl_at[""]))
        out.append(d)
    return out


def _body(src: Source, spec: MappedSpec, declared: set[str]) -> None:
    """Assignments as spec lines, and the returned expression as the loss."""
    body = list(src.tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
        at = src.node_pos(body[-1]) if body else src.node_pos(src.tree)
        raise src.error("a network function ends with 'return LOSS' (the loss, a scalar)", at)
    tokens = src.tokens()
    assigned: list[str] = []
    for stmt in body[:-1]:
        if isinstance(stmt, ast.Return):
            raise src.error("'return' must be the last statement (it gives the loss)", src.node_pos(stmt))
        if not isinstance(stmt, ast.Assign):
            what = _STATEMENTS.get(type(stmt), f"a {type(stmt).__name__} statement")
            raise src.error(f"a network function holds assignments NAME = EXPR and a final return, not {what}",
                            src.node_pos(stmt))
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise src.error("assign to a single name: NAME = EXPR", src.node_pos(stmt.targets[-1]))
        text, where = _statement_text(src, tokens, stmt)
        spec.add(text, where)
        assigned.append(stmt.targets[0].id)
    ret = body[-1]
    if isinstance(ret.value, ast.Name) and assigned and ret.value.id == assigned[-1]:
        return  # `return loss`: the last assignment is already the loss
    text, where = _statement_text(src, tokens, ret)
    loss = fresh("loss", set(assigned) | declared)
    head = f"{loss} ="
    keyword = len("return")
    spec.add(head + text[keyword:], [where[0]] * len(head) + where[keyword:])


__all__ = ["Shape", "Source", "model_of"]

"""Reading math notation -- LaTeX, the derivation's Unicode, plain ``1/m (p - y) X^T`` -- into a claim.

A tokenizer (each token keeps its column in the answer) and a precedence-climbing parser over a
whitelist of notations: anything else is an error located in the answer. The parse emits
spec-language text directly, with the parentheses the spec's precedence needs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backprop.support.errors import SpecError

_SUB = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUP = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
#: LaTeX commands that only space or size: dropped.
_SPACING = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "quad", "qquad",
            ",", ";", "!", ":", " ", "displaystyle", "limits", "nolimits"}
#: Commands whose braced argument is a name: \mathbf{X} is X.
_NAME_WRAPPERS = {"mathbf", "boldsymbol", "bm", "mathrm", "mathit", "text", "textbf", "operatorname", "mathsf", "vec"}
#: Accents, read as a suffix of the name: \hat{y} is yhat (as specs name it).
_ACCENTS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde"}
#: Functions, by how they are written -> the spec's name.
_FUNCS = {"sigma": "sigmoid", "σ": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh", "exp": "exp", "log": "log",
          "ln": "log", "relu": "relu", "ReLU": "relu", "softmax": "softmax", "sqrt": "sqrt", "abs": "abs",
          "rowsum": "rowsum", "max": "maximum", "log_softmax": "log_softmax", "sum": "sum",
          "det": "det", "tr": "trace", "Tr": "trace", "trace": "trace", "logdet": "logdet", "inv": "inv", "solve": "solve",
          "eye": "eye"}
#: Matrix functions written without parentheses too (\det A, tr A); exponents for A⁻ᵀ (A^{-T}, A^{-\top}).
_MATRIX_FUNCS = {"det", "trace", "logdet"}
_INVERSE_T = {"-T", "-\\top", "-\\intercal", "-\\mathsf{T}", "-\\mathrm{T}"}
#: A function's derivative written f'(x): the spec expression, {0} the argument.
_PRIMES = {"sigmoid": "sigmoid({0}) * (1 - sigmoid({0}))", "tanh": "(1 - tanh({0})**2)", "relu": "({0} > 0)",
           "exp": "exp({0})", "log": "1 / ({0})"}
_PRODUCT = {"\\cdot": "dot", "·": "dot", "⋅": "dot", "\\odot": "*", "⊙": "*", "\\circ": "*", "∘": "*",
            "*": "*", "@": "@", "\\times": "times", "×": "times"}
_COMPARE = {">": ">", "<": "<", ">=": ">=", "<=": "<=", "\\geq": ">=", "\\ge": ">=", "\\leq": "<=", "\\le": "<=",
            "≥": ">=", "≤": "<=", "\\gt": ">", "\\lt": "<"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "lambda", "mu", "nu", "rho", "tau", "theta", "phi",
          "psi", "omega", "xi", "zeta", "kappa", "pi"}
_TOKEN = re.compile(r"""
    (?P<space>\s+|~)
  | (?P<cmd>\\(?:[A-Za-z]+|.))
  | (?P<num>\d+(?:\.\d*)?|\.\d+)
  | (?P<name>[^\W\d_ᵀΣ](?:(?!ᵀ)[^\W_]|[\u0302\u0304])*)
  | (?P<op>>=|<=|\*\*|\.T\b|[-+*/^_(){}\[\],=<>'@|.]|[−ᵀ∂σ⊙·⋅∘×Σ∑≥≤²⁻¹])
""", re.VERBOSE)

# Precedences of the emitted spec text.
_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    col: int  # 1-based, in the answer


@dataclass(frozen=True)
class _Val:
    """Emitted spec text and its precedence (for parentheses)."""

    text: str
    prec: int

    def at(self, prec: int) -> str:
        return self.text if self.prec >= prec else f"({self.text})"


def _scalar(shape: tuple | None) -> bool:
    """A scalar, or a 1×1 value (how the spec holds a scalar): its product is scalar multiplication."""
    return shape is not None and all(d == 1 for d in shape)


class MathReader:
    """Reads one answer ``LHS = RHS`` in math notation into ``dNAME = EXPR``."""

    def __init__(self, text: str, shape_of: Callable[[str], tuple | None], aliases: Mapping[str, str]) -> None:
        self.text = text
        self.shape_of = shape_of
        self.aliases = aliases
        self.toks = self._tokenize(text)
        self.i = 0

    # --- tokens -----------------------------------------------------------------
    def _tokenize(self, text: str) -> list[_Tok]:
        out: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise SpecError(f"'{text[pos]}' has no reading here", 0, pos + 1)
            kind = m.lastgroup or ""
            if kind != "space" and not (kind == "cmd" and m.group()[1:] in _SPACING):
                out.append(_Tok(kind, m.group(), pos + 1))
            pos = m.end()
        return out

    def peek(self, k: int = 0) -> _Tok | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise SpecError("the answer ends too early (an operand is missing?)", 0, len(self.text.rstrip()) + 1)
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.text != text:
            col = tok.col if tok else len(self.text.rstrip()) + 1
            raise SpecError(f"expected '{text}' here", 0, col)
        return self.take()

    def _is(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.text in texts

    # --- the claim ------------------------------------------------------------------
    def read(self) -> str:
        eq = next((k for k, t in enumerate(self.toks) if t.text == "="), None)
        if eq is None:
            raise SpecError("a claim reads dNAME = EXPR, e.g. dW1 = dZ @ X.T", 0, 1)
        lhs_toks, self.toks = self.toks[:eq], self.toks[eq + 1:]
        lhs = self._target(lhs_toks)
        value = self.expr()
        if self.peek() is not None:
            tok = self.take()
            raise SpecError(f"'{tok.text}' has no reading here", 0, tok.col)
        return f"{lhs} = {value.text}"

    def _target(self, toks: list[_Tok]) -> str:
        """``dW1``, ``dW_1``, ``dW^{[1]}``, ``∂L/∂W₁``, ``\\frac{\\partial L}{\\partial W_1}``, ``dL/dW``."""
        if not toks:
            raise SpecError("the left of '=' must be dNAME, the gradient of a variable NAME", 0, 1)
        saved, self.toks, self.i = (self.toks, self.i), toks, 0
        try:
            value = self.postfix()
            rest = self.peek()
        finally:
            self.toks, self.i = saved
        if rest is not None or not re.fullmatch(r"[A-Za-z_]\w*", value.text):
            raise SpecError("the left of '=' must be the gradient dNAME (or ∂L/∂NAME)", 0, toks[0].col)
        return value.text

    def _gradient(self, tok: _Tok) -> _Val | None:
        """∂L/∂X, \\partial L / \\partial X, \\frac{\\partial L}{\\partial X}, dL/dX: the gradient dX."""
        loss = ("L", "J", "C", "E", "ℓ", "Lcal", "loss", "cost")
        if tok.text in ("\\partial", "∂"):
            self._loss_name(loss, tok)
            self.expect("/")
            if not self._is("\\partial", "∂"):
                raise SpecError("∂L/∂X: a ∂ belongs before X", 0, self.peek().col if self.peek() else tok.col)
            self.take()
            return self._grad_of(self.take())
        if tok.text in ("\\frac", "\\dfrac", "\\tfrac") and self._is("{") and self.peek(1) is not None \
                and self.peek(1).text in ("\\partial", "∂"):
            self.take()
            self.take()
            self._loss_name(loss, tok)
            self.expect("}")
            self.expect("{")
            if not self._is("\\partial", "∂"):
                raise SpecError("\\frac{\\partial L}{\\partial X}: a \\partial belongs before X", 0, tok.col)
            self.take()
            value = self._grad_of(self.take())
            self.expect("}")
            return value
        if tok.kind == "name" and tok.text[1:] in loss and tok.text[0] == "d" and self._is("/") \
                and self.peek(1) is not None and self.peek(1).text.startswith("d"):
            self.take()
            nxt = self.take()
            return self._grad_of(_Tok("name", nxt.text[1:], nxt.col + 1))
        return None

    def _loss_name(self, loss: tuple[str, ...], tok: _Tok) -> None:
        nxt = self.take()
        if nxt.text == "\\mathcal":
            self._group_text()
        elif nxt.text not in loss:
            raise SpecError(f"∂{nxt.text}: the gradient is of the loss, written ∂L/∂X", 0, nxt.col)

    def _grad_of(self, tok: _Tok) -> _Val:
        if tok.kind == "cmd":
            name = self._command(tok)
        elif tok.kind == "name":
            name = self._finish_name(tok.text, tok)
        else:
            raise SpecError(f"∂{tok.text}: a gradient is taken with respect to a name", 0, tok.col)
        return _Val("d" + name.text, _ATOM)

    # --- expressions ------------------------------------------------------------------
    def expr(self) -> _Val:
        left = self.term()
        while self._is("+", "-", "−"):
            op = "+" if self.take().text == "+" else "-"
            right = self.term()
            left = _Val(f"{left.at(_ADD)} {op} {right.at(_ADD + 1)}", _ADD)
        return left

    def term(self) -> _Val:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None:
                return left
            if tok.text in _PRODUCT or tok.text == "/":
                self.take()
                right = self.unary()
                left = self._product(left, right, "/" if tok.text == "/" else _PRODUCT[tok.text], tok)
            elif self._starts_operand(tok):
                right = self.unary()
                left = self._product(left, right, "dot", tok)
            else:
                return left

    def _starts_operand(self, tok: _Tok) -> bool:
        if tok.kind in ("name", "num"):
            return True
        if tok.text in ("(", "{", "[", "\\{", "σ", "Σ", "∑", "∂"):
            return True
        return tok.kind == "cmd" and tok.text not in _PRODUCT and tok.text not in _COMPARE and tok.text != "\\}"

    def _product(self, a: _Val, b: _Val, how: str, tok: _Tok) -> _Val:
        """``a`` times ``b``: ``how`` is ``*``, ``@``, ``/``, or ``dot`` (juxtaposition, \\cdot) and
        ``times`` (×), whose meaning the shapes decide."""
        if how in ("*", "@", "/"):
            sep = {"*": " * ", "@": " @ ", "/": " / "}[how]
            return _Val(f"{a.at(_MUL)}{sep}{b.at(_MUL + 1)}", _MUL)
        sa, sb = self.shape_of(a.text), self.shape_of(b.text)
        if _scalar(sa) or _scalar(sb):
            return _Val(f"{a.at(_MUL)} * {b.at(_MUL + 1)}", _MUL)
        matmul = f"{a.at(_MUL)} @ {b.at(_MUL + 1)}"
        if self.shape_of(matmul) is not None or sa is None or sb is None:
            return _Val(matmul, _MUL)
        if self.shape_of(f"{a.at(_MUL)} * {b.at(_MUL + 1)}") is not None:
            written = "×" if how == "times" else ("\\cdot" if tok.text in ("\\cdot", "·", "⋅") else "a product by juxtaposition")
            raise SpecError(
                f"ambiguous: {written} of {_fmt(sa)} and {_fmt(sb)} is no matrix product; for the elementwise "
                "product write \\odot (⊙ or *)", 0, tok.col)
        return _Val(matmul, _MUL)  # neither fits: the shape error will say so

    def unary(self) -> _Val:
        if self._is("-", "−"):
            self.take()
            return _Val(f"-{self.unary().at(_NEG)}", _NEG)
        if self._is("+"):
            self.take()
        return self.postfix()

    def postfix(self) -> _Val:
        value = self.primary()
        while True:
            tok = self.peek()
            if tok is None:
                return value
            if tok.text in ("ᵀ", ".T"):
                self.take()
                value = _Val(f"{value.at(_ATOM)}.T", _ATOM)
            elif tok.text == "²":
                self.take()
                value = _Val(f"{value.at(_POW + 1)}**2", _POW)
            elif tok.text == "⁻" and self.peek(1) is not None and self.peek(1).text in ("¹", "ᵀ"):
                self.take()
                value = self._inverse(value, self.take().text == "ᵀ")
            elif tok.text == "^":
                self.take()
                value = self._power(value, tok)
            elif tok.text == "**":
                self.take()
                value = _Val(f"{value.at(_POW + 1)}**{self.unary().at(_POW)}", _POW)
            else:
                return value

    def _power(self, base: _Val, tok: _Tok) -> _Val:
        """``^T``, ``^\\top``, ``^{T}``, ``^2``, ``^{-1}``; ``^{[l]}`` belongs to the name (see :meth:`name`)."""
        arg = self._group_text()
        if arg in ("T", "\\top", "\\intercal", "\\mathsf{T}", "\\mathrm{T}", "t"):
            return _Val(f"{base.at(_ATOM)}.T", _ATOM)
        if arg in _INVERSE_T or arg == "-1":
            return self._inverse(base, arg != "-1")
        if re.fullmatch(r"-?\d+(\.\d+)?", arg):
            return _Val(f"{base.at(_POW + 1)}**{arg if not arg.startswith('-') else f'({arg})'}", _POW)
        raise SpecError(f"'^{arg}' has no reading here: write ^T for a transpose or ^2 for a power", 0, tok.col)

    def _inverse(self, base: _Val, transposed: bool) -> _Val:
        """A⁻¹ of a square matrix is its inverse (of a scalar, 1/x); A⁻ᵀ the inverse transposed."""
        shape = self.shape_of(base.text)
        if not transposed and not (shape and len(shape) == 2 and shape[0] == shape[1] and not _scalar(shape)):
            return _Val(f"{base.at(_POW + 1)}**(-1)", _POW)
        return _Val(f"inv({base.text})" + (".T" if transposed else ""), _ATOM)

    def _group_text(self) -> str:
        """The raw text of one token or one braced group, for exponents and subscripts."""
        if self._is("{"):
            self.take()
            depth, parts = 1, []
            while depth:
                tok = self.take()
                depth += {"{": 1, "}": -1}.get(tok.text, 0)
                if depth:
                    parts.append(tok.text)
            return "".join(parts)
        tok = self.take()
        if tok.kind == "name" and len(tok.text) > 1 and not tok.text.isdigit():
            # ^Tb: only the first character is the exponent, as TeX reads it
            self.toks.insert(self.i, _Tok("name", tok.text[1:], tok.col + 1))
            return tok.text[0]
        return tok.text

    def primary(self) -> _Val:
        tok = self.take()
        grad = self._gradient(tok)
        if grad is not None:
            return grad
        if tok.kind == "num":
            return _Val(tok.text, _ATOM)
        if tok.text in ("(", "{", "\\{"):
            close = {"(": ")", "{": "}", "\\{": "\\}"}[tok.text]
            inner = self.expr()
            self.expect(close)
            return _Val(inner.text, inner.prec)
        if tok.text in ("[", "\\mathbb", "𝟙") or (tok.text == "1" and self._is("\\{")):
            return self._indicator(tok)
        if tok.text in ("\\frac", "\\dfrac", "\\tfrac"):
            return self._frac(tok)
        if tok.text in ("\\sum", "Σ", "∑"):
            return self._sum(tok)
        if tok.text == "\\sqrt":
            return _Val(f"sqrt({self._braced().text})", _ATOM)
        if tok.kind == "cmd":
            return self._command(tok)
        if tok.kind == "name" or tok.text == "σ":
            return self._name_or_call(tok)
        raise SpecError(f"'{tok.text}' has no reading here", 0, tok.col)

    def _braced(self) -> _Val:
        self.expect("{")
        inner = self.expr()
        self.expect("}")
        return inner

    def _frac(self, tok: _Tok) -> _Val:
        num, den = self._braced(), self._braced()
        return _Val(f"{num.at(_MUL)} / {den.at(_MUL + 1)}", _MUL)

    def _indicator(self, tok: _Tok) -> _Val:
        """``[Z > 0]``, ``\\mathbb{1}[Z > 0]``, ``\\mathbb{1}_{Z > 0}``, ``1\\{Z > 0\\}``: a 0/1 mask."""
        if tok.text == "\\mathbb":
            if self._group_text() != "1":
                raise SpecError("\\mathbb has a reading only as the indicator \\mathbb{1}[...]", 0, tok.col)
            tok = self.take()
            if tok.text == "_":
                tok = self.take()
        open_, close = tok.text, {"[": "]", "{": "}", "\\{": "\\}", "1": "\\}"}.get(tok.text, "]")
        if open_ == "1":
            self.expect("\\{")
        left = self.expr()
        if open_ == "[" and self._is(close):  # \left[ ... \right]: brackets as parentheses
            self.take()
            return _Val(left.text, left.prec)
        cmp = self.take()
        if cmp.text not in _COMPARE:
            raise SpecError("an indicator reads [A > B] (or <, ≥, ≤)", 0, cmp.col)
        right = self.expr()
        self.expect(close)
        return _Val(f"({left.text} {_COMPARE[cmp.text]} {right.text})", _ATOM)

    def _sum(self, tok: _Tok) -> _Val:
        """``\\sum_i E``, ``\\sum_{i=1}^{m} E``: over the examples; ``Σ(E)``/``\\sum E``: every entry."""
        over_examples = False
        while self._is("_", "^"):
            mark = self.take().text
            text = self._group_text()
            over_examples |= mark == "_" and bool(re.match(r"[a-z]", text)) or mark == "^"
        arg = self.unary() if not self._is("(") else self.primary()
        if over_examples:
            return _Val(f"sum({arg.text}, axis=1)", _ATOM)
        return _Val(f"sum({arg.text})", _ATOM)

    def _command(self, tok: _Tok) -> _Val:
        word = tok.text[1:]
        if word in _NAME_WRAPPERS:
            inner = self._group_text()
            if word == "operatorname" and self._is("("):
                return self._call(_FUNCS.get(inner, inner), tok)
            if _FUNCS.get(inner) in _MATRIX_FUNCS:  # \operatorname{tr} A, \mathrm{tr}(A)
                return self._name_or_call(_Tok("name", inner, tok.col))
            return self._finish_name(re.sub(r"\\[A-Za-z]+|[{}\s]", "", inner) or inner, tok)
        if word in _ACCENTS:
            inner = self._group_text()
            return self._finish_name(inner.strip("{} ") + _ACCENTS[word], tok)
        if word == "mathcal":
            return self._finish_name(self._group_text(), tok)
        if word in _FUNCS:
            return self._name_or_call(_Tok("name", word, tok.col))
        if word in _GREEK:
            return self._finish_name(word, tok)
        raise SpecError(f"'{tok.text}' has no reading here", 0, tok.col)

    def _name_or_call(self, tok: _Tok) -> _Val:
        nxt = self.peek()
        if tok.text == "d" and nxt is not None and nxt.kind == "cmd" and nxt.text[1:] in (*_ACCENTS, *_NAME_WRAPPERS):
            return _Val("d" + self._command(self.take()).text, _ATOM)  # d\hat{y}: the gradient dyhat
        func = _FUNCS.get(tok.text)
        if func and tok.text not in self.aliases and self.shape_of(self._plain(tok.text)) is None:
            if self._is("'"):
                self.take()
                prime = _PRIMES.get(func)
                if prime is None:
                    raise SpecError(f"{tok.text}' has no reading: write its derivative out", 0, tok.col)
                arg = self._argument(tok)
                return _Val(prime.format(arg.text), _MUL)
            if func == "log" and (self._is("\\det") or self._is("det")):  # log det A
                self.take()
                func = "logdet"
            if self._is("(", "{") or tok.text in ("σ", "sigma"):
                return self._call(func, tok)
            if func in _MATRIX_FUNCS:  # \det A, tr A: the function of the operand that follows
                return _Val(f"{func}({self.postfix().text})", _ATOM)
        return self._finish_name(tok.text, tok)

    def _argument(self, tok: _Tok) -> _Val:
        if not self._is("(", "{"):
            raise SpecError("a function's argument goes in parentheses", 0, tok.col)
        return self.primary()

    def _call(self, func: str, tok: _Tok) -> _Val:
        self.take()  # (
        args = [self._arg()]
        while self._is(","):
            self.take()
            args.append(self._arg())
        self.expect(")")
        if func == "rowsum":
            return _Val(f"sum({args[0].text}, axis=1)", _ATOM)
        if func == "maximum" and len(args) == 1:
            return _Val(f"max({args[0].text})", _ATOM)
        return _Val(f"{func}({', '.join(a.text for a in args)})", _ATOM)

    def _arg(self) -> _Val:
        """A call's argument; ``axis=1`` passes through as written."""
        tok, nxt = self.peek(), self.peek(1)
        if tok is not None and tok.kind == "name" and nxt is not None and nxt.text == "=":
            self.take()
            self.take()
            return _Val(f"{tok.text}={self.expr().text}", _ATOM)
        return self.expr()

    def _plain(self, name: str) -> str:
        """A name as the spec spells it: subscript digits plain, ŷ as yhat, μ as mu, aliases applied."""
        name = unicodedata.normalize("NFD", name).translate(_SUB).replace("\u0302", "hat").replace("\u0304", "bar")
        name = "".join(_greek(c) for c in name)
        if name.startswith("d") and len(name) > 1 and name[1:] in self.aliases:
            return "d" + self.aliases[name[1:]]
        return self.aliases.get(name, name)

    def _finish_name(self, name: str, tok: _Tok) -> _Val:
        """A name and what belongs to it: ``_1``/``_{1}`` and ``^{[1]}``/``^{(1)}`` append the layer.
        ``I_n`` (``I`` not declared) is the n×n identity."""
        if name == "I" and self.shape_of(self._plain(name)) is None:
            if not self._is("_"):
                raise SpecError("the identity I needs its size: write I_n (or eye(n))", 0, tok.col)
            self.take()
            return _Val(f"eye({self._group_text()})", _ATOM)
        while True:
            if self._is("_"):
                self.take()
                sub = self._group_text()
                if not re.fullmatch(r"[A-Za-z0-9]+", sub):
                    raise SpecError(f"the subscript '{sub}' has no reading: a name's subscript is a layer number",
                                    0, tok.col)
                joined, kept = name + sub, f"{name}_{sub}"
                name = kept if self.shape_of(self._plain(kept)) is not None else joined
            elif self._is("^") and self.peek(1) is not None and self.peek(1).text == "{" \
                    and self.peek(2) is not None and self.peek(2).text in ("[", "("):
                self.take()
                layer = re.sub(r"[{}\[\]()\s]", "", self._group_text())
                name += layer
            else:
                break
        plain = self._plain(name)
        return _Val(plain, _ATOM)


def _greek(c: str) -> str:
    """A Greek letter by its name (μ → mu), as a spec names it; any other character as it is."""
    if "\u0370" <= c <= "\u03ff":
        return unicodedata.name(c, c).split()[-1].lower()
    return c


def _fmt(shape: tuple | None) -> str:
    return "×".join(str(s) for s in shape) if shape else "a scalar"

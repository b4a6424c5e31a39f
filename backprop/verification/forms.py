"""Answers as students write them, read into the spec language: LaTeX, NumPy, the derivation's Unicode.

A student copies ``dw = \\frac{1}{m} (\\hat{y} - y) X^T`` from a homework PDF, ``np.dot(p - y, X.T)``
from their code, or ``∂L/∂W₁ = ∂L/∂Z Xᵀ`` from the notes ``backprop derive`` prints. Each is
*read* -- tokenized and parsed through a whitelist of notations into a claim in the spec language
(never evaluated) -- and the reading is shown beside the verdict, so the student sees how the
answer was understood. A product written by juxtaposition or ``\\cdot`` is the matrix product when
its shapes fit one; where only the elementwise product fits, the answer is ambiguous and gets an
error pointing into it (write ⊙) rather than a wrong verdict.

:func:`read_answer` is the entry point; :mod:`backprop.verification.forms_numpy` reads NumPy.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backprop.support.errors import SpecError
from backprop.verification.forms_math import MathReader
from backprop.verification.forms_numpy import drop_axis_calls, read_numpy

#: The shape of a spec-language expression, or None if it does not parse.
ShapeOf = Callable[[str], "tuple | None"]

_MATH_SIGNS = re.compile(r"[\\^σ⊙ᵀ∂₀-₉−·∘×Σ∑≥≤\u0302\u0304]|\bd[A-Za-z]\w*\s*/\s*d")
_NUMPY_SIGNS = re.compile(r"\b(np|numpy)\.|\.dot\(|\.sum\(|keepdims|\.astype\(|\.mean\(")


@dataclass(frozen=True)
class Reading:
    """An answer and the claim it was read as (``form``: spec, latex, numpy or unicode)."""

    answer: str
    claim: str
    form: str

    @property
    def translated(self) -> bool:
        return self.claim != self.answer


def form_of(answer: str) -> str:
    """Which notation an answer is written in, from its signs."""
    if "\\" in answer:
        return "latex"
    if _NUMPY_SIGNS.search(answer):
        return "numpy"
    if _MATH_SIGNS.search(answer):
        return "unicode" if re.search(r"[^\x00-\x7f]", answer) else "math"
    return "spec"


def read_answer(answer: str, shape_of: ShapeOf, aliases: Mapping[str, str] | None = None,
                plain_ok: Callable[[str], bool] | None = None) -> Reading:
    """The claim ``answer`` reads as. ``shape_of`` resolves a product's meaning; ``aliases`` maps
    course names to the spec's (``A`` → ``p``); a spec-language answer ``plain_ok`` accepts is kept
    as written (renamed only). Raises :class:`SpecError` located in the answer."""
    aliases = dict(aliases or {})
    text = answer.split("#", 1)[0].rstrip()  # a comment is the student's, not the answer's: '# σ′'
    form = form_of(text)
    if form == "numpy":
        return Reading(answer, drop_axis_calls(read_numpy(text, aliases), shape_of), form)
    if form == "spec":
        renamed = rename(text, aliases)
        if plain_ok is None or plain_ok(renamed):  # as written, comment and all, unless renamed
            return Reading(answer, answer if renamed == text else renamed, form)
        # '1/m (p - y) @ X.T' is no call of m and 'dA A (1 - A)' no syntax error: implicit
        # multiplication, read as math; what the math reader cannot read either, the spec parser
        # reports (its errors know the spec language), unless the math reader got further
        try:
            return Reading(answer, MathReader(text, shape_of, aliases).read(), "math")
        except SpecError as e:
            if "ambiguous" in e.message:
                raise
            return Reading(answer, renamed, form)
    return Reading(answer, MathReader(text, shape_of, aliases).read(), form)


def rename(text: str, aliases: Mapping[str, str]) -> str:
    """``text`` with each aliased name (and its gradient ``dNAME``) replaced: name tokens only, so a
    string (einsum's subscripts) or an attribute (``.T``) is left as it is."""
    if not aliases:
        return text
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text
    out, prev = [], None
    lines = text.splitlines(keepends=True) or [""]
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))
    pos = 0
    for tok in toks:
        if tok.type != tokenize.NAME or (prev is not None and prev.string == "."):
            prev = tok
            continue
        begin = starts[tok.start[0] - 1] + tok.start[1]
        word = tok.string
        new = aliases.get(word) or ("d" + aliases[word[1:]] if word.startswith("d") and word[1:] in aliases else word)
        out.append(text[pos:begin] + new)
        pos = begin + len(word)
        prev = tok
    return "".join(out) + text[pos:]


def parse_aliases(text: str) -> dict[str, str]:
    """``A=p,Y=y`` → {"A": "p", "Y": "y"}; raises ValueError with what is wrong."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, target = (s.strip() for s in part.partition("="))
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name) or not re.fullmatch(r"[A-Za-z_]\w*", target):
            raise ValueError(f"an alias reads COURSE=SPEC, e.g. A=p; got '{part}'")
        out[name] = target
    return out

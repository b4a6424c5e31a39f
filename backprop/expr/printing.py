"""Printers for model expressions: LaTeX and Unicode text.

They subclass SymPy's printers and dispatch on type: ``_print_OpNode`` hands
every operation to the form its registry row defines, variables go through
:mod:`backprop.support.notation`, and constants (numbers, dimensions) through SymPy's own
rules. Anything else raises :class:`~backprop.support.errors.UnsupportedError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter as _SympyLatex
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from backprop.expr.ir import NODE_CLASSES, OpNode, TensorSymbol, is_const
from backprop.expr.ops_row import ADD, ATOM, MUL, POW, UNARY
from backprop.support.errors import UnsupportedError
from backprop.support.notation import latex_name, text_name, text_subscript


class GradSymbol(TensorSymbol):
    """∂L/∂NAME as a leaf: the named gradient (δ) of a model variable."""

    @property
    def of(self) -> str:
        return self.name[1:]


def grad_symbol(name: str, shape: tuple[Any, ...]) -> GradSymbol:
    return GradSymbol("d" + name, *shape)


class StepGrad(TensorSymbol):
    """(∂L/∂H)ₜ: step t of the gradient of a loop's stacked sequence H, from the equations after the
    loop, as the loop's step reads it. Named ``(dH)[t]``: never a name a spec or a δ (``dH[t]``) has."""

    @property
    def of(self) -> str:
        return self.name[2:].split(")", 1)[0]

    @property
    def at(self) -> str:
        return self.name.split("[", 1)[1].rstrip("]")


def step_grad(sequence: str, at: str, shape: tuple[Any, ...]) -> StepGrad:
    return StepGrad(f"(d{sequence})[{at}]", *shape)


class LoopGrad(TensorSymbol):
    """What a loop sends back to a value outside it, as a leaf of the chain rule outside the loop.
    ``kind``: ``sum`` (a shared value: Σₜ of what each step sends it, ∂L/∂W⁽ᵗ⁾ being step t's share),
    ``steps`` (a value read at every step, X of ``X[:, t]``: each step's gradient in its place),
    ``first`` (a state's first value H₀: what step 1 sends back)."""

    @property
    def loop(self) -> int:
        return int(self.name.split(":")[0][4:])

    @property
    def kind(self) -> str:
        return self.name.split(":")[1]

    @property
    def var(self) -> str:
        """The loop's step name (t)."""
        return self.name.split(":")[2]

    @property
    def of(self) -> str:
        return self.name.split(":", 3)[3]


def loop_grad(loop: int, kind: str, var: str, name: str, shape: tuple[Any, ...]) -> LoopGrad:
    return LoopGrad(f"loop{loop}:{kind}:{var}:{name}", *shape)


def step_superscript(var: str) -> str:
    """⁽ᵗ⁾: the mark of step ``var``'s share (a letter Unicode has no superscript for: ^(v))."""
    sup = {"t": "ᵗ", "k": "ᵏ", "s": "ˢ", "i": "ⁱ", "n": "ⁿ", "j": "ʲ", "u": "ᵘ", "v": "ᵛ"}.get(var)
    return f"⁽{sup}⁾" if sup else f"^({var})"


#: Numbers with more digits than this print in scientific form (a fold of 1e-300 + 1 is exact,
#: and would otherwise fill a page).
MAX_DIGITS = 15


def _small_decimal(e: sympy.Rational) -> bool:
    """A number the spec wrote as a decimal below 10⁻³ (a layer norm's 1e-5, a rate's 5e-5): 10⁻⁵, not
    1/100000, and 5·10⁻⁵, not 1/20000. Only a terminating decimal of at most six digits, so the
    mantissa shown is exact."""
    if e.p == 0:
        return False  # zero is no decimal to write as m·10^k
    q, twos, fives = e.q, 0, 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    if q != 1 or abs(e.p) * 1000 >= e.q:
        return False
    digits = abs(e.p) * 10 ** max(twos, fives) // e.q  # the decimal's digits, as an integer
    return len(str(digits).rstrip("0")) <= 6


def scientific(e: Basic) -> tuple[str, int] | None:
    """A long exact number as (mantissa to 6 digits, power of ten), or None for a short one."""
    if not isinstance(e, sympy.Rational):
        return None
    size = Fraction(abs(e.p), e.q)
    if max(abs(e.p), e.q) < 10**MAX_DIGITS:
        if not _small_decimal(e):
            return None
    elif Fraction(1, 10**5) <= size < 10**MAX_DIGITS:
        return f"{float(e):.15g}", 0  # a long fraction of ordinary size (1 + 1e-300): as its float
    k = int((abs(e.p).bit_length() - e.q.bit_length()) * 0.30102999566398120)  # log10(2): no str() of
    while Fraction(10) ** k > size:  # a number past Python's 4,300-digit limit
        k -= 1
    while Fraction(10) ** (k + 1) <= size:
        k += 1  # now 10^k <= |e| < 10^(k+1)
    mantissa = f"{float(size / Fraction(10) ** k):.6g}"
    if mantissa == "10":
        mantissa, k = "1", k + 1
    return ("-" if e < 0 else "") + mantissa, int(k)


def _const_prec(e: Basic) -> int:
    """Map SymPy's precedence of a constant onto the registry's scale."""
    if isinstance(e, sympy.Symbol):  # a dimension or the learning rate: sign unknown
        return ATOM
    if isinstance(e, sympy.Integer) and scientific(e) is None:
        return ATOM if e >= 0 else UNARY
    if isinstance(e, sympy.Rational):
        return MUL if e > 0 else UNARY
    if isinstance(e, sympy.Add):  # 1 − β: a sum even when SymPy could pull out its sign
        return ADD
    if e.could_extract_minus_sign():
        return UNARY
    p = precedence(e)
    return ADD if p <= 40 else (MUL if p <= 50 else ATOM)


class _Operands:
    """Mixin: print a child, parenthesized when it binds looser than ``prec``."""

    open_paren = "("
    close_paren = ")"
    #: printed operation nodes, while :meth:`memoized` is active
    _memo: dict[Basic, str] | None = None

    @contextmanager
    def memoized(self) -> Iterator[None]:
        """Print each distinct operation node once in the block.

        Cutting a long sum into pieces prints every prefix of it; with the
        prefixes' subtrees remembered that is linear, not quadratic, in the terms.
        """
        if self._memo is not None:
            yield
            return
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    def operand(self, e: Basic, prec: int) -> str:
        s = self.doprint(e)
        if self.prec_of(e) < prec:
            return f"{self.open_paren}{s}{self.close_paren}"
        return s

    def _print(self, expr: Any, **kwargs: Any) -> str:
        """Operation nodes print through their registry form, whatever SymPy method
        their class name happens to match (``LogOp`` is also SymPy's logic printer)."""
        if isinstance(expr, OpNode):
            if self._memo is None:
                return self._print_OpNode(expr)  # type: ignore[attr-defined]
            out = self._memo.get(expr)
            if out is None:
                out = self._memo[expr] = self._print_OpNode(expr)  # type: ignore[attr-defined]
            return out
        return super()._print(expr, **kwargs)  # type: ignore[misc]

    def prec_of(self, e: Basic) -> int:
        if isinstance(e, OpNode):
            return e.op.prec
        if is_const(e):
            return _const_prec(e)
        return ATOM

    def _print_Basic(self, e: Basic) -> str:  # noqa: N802 - SymPy dispatch name
        raise UnsupportedError(f"{type(self).__name__} cannot print {type(e).__name__}: {e!r}")


class _ScientificNumbers:
    """Mixin for the printers of notes: a long exact number as m·10^k (see :func:`scientific`),
    parenthesized as a power's base, ``(10^{300})^{m}``, never LaTeX's double superscript."""

    sci_times = "·"

    @staticmethod
    def power_of_ten(k: int) -> str:
        raise NotImplementedError

    def _print_Rational(self, e: sympy.Rational) -> str:  # noqa: N802
        sci = scientific(e)
        if sci is None:
            return super()._print_Rational(e)  # type: ignore[misc]
        mantissa, k = sci
        if k == 0:
            return mantissa
        power = self.power_of_ten(k)
        return {"1": power, "-1": f"-{power}"}.get(mantissa, f"{mantissa}{self.sci_times}{power}")

    _print_Integer = _print_Rational  # noqa: N815

    def parenthesize(self, item: Any, level: int, *args: Any, **kwargs: Any) -> str:
        if scientific(item) is not None and level >= PRECEDENCE["Pow"]:
            return f"{self.open_paren}{self._print(item)}{self.close_paren}"  # type: ignore[attr-defined]
        return super().parenthesize(item, level, *args, **kwargs)  # type: ignore[misc]


#: ``\left(`` straight after a function's name (``\sigma``, ``\operatorname{ReLU}``, a script ``_{j}``),
#: not yet tightened: a function application.
_APPLIED = re.compile(r"(?<=[A-Za-z}])(?<!\\mathopen\{\})\\left\(")


def apply_tight(tex: str) -> str:
    r"""Function application without TeX's gap: ``\sigma\mathopen{}\left(Z\right)`` reads σ(Z), as the text
    form does; a bare ``\sigma\left(`` puts a thin space after the name (an operator or letter
    before an inner atom), which reads as a product."""
    return _APPLIED.sub(r"\\mathopen{}\\left(", tex)


class LatexPrinter(_ScientificNumbers, _Operands, _SympyLatex):
    """Model expressions in LaTeX, as course notes write them."""

    open_paren = r"\left("
    close_paren = r"\right)"

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__({"mul_symbol": None, "fold_short_frac": False, **(settings or {})})

    def _print_OpNode(self, e: OpNode) -> str:  # noqa: N802
        return apply_tight(e.op.latex(self, e))

    def _print_MatrixSymbol(self, e: MatrixSymbol) -> str:  # noqa: N802
        return latex_name(e.name)

    def prec_of(self, e: Basic) -> int:
        """A fraction ∂L/∂W is parenthesized under a power or a transpose."""
        return POW if isinstance(e, GradSymbol) else super().prec_of(e)

    def _print_GradSymbol(self, e: GradSymbol) -> str:  # noqa: N802
        return r"\frac{\partial \mathcal{L}}{\partial " + latex_name(e.of) + "}"

    def _print_StepGrad(self, e: StepGrad) -> str:  # noqa: N802
        return r"\left(\frac{\partial \mathcal{L}}{\partial " + latex_name(e.of) + r"}\right)_{" + e.at + "}"

    def _print_LoopGrad(self, e: LoopGrad) -> str:  # noqa: N802
        grad, v = r"\frac{\partial \mathcal{L}}{\partial " + latex_name(e.of), e.var
        if e.kind == "sum":
            return rf"\sum_{{{v}}} " + grad + f"^{{({v})}}}}"
        return grad + "}" if e.kind == "first" else r"\left[" + grad + f"_{{{v}}}^{{({v})}}}}" + rf"\right]_{{{v}}}"

    def _print_Symbol(self, e: sympy.Symbol, style: str = "plain") -> str:  # noqa: N802
        return latex_name(e.name)

    def _print_Function(self, e: sympy.Function, exp: str | None = None) -> str:  # noqa: N802
        r"""A registry function of constants the simplifier kept by name (``sqrt(2)``) in its registry
        form, \sqrt{2}; a power of it parenthesized, never SymPy's \sqrt^{2}{(2)}."""
        name = type(e).__name__
        if not (isinstance(e, AppliedUndef) and name in NODE_CLASSES):
            return super()._print_Function(e, exp)
        shown = self._print(NODE_CLASSES[name](*e.args))
        return shown if exp is None else rf"\left({shown}\right)^{{{exp}}}"

    sci_times = r" \cdot "

    @staticmethod
    def power_of_ten(k: int) -> str:
        return f"10^{{{k}}}"


class TextPrinter(_ScientificNumbers, _Operands, StrPrinter):
    """Model expressions in plain Unicode for the terminal."""

    def prec_of(self, e: Basic) -> int:
        """∂L/∂W is a quotient in text: (∂L/∂W)², (∂L/∂Z)ᵀ; a factor needs no parentheses."""
        return MUL + 1 if isinstance(e, GradSymbol) else super().prec_of(e)

    def _print_OpNode(self, e: OpNode) -> str:  # noqa: N802
        return e.op.text(self, e)

    def _print_MatrixSymbol(self, e: MatrixSymbol) -> str:  # noqa: N802
        return text_name(e.name)

    def _print_GradSymbol(self, e: GradSymbol) -> str:  # noqa: N802
        return "∂L/∂" + text_name(e.of)

    def _print_StepGrad(self, e: StepGrad) -> str:  # noqa: N802
        return f"(∂L/∂{text_name(e.of)}){text_subscript(e.at)}"

    def _print_LoopGrad(self, e: LoopGrad) -> str:  # noqa: N802
        v, sup = text_subscript(e.var), step_superscript(e.var)
        if e.kind == "sum":
            return f"Σ{v} ∂L/∂{text_name(e.of)}{sup}"
        return "∂L/∂" + text_name(e.of) if e.kind == "first" else f"[∂L/∂{text_name(e.of)}{v}{sup}]{v}"

    def _print_Symbol(self, e: sympy.Symbol) -> str:  # noqa: N802
        return text_name(e.name)

    sci_times = "·"

    @staticmethod
    def power_of_ten(k: int) -> str:
        return f"10^{k}" if k >= 0 else f"10^({k})"

    def _print_Pow(self, e: sympy.Pow, rational: bool = False) -> str:  # noqa: N802
        """Powers of constants as the operation forms write them: m^2, β₁^t."""
        return super()._print_Pow(e, rational).replace("**", "^")

    def _print_Pi(self, e: Basic) -> str:  # noqa: N802
        return "π"

    def _print_Exp1(self, e: Basic) -> str:  # noqa: N802
        return "e"

    def _print_Mul(self, expr: sympy.Mul) -> str:  # noqa: N802
        """Constant products as the operation forms write them: 2/(m·n), not 2/(m*n)."""
        return super()._print_Mul(expr).replace("*", "·")

    def doprint(self, expr: Any) -> str:
        """A constant as SymPy prints it (its sign logic needs ASCII '-'), then with the
        minus sign the operation forms use: −1/10, 1 − β₁."""
        s = super().doprint(expr)
        return s.replace("-", "−") if is_const(expr) else s

    def _print_Add(self, expr: sympy.Add, order: str | None = None) -> str:  # noqa: N802
        """Constant sums with the minus sign the operation forms use: 1 − β."""
        return super()._print_Add(expr, order).replace(" - ", " − ")


def latex(e: Basic) -> str:
    return LatexPrinter().doprint(e)


def text(e: Basic) -> str:
    return TextPrinter().doprint(e)

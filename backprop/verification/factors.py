"""A wrong claim that is a multiple of the right gradient: the factor ``c · ∏ dim^k`` and how to say it.

The ratio of claim to gradient is measured at several sets of sizes; :func:`fit_factor` explains
those ratios as a constant times powers of the dimensions, and :func:`factor_phrase` turns the
factor into the diagnosis a student reads ("m times too large: a missing 1/m?").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy
from sympy import Basic

from backprop.expr.ir import OpNode, shape_of


@dataclass(frozen=True)
class Factor:
    """A factor ``c · ∏ dim^k``; ``c`` exact when it was recognized as a small fraction."""

    c: Fraction | float
    exps: tuple[tuple[str, int | Fraction], ...] = ()  # a power is an integer or ±1/2 (a square root)

    @property
    def is_one(self) -> bool:
        return not self.exps and self.c == 1

    def text(self) -> str:
        a = abs(self.c)
        num = [_power(d, k) for d, k in self.exps if k > 0]
        den = [_power(d, -k) for d, k in self.exps if k < 0]
        if isinstance(a, Fraction):
            n, q = a.numerator, a.denominator
        else:
            n, q = float(f"{a:.3g}"), 1
        top = ("" if n == 1 and num else _num(n)) + "·".join(num)
        bottom = ("" if q == 1 else str(q)) + "·".join(den)
        if bottom and (len(den) > 1 or (q != 1 and den)):
            bottom = f"({bottom})"  # 1/(2m), 1/(k·m)
        return top + (f"/{bottom}" if bottom else "")


def _power(d: str, k: int | Fraction) -> str:
    """d, d², √d (attention's 1/√d scale is the one fractional power a gradient meets)."""
    return f"√{d}" if k == Fraction(1, 2) else f"{d}{_sup(int(k))}"


def _sup(k: int) -> str:
    return "" if k == 1 else str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _num(x: float | int) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _nice(x: float) -> Fraction | None:
    f = Fraction(x).limit_denominator(64)
    if f != 0 and abs(float(f) - x) <= 1e-9 * abs(x) and abs(f.numerator) <= 10_000:
        return f
    return None


_HALF = Fraction(1, 2)


def fit_factor(ratios: Sequence[float], sizes: Sequence[Mapping[str, int]]) -> Factor | None:
    """Explain per-size-set ratios as ``c · ∏ dim^k`` (at most two dims, |k| ≤ 2), simplest first."""
    if not ratios or any(r == 0 for r in ratios):
        return None
    dims = sorted(sizes[0])
    candidates: list[tuple[tuple[str, int], ...]] = [()]
    ks: tuple[int, ...] = (1, -1, 2, -2)
    candidates += [((d, k),) for d in dims for k in ks]
    candidates += [((d, k),) for d in dims for k in (_HALF, -_HALF)]
    candidates += [((a, i), (b, j)) for a, b in itertools.combinations(dims, 2) for i in ks for j in ks]
    halves = (_HALF, -_HALF)  # 1/√d where 1/√k belongs
    candidates += [((a, i), (b, -i)) for a, b in itertools.combinations(dims, 2) for i in halves]
    # simplest first; a square root ranks after the integer powers of one dim
    candidates.sort(key=lambda e: sum(abs(k) if isinstance(k, int) else 1.5 for _, k in e))
    loose: Factor | None = None
    for exps in candidates:
        cs = [r / math.prod(s[d] ** k for d, k in exps) for r, s in zip(ratios, sizes)]
        if max(abs(c - cs[0]) for c in cs) > 1e-6 * abs(cs[0]):
            continue
        nice = _nice(cs[0])
        if nice is not None:
            return Factor(nice, exps)
        loose = loose or Factor(cs[0], exps)
    return loose


def factor_phrase(f: Factor, of: str = "the correct gradient", claim: Basic | None = None) -> str:
    """``exactly 1/2 of the correct gradient: a missing factor 2?`` and the like."""
    neg = f.c < 0
    a = Factor(abs(f.c), f.exps)
    if a.is_one:
        return f"the negative of {of}: a sign error"
    if len(a.exps) == 1 and a.c == 1 and abs(a.exps[0][1]) in (1, _HALF):
        d, k = a.exps[0]
        d = _power(d, abs(k))
        size, hint = (f"{d} times too large", f"a missing 1/{d}?") if k > 0 else (f"{d} times too small", f"an extra 1/{d}?")
        if k == -1 and claim is not None and _means_over(claim, a.exps[0][0]):  # a mean divides by d, not √d
            hint += f" (mean(...) divides by {d}; the gradient sums)"
        return f"the negative of {of} and {size}: a sign error and {hint}" if neg else f"{size}: {hint}"
    halves = sorted((k, d) for d, k in a.exps if abs(k) == _HALF)
    if a.c == 1 and len(a.exps) == 2 and len(halves) == 2 and halves[0][0] == -halves[1][0]:
        (_, wrong), (_, right) = halves  # claim/gradient = √right/√wrong: it divides by √wrong
        size, hint = f"{a.text()} times {of}", f"a 1/√{wrong} where 1/√{right} belongs?"
    elif not a.exps and a.c < 1:
        inv = Factor(1 / a.c if isinstance(a.c, Fraction) else 1.0 / a.c)
        size, hint = f"exactly {a.text()} of {of}", f"a missing factor {inv.text()}?"
    elif not a.exps:
        size, hint = f"{a.text()} times {of}", f"an extra factor {a.text()}?"
    else:
        size = f"{a.text()} times {of}"
        if all(k > 0 for _, k in a.exps):
            inv = Factor(1 / a.c if isinstance(a.c, Fraction) else 1.0 / a.c, tuple((d, -k) for d, k in a.exps))
            hint = f"a missing {inv.text()}?"
        elif all(k < 0 for _, k in a.exps):
            hint = f"an extra {a.text()}?"
        else:
            hint = "a factor that depends on the sizes"
    if neg:
        return f"−{a.text()} times {of}: a sign error and {hint}"
    return f"{size}: {hint}"


def _means_over(e: Basic, dim: str) -> bool:
    """Whether ``e`` takes a mean over an axis of size ``dim`` (a layer norm's mean over d is no excuse)."""
    return any(isinstance(x, OpNode) and x.op.name == "mean"
               and any(str(shape_of(x.children[0])[int(ax)]) == dim for ax in x.attrs[0])
               for x in sympy.preorder_traversal(e))


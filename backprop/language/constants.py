"""Constants a spec may compute: real, finite, within float64's range, and cheap to evaluate.

The parser folds constant arithmetic exactly (SymPy numbers), so ``0**-1`` would become SymPy's complex
infinity, ``(-1)**0.5`` the imaginary unit, ``1e308*1e308`` a number no float holds, and ``10**10**10``
a power nobody can compute: none of them has a float64 value for the generated code to use. Each is
refused where it is written, as a compiler refuses ``1/0`` in a constant expression. Dimensions are
positive integers up to :data:`MAX_DIM`; a power of one must stay a float64 for every such size.
"""

from __future__ import annotations

import sympy
from sympy import Basic

from backprop.expr import ir

#: Constants a spec may name (a declared name of the same spelling shadows one).
NAMED_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E}

#: The largest finite float64.
FLOAT_MAX = sympy.Float(1.7976931348623157e308)
#: The smallest positive float64 (a subnormal); a nonzero constant below it would round to 0.
FLOAT_TINY = sympy.Float(5e-324) / 2
#: Dims are at most this at run time (the command line's limit, and more than any memory holds).
MAX_DIM = 10**12
#: The largest |k| for which MAX_DIM**k is a float64: a dimension's exponent may not exceed it.
MAX_DIM_EXPONENT = 25


_NOT_REAL = "this constant is not a real number (a negative number to a fractional power)"


def constant_problem(value: Basic) -> str | None:
    """Why ``value`` (a constant: numbers and dims only) has no float64 value, or None if it has one."""
    if value.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        return "this constant is not finite (a division by zero, or 0 to a negative power)"
    if value.has(sympy.I):
        return _NOT_REAL
    if value.is_number:
        # Decided on a 30-digit value: SymPy cannot always order exact forms ((-3)**sqrt(3) is not
        # known to be complex until evaluated).
        real, imag = value.evalf(30).as_real_imag()
        if imag != 0 and abs(imag) > 1e-25 * abs(real):
            return _NOT_REAL
        if abs(real) > FLOAT_MAX:
            return f"this constant, about {_magnitude(value)}, is beyond float64's range (±1.8e308)"
        if real != 0 and abs(real) < FLOAT_TINY:
            return f"this constant, about {_magnitude(value)}, is below float64's smallest (4.9e-324): it would be 0"
        return None
    for p in value.atoms(sympy.Pow):
        base, exponent = p.args
        if not exponent.is_number and not _at_most_one(base, exponent):
            return ("an exponent may depend on a dimension only where the power stays at most 1 "
                    "(2**-m, 0.5**m): otherwise its value could be any size")
        if base.free_symbols and abs(exponent) > MAX_DIM_EXPONENT:
            return (f"a dimension to the power {exponent} overflows float64 for large sizes "
                    f"(a dimension's exponent is at most {MAX_DIM_EXPONENT} in size)")
    return None


def _at_most_one(base: Basic, exponent: Basic) -> bool:
    """|base**exponent| <= 1 for every size: it can underflow to 0, never overflow."""
    if not base.is_number or not base.is_positive:
        return False
    return bool((base >= 1 and exponent.is_nonpositive) or (base <= 1 and exponent.is_nonnegative))


def power_problem(base: Basic, exponent: Basic, constant: bool) -> str | None:
    """Why a power node is refused, or None (``constant``: whether the exponent is a constant).

    An exponent holding a number too large to compute with (``x**1e308``, ``2**(w + 1e308)``: folding
    and the simplifier would raise numbers to it, to millions of digits); or a constant base that may be 0 or
    negative under a variable exponent: ∂(cˣ)/∂x = cˣ·log(c), and log(c) is not a real number there."""
    if not ir.foldable_exponent(exponent):
        largest = ir.written_size(exponent)
        what = "exponent" if exponent.is_number else "its exponent holds"
        return (f"this power ({what} {_magnitude(largest)}) is too large to compute: a number in an "
                f"exponent is at most {ir.MAX_FOLDED_EXPONENT} in size")
    if not constant and ir.is_const(base) and base.is_positive is not True:
        return ("a power with a variable exponent needs a positive base: its derivative is "
                "base**x * log(base), and the log of 0 or a negative number is not a real number")
    return None


def _magnitude(value: Basic) -> str:
    """A number's size without printing all its digits (10**4301 has 4302 of them)."""
    number = sympy.Abs(value)
    if number.is_zero:
        return "0"
    exponent = int(sympy.floor(sympy.log(number, 10).evalf(30)))
    if abs(exponent) < 16:
        return f"{float(value):g}"
    return f"{'-' if value.is_negative else ''}1e{exponent}"

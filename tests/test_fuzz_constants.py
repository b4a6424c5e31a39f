"""Constant arithmetic fuzzing: whatever numbers a spec computes with, its module runs.

The parser folds constants exactly and the engine simplifies with SymPy, so a
spec's ``(m - 2) * 0 / w``, ``1e308 * m`` or ``(1e-320 + m - 1) ** -1e-320`` reaches
the code generator as exact numbers, SymPy's nan or infinities, or huge p/q
fractions. Python's own arithmetic raises on some of what NumPy's float arithmetic
gives inf or nan for (``0.0 ** -1``, ``1e200 ** 2``, ``1 / 0.0``, ``10**400 / 3``),
and the generated module must follow NumPy throughout. Each seed draws an
expression over numbers at the edges of float64 (0, ±1, 1e308, 1e-320), dims
that may be 0 (``m - 1`` at m = 1), a param and an input, writes it into a spec,
and calls ``loss_and_grads`` over a grid of values: the spec is either refused
with a located error or its module returns float values (inf and nan included)
without raising. What the values must be is the differential fuzz test's job
(``test_fuzz_codegen``); this one hunts crashes and hangs.

CI runs ``CONST_SEEDS`` seeds (about 20 s); before a release, more::

    BACKPROP_CONST_SEEDS=20000 python -m pytest tests/test_fuzz_constants.py -q -x
"""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import pytest

import backprop
from backprop import codegen
from backprop.support.errors import SpecError

#: Seeds CI runs (measured: 300 seeds take about 6 s on one core).
CONST_SEEDS = int(os.environ.get("BACKPROP_CONST_SEEDS", "1000"))
CONST_START = int(os.environ.get("BACKPROP_CONST_START", "0"))

LEAVES = ("0", "1", "-1", "0.5", "2", "3", "10", "1e308", "1e-320", "m", "(m-1)", "(m-2)", "w", "s")
OPERATORS = ("+", "-", "*", "/", "**")
SIZES = (1, 2, 3)
W_VALUES = (-2.0, 0.0, 0.5, 3.0)
S_VALUES = (-1.5, 0.0, 2.0)


def constant_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    left, right = constant_expression(rng, depth - 1), constant_expression(rng, depth - 1)
    return f"({left} {rng.choice(OPERATORS)} {right})"


def constant_spec(seed: int) -> str:
    rng = random.Random(seed)
    expression = constant_expression(rng, rng.randint(1, 4))
    return f"input x[1, m]\ninput s\nparam w\nloss = sum(x) * {expression} + w * w\n"


def run_seed(seed: int) -> str | None:
    """What went wrong for this seed, or None (refused with a located error, or ran on every value)."""
    spec = constant_spec(seed)
    try:
        model = backprop.parse_spec(spec, path=f"<const {seed}>", name=f"const{seed}")
    except SpecError as e:
        assert e.line == 4 and e.col > 0, f"seed {seed}: error not located: {e}"
        return None
    try:
        module = codegen.load_module(model)
    except Exception as e:  # noqa: BLE001 - any escape is the finding
        return f"seed {seed}: generating raised {type(e).__name__}: {e}\n{spec}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow and 0/0 are what NumPy reports, not errors
        for m in SIZES:
            for w in W_VALUES:
                for s in S_VALUES:
                    try:
                        loss, grads = module.loss_and_grads({"w": w}, {"x": np.ones((1, m)), "s": s})
                        values = (float(loss), float(np.asarray(grads["w"])))
                    except Exception as e:  # noqa: BLE001
                        return f"seed {seed}: m={m} w={w} s={s}: {type(e).__name__}: {e}\n{spec}"
                    assert all(isinstance(v, float) for v in values)
    return None


@pytest.mark.parametrize("block", range(CONST_START, CONST_START + CONST_SEEDS, 100))
def test_constant_arithmetic_never_crashes_a_module(block: int) -> None:
    found = [f for f in (run_seed(s) for s in range(block, min(block + 100, CONST_START + CONST_SEEDS))) if f]
    assert not found, "\n\n".join(found[:5])


@pytest.mark.parametrize("expression", [
    "((3 * 10) / (0 * w))",  # folded to nan in the backward pass: printed np.nan, not a bare name
    "((10 * 2) / ((m-1) - (1e-320 + 1e-320)))",  # m - 1.0 in floats: 0 at m = 1
    "((1 + ((2 * s) - (1e308 / s))) / (((3 * (m-1)) + (1e-320 / 10)) ** 10))",
    "(((1e-320 + 1e308) + (-1 * m)) ** 2)",  # Python's ** overflows; NumPy's gives inf
    "(((1e-320 + (m-1)) ** (1e-320 * -1)) - ((m-2) * (2 ** 1)))",  # 0.0 ** negative
    "(((m - 2) * 0) / (w * 0.5)) ** -1",
    # SymPy decided the sign of 2**1e-320 - 1/2 through its minimal polynomial, of degree 10^320
    # (a hang, then 24 GB): a high root of a number folds to its float
    "((((0 - -1) - ((m-1) + 0)) - ((1 / 2) - (2 ** 1e-320))) / (m + 1))",
    "(w * (2 ** 0.001 - 1) + (m - 10 ** (1 / 1000)))",
    # an exact power of 327,000-digit integers: folded to its float
    "((m-1) + ((1e-320 + 1) ** (2 ** 10)))",
    "(((1e-320 / w) / 1e308) ** ((1 * 10) / (-1 - 1e-320)))",
    # x ** 1.001 is x^(1001/1000): SymPy's cancel built polynomials of degree 1001 in x^(1/1000)
    "(2 / ((w ** 1.001) - (m * m)))",
    "(2 / ((w ** 1e-320) - (m * m)))",
    "((((m - s) / m) + ((2 * m) ** (0.5 - 1e-320))) / ((((m-1) + 10) + ((m-2) - (m-1))) * w))",  # MemoryError
    "(((1e-320 ** s) / (3 + (m-2))) ** ((2 - w) ** (3 ** 2)))",  # factor_terms on 10^320: 80 s
    "((-1 ** w) ** w)",  # ∂/∂w holds log(−1) = iπ: printed as a bare I (NameError); nan, as in PyTorch
])
def test_found_constant_crashes_stay_fixed(expression: str) -> None:
    spec = f"input x[1, m]\ninput s\nparam w\nloss = sum(x) * {expression} + w * w\n"
    module = codegen.load_module(backprop.parse_spec(spec, name="found"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for m in SIZES:
            loss, grads = module.loss_and_grads({"w": 0.5}, {"x": np.ones((1, m)), "s": 2.0})
            float(loss), float(grads["w"])


@pytest.mark.parametrize("expression, message", [
    # SymPy would raise numbers to these exponents while folding or simplifying: minutes, or forever
    ("((1e-12 ** ((m - 0.5) / (2 * 1e-320))) * w)", "its exponent holds 1e319"),
    ("(((2 + 1e308) ** (0.5 ** 3)) ** ((w / 1e308) ** 1e308))", "exponent 1e308"),
    ("(1e308 ** ((1e308 + w) - 1e-320))", "its exponent holds 1e308"),
    ("w ** 2000", "exponent 2000"),
])
def test_exponents_too_large_to_compute_are_refused(expression: str, message: str) -> None:
    spec = f"input x[1, m]\ninput s\nparam w\nloss = sum(x) * {expression} + w * w\n"
    with pytest.raises(SpecError) as caught:
        backprop.parse_spec(spec, name="huge")
    assert message in str(caught.value) and "at most 1024" in str(caught.value)


def test_a_complex_constant_sympy_cannot_order_is_refused_not_a_traceback() -> None:
    """(-3) ** sqrt(3) is not known to SymPy to be complex until evaluated: comparing it with
    float64's range raised TypeError (constant fuzzer, seed 9316)."""
    spec = "input x[1, m]\ninput s\nparam w\nloss = sum(x) * (3 ** (14 - ((-1 - 2) ** (3 ** 0.5)))) + w * w\n"
    with pytest.raises(SpecError) as caught:
        backprop.parse_spec(spec, name="complex")
    assert "not a real number" in str(caught.value) and caught.value.col > 0

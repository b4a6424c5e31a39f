"""A generated module follows NumPy's float semantics even where every operand is a Python number.

Scalar params and inputs arrive as Python floats (or ints) and dims are Python ints; Python's ``/`` and
``**`` raise on them where NumPy gives inf or nan (``1.0 / 0.0``, ``2.0 ** 5000``, ``1 / (m - 1)`` at
m = 1) and ``**`` turns complex (``(-2.0) ** 0.5``), and a constant folded past float64's range would
be a Python int no float holds. Each case here crashed a generated module before; now each computes
what NumPy computes, with NumPy's warnings.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from backprop import codegen, parse_spec


def module(text: str):
    return codegen.load_module(codegen.generate(parse_spec(text, path="ieee.spec")))


def quiet(mod, params, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mod.loss_and_grads(params, inputs)


POWER = "input x\nparam w\nloss = w ** x\n"


@pytest.mark.parametrize(("w", "x", "loss", "grad"), [
    (-2.0, 0.5, math.nan, math.nan),  # Python: a complex number, then TypeError in the gradient's float()
    (2.0, 5000.0, math.inf, math.inf),  # Python: OverflowError
    (0.0, -1.0, math.inf, -math.inf),  # Python: ZeroDivisionError
    (2, -1, 0.5, -0.25),  # ints: NumPy's own ** would refuse a negative integer power
    (3.0, 2.0, 9.0, 6.0),
])
def test_a_power_of_python_numbers(w, x, loss, grad) -> None:
    got_loss, grads = quiet(module(POWER), {"w": w}, {"x": x})
    assert type(got_loss) is float and type(grads["w"]) is float
    np.testing.assert_equal([got_loss, grads["w"]], [loss, grad])


def test_a_quotient_of_python_numbers() -> None:
    mod = module("input x\nparam w\nloss = w / x\n")
    loss, grads = quiet(mod, {"w": 1.0}, {"x": 0.0})
    assert loss == math.inf and grads["w"] == math.inf
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        mod.loss_and_grads({"w": 1.0}, {"x": 0.0})


def test_a_dimension_that_can_be_zero_in_a_divisor() -> None:
    """Bessel's correction: 1/(m − 1) is inf for one example, as NumPy divides, not ZeroDivisionError."""
    mod = module("input x[1, m]\nparam w\nloss = sum((x - w)**2) / (m - 1)\n")
    loss, grads = quiet(mod, {"w": 0.5}, {"x": np.ones((1, 1))})
    assert loss == math.inf and math.isinf(grads["w"])
    loss, grads = mod.loss_and_grads({"w": 0.5}, {"x": np.ones((1, 3))})
    assert loss == pytest.approx(3 * 0.25 / 2)


def test_a_constant_past_float_range_is_inf_not_a_crash() -> None:
    mod = module("input x[n, m]\nparam w[1, n]\nloss = sum(w * 1e308 * 1e308 @ x) / m\n")
    loss, grads = quiet(mod, {"w": np.ones((1, 2))}, {"x": np.ones((2, 3))})
    assert loss == math.inf and np.all(np.isinf(grads["w"]))


def test_float32_arrays_stay_float32_beside_python_number_arithmetic() -> None:
    mod = module("input X[n, m]\ninput s\nparam w\nparam V[1, n]\nloss = sum(V @ X * (w ** s) / (m - 1))\n")
    params = {"w": 2.0, "V": np.ones((1, 3), dtype=np.float32)}
    loss, grads = mod.loss_and_grads(params, {"X": np.ones((3, 4), dtype=np.float32), "s": 2.0})
    assert grads["V"].dtype == np.float32 and type(grads["w"]) is float
    assert loss == pytest.approx(3 * 4 * 4 / 3)


@pytest.mark.parametrize(("expr", "m", "expected"), [
    ("(m - 1) ** -2", 1, math.inf),  # Python: ZeroDivisionError
    ("(m - 2) ** 0.5", 1, math.nan),  # Python: a complex number
    ("(m - 1) ** -2", 3, 0.25),
    ("m ** -2", 2, 0.25),
])
def test_a_power_of_dimensions(expr: str, m: int, expected: float) -> None:
    mod = module(f"input x[1, m]\nparam w\nloss = w * sum(x) * {expr}\n")
    loss, grads = quiet(mod, {"w": 1.0}, {"x": np.ones((1, m))})
    np.testing.assert_equal(loss, m * expected)


def test_the_latex_view_shows_the_arithmetic_not_the_numpy_call() -> None:
    from backprop.codegen.latex import latex_document

    for text, shown in [(POWER, "w^{x}"), ("input x[1, m]\nparam w\nloss = sum((x - w)**2) / (m - 1)\n", r"\dfrac{2}{-1 + m}")]:
        doc = latex_document(parse_spec(text, path="ieee.spec"))
        assert shown in doc and "np}." not in doc and "float\\_power" not in doc

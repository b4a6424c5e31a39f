"""Matrix calculus beyond the per-op rows of test_ops.py: how the notes write it, which products by an
inverse the generated code solves, and logdet's conventions at a zero or negative determinant."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import backprop
from backprop import codegen
from backprop.expr.printing import latex, text
from backprop.language.parse import parse_spec
from backprop.present.text import to_text


def _gradient(spec: str, param: str) -> str:
    d = backprop.get_derivation(parse_spec(spec, name="t"))
    return text(d.step(param).result)


# ---------------------------------------------------------------------------
# The notes
# ---------------------------------------------------------------------------


def test_the_inverse_transposed_is_one_symbol() -> None:
    m = parse_spec("param A[n, n]\ninput B[n, k]\nP = inv(A).T\nQ = inv(A.T)\nR = solve(A.T, B)\n"
                   "loss = sum(P) + sum(Q) + sum(R)\n", name="t")
    p, q, r = (a.expr for a in m.assigns[:3])
    assert [text(p), text(q), text(r)] == ["A⁻ᵀ", "A⁻ᵀ", "A⁻ᵀ B"]
    assert [latex(p), latex(r)] == [r"A^{-\top}", r"A^{-\top} B"]


@pytest.mark.parametrize(("spec", "param", "want"), [
    ("input B[n, n]\nparam A[n, n]\nloss = trace(A @ B)\n", "A", "Bᵀ"),  # ∂ tr(AB)/∂A = Bᵀ, not I Bᵀ
    ("param A[n, n]\nloss = logdet(A)\n", "A", "A⁻ᵀ"),
    ("param A[n, n]\nloss = det(A)\n", "A", "L · A⁻ᵀ"),  # det(A) A⁻ᵀ, det(A) being the loss
    ("input G[n, n]\nparam A[n, n]\nloss = sum(G * inv(A))\n", "A", "−A⁻ᵀ G A⁻ᵀ"),
    ("param A[n, n]\nloss = trace(solve(A, eye(n)))\n", "A", "−A⁻ᵀ A⁻ᵀ"),  # solve(Aᵀ, I) is A⁻ᵀ
])
def test_the_gradients_read_as_the_identities(spec: str, param: str, want: str) -> None:
    assert _gradient(spec, param) == want


def test_an_spd_input_is_its_own_transpose() -> None:
    """S declared spd: Sᵀ = S, so the solve's adjoint A⁻ᵀ ∂L/∂X reads S⁻¹ X, as a textbook writes it
    for a covariance; undeclared, S⁻ᵀ X."""
    spec = "input S[n, n]{}\ninput X[n, m]\nparam W[n, m]\nloss = sum(X * solve(S, W))\n"
    assert _gradient(spec.format(" spd"), "W") == "S⁻¹ X"
    assert _gradient(spec.format(""), "W") == "S⁻ᵀ X"
    notes = to_text(backprop.get_derivation(parse_spec(spec.format(" spd"), name="t")))
    assert "S  n×n  input, symmetric positive definite" in notes
    assert "X is n×m, one column per example (m examples)" in notes  # S is one matrix, not n examples


# ---------------------------------------------------------------------------
# The generated code: a solve where it does the job, one factorization per matrix
# ---------------------------------------------------------------------------


def _calls(spec: str) -> dict[str, int]:
    code = codegen.generate(parse_spec(spec, name="t"))
    body = code[code.index("def _forward"):code.index("def loss_and_grads")]
    body = "\n".join(line for line in body.splitlines() if not line.strip().startswith("#"))
    return {f: len(re.findall(rf"np\.linalg\.{f}\(", body)) for f in ("inv", "solve")}


@pytest.mark.parametrize(("spec", "inv", "solve"), [
    # only products by the inverse: solves (forward, and the inverse's adjoint −A⁻ᵀ G A⁻ᵀ as two)
    ("input A[n, n]\ninput X[n, m]\nparam W[k, n]\nloss = sum((W @ inv(A) @ X) ** 2)\n", 0, 2),
    ("input X[n, m]\nparam A[n, n]\nloss = sum(X * (inv(A) @ X))\n", 0, 3),
    ("input X[n, m]\nparam A[n, n]\nloss = sum(X.T @ inv(A).T)\n", 0, 3),
    # logdet needs A⁻ᵀ itself: the inverse is formed once and every product (and solve) multiplies by it
    ("input X[n, m]\nparam A[n, n]\nloss = sum(X * (inv(A) @ X)) + logdet(A)\n", 1, 0),
    ("input X[n, m]\nparam A[n, n]\nloss = sum(X * solve(A, X)) + logdet(A)\n", 1, 0),
])
def test_products_by_an_inverse_are_solves_unless_the_inverse_is_needed(spec: str, inv: int, solve: int) -> None:
    assert _calls(spec) == {"inv": inv, "solve": solve}


def test_the_gaussian_example_factorizes_its_covariance_once() -> None:
    assert _calls(backprop.load("gaussian_full_cov").source) == {"inv": 1, "solve": 0}


# ---------------------------------------------------------------------------
# logdet: torch.logdet's conventions, in the argument's float type
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("a", [
    [[2.0, 1.0], [1.0, 3.0]],  # det 5
    [[1.0, 2.0], [3.0, 1.0]],  # det −5: nan
    [[1.0, 1.0], [1.0, 1.0]],  # det 0: −inf
])
def test_logdet_follows_torch(a: list[list[float]]) -> None:
    """The value: log det where det > 0, nan where det < 0, −inf where det = 0 (slogdet alone would give
    log |det|); the gradient A⁻ᵀ needs A invertible."""
    mod = codegen.load_module(parse_spec("param A[n, n]\nloss = logdet(A)\n", name="t"))
    want = float(torch.logdet(torch.tensor(a, dtype=torch.float64)))
    loss, _ = mod.forward(np.array(a))
    np.testing.assert_equal(float(loss), want)
    loss32, _ = mod.forward(np.array(a, dtype=np.float32))
    assert np.asarray(loss32).dtype == np.float32


def test_the_code_as_latex_writes_inverses_and_solves_as_the_notes_do() -> None:
    """``codegen --latex``: np.linalg.solve(A, X) reads A⁻¹ X (a matrix product, as the notes write it)
    and np.linalg.inv(A) reads A⁻¹."""
    from backprop.codegen.latex import to_latex

    forward, backward = to_latex(parse_spec("input X[n, m]\nparam A[n, n]\nloss = sum(X * (inv(A) @ X))\n", name="t"))
    assert r"A^{-1} X" in forward and "linalg" not in forward + backward
    assert "zqmatmul" not in backward and r"^{-1} X X^{\top}" in backward  # a solve's product, juxtaposed
    forward, backward = to_latex(parse_spec("input X[n, m]\nparam A[n, n]\nloss = sum(X * (inv(A) @ X)) + logdet(A)\n",
                                            name="t"))
    # the inverse the code keeps is shown as what it is, A⁻¹, never as a temporary t₁ (nor A^{-1}^{T})
    assert r"{A^{-1}}" in forward and r"\log\det" in forward and "t_{1}" not in forward
    assert r"{A^{-1}}^{\top}" in backward

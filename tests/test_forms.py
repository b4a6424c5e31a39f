"""Answers as students write them: LaTeX, NumPy, the derivation's Unicode, plain math, course names.

Each row: the answer, the claim it must read as (in the spec language), and the verdict. A reading
is exact text, so a change in how answers are read shows here first.
"""

from __future__ import annotations

import pytest

import backprop
from backprop.verification.forms import form_of, parse_aliases, rename

SPEC = "two_layer_sigmoid"

READINGS = [
    # LaTeX, as in a homework PDF or a Jupyter cell
    (r"dw2 = \frac{2}{m} (\hat{y} - y) A^T", "dw2 = 2 / m * (yhat - y) @ A.T", True),
    (r"\frac{\partial L}{\partial w_2} = \frac{2}{m} (\hat{y} - y) A^{\top}", "dw2 = 2 / m * (yhat - y) @ A.T", True),
    (r"\frac{\partial \mathcal{L}}{\partial W^{[1]}} = dZ \cdot X^T", "dW1 = dZ @ X.T", True),
    (r"dW_{1} = \frac{\partial L}{\partial Z} X^T", "dW1 = dZ @ X.T", True),
    (r"dZ = dA \odot \sigma'(Z)", "dZ = dA * (sigmoid(Z) * (1 - sigmoid(Z)))", True),
    (r"dZ = dA \odot \sigma(Z) \odot \left(1 - \sigma(Z)\right)", "dZ = dA * sigmoid(Z) * (1 - sigmoid(Z))", True),
    (r"db_1 = \sum_{i=1}^{m} dZ", "db1 = sum(dZ, axis=1)", True),
    (r"dw2 = \frac{1}{m} (\hat{y} - y) A^T", "dw2 = 1 / m * (yhat - y) @ A.T", False),
    (r"dA = \mathbf{w}_2^T d\hat{y}", "dA = w2.T @ dyhat", True),
    (r"dw2 = \frac{2}{m} \left[\hat{y} - y\right] A^T", "dw2 = 2 / m * (yhat - y) @ A.T", True),
    (r"dZ = dA \odot [Z > 0]", "dZ = dA * (Z > 0)", False),
    # the derivation's own Unicode
    ("∂L/∂W₁ = ∂L/∂Z Xᵀ", "dW1 = dZ @ X.T", True),
    ("∂L/∂b₁ = rowsum(∂L/∂Z)", "db1 = sum(dZ, axis=1)", True),
    ("∂L/∂b₂ = Σ(∂L/∂ŷ)", "db2 = sum(dyhat)", True),
    ("dZ = dA ⊙ σ(Z) ⊙ (1 − σ(Z))", "dZ = dA * sigmoid(Z) * (1 - sigmoid(Z))", True),
    ("dA = w₂ᵀ ∂L/∂ŷ", "dA = w2.T @ dyhat", True),
    # NumPy, from their code
    ("dW1 = np.dot(dZ, X.T)", "dW1 = dZ @ X.T", True),
    ("dW1 = 1/m * dZ.dot(X.T) * m", "dW1 = 1 / m * (dZ @ X.T) * m", True),
    ("db1 = np.sum(dZ, axis=1, keepdims=True)", "db1 = sum(dZ, axis=1)", True),
    ("db1 = dZ.sum(axis=1, keepdims=True)", "db1 = sum(dZ, axis=1)", True),
    ("db1 = np.sum(dZ, axis=1)", "db1 = reshape(sum(dZ, axis=1), [k])", False),  # NumPy's rank-1 result
    ("dZ = np.multiply(dA, A * (1 - A))", "dZ = dA * (A * (1 - A))", True),
    # plain math: implicit multiplication, ^T
    ("dyhat = 2/m (yhat - y)", "dyhat = 2 / m * (yhat - y)", True),
    ("dW1 = dZ X^T", "dW1 = dZ @ X.T", True),
]


#: Matrix calculus, A not symmetric (so A⁻¹ for A⁻ᵀ shows): L = tr(A B) + log det(A) + Σ(G ⊙ A⁻¹) + det(A)
LINALG_SPEC = "input B[n, n]\ninput G[n, n]\nparam A[n, n]\nloss = trace(A @ B) + logdet(A) + sum(G * inv(A)) + det(A)\n"
LINALG_READINGS = [
    (r"\frac{\partial L}{\partial A} = B^T + A^{-T} - A^{-\top} G A^{-\top} + \det(A) A^{-T}",
     "dA = B.T + inv(A).T - inv(A).T @ G @ inv(A).T + det(A) * inv(A).T", True),
    (r"dA = B^\top + A^{-1} - A^{-T} G A^{-T} + \det A \, A^{-T}",
     "dA = B.T + inv(A) - inv(A).T @ G @ inv(A).T + det(A) * inv(A).T", False),
    ("∂L/∂A = Bᵀ + A⁻ᵀ − A⁻ᵀ G A⁻ᵀ + det(A) · A⁻ᵀ", "dA = B.T + inv(A).T - inv(A).T @ G @ inv(A).T + det(A) * inv(A).T", True),
    ("dA = B.T + np.linalg.inv(A).T - np.linalg.solve(A.T, G) @ np.linalg.inv(A).T + np.linalg.det(A) * np.linalg.inv(A).T",
     "dA = B.T + inv(A).T - solve(A.T, G) @ inv(A).T + det(A) * inv(A).T", True),
    (r"dA = (I_n + B^T A^T) A^{-T} - A^{-T} G A^{-T} + \det A \cdot A^{-T}",
     "dA = (eye(n) + B.T @ A.T) @ inv(A).T - inv(A).T @ G @ inv(A).T + det(A) * inv(A).T", True),
]


@pytest.mark.parametrize(("answer", "reading", "correct"), LINALG_READINGS, ids=[r[0] for r in LINALG_READINGS])
def test_matrix_calculus_answers_are_read(answer: str, reading: str, correct: bool) -> None:
    r"""A^{-1}, A^{-T}, A⁻ᵀ, \det, np.linalg.inv/det/solve; a square A's ^{-1} is its inverse, not 1/A."""
    (r,) = backprop.verify(backprop.parse_spec(LINALG_SPEC, name="linalg"), [answer]).results
    assert (r.reading, r.verdict) == (reading, correct), r.diagnosis
    if not correct:
        assert "A⁻¹ needs a transpose here" in (r.diagnosis or ""), r.diagnosis


def test_the_matrix_functions_read_with_or_without_parentheses() -> None:
    spec = backprop.parse_spec("param A[n, n]\nloss = logdet(A) + trace(A) + det(A)\n", name="f")
    answers = [r"dA = A^{-T} \log\det(A) * 0 + \operatorname{tr}(A) * 0 + \mathrm{tr} A * 0 + A^{-T} + I_n + \det A A^{-T}",
               "dA = log det(A) * 0 + tr(A) * 0 + A⁻ᵀ + eye(n) + det(A) · A⁻ᵀ"]
    readings = [r.reading for r in backprop.verify(spec, answers).results]
    assert readings == [
        "dA = inv(A).T * logdet(A) * 0 + trace(A) * 0 + trace(A) * 0 + inv(A).T + eye(n) + det(A) * inv(A).T",
        "dA = logdet(A) * 0 + trace(A) * 0 + inv(A).T + eye(n) + det(A) * inv(A).T"]
    (r,) = backprop.verify(spec, ["dA = A^{-T} + I + det(A) A^{-T}"]).results
    assert r.unusable and "the identity I needs its size: write I_n" in (r.diagnosis or "")


@pytest.mark.parametrize(("answer", "reading", "correct"), READINGS, ids=[r[0] for r in READINGS])
def test_an_answer_is_read_and_judged(answer: str, reading: str, correct: bool) -> None:
    (r,) = backprop.verify(SPEC, [answer]).results
    assert (r.reading, r.verdict) == (reading, correct), r.diagnosis
    assert r.claim_text == answer and f"(read as {reading})" in r.line_text()


def test_a_spec_language_answer_is_kept_as_written() -> None:
    report = backprop.verify(SPEC, ["dW1 = dZ @ X.T", "dW1 = dZ @ X.T  # σ′ folded in"])
    assert all(r.verdict and r.reading == "" and "reading" not in r.to_dict() for r in report.results)


@pytest.mark.parametrize(("answer", "col", "words"), [
    (r"dZ = dA \cdot \sigma'(Z)", 9, "ambiguous: \\cdot of k×m and k×m is no matrix product"),
    ("dZ = dA A (1 - A)", 9, "ambiguous: a product by juxtaposition"),
    (r"dW1 = dZ \foo X", 10, "'\\foo' has no reading here"),
    ("dW1 = np.linalg.pinv(dZ)", 7, "np.linalg.pinv has no reading here (of np.linalg: det, inv, solve)"),
    ("dW1 = np.dot(dZ, X.T).__class__", 7, "'.__class__' has no reading here"),
    (r"dW1 = dZ X^{q}", 11, "'^q' has no reading here"),
])
def test_what_cannot_be_read_is_an_error_in_the_answer(answer: str, col: int, words: str) -> None:
    report = backprop.verify(SPEC, [answer])
    (r,) = report.results
    (err,) = report.errors
    assert r.unusable and words in (r.diagnosis or "")
    assert err.format().startswith(f"<claim 1>:1:{col}: error:"), err.format()


def test_nothing_in_an_answer_is_evaluated() -> None:
    for answer in ["dW1 = __import__('os').system('true')", r"dW1 = \input{/etc/passwd}",
                   "dW1 = np.dot(dZ, X.T) if print('x') else 0", "dW1 = (lambda: dZ)()"]:
        (r,) = backprop.verify(SPEC, [answer]).results
        assert r.unusable, answer


def test_aliases_map_course_names_to_the_spec() -> None:
    aliases = parse_aliases("p=yhat, H=A")
    assert aliases == {"p": "yhat", "H": "A"}
    report = backprop.verify(SPEC, ["dw2 = 2/m (p - y) H^T", "dH = w2.T @ dp", r"dH = w_2^T d\hat{y}"],
                             aliases=aliases)
    assert [(r.reading, r.verdict) for r in report.results] == [
        ("dw2 = 2 / m * (yhat - y) @ A.T", True), ("dA = w2.T @ dyhat", True), ("dA = w2.T @ dyhat", True)]
    assert rename('einsum("kh,hm->km", H, dH)', aliases) == 'einsum("kh,hm->km", A, dA)'
    with pytest.raises(ValueError, match="COURSE=SPEC"):
        parse_aliases("p")


def test_forms_are_told_apart() -> None:
    assert [form_of(a) for a in ["dW = dZ @ X.T", r"dW = dZ X^\top", "dW = np.dot(dZ, X.T)", "∂L/∂W = ∂L/∂Z Xᵀ",
                                 "dW = dZ X^T"]] == ["spec", "latex", "numpy", "unicode", "math"]


def test_the_cli_shows_the_reading_and_takes_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    from backprop.cli import main

    code = main(["verify", SPEC, "--alias", "p=yhat", "dyhat = 2/m (p - y)"])
    out = capsys.readouterr().out
    assert code == 0 and "(read as dyhat = 2 / m * (yhat - y))  correct" in out

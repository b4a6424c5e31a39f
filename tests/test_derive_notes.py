"""The notes as a careful reader checks them: long LaTeX formulas break over rows instead of
shrinking, an -o suffix that names no format is refused, an optimizer's equations appear once for
θ, and no line only reorders the one before it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import backprop
from backprop.cli import main
from backprop.present.formula import formula
from backprop.present.latex import to_latex
from backprop.present.text import to_text
from backprop.support.notation import display_width


def _balanced(row: str) -> bool:
    return len(re.findall(r"\\left(?![A-Za-z])", row)) == len(re.findall(r"\\right(?![A-Za-z])", row))


def test_a_long_product_breaks_inside_its_parentheses() -> None:
    """deep_relu's expanded ∂L/∂W₁ is one product, ((W₂ᵀ (...)) ⊙ [Z₁ > 0]) Xᵀ: no top-level sum
    to break at, so it breaks before an inner ⊙, each row's delimiters closed with \\right. ."""
    f = formula(backprop.get_derivation("deep_relu").expanded("W1"))
    assert display_width(f.text) > 56
    rows = f.latex_rows(56)
    assert len(rows) > 1 and all(_balanced(r) for r in rows)
    assert rows[0].endswith(r"\right.") and rows[1].startswith(r"\left.")
    joined = "".join(rows).replace(r"\right.", "").replace(r"\left.", "")
    assert joined.replace(" ", "") == f.latex.replace(" ", "")


def test_expanded_standalone_rows_break_not_shrink() -> None:
    tex = to_latex(backprop.get_derivation("deep_relu"), standalone=True, expanded=True, param="W1")
    expanded = tex.split(r"\section*{Gradients, fully expanded}", 1)[1].split(r"\end{align*}", 1)[0]
    rows = expanded.split("\\\\\n")
    assert len(rows) > 1 and r"&\quad {}\fitmath{\left." in rows[1]


def test_short_formulas_are_unchanged() -> None:
    f = formula(backprop.get_derivation("two_layer_sigmoid").step("W1").result)
    assert f.latex_rows(56) == [f.latex]


@pytest.mark.parametrize("name", ["notes.pdf", "notes.html", "notes.out"])
def test_unknown_output_suffix_is_refused(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / name
    assert main(["derive", "two_layer_sigmoid", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backprop: error: -o {target}: unknown output suffix '{target.suffix}' "
                          "(known: .json, .md, .tex, .txt")
    assert not target.exists() and err.count("\n") == 1
    if name.endswith(".pdf"):  # how to get one
        assert "--format latex --standalone -o" in err and err.rstrip().endswith(f"pdflatex {target.with_suffix('.tex')}")


def test_explicit_format_allows_any_suffix_but_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", "two_layer_sigmoid", "--format", "latex", "-o", str(tmp_path / "notes.inc")]) == 0
    assert r"\begin{align*}" in (tmp_path / "notes.inc").read_text(encoding="utf-8")
    assert main(["derive", "two_layer_sigmoid", "--format", "text", "-o", str(tmp_path / "notes.pdf")]) == 2
    assert not (tmp_path / "notes.pdf").exists()


def test_optimizer_equations_once_for_theta() -> None:
    d = backprop.get_derivation("deep_relu", optimizer="adam")
    out = to_text(d)
    assert "For every parameter θ (W₁, b₁, W₂, b₂, W₃, b₃, W₄, b₄), each with its own" in " ".join(out.split())
    assert out.count("←") == 5 and "  θ    ← θ − α · v̂_dθ/(√(ŝ_dθ) + ε)" in out
    assert to_text(d, per_param_updates=True).count("←") == 5 * 8
    assert to_text(d, param="W2").count("←") == 5 and "θ" not in to_text(d, param="W2")  # one param: its own names
    tex = to_latex(d, standalone=True)
    assert r"For every parameter $\theta$ ($W_{1}, b_{1}" in tex and tex.count(r"\leftarrow") == 5
    sgd = to_text(backprop.get_derivation("deep_relu"))
    assert sgd.count("←") == 8 and "θ" not in sgd  # one line per param already says it once


def test_a_spec_naming_theta_keeps_its_params_names() -> None:
    spec = "input x[n, m]\nparam theta[1, n]\nparam b\nloss = sum((theta @ x + b)**2)\n"
    out = to_text(backprop.get_derivation(backprop.parse_spec(spec, name="t"), optimizer="adam"))
    assert "For every parameter" not in out and out.count("←") == 10


REGULARIZED = """\
input X[n, m]
input Y[c, m] onehot
input lam
param W1[h, n]
param W2[h, h]
param W3[c, h]
H1 = relu(W1 @ X)
H2 = relu(W2 @ H1)
Z3 = W3 @ H2
loss = -sum(Y * log_softmax(Z3, axis=0)) / m + lam * sum(W3**2) / 2
"""


def test_no_line_only_reorders_the_one_before() -> None:
    out = to_text(backprop.get_derivation(backprop.parse_spec(REGULARIZED, name="reg")), param="W3")
    step = out.split("  ∂L/∂W₃ = ∂/∂W₃", 1)[1].split("\n\n", 1)[0]
    assert "= λ · W₃ + ∂L/∂Z₃ H₂ᵀ" in step and "= ∂L/∂Z₃ H₂ᵀ + λ · W₃" not in step
    assert "  ∂L/∂W₃ = ∂L/∂Z₃ H₂ᵀ + λ · W₃    c×h" in out  # the Gradients section keeps the result's own order

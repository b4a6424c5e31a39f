"""Renderers of a derivation: LaTeX (golden, compiles), Markdown, text, JSON, index notation.

Golden files: tests/golden/derive_<example>.tex hold the exact standalone LaTeX
(with --expanded --index) of three examples, so notation changes are reviewed.
After an intended change, regenerate them with

    BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden

and review the diff. The pdflatex test fails (instead of skipping) when
pdflatex is missing and the CI environment variable is set.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy
from helpers import FLAT_EXAMPLES, forward, random_point
from sympy import MatrixSymbol
from sympy.core.symbol import Str

import backprop
from backprop import Derivation, get_derivation, parse_spec
from backprop.expr.evaluate import constant, evaluate
from backprop.expr.ir import OpNode, count_nodes, is_const, shape_of
from backprop.expr.ops import REGISTRY
from backprop.expr.printing import GradSymbol, text
from backprop.present.index import Apply, Entry, FirstMax, Product, Scaled, Sum, gradient_index, to_index
from backprop.present.jsondoc import to_json
from backprop.present.latex import to_latex
from backprop.present.layout import T_BACKWARD, T_EXPANDED, T_FORWARD, T_GRADIENTS, T_INDEX, T_UPDATE, needed_steps
from backprop.present.markdown import to_markdown
from backprop.present.text import to_text
from backprop.support.naming import grad_name
from backprop.support.notation import (
    NotationError,
    display_width,
    inline_math,
    math_to_latex,
    rule_latex,
    text_name,
)

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_EXAMPLES = ("two_layer_sigmoid", "mlp_softmax", "deep_relu")
#: The bundled matrix examples: the tensor ones (attention, transformer) have expanded gradients whose
#: entry-by-entry checks run for minutes; TENSOR_SPEC below carries every tensor operation here instead.
EXAMPLES = [n for n in FLAT_EXAMPLES if len(backprop.load(n).dims) <= 4 and "einsum" not in backprop.load(n).source]

#: Every operation of the spec language, one network: renders, compiles, indexes.
EVERY_OP_SPEC = """\
# Every operation of the spec language in one network.
input X[n, m]
input Y[c, m] onehot
input t[1, m] positive
input lam
param W1[k, n]
param b1[k, 1]
param W2[c, k]
param b2[c, 1]
param s
H1 = tanh(W1 @ X + b1)
H2 = leaky_relu(W1 @ X, s) + softplus(H1) * sigmoid(H1) - exp(-abs(H1)) / 2
G = sqrt(H2**2 + 1) + relu(H1) + W2.T @ Y
P = softmax(W2 @ G + b2, axis=0)
S = sum(H1, axis=1)
loss = -sum(Y * log(P)) / m + lam * sum(W1**2) + mean(log_softmax(G, axis=1)) + mean((t - mean(G, axis=0))**2) + sum(S)
"""

#: Every tensor operation (einsum, reshape, transpose, concat, slices, rank-3 reductions) in one network.
TENSOR_SPEC = """\
# Tensor operations: einsum, reshape, transpose, concat and slices over a batch of sequences.
input X[d, T, m]
input Y[d, T, m]
param Wq[d, d]
param Wk[d, d]
param G[d, 2, 1]
param h0[d, 1]
Q = einsum("ed,dtm->etm", Wq, X)
K = einsum("ed,dtm->etm", Wk, X)
P = softmax(einsum("dtm,dsm->tsm", Q, K) / sqrt(d), axis=1)
H = einsum("dsm,tsm->dtm", X, P)
F = reshape(transpose(H, [2, 0, 1]), [m, d*T])
C = concat(H[:, 0:1, :], H[:, 1:, :], axis=1)
R = tanh(G[:, 0:1, :] * C + G[:, 1:2, :])
last = C[:, T - 1, :] + h0
loss = mean((C - Y)**2) + sum(last**2) / m + mean(F**2) + mean(R, axis=(0, 1, 2))
"""

CONV_SPEC = """\
# Convolution and pooling: an image layer (stride 2, padding 1), max and average pooling, a 1-d conv (its filters flipped),
# a dilated value.
input X[3, 9, 9, m]
input S[2, 7, m]
param W1[4, 3, 3, 3]
param b1[4, 1, 1, 1]
param V[3, 2, 3]
A = relu(conv2d(X, W1, stride=2, padding=1) + b1)
M = max_pool2d(A, size=2, stride=1)
P = avg_pool2d(A, size=5)
T = conv1d(S, flip(V, [2]), padding=1)
D = dilate(T, 2)
loss = mean(M**2) + sum(P) / m + mean(tanh(T)) + mean(D**2)
"""

#: A variable used twice (tied weights) and a residual connection: several paths.
TIED_SPEC = """\
# Tied autoencoder with a residual connection.
input X[n, m]
param W[k, n]
param b[k, 1]
param c[n, 1]
H = tanh(W @ X + b)
R = W.T @ H + c + X
loss = mean((R - X)**2) + 0.1 * sum(W**2)
"""

#: Comparisons, selections, extremes, the new elementwise functions, constants and stop_gradient.
SELECT_SPEC = """\
# Masks, where, maximum and clip, extremes and log-sum-exp, erf and sinusoids, stop-gradient.
input X[n, m]
input Y[c, m] onehot
input T[1, m]
param W1[k, n]
param b1[k, 1]
param W2[c, k]
param lo
Z1 = W1 @ X + b1
M = (Z1 > 0) * (Z1 <= 3)
H = where(M, Z1, 0.1 * Z1) + maximum(Z1, -Z1) - minimum(Z1, 0) + clip(Z1, lo, 1)
G = erf(H / sqrt(2)) + sin(pi * H) * cos(e * H) + log1p(H**2) - expm1(-H**2) + sign(Z1) * stop_gradient(H)
S = W2 @ (G + eye(k) @ G + ones(k, k) @ G / k + zeros(k, m))
P = S - logsumexp(S, axis=0)
R = max(S, axis=0) - min(S, axis=0) + (T < 0) + (T >= 1)
loss = -sum(Y * P) / m + mean(R**2) + max(W1**2) - min(b1) + 0.01 * sum(abs(W2))
"""

LINALG_SPEC = """\
# Matrix calculus: trace, inverse, determinant, log-determinant, solve.
input X[n, m]
input S[n, n] spd
param W[n, n]
param V[n, n]
A = W @ W.T + S
loss = trace(inv(A) @ V) + logdet(A) - det(V) / 10 + sum(X * solve(A, X)) / m
"""

#: More matrix calculus: the inverse transposed (A⁻ᵀ, one symbol), a solve with Aᵀ, ∂ tr(W B)/∂W = Bᵀ.
LINALG_T_SPEC = """\
# Matrix calculus: trace, inverse, determinant, log-determinant and a linear solve with a transpose.
input X[n, m]
input B[n, n]
param W[n, n]
param V[n, n]
S = V @ V.T + 0.1 * eye(n)
loss = trace(W @ B) + sum(X * (inv(W) @ X)) / m + logdet(S) - det(W) + sum(solve(S.T, X) * X) / m
"""

#: Macros KaTeX and MathJax both render (GitHub and Jupyter Markdown).
KATEX_MACROS = frozenset({
    "frac", "partial", "mathcal", "left", "right", "odot", "top", "sum", "sigma", "log", "exp", "lceil", "rceil",
    "tanh", "sqrt", "operatorname", "text", "hat", "mathrm", "mathbf", "times", "alpha", "beta",
    "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "rho", "tau", "phi", "omega",
    "Sigma", "leftarrow", "to", "cdot", "le", "ge", "quad", "qquad", "textbf", "begin", "end", ",",
    "\\", "max", "min", "sin", "cos", "pi", "tfrac", "det", "mathopen",
})


@cache
def derivation(name: str) -> Derivation:
    return get_derivation(name)


@cache
def spec_derivation(text: str, name: str) -> Derivation:
    return backprop.backpropagate(parse_spec(text, path=f"<{name}>", name=name))


def all_derivations() -> list[Derivation]:
    return [derivation(n) for n in EXAMPLES] + [
        spec_derivation(EVERY_OP_SPEC, "every_op"), spec_derivation(TIED_SPEC, "tied"), adam_derivation(),
        spec_derivation(TENSOR_SPEC, "tensors"), spec_derivation(SELECT_SPEC, "select"),
        spec_derivation(LINALG_SPEC, "linalg"), spec_derivation(LINALG_T_SPEC, "linalg_t"),
        spec_derivation(CONV_SPEC, "conv"),
    ]


@cache
def adam_derivation() -> Derivation:
    return get_derivation("two_layer_sigmoid", optimizer="adam")


ALL_IDS = [*EXAMPLES, "every_op", "tied", "two_layer_sigmoid_adam", "tensors", "select", "linalg", "linalg_t", "conv"]


# ---------------------------------------------------------------------------
# LaTeX: golden files, ASCII only, pdflatex
# ---------------------------------------------------------------------------


def golden_latex(name: str) -> str:
    return to_latex(derivation(name), standalone=True, expanded=True, index=True)


@pytest.mark.parametrize("name", GOLDEN_EXAMPLES)
def test_golden_latex(name: str) -> None:
    path = GOLDEN / f"derive_{name}.tex"
    got = golden_latex(name)
    if os.environ.get("BACKPROP_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden"
    want = path.read_text(encoding="utf-8")
    assert got == want, (
        f"{path.name} is stale: review the notation change, then regenerate with "
        "BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden"
    )


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_latex_is_ascii_and_balanced(d: Derivation) -> None:
    for tex in (to_latex(d, standalone=True, expanded=True, index=True), to_latex(d), to_latex(d, body_only=True)):
        assert tex.isascii(), sorted({c for c in tex if not c.isascii()})
        body = re.sub(r"\\[{}]", "", tex)
        assert body.count("{") == body.count("}")
        assert len(re.findall(r"\\left(?![a-z])", tex)) == len(re.findall(r"\\right(?![a-z])", tex))
        assert tex.count(r"\begin{") == tex.count(r"\end{")


def test_latex_fragment_is_align_blocks_without_preamble() -> None:
    tex = to_latex(derivation("two_layer_sigmoid"))
    assert r"\documentclass" not in tex and r"\fitmath" not in tex
    assert tex.count(r"\begin{align*}") >= 1 + len(derivation("two_layer_sigmoid").steps)
    assert r"\frac{\partial \mathcal{L}}{\partial W_{1}}" in tex
    assert r"W_{1} &\leftarrow W_{1} - \alpha \frac{\partial \mathcal{L}}{\partial W_{1}}" in tex


def test_standalone_and_body_only_exclude_each_other() -> None:
    with pytest.raises(ValueError):
        to_latex(derivation("two_layer_sigmoid"), standalone=True, body_only=True)


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing in CI: .ci/run installs texlive-latex-base and texlive-latex-recommended")
        pytest.skip("pdflatex is not installed (CI installs it and fails instead of skipping)")
    return exe


def compile_latex(tex: str, tmp_path: Path, stem: str) -> str:
    """Run pdflatex on ``tex``; return its log. Fails on any error."""
    exe = _pdflatex()
    (tmp_path / f"{stem}.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run(
        [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", f"{stem}.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    log = (tmp_path / f"{stem}.log").read_text(encoding="latin-1") if (tmp_path / f"{stem}.log").exists() else ""
    errors = [ln for ln in log.splitlines() if ln.startswith("!")]
    assert run.returncode == 0 and not errors, f"pdflatex failed on {stem}:\n" + "\n".join(errors or [run.stdout[-3000:]])
    assert (tmp_path / f"{stem}.pdf").stat().st_size > 0
    return log


def assert_no_overfull(log: str, stem: str, limit_pt: float = 5.0) -> None:
    """Nothing sticks out of the page by more than ``limit_pt``."""
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]
    assert all(w <= limit_pt for w in widths), f"{stem}: overfull boxes {widths} pt"
    assert "Overfull \\vbox" not in log, f"{stem}: something taller than a page"


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_standalone_document_compiles(d: Derivation, tmp_path: Path) -> None:
    stem = d.model.name
    log = compile_latex(to_latex(d, standalone=True, expanded=True, index=True), tmp_path, stem)
    assert_no_overfull(log, stem)


def deep_mlp_spec(layers: int) -> str:
    lines = ["# A deep ReLU network.", "input X[n, m]", "input Y[c, m] onehot"]
    for i in range(1, layers + 1):
        lines += [f"param W{i}[h, {'n' if i == 1 else 'h'}]", f"param b{i}[h, 1]"]
    lines += ["param Wout[c, h]", "param bout[c, 1]"]
    prev = "X"
    for i in range(1, layers + 1):
        lines.append(f"A{i} = relu(W{i} @ {prev} + b{i})")
        prev = f"A{i}"
    return "\n".join([*lines, f"loss = -sum(Y * log_softmax(Wout @ {prev} + bout, axis=0)) / m", ""])


def test_deep_network_document_compiles(tmp_path: Path) -> None:
    """Forty layers: the variables table runs over pages, nothing overflows."""
    d = spec_derivation(deep_mlp_spec(40), "deep40")
    assert len(d.steps) == 3 + 4 * 40  # output layer (Z, W, b), then A, Z, W, b per layer
    assert_no_overfull(compile_latex(to_latex(d, standalone=True, index=True), tmp_path, "deep40"), "deep40")


def test_every_registry_rule_compiles(tmp_path: Path) -> None:
    """Rules of operations no example reaches still convert and typeset."""
    items = []
    for rule in sorted({r for op in REGISTRY.values() for r in op.rules}):
        name, f = rule_latex(rule)
        items.append(rf"\item \emph{{{name}}}" + (f": {inline_math(f)}" if f is not None else ""))
    tex = "\n".join([
        r"\documentclass{article}", r"\usepackage{amsmath,amssymb}", r"\begin{document}",
        r"\begin{itemize}\raggedright", *items, r"\end{itemize}", r"\end{document}", "",
    ])
    assert_no_overfull(compile_latex(tex, tmp_path, "rules"), "rules")


def test_rule_text_conversion() -> None:
    assert rule_latex("matrix product, left factor: ∂L/∂W = ∂L/∂Z Xᵀ for Z = W X") == (
        "matrix product, left factor",
        r"\partial \mathcal{L} /\partial W = \partial \mathcal{L} /\partial Z\,X^{\top}\text{ for }Z = W\,X",
    )
    assert rule_latex("logistic function: σ′(Z) = σ(Z) ⊙ (1 − σ(Z))")[1] == (
        r"\sigma '(Z) = \sigma (Z) \odot (1 - \sigma (Z))"
    )
    assert math_to_latex("∂L/∂A = ∂L/∂Aᵖ ⊙ p A^(p−1)").endswith(r"p\,A^{(p-1)}")
    assert rule_latex("indicator (derivative zero almost everywhere)") == (
        "indicator (derivative zero almost everywhere)", None)
    with pytest.raises(NotationError, match="ℵ"):
        math_to_latex("∂L/∂ℵ")


# ---------------------------------------------------------------------------
# Markdown: only macros KaTeX and MathJax support
# ---------------------------------------------------------------------------


def math_spans(md: str) -> list[str]:
    blocks = re.findall(r"\$\$\n(.*?)\n\$\$", md, flags=re.S)
    rest = re.sub(r"\$\$\n.*?\n\$\$", "", md, flags=re.S)
    return blocks + re.findall(r"\$([^$\n]+)\$", rest)


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_markdown_uses_only_katex_macros(d: Derivation) -> None:
    md = to_markdown(d, expanded=True, index=True)
    spans = math_spans(md)
    assert spans
    used = {m for s in spans for m in re.findall(r"\\([A-Za-z]+|.)", s)}
    assert used <= KATEX_MACROS, f"not in the KaTeX/MathJax whitelist: {sorted(used - KATEX_MACROS)}"
    envs = {e for s in spans for e in re.findall(r"\\begin\{(\w+\*?)\}", s)}
    assert envs <= {"aligned", "bmatrix"}, envs  # align* cannot nest in $$ (MathJax: "erroneous nesting")
    assert all(s.isascii() for s in spans), [s for s in spans if not s.isascii()]


def test_markdown_layout() -> None:
    md = to_markdown(derivation("two_layer_sigmoid"))
    assert md.startswith("# Backpropagation through `two_layer_sigmoid`\n")
    for title in (T_FORWARD, T_BACKWARD, T_GRADIENTS, T_UPDATE):
        assert f"\n## {title}\n" in md
    assert "| $W_{1}$ | $k \\times n$ | parameter |" in md
    assert md.count("$$\n\\begin{aligned}") == md.count("\\end{aligned}\n$$")


# ---------------------------------------------------------------------------
# Text for the terminal
# ---------------------------------------------------------------------------


def test_text_reads_like_notes() -> None:
    out = to_text(derivation("two_layer_sigmoid"))
    titles = [T_FORWARD, T_BACKWARD, "Gradients", "Update (gradient descent, learning rate α)"]
    positions = [out.index("\n" + t + "\n") for t in titles]
    assert positions == sorted(positions)
    for line in (
        "  Z = W₁ X + b₁", "  A = σ(Z)", "  ŷ = w₂ A + b₂", "  L = Σₜ((ŷ − y)²)/m",
        "  ∂L/∂ŷ = ∂/∂ŷ [Σₜ((ŷ − y)²)/m]", "  ∂L/∂Z = ∂L/∂A ∂A/∂Z",
        "  ∂L/∂W₁ = ∂L/∂Z Xᵀ", "  ∂L/∂b₁ = Σₜ(∂L/∂Z)", "  W₁ ← W₁ − α · ∂L/∂W₁",
    ):
        assert any(ln.startswith(line) for ln in out.splitlines()), line
    assert "  logistic function: σ′(𝒰) = σ(𝒰) ⊙ (1 − σ(𝒰))" in out.splitlines()  # stated once, in the legend
    assert out.count("σ′(𝒰)") == 1  # and cited by name beside the line it gave (issue 19 point 1)
    assert "      ∂L/∂Z = ∂L/∂A ⊙ A ⊙ (1 − A)   by logistic function" in out.splitlines()
    for line in ("      ∂L/∂Σₜ((ŷ − y)²) = 1/m             by quotient, numerator",
                 "      ∂L/∂(ŷ − y)      = 2/m · (ŷ − y)   by power, base",
                 "      ∂L/∂(w₂ A) = ∂L/∂ŷ       by addition",
                 "      ∂L/∂A      = w₂ᵀ ∂L/∂ŷ   by matrix product, right factor"):
        assert line in out.splitlines(), line
    brief = to_text(derivation("two_layer_sigmoid"), brief=True)  # --brief: the result and the rules' names
    assert "        = ∂L/∂A ⊙ A ⊙ (1 − A)\n          by logistic function\n" in brief and "      ∂L/∂" not in brief


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_text_equations_align(d: Derivation) -> None:
    """Within the forward pass, every '=' sits in the same column."""
    out = to_text(d)
    fwd = out.split(T_FORWARD + "\n")[1].split("\n\n")[0].splitlines()[1:]
    cols = {display_width(ln[: ln.index(" = ")]) for ln in fwd if " = " in ln}  # ŷ: one column
    assert len(cols) == 1, fwd


@pytest.mark.parametrize(("name", "shown", "columns"), [
    ("yhat", "\u0177", 1), ("Yhat", "\u0176", 1), ("shat", "\u015d", 1), ("yhat2", "\u0177\u2082", 2),  # precomposed
    ("phat", "p\u0302", 1), ("vhat", "v\u0302", 1),  # no precomposed letter: a combining hat
])
def test_hats_are_precomposed_where_unicode_has_the_letter(name: str, shown: str, columns: int) -> None:
    """ŷ as one character draws in every terminal; p̂ has no such character, so it combines."""
    assert text_name(name) == shown
    assert display_width(shown) == columns


def test_long_sums_break_across_rows() -> None:
    d = spec_derivation(EVERY_OP_SPEC, "every_op")
    out = to_text(d)
    assert max(len(ln) for ln in out.split(T_FORWARD)[1].split(T_BACKWARD)[0].splitlines()) <= 100
    tex = to_latex(d)
    assert r"&\quad {}+ \operatorname{mean}" in tex


def test_loss_partial_keeps_only_terms_that_mention_the_variable() -> None:
    out = to_text(spec_derivation(EVERY_OP_SPEC, "every_op"))
    assert "  ∂L/∂P = ∂/∂P [−Σ(Y ⊙ log(P))/m]" in out


def test_several_paths_show_one_term_each_and_their_rules() -> None:
    d = spec_derivation(TIED_SPEC, "tied")
    out = to_text(d)
    assert "  ∂L/∂W = ∂/∂W [1/10 · Σ(W²)] + ∂L/∂R ∂R/∂W + ∂L/∂Z ∂Z/∂W" in out
    block = out.split("  ∂L/∂W = ")[1].split("\n\n")[0]
    for term in ("∂/∂W [1/10 · Σ(W²)]", "∂L/∂R ∂R/∂W", "∂L/∂Z ∂Z/∂W"):  # each term worked out, then added
        assert re.search(rf"^      {re.escape(term)} +=", block, re.M), term
    brief = to_text(d, brief=True).split("  ∂L/∂W = ")[1].split("\n\n")[0]
    for via in ("L", "R", "Z"):
        assert f"through {via}:" in brief
    assert len(d.step("W").paths) == 3


# ---------------------------------------------------------------------------
# Options: --param, --expanded, --index
# ---------------------------------------------------------------------------


def test_param_restricts_to_the_steps_it_needs() -> None:
    d = derivation("two_layer_sigmoid")
    assert [s.target for s in needed_steps(d, "b2")] == ["yhat", "b2"]
    assert [s.target for s in needed_steps(d, "W1")] == ["yhat", "A", "Z", "W1"]
    out = to_text(d, param="b2")
    assert "∂L/∂W₁" not in out and "∂L/∂b₂ = Σₜ(∂L/∂ŷ)" in out and "b₂ ← b₂ − α · ∂L/∂b₂" in out
    with pytest.raises(ValueError, match="W1, b1, w2, b2"):
        to_text(d, param="W9")


def test_expanded_section() -> None:
    d = derivation("two_layer_sigmoid")
    out = to_text(d, expanded=True)
    assert T_EXPANDED in out and T_EXPANDED not in to_text(d)
    # CS230's published form: ((w₂ᵀ (2/m)(ŷ − y)) ⊙ A ⊙ (1 − A)) Xᵀ
    assert "  ∂L/∂W₁ = ((w₂ᵀ (2/m · (ŷ − y))) ⊙ A ⊙ (1 − A)) Xᵀ" in out


def test_index_notation_for_w1() -> None:
    d = derivation("two_layer_sigmoid")
    eq = gradient_index(d, "W1")
    assert " = ".join(eq.text()) == "∂L/∂W₁[i,j] = Σₜ ∂L/∂Z[i,t] X[j,t]"
    assert " = ".join(eq.latex()) == (
        r"\frac{\partial \mathcal{L}}{\partial (W_{1})_{ij}} = "
        r"\sum_{t=1}^{m} \frac{\partial \mathcal{L}}{\partial Z_{it}} X_{jt}"
    )
    out = to_text(d, index=True)
    assert T_INDEX in out
    assert "  ∂L/∂W₁[i,j] = Σₜ ∂L/∂Z[i,t] X[j,t]" in out
    assert "  ∂L/∂b₁[i]   = Σₜ ∂L/∂Z[i,t]" in out
    assert "  ∂L/∂b₂      = Σₜ ∂L/∂ŷ[t]" in out


def test_index_letters_avoid_dims_and_variables() -> None:
    d = spec_derivation(EVERY_OP_SPEC, "every_op")  # has a variable t and a param s
    text = " ".join(gradient_index(d, "b1").text())
    assert "Σₜ" not in text and "Σₛ" not in text and "Σᵤ" in text


# --- index notation means what it says: evaluate it entry by entry --------------


class PaddingError(Exception):
    """An entry outside its value: a convolution's window reaching into the zero padding."""


def position(t: str, idx: dict[str, int]) -> int:
    """The 0-based position an index denotes: a letter, or a convolution's window position such as
    ``2(i-1)+k-1``, ``(j-k+1)/2+1`` or ``ceil(j/2)``, written counting from 1 as the sums do. A
    position that is not a whole number reads no entry (PaddingError: the term is 0)."""
    if t in idx:
        return idx[t]
    one_based = {k: v + 1 for k, v in idx.items()}
    at = eval(re.sub(r"(\d)\(", r"\1*(", t), {"__builtins__": {}, "ceil": math.ceil}, one_based)
    if at != int(at):
        raise PaddingError(t)
    return int(at) - 1


def eval_index(x: Any, idx: dict[str, int], vals: dict[str, Any], dims: dict[Any, int]) -> float:
    """The number an index-notation tree denotes, for index values ``idx``."""
    if isinstance(x, Entry):
        if isinstance(x.base, GradSymbol):
            value = vals[grad_name(x.base.of)]
        elif isinstance(x.base, MatrixSymbol):
            value = vals[x.base.name]
        else:
            value = evaluate(x.base, vals)
        value = np.asarray(value, dtype=float)
        value = value.reshape(1, 1) if value.ndim == 0 else value
        if len(x.index) != value.ndim:  # a scalar among values of another rank: its one entry
            return float(value.reshape(-1)[0])
        at = tuple(position(t, idx) if t and n > 1 else 0 for t, n in zip(x.index, value.shape))
        if any(not 0 <= a < n for a, n in zip(at, value.shape)):
            raise PaddingError(x)
        return float(value[at])
    if isinstance(x, Sum):
        total = 0.0
        ranges = [range(int(sympy.sympify(n).subs(dims))) for _, n in x.indices]
        for values in product(*ranges):
            try:
                total += eval_index(x.body, {**idx, **dict(zip((t for t, _ in x.indices), values))}, vals, dims)
            except PaddingError:  # a window position that is no whole number in range: that term is 0
                pass
        return total
    if isinstance(x, FirstMax):  # 1 where the entry is its window's first maximum in row-major order
        value = np.asarray(evaluate(x.value, vals), dtype=float)
        at = tuple(position(t, idx) if t else 0 for t in x.index)
        win = tuple(position(w, idx) if w else None for w in x.window)
        if any(w is not None and not 0 <= x.stride * w <= n - x.size for w, n in zip(win, value.shape)):
            raise PaddingError(x)
        region = tuple(slice(x.stride * w, x.stride * w + x.size) if w is not None else slice(a, a + 1)
                       for w, a in zip(win, at))
        first = np.unravel_index(np.argmax(value[region]), value[region].shape)
        return float(tuple(r.start + f for r, f in zip(region, first)) == at)
    if isinstance(x, Product):
        try:
            return float(np.prod([eval_index(f, idx, vals, dims) for f in x.factors]))
        except PaddingError:  # a window reaching into the zero padding: that term is 0
            return 0.0
    if isinstance(x, Scaled):
        return float(constant(x.coeff, dims)) * eval_index(x.body, idx, vals, dims)
    if isinstance(x, Apply):  # an entry at no whole position in range is 0 (a dilation's zeros): f(0), not 0
        args = [np.array([[_entry_or_zero(a, idx, vals, dims)]]) for a in x.args]
        return float(np.asarray(x.node.op.np_eval(*args, x.node)).reshape(-1)[0])
    assert is_const(x)
    return float(constant(x, dims))


def _entry_or_zero(x: Any, idx: dict[str, int], vals: dict[str, Any], dims: dict[Any, int]) -> float:
    """``x`` at ``idx``, or 0 where it reads an entry at no whole position in range (padding, a dilation's zeros)."""
    try:
        return eval_index(x, idx, vals, dims)
    except PaddingError:
        return 0.0


def index_terms(x: Any, dims: dict[Any, int]) -> int:
    """How many scalar terms evaluating one entry of an index form visits."""
    if isinstance(x, Sum):
        return int(np.prod([int(sympy.sympify(n).subs(dims)) for _, n in x.indices])) * index_terms(x.body, dims)
    if isinstance(x, Scaled):
        return index_terms(x.body, dims)
    if isinstance(x, Product | Apply):
        return sum(index_terms(f, dims) for f in (x.factors if isinstance(x, Product) else x.args))
    return 1


def check_index_form(expr: Any, shape: Any, vals: dict[str, Any], dims: dict[Any, int], taken: set[str],
                     max_terms: int | None = None) -> None:
    """``expr`` entry by entry equals its index form; a form whose entries visit more than ``max_terms``
    terms is left out (LeNet's fully expanded filter gradient: a full convolution inside a
    correlation, millions of terms an entry, each operation of which is checked on its own)."""
    eq = to_index(expr, "g", shape, taken)
    if max_terms is not None and index_terms(eq.rhs, dims) > max_terms:
        return
    want = np.asarray(evaluate(expr, vals), dtype=float)
    entries = list(np.ndindex(*want.shape))
    if len(entries) > 24:  # 784-pixel layers: a random sample of entries (corners included)
        pick = np.random.default_rng(len(entries)).choice(len(entries), 22, replace=False)
        entries = [entries[0], entries[-1], *(entries[int(i)] for i in pick)]
    for at in entries:
        idx = {t: v for t, v in zip(eq.index, at) if t}
        got = _entry_or_zero(eq.rhs, idx, vals, dims)
        assert got == pytest.approx(want[at], rel=1e-9, abs=1e-12), (eq.text(), at)


#: Expanded gradients larger than this (a transformer block's, every δ substituted: nested sums whose
#: entry-by-entry evaluation in Python takes minutes) are checked in their recursive form only.
EXPANDED_INDEX_BUDGET = 400
#: ... and those whose entries sum more terms than this.
EXPANDED_INDEX_TERMS = 50_000


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_index_notation_evaluates_to_the_matrix_formula(d: Derivation) -> None:
    """Each gradient (recursive and expanded) entry by entry equals its matrix form."""
    rng = np.random.default_rng(7)
    sizes = {name: int(rng.integers(2, 4)) for name in d.model.dims}
    env = random_point(d.model, sizes, rng)
    vals = forward(d, env)
    dims = {sym: sizes[name] for name, sym in d.model.dims.items()}
    for s in d.steps:
        vals[grad_name(s.target)] = evaluate(s.result, vals)
    taken = set(d.model.dims) | {n for n in d.model.names() if len(n) == 1}
    for eq in d.equations[:-1]:  # the forward equations too, as the notes show them for tensors
        check_index_form(eq.expr, eq.shape, vals, dims, taken)
    for p in d.params:
        step = d.step(p)
        check_index_form(step.result, step.shape, vals, dims, taken)
        expanded = d.expanded(p)
        if count_nodes(expanded) <= EXPANDED_INDEX_BUDGET:
            check_index_form(expanded, step.shape, vals, dims, taken, max_terms=EXPANDED_INDEX_TERMS)


#: The bundled examples all_derivations leaves out (einsum networks): rendered, compiled and indexed
#: here without the expanded section.
TENSOR_EXAMPLES = [n for n in FLAT_EXAMPLES if n not in EXAMPLES]  # a loop: test_through_time_notes.py


@pytest.mark.parametrize("name", TENSOR_EXAMPLES)
def test_tensor_examples_render_compile_and_index(name: str, tmp_path: Path) -> None:
    d = derivation(name)
    assert_no_overfull(compile_latex(to_latex(d, standalone=True, index=True), tmp_path, name), name)
    used = {m for s in math_spans(to_markdown(d, index=True)) for m in re.findall(r"\\([A-Za-z]+|.)", s)}
    assert used <= KATEX_MACROS, sorted(used - KATEX_MACROS)
    rng = np.random.default_rng(3)
    sizes = {n: int(rng.integers(2, 4)) for n in d.model.dims}
    vals = forward(d, random_point(d.model, sizes, rng))
    for s in d.steps:
        vals[grad_name(s.target)] = evaluate(s.result, vals)
    dims = {sym: sizes[n] for n, sym in d.model.dims.items()}
    taken = set(d.model.dims) | {n for n in d.model.names() if len(n) == 1}
    for eq in d.equations[:-1]:
        check_index_form(eq.expr, eq.shape, vals, dims, taken)
    for s in d.steps:
        check_index_form(s.result, s.shape, vals, dims, taken)


def test_forward_equations_of_tensors_are_shown_entry_by_entry() -> None:
    """Z[f,t] = Σ_c W[f,c] X[c,t] under each einsum or rank-3 equation; matrix networks are unchanged."""
    text = to_text(derivation("self_attention"))
    assert "  Q[i,j,l] = Σₛ Wq[i,s] X[s,j,l]" in text
    assert "  H[i,j,l] = Σₛ V[i,s,l] P[j,s,l]" in text
    assert "P[i,j,l] = softmax" not in text  # no index rule: the line would say nothing
    assert "A[i,j]" not in to_text(derivation("two_layer_sigmoid"))


@pytest.mark.parametrize("op", sorted(n for n, op in REGISTRY.items() if op.index is not None))
def test_registry_index_rules(op: str) -> None:
    """Every operation with an index rule, over scalar, column, row and full operands."""
    n, m, k = sympy.symbols("n m k", positive=True, integer=True)
    dims = {n: 3, m: 4, k: 2}
    rng = np.random.default_rng(3)
    cases = {
        "matmul": [((n, k), (k, m)), ((n, 1), (1, m)), ((1, k), (k, 1))],
        "transpose": [((n, m),), ((n, 1),)],
        "sum": [((n, m), 0), ((n, m), 1), ((n, m), None), ((1, m), None)],
        "mean": [((n, m), 0), ((n, m), 1), ((n, m), None)],
        "broadcast": [((n, 1), (n, m)), ((1, m), (n, m)), ((1, 1), (n, m))],
        "einsum": [((n, k), (k, m, 2), "fc,ctm->ftm"), ((n, k, m), (n, 2, m), "dtm,dsm->tsm"),
                   ((n, k), (k, m), (m, 2), "ab,bc,cd->ad"), ((n, k), "ij->i")],
        "permute": [((n, k, m), (2, 0, 1)), ((n, 1, m), (1, 2, 0))],
        # (stride, padding, examples axis): strides, paddings, both layouts, 1×1 filters and outputs
        "conv1d": [((2, 7, m), (3, 2, 3), (2, 1, 2)), ((m, 2, 5), (3, 2, 1), (1, 0, 0)),
                   ((2, 4, m), (3, 2, 4), (1, 0, 2))],
        "conv2d": [((2, 5, 5, m), (3, 2, 3, 3), (2, 1, 3)), ((m, 2, 4, 3), (2, 2, 2, 1), (1, 0, 0)),
                   ((2, 3, 3, m), (2, 2, 1, 1), (2, 0, 3)), ((2, 3, 3, m), (2, 2, 3, 3), (1, 1, 3))],
        "conv1d_filter": [((2, 7, m), (3, 4, m), (2, 1, 2)), ((m, 2, 5), (m, 3, 5), (1, 0, 0))],
        "conv2d_filter": [((2, 5, 5, m), (3, 3, 3, m), (2, 1, 3)), ((m, 2, 4, 3), (m, 2, 3, 3), (1, 0, 0)),
                          ((2, 3, 3, m), (2, 1, 1, m), (1, 0, 3))],
        "avg_pool2d": [((2, 4, 4, m), (2, 2, 3)), ((m, 2, 5, 5), (3, 1, 0)), ((2, 4, 4, m), (4, 4, 3))],
        # the full convolution: δ (dilated by the stride) against the filters; (δ, W, (stride, padding, batch))
        "conv1d_input": [((3, 4, m), (3, 2, 3), (2, 1, 2)), ((m, 3, 3), (3, 2, 1), (1, 0, 0)),
                         ((3, 3, m), (3, 2, 3), (3, 2, 2)), ((3, 4, m), (3, 2, 1), (2, 0, 2))],
        "conv2d_input": [((3, 3, 3, m), (3, 2, 3, 3), (2, 1, 3)), ((m, 2, 3, 3), (2, 2, 2, 1), (1, 0, 0)),
                         ((2, 2, 2, m), (2, 2, 1, 1), (2, 0, 3)), ((2, 3, 3, m), (2, 2, 3, 3), (1, 1, 3)),
                         ((2, 2, 3, m), (2, 3, 3, 2), (2, 2, 3))],
        # pooling's gradients, (δ, [X,] (size, stride, batch)): tiling windows, overlapping, gaps
        "avg_pool2d_spread": [((2, 2, 2, m), (2, 2, 3)), ((m, 2, 3, 3), (3, 1, 0)), ((2, 2, 2, m), (2, 3, 3)),
                              ((2, 1, 1, m), (4, 4, 3))],
        "max_pool2d_route": [((2, 2, 2, m), (2, 4, 4, m), (2, 2, 3)), ((m, 2, 3, 3), (m, 2, 5, 5), (3, 1, 0)),
                             ((2, 2, 2, m), (2, 5, 5, m), (2, 3, 3)), ((2, 2, 2, m), (2, 5, 5, m), (3, 2, 3))],
        # (operand, (stride, axes)): a δ of images in both layouts, a sequence, a length-1 axis among the dilated
        "dilate": [((2, 3, 3, m), (2, (1, 2))), ((m, 2, 3, 2), (3, (2, 3))), ((2, 4, m), (2, (1,))),
                   ((2, 1, 3, m), (2, (1, 2)))],
        "subsample": [((2, 5, 5, m), (2, (1, 2))), ((m, 2, 7, 4), (3, (2, 3))), ((2, 7, m), (2, (1,))),
                      ((2, 1, 5, m), (2, (1, 2)))],
    }[op]
    from backprop.expr import ir

    for case in cases:
        shapes = [c for c in case if isinstance(c, tuple)]
        shapes = shapes if op == "einsum" else shapes[: REGISTRY[op].arity]
        leaves = [ir.symbol(f"V{i}", tuple(sympy.sympify(d) for d in s)) for i, s in enumerate(shapes)]
        if op == "einsum":
            e = ir.node(op, *leaves, Str(case[-1]))
        elif op == "permute":
            e = ir.node(op, leaves[0], sympy.Tuple(*case[1]))
        elif op in ("sum", "mean"):
            e = ir.node(op, leaves[0], ir.axes_attr(case[1]))
        elif op == "broadcast":
            e = ir.node(op, leaves[0], sympy.Tuple(*case[1]))
        elif op in ("dilate", "subsample"):
            e = ir.node(op, leaves[0], sympy.Integer(case[1][0]), sympy.Tuple(*case[1][1]))
        elif REGISTRY[op].windowed:
            e = ir.node(op, *leaves, *(sympy.Integer(a) for a in case[-1]))
        else:
            e = ir.node(op, *leaves)
        vals = {v.name: rng.normal(size=tuple(int(sympy.sympify(d).subs(dims)) for d in v.shape)) for v in leaves}
        if op == "max_pool2d_route":  # ties, which go to the first maximum of the window in row-major order
            vals["V1"] = np.round(vals["V1"])
        vals.update({s: v for s, v in dims.items()})
        check_index_form(e, shape_of(e), vals, dims, {"n", "m", "k"})


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", all_derivations(), ids=ALL_IDS)
def test_json_schema(d: Derivation) -> None:
    doc = json.loads(to_json(d, expanded=True, index=True))
    assert list(doc) == [
        "spec", "summary", "dims", "inputs", "params", "forward", "loss", "steps", "cuts", "gradients",
        "optimizer", "updates",
    ]
    assert [(c["via"], c["text"]) for c in doc["cuts"]] == [(c.via, text(c.expr)) for c in d.cuts]
    for c in doc["cuts"]:
        assert list(c) == ["via", "rule", "latex", "text"]
    assert doc["spec"] == d.model.name and doc["dims"] == list(d.model.dims)
    for x in doc["inputs"] + doc["params"]:
        assert list(x) == ["name", "shape", "domain", "latex", "text"] and len(x["shape"]) == len(d.model.shape(x["name"]))
    assert [p["name"] for p in doc["params"]] == d.params
    assert [e["name"] for e in doc["forward"]] == [e.name for e in d.equations]
    for e in doc["forward"]:
        assert list(e) == ["name", "shape", "latex", "text", "lifted"]
    assert [s["target"] for s in doc["steps"]] == [s.target for s in d.steps]
    for s in doc["steps"]:
        assert list(s) == ["target", "kind", "shape", "chain", "paths", "working", "recursive", "result",
                           "inlined"]
        assert s["kind"] in ("param", "intermediate") and s["paths"]
        for p in s["paths"]:
            assert list(p) == ["via", "rules", "latex", "text"] and p["rules"]
        for key in ("chain", "recursive", "result"):
            assert list(s[key]) == ["latex", "text"]
    for g in doc["gradients"]:
        assert list(g) == ["param", "shape", "latex", "text", "expanded", "index"]
        assert list(g["expanded"]) == ["latex", "text"] and list(g["index"]) == ["lhs", "rhs"]
    assert [u["param"] for u in doc["updates"]] == d.params
    assert doc["optimizer"]["name"] == d.optimizer and doc["optimizer"]["hyperparameters"][0]["text"] == "α"
    for u in doc["updates"]:
        assert u["equations"] and all(list(e) == ["target", "latex", "text"] for e in u["equations"])
    plain = json.loads(to_json(d))
    assert all(g["expanded"] is None and g["index"] is None for g in plain["gradients"])


def test_json_values() -> None:
    doc = json.loads(to_json(derivation("two_layer_sigmoid"), param="W1"))
    assert [s["target"] for s in doc["steps"]] == ["yhat", "A", "Z", "W1"]
    assert doc["gradients"] == [{
        "param": "W1", "shape": ["k", "n"],
        "latex": r"\frac{\partial \mathcal{L}}{\partial Z} X^{\top}", "text": "∂L/∂Z Xᵀ",
        "expanded": None, "index": None,
    }]
    assert doc["updates"] == [{"param": "W1", "equations": [{
        "target": {"latex": "W_{1}", "text": "W₁"},
        "latex": r"W_{1} - \alpha \frac{\partial \mathcal{L}}{\partial W_{1}}", "text": "W₁ − α · ∂L/∂W₁",
    }]}]
    assert doc["inputs"][0] == {"name": "X", "shape": ["n", "m"], "domain": None, "latex": "X", "text": "X"}


# ---------------------------------------------------------------------------
# Determinism and Jupyter
# ---------------------------------------------------------------------------


def render_all(name: str) -> str:
    d = get_derivation(name)
    return "".join([
        to_text(d, expanded=True, index=True), to_latex(d, standalone=True, expanded=True, index=True),
        to_latex(d, body_only=True), to_markdown(d, expanded=True, index=True), to_json(d, expanded=True, index=True),
    ])


def test_output_is_identical_across_runs_and_hash_seeds() -> None:
    names = ("two_layer_sigmoid", "mlp_softmax", "logistic_regression")
    here = "".join(render_all(n) for n in names)
    assert here == "".join(render_all(n) for n in names)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from test_render import render_all; "
        f"sys.stdout.buffer.write(''.join(render_all(n) for n in {names!r}).encode())"
    )
    outs = []
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)],
                             capture_output=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr.decode()
        outs.append(run.stdout.decode())
    assert outs[0] == outs[1] == here


def test_optimizer_updates_end_the_notes() -> None:
    d = get_derivation("two_layer_sigmoid", optimizer="adam")
    out = to_text(d, param="W1")
    section = out.split("\nUpdate (Adam, learning rate α)\n")[1]
    assert "β₁: decay of the gradient average (momentum)" in " ".join(section.split())
    for line in ("  v_dW₁ ← β₁ · v_dW₁ + (1 − β₁) · ∂L/∂W₁", "  W₁    ← W₁ − α · v\u0302_dW₁/(√(ŝ_dW₁) + ε)"):
        assert line in section.splitlines(), line
    doc = json.loads(to_json(d, param="W1"))
    assert doc["optimizer"]["name"] == "adam" and len(doc["updates"][0]["equations"]) == 5


def test_jupyter_reprs_are_strings() -> None:
    d = derivation("two_layer_sigmoid")
    latex = d._repr_latex_()
    assert isinstance(latex, str) and latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert "align*" not in latex and r"\section" not in latex
    md = d._repr_markdown_()
    assert isinstance(md, str) and md == to_markdown(d)


def test_import_backprop_is_enough_for_jupyter_display() -> None:
    """A fresh interpreter that only imports backprop gets the rendered math: importing the
    package registers the display formats the engine's Derivation reads."""
    script = (
        "import sys, backprop\n"
        "d = backprop.get_derivation('two_layer_sigmoid')\n"
        "sys.stdout.write(d._repr_latex_() + '\\0' + d._repr_markdown_())\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, encoding="utf-8", check=True)
    latex, md = run.stdout.split("\0")
    d = derivation("two_layer_sigmoid")
    assert latex == "$$" + to_latex(d, body_only=True) + "$$"
    assert md == to_markdown(d)


def test_import_backprop_imports_no_stage_until_a_name_is_used() -> None:
    """``import backprop`` alone imports nothing else (the command line starts through it); every
    public name and every stage is still there, imported on first use."""
    script = (
        "import json, sys, backprop\n"
        "before = sorted(m for m in sys.modules if m.startswith(('backprop', 'sympy', 'numpy')))\n"
        "missing = [n for n in backprop.__all__ if getattr(backprop, n, None) is None]\n"
        "stages = [backprop.engine.pipeline.get_derivation is backprop.get_derivation, callable(backprop.present.text.to_text)]\n"
        "print(json.dumps([before, missing, stages, set(backprop.__all__) <= set(dir(backprop))]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, missing, stages, listed = json.loads(run.stdout)
    assert before == ["backprop"] and missing == [] and stages == [True, True] and listed
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        backprop.nonesuch  # noqa: B018


def test_engine_never_imports_present() -> None:
    """The engine sits below the presenters: no module of it imports backprop.present, even inside
    a function (the Derivation's display reads a registry that backprop.present fills)."""
    engine = Path(backprop.__file__).parent / "engine"
    offenders = []
    for path in sorted(engine.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("backprop.present")]
    assert engine.is_dir() and not offenders, offenders


def test_derivation_displays_what_the_registry_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty slot tells Jupyter the form is not available (None); a filled one is called."""
    from backprop.engine.derivation import DISPLAY_FORMATS

    d = derivation("sigmoid_neuron")
    monkeypatch.setattr(DISPLAY_FORMATS, "latex", None)
    monkeypatch.setattr(DISPLAY_FORMATS, "markdown", lambda x: f"notes on {x.model.name}")
    assert d._repr_latex_() is None
    assert d._repr_markdown_() == "notes on sigmoid_neuron"


def test_every_op_in_the_every_op_spec() -> None:
    """The every-op and tensor networks (and the integer-labels example) really hold every operation
    the spec language offers."""
    used = {x.op.name for spec, name in ((EVERY_OP_SPEC, "every_op"), (TENSOR_SPEC, "tensors"), (SELECT_SPEC, "select"),
                                         (LINALG_SPEC, "linalg"), (CONV_SPEC, "conv"))
            for eq in spec_derivation(spec, name).equations for x in eq.expr.atoms(OpNode)}
    used |= {x.op.name for eq in derivation("embedding_bag").equations for x in eq.expr.atoms(OpNode)}  # onehot, take
    from backprop.expr.ops import FUNCTIONS

    spec_ops = {op.name for op in FUNCTIONS.values()} | {"add", "sub", "mul", "div", "pow", "neg", "matmul", "transpose",
                                                         "slice", "gt", "ge", "lt", "le"}
    assert spec_ops <= used, spec_ops - used


def test_long_exact_numbers_print_in_scientific_form(tmp_path: Path) -> None:
    """The parser folds constants exactly, so 1e-300 is 1/10^300 and 1 + 1e-300 a fraction of
    301-digit integers: notes show them as m·10^k (parenthesized as a power's base), not pages of
    digits, and the LaTeX still compiles."""
    d = get_derivation(parse_spec(
        "input x[1, m]\nparam w\n"
        "loss = (1e-300 ** m) ** 1000 * sum(x) + w * w * 3.7e200 + (1 + 1e-300) * w\n", name="sci"))
    text, latex = to_text(d), to_latex(d, standalone=True)
    assert not re.search(r"\d{16}", text) and not re.search(r"\d{16}", latex)
    assert "7.4·10^200 · w" in text and r"3.7 \cdot 10^{200}" in latex
    assert r"\left(10^{300}\right)^{" in latex  # never 10^{300}^{...}, a LaTeX error
    compile_latex(latex, tmp_path, "sci")


@pytest.mark.parametrize(("number", "shown"), [
    ("1e-5", "10^(−5) · Σ"), ("5e-5", "5·10^(−5) · Σ"), ("2.5e-4", "2.5·10^(−4) · Σ"), ("1.25e-6", "1.25·10^(−6) · Σ"),
    ("0.5", "1/2 · Σₜ((w · x)²)"), ("0", "L = 0"),
    ("1/1024", "Σₜ((w · x)²)/1024"),  # 0.0009765625 needs ten digits: an exact fraction
])
def test_small_decimals_read_as_written(number: str, shown: str) -> None:
    d = get_derivation(parse_spec(f"input x[1, m]\nparam w\nloss = sum((w * x) ** 2) * {number}\n", name="dec"))
    assert shown in to_text(d)


def test_zero_and_whole_numbers_are_not_scientific() -> None:
    """Zero is no decimal: taken for one, the search for its power of ten never ended."""
    import sympy

    from backprop.expr.printing import scientific

    assert scientific(sympy.Integer(0)) is None and scientific(sympy.Integer(7)) is None
    assert scientific(sympy.Rational(1, 20000)) == ("5", -5)


def test_conv_notes_show_the_window_sums() -> None:
    """A conv layer's forward value and filter gradient, and average pooling, entry by entry: the
    stride and padding in the window position (issue 15 point 2)."""
    text = to_text(spec_derivation(CONV_SPEC, "conv"))
    assert "Z[i,j,k,l] = (Σᵤ Σᵣ Σ_q X[u,2(j-1)+r-1,2(k-1)+q-1,l] W₁[i,u,r,q]) + b₁[i]" in text  # stride 2, padding 1
    assert "T[i,j,k]   = Σᵤ Σᵣ S[u,j+r-2,k] flip[2](V)[i,u,r]" in text  # stride 1, padding 1
    assert "P[i,l]     = (1/25) (Σᵤ Σᵣ A[i,u,r,l])" in text
    # a dilation reads its value every 2 positions (zeros between), its adjoint every 2nd entry of δ
    assert "D[i,j,k]   = T[i,(j-1)/2+1,k]" in text and "(T dilated by 2 (1 zero between neighbouring entries)" in text
    assert "∂L/∂T[i,j,k] = ∂L/∂D[i,2(j-1)+1,k] + " in text
    assert "∂L/∂W₁[i,j,k,l] = Σᵤ Σᵣ Σ_q X[j,2(u-1)+k-1,2(r-1)+l-1,q] ∂L/∂Z[i,u,r,q]" in text
    latex = to_latex(spec_derivation(CONV_SPEC, "conv"))
    assert r"X_{u,2(j-1)+r-1,2(k-1)+q-1,l} (W_{1})_{iurq}" in latex


#: A convolution whose input gradient the notes show (strided and padded), and both poolings' gradients.
CONV_INPUT_SPEC = """\
# The input gradient of a strided, padded convolution; max and average pooling's gradients.
input X[3, 7, 7, m]
param V[3, 3, 1, 1]
param W[4, 3, 3, 3]
Q = conv2d(X, V)
A = relu(conv2d(Q, W, stride=2, padding=1))
M = max_pool2d(A, size=2)
P = avg_pool2d(A, size=2)
loss = mean(M**2) + sum(P) / m
"""


def test_conv_notes_show_the_full_convolution_and_the_pooling_routes(tmp_path: Path) -> None:
    """∂L/∂X of a conv layer as the full convolution of δ (dilated by the stride) with the flipped
    filters, in indices and in words; max pooling's gradient routed to the first arg-max of each
    window (an Iverson bracket, the tie rule said); average pooling's 1/k² share; the padding said in
    words (issue 15 point 2). The index forms' values: test_registry_index_rules."""
    d = spec_derivation(CONV_INPUT_SPEC, "conv_input")
    text = to_text(d)
    assert "∂L/∂Q[i,j,k,l] = Σₜ Σₛ Σᵤ ∂L/∂Z[t,(j-s+1)/2+1,(k-u+1)/2+1,l] W[t,i,s,u]" in text
    said = " ".join(text.split())
    assert ("(the full convolution: ∂L/∂Z dilated by the stride (1 zero between entries), padded by 1 zero on "
            "each side (3 − 1 − 1: the filter size less 1, less the padding), correlated with W flipped in both "
            "spatial axes; where the position in ∂L/∂Z "
            "is not a whole number in range, the term is 0)") in said
    assert ("∂L/∂A[i,j,k,l] = (1/4) ∂L/∂P[i,⌈j/2⌉,⌈k/2⌉,l] + ∂L/∂M[i,⌈j/2⌉,⌈k/2⌉,l] "
            "[A[i,j,k,l] is the first maximum of its window (⌈j/2⌉,⌈k/2⌉)]") in text
    assert "each entry of a 2×2 window receives 1/4 of ∂L/∂P at that window" in said
    assert "on a tie, to the first in row-major order (as PyTorch)" in said
    assert "(Q zero-padded by 1 on each side: a position outside Q holds 0)" in said
    latex = to_latex(d, standalone=True)
    assert r"\lceil j/2\rceil" in latex and r"\text{ is the first maximum of its window }" in latex
    assert r"\text{padded by 1 zero on each side (} 3 - 1 - 1 \text{:}" in latex
    assert_no_overfull(compile_latex(latex, tmp_path, "conv_input"), "conv_input")
    used = {m for s in math_spans(to_markdown(d, index=True)) for m in re.findall(r"\\([A-Za-z]+|.)", s)}
    assert used <= KATEX_MACROS, sorted(used - KATEX_MACROS)
    vals = forward(d, random_point(d.model, {"m": 2}, np.random.default_rng(5)))
    for s in d.steps:
        vals[grad_name(s.target)] = evaluate(s.result, vals)
    dims = {sym: 2 for sym in d.model.dims.values()}
    for s in d.steps:  # every step's index form, entry by entry
        check_index_form(s.result, s.shape, vals, dims, {"m"})
    # lenet: the full convolution (stride 1, no padding) and max pooling, as a student reads them
    lenet = " ".join(to_text(derivation("lenet")).split())
    assert ("∂L/∂P₁[i,j,k,l] = Σₜ Σₛ Σᵤ ∂L/∂Z₂[t,j-s+1,k-u+1,l] W₂[t,i,s,u] (the full convolution: ∂L/∂Z₂ "
            "padded by 4 zeros on each side (5 − 1 − 0: the filter size less 1, less the padding), correlated with "
            "W₂ flipped in both spatial axes; an "
            "entry outside ∂L/∂Z₂ is 0)") in lenet

"""A student's reading test (issue 19 point 5): the notes of every bundled example state what they use.

- every rule a backward step cites by name is stated in the derivation's legend;
- every symbol a stated rule uses (a placeholder, a function's name, Σ, an Iverson bracket, L) is
  defined in the derivation: named in the legend's introduction, or printed by the notes' own
  equations or their sentences (the forward pass defines σ by using it on the network's values);
- the text notes of three examples a course would start with are golden files, so every change
  to what a student reads is a diff to review:

    BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_reading.py -k golden

The examples come from the bundled list (``backprop.example_names()``), not from a hand-picked one.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import pytest
from helpers import FLAT_EXAMPLES

import backprop
from backprop import get_derivation
from backprop.present.latex import to_latex
from backprop.present.layout import T_RULES, Notes, Section, layout
from backprop.present.text import to_text
from backprop.present.working import shown_links
from backprop.support.notation import MATH_WORDS

GOLDEN = Path(__file__).parent / "golden"
READ_GOLDEN = ("two_layer_sigmoid", "mlp_softmax", "deep_relu")
EXAMPLES = FLAT_EXAMPLES  # a loop's notes: tests/test_through_time_notes.py
#: Tokens of a rule's formula: a word, or one letter of any script (𝒰, σ, Σ).
_TOKEN = re.compile(r"[^\W\d_]+")
#: An Iverson bracket, [𝒰 > 0] (not a block, ∂L/∂[𝒰; 𝒱]).
_BRACKET = re.compile(r"\[[^\[\]]* [<>≤≥] [^\[\]]*\]")


@cache
def notes(name: str) -> Notes:
    return layout(get_derivation(name), expanded=True, index=True)


def _legend(n: Notes) -> Section:
    return next(s for s in n.sections if s.title == T_RULES)


def _cited(n: Notes) -> list[str]:
    return [r for s in n.sections for b in s.blocks for r in b.cited]


def _defining_text(n: Notes) -> str:
    """Everything the notes print outside the legend's own formulas: sentences and equations."""
    out = []
    for s in n.sections:
        if s.intro is not None:
            out.append(s.intro.text)
        for b in s.blocks:
            for line in b.lines:
                out += [f.text for f in (line.lhs, line.rhs, line.shape) if f is not None]
    return "\n".join(out)


def _math_tokens(formula: str) -> set[str]:
    """The symbols a rule's formula uses: single letters and function names (prose words are not)."""
    return {t for t in _TOKEN.findall(formula) if len(t) == 1 or t in MATH_WORDS}


def _occurs(symbol: str, text: str) -> bool:
    """``symbol`` printed as a whole (softmax is not found inside logsoftmax, nor σ inside σ′ only)."""
    return re.search(rf"(?<![^\W\d_]){re.escape(symbol)}(?![^\W\d_])", text) is not None


def test_the_examples_are_the_bundled_list() -> None:
    assert len(EXAMPLES) >= 18 and set(READ_GOLDEN) <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_cited_rule_is_stated_in_the_legend(name: str) -> None:
    n = notes(name)
    stated = {e.name for e in _legend(n).legend}
    cited = _cited(n)
    assert cited, "a derivation's steps cite the rules they apply"
    assert set(cited) <= stated, sorted(set(cited) - stated)
    text = to_text(get_derivation(name), expanded=True, index=True)
    rules_part = text.split("Backward pass")[0]
    for r in stated:  # and the printed notes state it, before the steps cite it
        assert f"  {r}" in rules_part, r


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_symbol_of_a_rule_is_defined_in_the_derivation(name: str) -> None:
    n = notes(name)
    defining = _defining_text(n)
    missing = {
        (e.name, sym)
        for e in _legend(n).legend for f in e.formulas for sym in _math_tokens(f)
        if not _occurs(sym, defining)
    }
    assert not missing, sorted(missing)
    if any(_BRACKET.search(f) for e in _legend(n).legend for f in e.formulas):  # a mask in a rule is explained
        assert "Iverson" in defining


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_sum_and_bracket_is_defined_where_first_used(name: str) -> None:
    """Σₜ, Σ, colsum and [· > ·] are said in words in the first section that prints them, or before."""
    n = notes(name)
    seen = ""
    for s in n.sections:
        if s.intro is not None:
            seen += s.intro.text
        lines = "\n".join(f.text for b in s.blocks for line in b.lines for f in (line.lhs, line.rhs) if f)
        for used, said in (("Σₜ(", "Σₜ adds"), ("Σ(", "Σ without an index"), ("colsum(", "colsum adds")):
            if used in lines:
                assert said in seen, (s.title, used)
        if _BRACKET.search(lines):
            assert "Iverson" in seen, s.title


def test_a_rule_without_its_symbol_defined_is_caught() -> None:
    """The symbol check can fail: a rule naming a function the notes never print is reported."""
    assert not _occurs("softmax", "L = −Σ(Y ⊙ logsoftmax(Z₂))/m")
    assert _occurs("softmax", "(softmax(Z₂) − Y)/m")
    assert _math_tokens("log-softmax: ∂L/∂𝒰 = ∂L/∂𝒮 along the axis, for 𝒮 = logsoftmax(𝒰)") >= {"𝒰", "𝒮", "L",
                                                                                             "logsoftmax"}
    assert "along" not in _math_tokens("Σ ∂L/∂𝒮 along the axis")


@pytest.mark.parametrize("name", READ_GOLDEN)
def test_golden_text(name: str) -> None:
    """The notes as `backprop derive NAME` prints them, reviewed line by line."""
    path = GOLDEN / f"derive_{name}.txt"
    got = to_text(get_derivation(name))
    if os.environ.get("BACKPROP_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_reading.py -k golden"
    assert got == path.read_text(encoding="utf-8"), (
        f"{path.name} is stale: review the change, then BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_reading.py")


@pytest.mark.parametrize("name", READ_GOLDEN)
def test_pdf_layout_keeps_rules_shapes_and_the_update_in_place(name: str) -> None:
    """Issue 19 point 4, in the LaTeX the PDF is made from: every shape a right-margin tag (one
    column on every page); a step's rows joined by ``\\*`` (no page break inside a step) with its
    rules beside its working's lines, or (``--brief``) right under it in a list that does not break
    from it; the update in one box with the section before it, so it is never alone on a page."""
    d = get_derivation(name)
    steps = len(d.steps)
    step_block = r"\\begin\{align\*\}\n((?:(?!\\begin\{align).)*?)\n\\end\{align\*\}"
    for expanded, index, brief in ((False, False, True), (True, True, True), (False, False, False), (True, True, False)):
        tex = to_latex(d, standalone=True, expanded=expanded, index=index, brief=brief)
        assert "&& (" not in tex and tex.count(r"\tag*{$(") >= steps
        body = tex.split(r"\begin{document}")[1]
        backward = body.split(r"\section*{Backward")[1].split(r"\section*{Gradients")[0]
        blocks = re.findall(step_block + (r"\n\\begin\{steprules\}" if brief else ""), backward, re.S)
        assert len(blocks) == steps and all("\\\\\n" not in b for b in blocks), "a step's rows may not break"
        if brief:
            assert body.count(r"\begin{steprules}") == steps
        else:  # each rule at the right margin of the line it gave, as the shapes are
            assert r"\begin{steprules}" not in body
            cited = [r for b in blocks for r in re.findall(r"\\tag\*\{\\small\\itshape by ([^}]*)\}", b)]
            assert len(cited) == sum(len(shown_links(d, p)) for s in d.steps for p in s.paths)
        closing = body.split(r"\begin{minipage}{\linewidth}")
        assert len(closing) == 2 and r"\section*{Update" in closing[1] and closing[1].count(r"\section*{") == 2


def test_a_pre_activation_the_loss_writes_inline_is_numbered_as_its_weights() -> None:
    """Z₂ = W₂ A + b₂ inside the loss after an unnumbered A = σ(W₁ X + b₁): Z₂, as W₂, not Z₁ (the
    layers counted), and the assigned A keeps its own Z."""
    spec = ("input X[n, m]\ninput Y[c, m] onehot\nparam W1[k, n]\nparam b1[k, 1]\nparam W2[c, k]\nparam b2[c, 1]\n"
            "A = sigmoid(W1 @ X + b1)\nloss = -sum(Y * log_softmax(W2 @ A + b2, axis=0)) / m\n")
    out = to_text(backprop.backpropagate(backprop.parse_spec(spec, name="net")))
    assert "  Z  = W₁ X + b₁ " in out and "  Z₂ = W₂ A + b₂ " in out and "Z₁" not in out

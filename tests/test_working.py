"""A backward step's working, one line per rule (issue 19 point 1): every rule the chain rule applied
gets a line with its name beside it, and every fact about the inputs a simplification used is named.

The facts are the domains' (``backprop.language.domains``): the simplifier may be told not to use
one, which is how the notes find the facts a step needed.
"""

from __future__ import annotations

import json

import pytest
from helpers import FLAT_EXAMPLES

import backprop
from backprop import get_derivation
from backprop.engine.simplify import simplify
from backprop.present import working as working_module
from backprop.present.formula import formula
from backprop.present.jsondoc import to_json
from backprop.present.layout import T_BACKWARD, layout
from backprop.present.text import to_text
from backprop.present.working import shown_links, worked
from backprop.support.deepstack import deep_stack
from backprop.support.escape import tex_text

EXAMPLES = FLAT_EXAMPLES  # a loop's notes: tests/test_through_time_notes.py


@pytest.mark.parametrize("name", EXAMPLES)
def test_one_line_per_rule_with_its_name(name: str) -> None:
    """Each rule applied on each path down an equation is one line of the working, citing it."""
    d = get_derivation(name)
    backward = next(s for s in layout(d).sections if s.title == T_BACKWARD)
    assert len(backward.blocks) == len(d.steps)
    for s, b in zip(d.steps, backward.blocks):
        work = [ln for ln in b.lines if ln.depth]
        assert [ln.why.cites for ln in work if ln.why] == [
            backprop.present.legend.rule_name(k.rule) for p in s.paths for k in shown_links(d, p)]
        for p in s.paths:  # only rules passing an unchanged gradient on are merged
            kept = shown_links(d, p)
            assert kept[-1] == p.trail[-1] if p.trail else not kept
            assert all(p.trail[i + 1].grad == k.grad for i, k in enumerate(p.trail) if k not in kept)
        assert all(ln.why is not None and ln.why.text.startswith("by ") for ln in work)
        assert not b.rules, "the rules sit beside their lines, not in a list under the step"


def test_a_long_sum_is_one_line_per_term_and_a_long_working_is_compact(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loss of 300 terms: each param's working is a few lines, not 300 (the sum's rules pass the
    same gradient down); a step whose working would run past MAX_WORKING lines is printed compact."""
    terms = " + ".join(f"sum(W{i}**2)" for i in range(1, 301))
    spec = "input X[n, m]\n" + "".join(f"param W{i}[n, 1]\n" for i in range(1, 301)) + f"loss = {terms}\n"
    d = backprop.backpropagate(backprop.parse_spec(spec, path="long.spec"))
    backward = next(s for s in deep_stack(layout)(d).sections if s.title == T_BACKWARD)
    assert max(sum(ln.depth for ln in b.lines) for b in backward.blocks) <= 4
    monkeypatch.setattr(working_module, "MAX_WORKING", 3)
    d = get_derivation("mlp_softmax")
    block = next(s for s in layout(d).sections if s.title == T_BACKWARD).blocks[0]
    assert not worked(d, d.steps[0]) and block.rules and not any(ln.depth for ln in block.lines)
    assert worked(d, d.step("W2"))


def test_the_one_hot_fact_is_named_where_the_softmax_step_uses_it() -> None:
    """(softmax(Z₂) − Y)/m holds because each column of Y sums to 1: the notes say so, on that line."""
    out = to_text(get_derivation("mlp_softmax")).splitlines()
    at = out.index("         = (softmax(Z₂) − Y)/m   since each column of the one-hot Y sums to 1")
    assert "colsum(Y)" in out[at - 1] and "by log-softmax" in out[at - 1]  # the line before, without the fact
    assert sum("since" in ln for ln in out) == 1


def test_integer_labels_and_a_row_layout_name_their_facts() -> None:
    lenet = to_text(get_derivation("lenet"))
    assert "since each label in y is one class, so onehot of it sums to 1 over the classes" in lenet
    rows = to_text(get_derivation("mlp_rows"))
    assert "since each row of the one-hot Y sums to 1" in rows


@pytest.mark.parametrize("name", ["two_layer_sigmoid", "logistic_regression", "svm_hinge", "transformer_block"])
def test_no_fact_is_claimed_where_algebra_alone_gives_the_result(name: str) -> None:
    assert "since " not in to_text(get_derivation(name)).split(T_BACKWARD)[1]


def test_without_the_fact_the_simplifier_leaves_the_sum() -> None:
    """The check the notes rely on can fail: told not to use Y's domain, the step keeps colsum(Y)."""
    d = get_derivation("mlp_softmax")
    s = d.step("Z2")
    domains = d.model.domains()
    plain = simplify(s.paths[0].expr, domains, facts=False)
    assert plain != s.recursive and "colsum(Y)" in formula(plain).text and "colsum" not in formula(s.recursive).text
    assert simplify(s.paths[0].expr, domains, unused=frozenset({"Y"})) == plain
    assert simplify(s.paths[0].expr, domains) == s.recursive


def test_a_fact_in_latex_is_text_with_math() -> None:
    tex = backprop.present.latex.to_latex(get_derivation("mlp_softmax"), standalone=True)
    assert r"\tag*{\small\itshape since each column of the one-hot $Y$ sums to 1}" in tex
    assert r"\tag*{\small\itshape by " + tex_text("log-softmax") + "}" in tex


def test_a_gradient_substituted_from_above_is_said() -> None:
    d = next(d for d in map(get_derivation, EXAMPLES) if any(s.inlined for s in d.steps))
    assert " from above" in to_text(d)


def test_brief_keeps_the_compact_form() -> None:
    d = get_derivation("mlp_softmax")
    brief = to_text(d, brief=True)
    assert "by log-softmax" not in brief and "           by quotient, numerator\n" in brief
    assert "      ∂L/∂" not in brief
    assert brief.count("\n  ∂L/∂Z₂ = ") == to_text(d).count("\n  ∂L/∂Z₂ = ") == 1


def test_json_holds_the_working() -> None:
    doc = json.loads(to_json(get_derivation("mlp_softmax")))
    first = doc["steps"][0]["working"]
    assert [w["rule"] for w in first if w["rule"]] == ["quotient, numerator", "negation", "sum",
                                                         "elementwise product", "log-softmax"]
    assert first[-1] == {"lhs": None, "rhs": first[-1]["rhs"], "rule": None,
                         "why": "since each column of the one-hot Y sums to 1"}


def test_cli_brief(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from backprop.cli import main

    assert main(["derive", "two_layer_sigmoid", "--brief"]) == 0
    assert "          by logistic function\n" in capsys.readouterr().out
    out = tmp_path / "notes.txt"
    assert main(["derive", "two_layer_sigmoid", "--brief", "-o", str(out)]) == 0
    assert "--brief" in out.read_text(encoding="utf-8").splitlines()[0] + out.read_text(encoding="utf-8")[:400]

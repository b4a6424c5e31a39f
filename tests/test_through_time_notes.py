"""Backpropagation through time as notes (issue 16, step 3): the loop's step once, the backward recursion
once for a general t with its boundary, each shared weight's gradient a sum over t; in text, LaTeX
(compiled by pdflatex), Markdown and JSON; ``--unroll`` for a few steps written out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backprop import parse_spec
from backprop.cli import main
from backprop.engine.pipeline import get_notes_derivation
from backprop.present.render import render
from tests.test_render import assert_no_overfull, compile_latex
from tests.test_through_time import GRU, LSTM, RNN, SEQ2SEQ, STACKED

SPECS = {"rnn": RNN, "gru": GRU, "lstm": LSTM, "seq2seq": SEQ2SEQ, "stacked": STACKED}


def notes(name: str, fmt: str = "text", **options: object) -> str:
    return render(get_notes_derivation(parse_spec(SPECS[name], path=f"{name}.spec")), fmt, **options)


def flat(text: str) -> str:
    """The text with its alignment and line wrapping undone: one space between words."""
    return " ".join(text.split())


def test_rnn_reads_as_the_textbook_prints_bptt() -> None:
    text = flat(notes("rnn"))
    for line in (
        "Zₜ = Wx Xₜ + bx + Wh Hₜ₋₁ + bh",  # the step, once
        "Hₜ = tanh(Zₜ)",
        "(∂L/∂H)_T = Uᵀ ∂L/∂Z_out",  # the loss reads the last step only (its Z is not Z1: Z₁ is the step's Z at t = 1)
        "(∂L/∂H)ₜ = 0 (t < T)",
        "∂L/∂Hₜ = (∂L/∂H)ₜ + Whᵀ ∂L/∂Zₜ₊₁",  # the recursion, once, for a general t
        "∂L/∂Zₜ = ∂L/∂Hₜ ⊙ (1 − Hₜ²)",
        "∂L/∂Wh⁽ᵗ⁾ = ∂L/∂Zₜ Hₜ₋₁ᵀ",  # each step's share of a shared weight
        "∂L/∂Wh = Σₜ ∂L/∂Zₜ Hₜ₋₁ᵀ",  # and its sum, the share written out
        "∂L/∂H₀ = rowsum(Whᵀ ∂L/∂Z₁)",  # what step 1 sends the first state, summed over the examples it broadcast to
        "At t = T no step follows",
    ):
        assert line in text, line
    assert text.count("Hₜ = tanh(Zₜ)") == 1  # one step, not T copies
    assert "Σₜ(" not in text  # a sum over the examples is a rowsum here: Σₜ is the sum over the steps


def test_every_spec_renders_in_every_format_deterministically() -> None:
    for name in SPECS:
        for fmt in ("text", "markdown", "latex", "json"):
            assert notes(name, fmt) == notes(name, fmt)


def test_lstm_carries_two_states() -> None:
    text = flat(notes("lstm"))
    # nothing after the loop reads C: its recursion has no (∂L/∂C)ₜ term, and ∂L/∂C is not shown
    assert "∂L/∂Cₜ = ∂L/∂Cₜ₊₁ ⊙ Fₜ₊₁ + ∂L/∂Hₜ ⊙ Oₜ ⊙ (1 − tanh(Cₜ)²)" in text
    assert "(∂L/∂C)ₜ" not in text and "∂L/∂C =" not in text
    # each gate's pre-activation is named, so the carry reads as the textbook's sum over the gates
    assert "∂L/∂Hₜ = (∂L/∂H)ₜ + ∂L/∂Z_Oₜ₊₁ Uoᵀ + ∂L/∂Z_Gₜ₊₁ Ugᵀ + ∂L/∂Z_Fₜ₊₁ Ufᵀ m×h + ∂L/∂Z_Iₜ₊₁ Uiᵀ" in text
    assert "Z_Iₜ = Xₜ Wi + Hₜ₋₁ Ui + bi" in text and "Iₜ = σ(Z_Iₜ)" in text
    assert "∂L/∂Z_Iₜ = ∂L/∂Iₜ ⊙ Iₜ ⊙ (1 − Iₜ)" in text
    assert "C₀, H₀ (above) start the states" in text


def test_a_value_read_at_every_step_gets_each_steps_share_in_its_place() -> None:
    text = flat(notes("seq2seq"))
    assert "∂L/∂Xpₜ⁽ᵗ⁾ = Wxᵀ" in text  # step t's share, marked as the shared weights' are
    assert "∂L/∂Xp = [∂L/∂Xpₜ⁽ᵗ⁾]ₜ + 2 · Xp" in text


def test_unroll_writes_the_copies_out() -> None:
    text = flat(notes("rnn", unroll=3))
    for line in ("Z₃ = Wx X₃ + bx + Wh H₂ + bh", "∂L/∂H₃ = (∂L/∂H)₃ ", "∂L/∂H₂ = (∂L/∂H)₂ + Whᵀ ∂L/∂Z₃",
                 "∂L/∂H₁ = (∂L/∂H)₁ + Whᵀ ∂L/∂Z₂"):
        assert line in text, line
    assert "Unrolled" not in notes("rnn")


@pytest.mark.parametrize("name", list(SPECS))
def test_latex_compiles(name: str, tmp_path: Path) -> None:
    tex = notes(name, "latex", standalone=True, unroll=2)
    assert_no_overfull(compile_latex(tex, tmp_path, name), name)


def test_markdown_has_the_recursion_in_math() -> None:
    md = notes("rnn", "markdown")
    assert "## Backward pass through time: for t = T, …, 1" in md
    assert r"\frac{\partial \mathcal{L}}{\partial H_{t}} &= \left(\frac{\partial \mathcal{L}}{\partial H}\right)_{t}" in md


def test_json_holds_the_step_and_its_recursion() -> None:
    doc = json.loads(notes("rnn", "json"))
    (loop,) = doc["loops"]
    assert (loop["step"], loop["length"]) == ("t", "T")
    assert [s["name"] for s in loop["sequences"]] == ["H"] and loop["sequences"][0]["state"]
    assert [b["target"] for b in loop["backward"]] == ["H[t]", "Z[t]"]
    assert loop["backward"][0]["text"] == "(∂L/∂H)ₜ + Whᵀ ∂L/∂Zₜ₊₁"
    assert {s["name"] for s in loop["shares"]} == {"Wx", "Wh", "bx", "bh"}
    assert loop["carries"][0]["at_first_step"]["text"] == "Whᵀ ∂L/∂Z₁"
    assert [g["param"] for g in doc["gradients"]] == ["Wx", "Wh", "bx", "bh", "h0", "U", "bu"]


def test_cli_derive_writes_the_notes_and_the_regenerate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "rnn.spec"
    spec.write_text(RNN, encoding="utf-8")
    out = tmp_path / "rnn.md"
    assert main(["derive", str(spec), "--unroll", "2", "-o", str(out)]) == 0
    body = out.read_text(encoding="utf-8")
    assert "--unroll 2" in body.splitlines()[0] and "Unrolled for" in body
    with pytest.raises(SystemExit) as exit_:
        main(["derive", str(spec), "--unroll", "0"])
    assert exit_.value.code == 2 and "from 1 to 10" in capsys.readouterr().err


def test_two_loops_in_a_row() -> None:
    text = flat(notes("stacked"))
    assert text.count("Backward pass through time: for t = T, …, 1") == 2
    assert "∂L/∂Gₜ = (∂L/∂G)ₜ + U₂ᵀ ∂L/∂Z_Gₜ₊₁" in text
    # the first loop's step t is read by the second at t: its gradient there comes back as step t's share
    # the second loop's share of Hₜ is marked as a share: ∂L/∂Hₜ is the first loop's own δ
    assert "∂L/∂Hₜ⁽ᵗ⁾ = W₂ᵀ ∂L/∂Z_Gₜ" in text and "∂L/∂H = [∂L/∂Hₜ⁽ᵗ⁾]ₜ + 2/m · H" in text


@pytest.mark.parametrize("body", [
    "H[0] = h0\nfor t in 1 .. T :\n\tH[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])  # a comment\nloss = sum(U @ H[T])\n",
    "H[0] = h0\r\nfor t in 1..T:\r\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\r\n\r\n  # aside\r\nloss = sum(U @ H[T])\r\n",
    "H[0] = h0\nfor t in 1..T:\n    H [ t ] = tanh(Wx @ X[:, t] + Wh @ H[t - 1])\nloss = sum(U @ H[T]) + sum(H[0])\n",
    "for t in 1..T:\n    G[t] = tanh(Wx @ X[:, t])\nloss = sum(U @ G[T]) + sum(U @ G[1]) + sum(Wh) + sum(h0)\n",
])
def test_spacing_comments_and_line_ends_do_not_matter(body: str) -> None:
    head = "input X[d, T, m]\nparam Wh[h, h]\nparam Wx[h, d]\nparam h0[h, 1]\nparam U[1, h]\n"
    d = get_notes_derivation(parse_spec(head + body, path="w.spec"))
    for fmt in ("text", "latex", "markdown", "json"):
        assert render(d, fmt)


def test_python_api_shows_the_notes_in_jupyter() -> None:
    import backprop

    d = backprop.get_notes_derivation(parse_spec(RNN, path="rnn.spec"))
    assert isinstance(d, backprop.TimeDerivation)
    assert d._repr_markdown_().startswith("# Backpropagation through time: `rnn`")
    assert d._repr_latex_().startswith("$$") and r"\frac{\partial \mathcal{L}}{\partial H_{t}}" in d._repr_latex_()
    plain = backprop.get_notes_derivation("two_layer_sigmoid")
    assert isinstance(plain, backprop.Derivation)


def test_a_loop_no_gradient_flows_through_says_so() -> None:
    spec = ("input X[d, T, m]\ninput A[h, d]\ninput h0[h, 1]\nparam W[h, d]\nparam v[1, h]\nH[0] = h0\n"
            "for t in 1..T:\n    H[t] = tanh(A @ X[:, t] + H[t-1])\nloss = sum(v @ H[T]) + sum(W)\n")
    d = get_notes_derivation(parse_spec(spec, path="fixed.spec"))
    assert "No parameter's gradient flows back through this loop" in flat(render(d, "text"))
    for fmt in ("latex", "markdown", "json"):
        assert render(d, fmt)


def test_another_step_name_is_used_throughout() -> None:
    text = flat(render(get_notes_derivation(parse_spec(RNN.replace("[t", "[k").replace(", t]", ", k]").replace(
        "for t in", "for k in"), path="rnn.spec")), "text"))
    assert "for k = T, …, 1" in text and "∂L/∂Wh⁽ᵏ⁾ = ∂L/∂Zₖ Hₖ₋₁ᵀ" in text and "∂L/∂Wh = Σₖ ∂L/∂Zₖ Hₖ₋₁ᵀ" in text
    assert " t " not in text.split("Update")[0].replace("(t <", "")


def test_a_first_state_that_is_an_input_is_not_written_equal_to_itself() -> None:
    assert "H₀ = H₀" not in notes("gru")

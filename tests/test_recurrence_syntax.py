"""The loop over a time axis (issue 16, step 1): ``for t in 1..T:`` parses into one recurrence,
read once for a general t, with every mistake a located error."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop import parse_spec
from backprop.cli import main
from backprop.codegen.emit import generate
from backprop.expr.ir import shape_of
from backprop.language.loop_syntax import stacked_shape
from backprop.language.model import Model
from backprop.support.errors import SpecError

HEAD = "input X[d, T, m]\nparam Wx[h, d]\nparam Wh[h, h]\nparam h0[h, 1]\nparam U[1, h]\n"
RNN = HEAD + "H[0] = h0\nfor t in 1..T:\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n"

LSTM = """examples m
input X[m, T, d]
input Y[m, c] onehot
param Wi[d, h]
param Ui[h, h]
param Wf[d, h]
param Uf[h, h]
param Wg[d, h]
param Ug[h, h]
param V[h, c]
H[0] = zeros(m, h)
C[0] = zeros(m, h)
for t in 1..T:
    I = sigmoid(X[:, t] @ Wi + H[t-1] @ Ui)
    F = sigmoid(X[:, t] @ Wf + H[t-1] @ Uf)
    G = tanh(X[:, t] @ Wg + H[t-1] @ Ug)
    C[t] = F * C[t-1] + I * G
    H[t] = tanh(C[t])
loss = -sum(Y * log_softmax(H[T] @ V, axis=1)) / m
"""


def dims(*names: str) -> tuple[sympy.Symbol, ...]:
    return tuple(sympy.Symbol(n, integer=True, positive=True) for n in names)


def test_rnn_is_one_recurrence_read_once() -> None:
    m = parse_spec(RNN, path="rnn.spec")
    (r,) = m.loops
    d, tt, mm, h = dims("d", "T", "m", "h")
    assert (r.var, r.length, r.line, r.position) == ("t", tt, 7, 0)
    (a,) = r.body
    assert a.symbol.name == "H[t]" and shape_of(a.symbol) == (h, mm)
    (s,) = r.sequences
    # h0 is [h, 1]: the first state broadcasts, so H[t-1] has the step's shape
    assert s.is_state and s.prev.name == "H[t-1]" and shape_of(s.prev) == (h, mm)
    assert s.init == m.decls["h0"].symbol and s.init_line == 6
    assert shape_of(s.stacked) == (h, tt, mm) and s.time_axis == 1
    (sl,) = r.slices
    assert (sl.source.name, sl.axis, sl.step.name, shape_of(sl.step)) == ("X", 1, "X[:, t]", (d, mm))
    assert {x.name for x in a.expr.atoms(sympy.MatrixSymbol)} == {"Wx", "X[:, t]", "Wh", "H[t-1]"}
    assert "H" in str(m.loss.expr) and m.symbol("H") == s.stacked


def test_lstm_two_states_examples_first() -> None:
    m = parse_spec(LSTM, path="lstm.spec")
    (r,) = m.loops
    tt, mm, h = dims("T", "m", "h")
    assert [s.name for s in r.states] == ["C", "H"]
    assert [a.name for a in r.body] == ["I", "F", "G", "C", "H"]
    assert all(shape_of(s.stacked) == (mm, tt, h) and s.time_axis == 1 for s in r.sequences)
    (sl,) = r.slices  # X[:, t] read four times is one step value
    assert shape_of(sl.step) == (mm, dims("d")[0])
    text = m.describe()
    assert "for t in 1..T:" in text and "C[t]" in text and "Hₜ₋₁ Ui" in text


def test_a_sequence_that_is_not_a_state_and_a_loss_at_every_step() -> None:
    m = parse_spec(HEAD + "H[0] = h0\nfor t in 1..T:\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\n"
                   "    O[t] = U @ H[t]\nloss = sum(O) + sum(H[1])\n")
    (r,) = m.loops
    out = r.sequences[1]
    assert out.name == "O" and not out.is_state and out.init is None
    tt, mm = dims("T", "m")
    assert shape_of(out.stacked) == (1, tt, mm)


@pytest.mark.parametrize(("step", "examples", "stacked", "axis"), [
    (("h", "m"), 1, ("h", "T", "m"), 1),  # examples last: time just before them
    (("m", "h"), 0, ("m", "T", "h"), 1),  # examples first: just after them (batch_first)
    (("h", "k"), None, ("T", "h", "k"), 0),  # no examples axis: time first
    (("c", "h", "m"), 2, ("c", "h", "T", "m"), 2),
])
def test_where_the_time_axis_goes(step: tuple[str, ...], examples: int | None, stacked: tuple[str, ...],
                                  axis: int) -> None:
    assert stacked_shape(dims(*step), examples, dims("T")[0]) == (dims(*stacked), axis)


B = "H[0] = h0\nfor t in 1..T:\n"
# (id, text after HEAD, line, col, fragments)
ERRORS = [
    ("future", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t+1])\nloss = sum(U @ H[T])\n", 8, 37, ["reads the future"]),
    ("own-step", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t])\nloss = sum(U @ H[T])\n", 8, 37,
     ["what this line defines", "H[t-1]"]),
    ("before-assigned", B + "    G[t] = H[t]\n    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ H[T]) + sum(G)\n", 8, 12,
     ["H[t] is read before it is assigned (line 9)"]),
    ("no-first-state", "for t in 1..T:\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 7, 37,
     ["H[0], which is not set", "before the loop"]),
    ("two-back", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-2])\nloss = sum(U @ H[T])\n", 8, 37,
     ["reaches back 2 steps"]),
    ("shape-changes", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1]).T\nloss = sum(U @ H[T].T)\n", 8, 5,
     ["H[t] is m×h, but H[0] (line 6) is h×1", "keeps one shape"]),
    ("empty-block", B + "loss = sum(U @ h0)\n", 7, 1, ["no block"]),
    ("nested", B + "    for s in 1..T:\n        H[t] = H[t-1]\nloss = sum(U @ H[T])\n", 8, 5, ["loops do not nest"]),
    ("range", "H[0] = h0\nfor t in range(T):\n    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 7, 10,
     ["1..T", "counts from 0"]),
    ("not-a-dim", "H[0] = h0\nfor t in 1..S:\n    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 7, 13,
     ["'S' is not a dim"]),
    ("bad-header", "H[0] = h0\nfor t 1..T\n    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 7, 1,
     ["expected a loop over the time axis"]),
    ("step-named-as-dim", "H[0] = h0\nfor h in 1..T:\n    H[h] = tanh(Wh @ H[h-1])\nloss = sum(U @ H[T])\n", 7, 5,
     ["'h' is a dim"]),
    ("time-axis-length", B + "    H[t] = tanh(Wx @ X[t] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 8, 24,
     ["axis 0 of 'X' has length d", "1..T"]),
    ("no-loop-follows", "H[0] = h0\nloss = sum(U @ h0) + sum(Wx) + sum(Wh)\n", 6, 1, ["no loop follows"]),
    ("first-state-unused", B + "    G[t] = tanh(Wx @ X[:, t])\nloss = sum(U @ G[T]) + sum(Wh)\n", 6, 1,
     ["does not assign H[t]"]),
    ("step-as-value", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1]) * t\nloss = sum(U @ H[T])\n", 8, 47,
     ["'t' is the step", "not a value"]),
    ("step-after-loop", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\nloss = sum(U @ H[T]) * t\n", 9, 24,
     ["exists only in its block"]),
    ("local-after-loop", B + "    Z = Wx @ X[:, t] + Wh @ H[t-1]\n    H[t] = tanh(Z)\nloss = sum(U @ Z)\n", 10, 16,
     ["step's own value", "Z[t] = …"]),
    ("sequence-before-loop", "H[0] = h0\nG = H\n" + B[10:] + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\n"
     "loss = sum(U @ H[T]) + sum(G)\n", 7, 5, ["used before it is assigned (line 9)"]),
    ("middle-step-after", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\nloss = sum(U @ H[2])\n", 9, 18,
     ["H[T] (the last step) or H[1]"]),
    ("step-outside", "H[t] = h0\nloss = sum(U @ h0) + sum(Wx) + sum(Wh)\n", 6, 3, ["assigned inside a loop"]),
    ("other-first-index", "H[1] = h0\nloss = sum(U @ h0) + sum(Wx) + sum(Wh)\n", 6, 3, ["only a state's first value"]),
    ("ends-with-loop", "H[0] = h0\nloss0 = sum(U @ h0)\nfor t in 1..T:\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\n",
     8, 1, ["ends with a loop"]),
    ("declaration-inside", B + "    param V[h, h]\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n",
     8, 5, ["declarations go before the loop"]),
    ("twice-in-block", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\n    H[t] = H[t]\nloss = sum(U @ H[T])\n", 9, 5,
     ["assigned twice in the loop (first on line 8)"]),
    ("wrong-step-target", B + "    H[t-1] = tanh(Wx @ X[:, t])\nloss = sum(U @ H[T])\n", 8, 7, ["assigned at the step: H[t]"]),
    ("whole-sequence-inside", B + "    H[t] = tanh(Wx @ X[:, t] + Wh @ H)\nloss = sum(U @ H[T])\n", 8, 37,
     ["'H' is a sequence"]),
    ("input-shifted", B + "    H[t] = tanh(Wx @ X[:, t-1] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 8, 27,
     ["the same step on one axis"]),
    ("input-part", B + "    H[t] = tanh(Wx @ X[0:2, t] + Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 8, 24, ["write ':' here"]),
    ("state-assigned-to-input", "X[0] = h0\nloss = sum(U @ h0) + sum(Wx) + sum(Wh)\n", 6, 1, ["cannot assign 'X'"]),
    ("unused-param-in-loop", B + "    G[t] = tanh(Wx @ X[:, t])\n    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ G[T])\n", 3, 7,
     ["param 'Wh'", "does not depend on it"]),
    ("two-time-axes", "input Q[T, T]\nH[0] = h0\nfor t in 1..T:\n    H[t] = tanh(Wh @ H[t-1] + sum(Q[:, t]) + sum(Q[t]))\n"
     "loss = sum(U @ H[T]) + sum(Wx)\n", 9, 52, ["already read at step t along axis 1", "one time axis"]),
    ("first-state-twice", "H[0] = h0\nH[0] = h0\n" + B[10:] + "    H[t] = tanh(Wh @ H[t-1])\nloss = sum(U @ H[T])\n", 7, 1,
     ["H[0] is assigned twice"]),
]


@pytest.mark.parametrize(("text", "line", "col", "fragments"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_loop_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, col: int,
                                 fragments: list[str]) -> None:
    spec = tmp_path / "rnn.spec"
    spec.write_text(HEAD + text, encoding="utf-8")
    assert main(["show", str(spec)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    first, *rest = out.err.splitlines()
    assert first.startswith(f"{spec}:{line}:{col}: error: "), first
    for frag in fragments:
        assert frag in first, (frag, first)
    assert len(rest) == 2 and rest[1].index("^") - 4 == col - 1  # the source line and a caret at the column
    assert rest[0].strip() == (HEAD + text).splitlines()[line - 1].strip()


def test_every_error_case_is_distinct() -> None:
    assert len({c[1] for c in ERRORS}) == len(ERRORS)


def test_the_flat_chain_rule_refuses_a_loop_at_the_loop(tmp_path: Path) -> None:
    """A loop is derived through time; the flat derivation (``get_derivation``) says so at the loop rather
    than derive the step once as if it were the whole network."""
    from backprop.engine.pipeline import get_derivation

    spec = tmp_path / "rnn.spec"
    spec.write_text(RNN, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        get_derivation(str(spec))
    assert str(err.value).startswith(f"{spec}:7:1: error: a loop is derived through time, not by the flat chain rule")


def test_codegen_writes_a_loop_and_refuses_latex_at_the_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A loop is generated for NumPy (a Python loop over t) and for JAX (a lax.scan each way: the JAX
    module's numbers are tests/test_jax_loops.py's); its functions are not rendered as LaTeX yet."""
    spec = tmp_path / "rnn.spec"
    spec.write_text(RNN, encoding="utf-8")
    jax_source = generate(str(spec), backend="jax")
    assert jax_source.count("jax.lax.scan(") == 2 and "for t in range" not in jax_source
    assert main(["codegen", str(spec), "--latex", "-o", str(tmp_path / "out" / "x.tex")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:7:1: error: the generated functions of a loop are not rendered as LaTeX yet"), err
    assert not (tmp_path / "out").exists()
    assert main(["codegen", str(spec), "-o", str(tmp_path / "rnn.py")]) == 0
    assert "for t in range(T):" in (tmp_path / "rnn.py").read_text(encoding="utf-8")


def test_show_prints_the_loop_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "rnn.spec"
    spec.write_text(RNN, encoding="utf-8")
    assert main(["show", str(spec)]) == 0
    text = capsys.readouterr().out
    assert text.count("for t in 1..T:") == 1
    assert "H[t]" in text and "h×T×m" in text and "= tanh(Wx Xₜ + Wh Hₜ₋₁)" in text


def test_same_text_same_model() -> None:
    assert parse_spec(LSTM).describe() == parse_spec(LSTM).describe()


# --- fuzzing: a loop's text never ends in anything but a model (that derives) or a clean SpecError ----------

LOOP_TOKENS = ["H[t]", "H[t-1]", "H[t+1]", "H[t-2]", "H[0]", "H[T]", "H", "X[:, t]", "X[t]", "X[:, t-1]", "Wh", "Wx",
               "h0", "Z", "t", "T", "@", "+", "*", "tanh(", "sigmoid(", ")", "sum(", "=", "[", "]", ":", ",", "0", "1",
               "for", "in", "1..T", "\n", "\n    ", "#", " "]


def _loop_parses_or_fails_cleanly(text: str) -> None:
    from backprop.engine.pipeline import get_notes_derivation
    from backprop.present.render import render
    from backprop.support.errors import SpecError

    try:
        model = parse_spec(text, path="fuzz.spec")
    except SpecError as e:
        assert e.file == "fuzz.spec" and e.message and "\n" not in e.message
        if e.line:
            assert 1 <= e.line <= max(1, len(text.splitlines())) and e.col >= 1
        return
    render(get_notes_derivation(model), "text")
    _generated_equals_the_reference(model)


def _generated_equals_the_reference(model: Model) -> None:
    """A spec that derives generates a module, and the module computes what the derivation says."""
    import numpy as np

    from backprop.codegen.emit import generate, load_module
    from backprop.engine.through_time import derive_through_time
    from backprop.verification.numeric import concrete
    from backprop.verification.through_time import TimeRun

    module = load_module(generate(model))
    rng = np.random.default_rng(0)
    env: dict = {sym: {"d": 2, "T": 3, "m": 2, "h": 3}[name] for name, sym in model.dims.items()}
    for d in model.decls.values():
        env[d.name] = rng.normal(size=concrete(d.shape, env)) * 0.5
    run = TimeRun(derive_through_time(model), env)
    want = run.gradients()
    loss, grads = module.loss_and_grads({p.name: env[p.name] for p in model.params},
                                        {x.name: env[x.name] for x in model.inputs})
    assert abs(loss - run.loss) <= 1e-10 * max(1.0, abs(run.loss)), model.source
    for p in model.params:
        assert np.allclose(grads[p.name], want[p.name], rtol=1e-9, atol=1e-12), (p.name, model.source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LOOP_TOKENS), max_size=24), st.integers(0, 2))
def test_fuzz_loop_blocks(tokens: list[str], where: int) -> None:
    """Random text in the block, in the header, or after the loop."""
    block = " ".join(tokens)
    parts = ["H[0] = h0\nfor t in 1..T:\n    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])\n", "loss = sum(U @ H[T])\n"]
    if where == 0:
        text = HEAD + "H[0] = h0\nfor t in 1..T:\n    " + block + "\n" + parts[1]
    elif where == 1:
        text = HEAD + "H[0] = h0\nfor " + block + ":\n    H[t] = tanh(Wh @ H[t-1])\n" + parts[1]
    else:
        text = HEAD + parts[0] + "loss = sum(U @ " + block + ")\n"
    _loop_parses_or_fails_cleanly(text)


def test_fuzz_finds_a_good_spec_too() -> None:
    _loop_parses_or_fails_cleanly(RNN)  # the check above runs the derivation when the text parses

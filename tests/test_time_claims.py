"""Claims about a loop in the general form (issue 16, point 4): ``dH[t] = …`` at a general t, a shared
weight's gradient ``dW = sum_t(…)``, judged at every step against the reference evaluator, and the
classic mistakes of backpropagation through time diagnosed."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop.cli import main
from backprop.engine.through_time import derive_through_time
from backprop.language.parse import load
from backprop.verification.claims import claim_sources
from backprop.verification.time_claims import TimeClaims, check_time_claims
from backprop.verification.verify import verify

#: (example, claim, correct, mistake or None)
CASES = [
    ("rnn_tanh", "dH[t] = dH[:, t] + Wh.T @ dZ[t+1]", True, None),
    ("rnn_tanh", "dZ[t] = dH[t] * (1 - H[t]**2)", True, None),
    ("rnn_tanh", "dZ = dH[t] * (1 - H[t]**2)", False, "unusable"),
    ("rnn_tanh", "dWh = sum_t(dZ[t] @ H[t-1].T)", True, None),
    ("rnn_tanh", "dWx = sum_t(dZ[t] @ X[:, t].T)", True, None),
    ("rnn_tanh", "dbx = sum_t(sum(dZ[t], axis=1))", True, None),
    ("rnn_tanh", "dU = dZ_out @ H[T].T", True, None),
    ("rnn_tanh", "dh0 = sum(dH[0], axis=1)", True, None),
    # the classic mistakes
    ("rnn_tanh", "dWh = dZ[T] @ H[T-1].T", False, "last"),
    ("rnn_tanh", "dWh = dZ[t] @ H[t-1].T", False, "last"),
    ("rnn_tanh", "dH[t] = Wh.T @ dZ[t+1]", False, "own"),
    ("rnn_tanh", "dH[t] = dH[:, t]", False, "carry"),
    ("rnn_tanh", "dH[t] = dH[:, t] + Wh @ dZ[t+1]", False, "transpose"),
    ("rnn_tanh", "dWh = sum_t(dZ[t] @ H[t].T)", False, "step"),
    ("rnn_tanh", "dWh = sum_t(H[t-1] @ dZ[t].T)", False, "transpose"),
    ("rnn_tanh", "dWx = sum_t(dZ[t] @ X[:, t])", False, "shape"),
    ("rnn_tanh", "dWh = sum_t(2 * dZ[t] @ H[t-1].T)", False, "value"),
    # an output at every step: the state's own term is what the step's output sends back
    ("rnn_seq2seq", "dH[t] = V.T @ dO[t] + Wh.T @ dZ[t+1]", True, None),
    ("rnn_seq2seq", "dH[t] = Wh.T @ dZ[t+1]", False, "own"),
    ("rnn_seq2seq", "dV = sum_t(dO[t] @ H[t].T)", True, None),
    ("rnn_seq2seq", "dV = dO[T] @ H[T].T", False, "last"),
    # the LSTM's cell state
    ("lstm", "dC[t] = dC[t+1] * F[t+1] + dH[t] * O[t] * (1 - tanh(C[t])**2)", True, None),
    ("lstm", "dC[t] = dH[t] * O[t] * (1 - tanh(C[t])**2)", False, "carry"),
    ("lstm", "dUo = sum_t(H[t-1].T @ (dO[t] * O[t] * (1 - O[t])))", True, None),
    ("lstm", "dUo = H[T-1].T @ (dO[T] * O[T] * (1 - O[T]))", False, "last"),
    ("gru", "dH[t] = dH[:, t] + dH[t+1] * Zg[t+1] + dZ_N[t+1] * R[t+1] @ Un.T + dZ_Zg[t+1] @ Uz.T + dZ_R[t+1] @ Ur.T",
     True, None),
]


@pytest.mark.parametrize(("example", "claim", "correct", "mistake"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_claims_in_the_general_form(example: str, claim: str, correct: bool, mistake: str | None) -> None:
    (result,) = verify(example, [claim]).results
    assert result.verdict is correct, result.line_text()
    assert result.mistake == mistake, result.line_text()


def test_the_diagnoses_read_as_a_teacher_says_them() -> None:
    report = verify("rnn_tanh", ["dWh = dZ[T] @ H[T-1].T", "dH[t] = Wh.T @ dZ[t+1]", "dH[t] = dH[:, t] + Wh @ dZ[t+1]"])
    last, own, transpose = (r.diagnosis for r in report.results)
    assert last.startswith("the gradient of a shared weight from the last step only") and "sum_t" in last
    assert own.startswith("the recursion is missing the step's own term")
    assert transpose == "Wh where Whᵀ belongs: with Wh.T the claim is right"


def test_an_unreadable_claim_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = tmp_path / "claims.txt"
    claims.write_text("dWh = sum_t(dZ[t] @ H[t-1].T)\ndH[t] = Wh.T @ dZ[t-1]\n", encoding="utf-8")
    assert main(["verify", "rnn_tanh", "--claims", str(claims)]) == 2
    captured = capsys.readouterr()
    assert f"{claims}:2:19: error: a δ is read at t or t+1" in captured.err
    assert "✓ dWh = sum_t(dZ[t] @ H[t-1].T)  correct" in captured.out and "Traceback" not in captured.err


def test_cli_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "lstm", "dO[t] = dH[t] * tanh(C[t])", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["claims"][0]["verdict"] == "correct"
    assert main(["verify", "lstm", "dO[t] = dH[t] * C[t]"]) == 1


def test_other_chain_modes_are_refused_at_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "rnn_tanh", "dWh = sum_t(dZ[t] @ H[t-1].T)", "--chain", "own"]) == 2
    err = capsys.readouterr().err
    assert "rnn_tanh.spec:12:1: error: --chain own is not built for claims about a loop yet" in err


CLAIM_TOKENS = ["dH[t]", "dH[t+1]", "dH[t-1]", "dZ[t]", "dZ[t+1]", "dH[:, t]", "dH[0]", "H[t]", "H[t-1]", "H[t+1]",
                "H[T]", "H[T-1]", "H[1]", "Z", "Z[t]", "X[:, t]", "X[t]", "Wh", "Wh.T", "Wx", "U", "dWh", "dh0", "dZ_out",
                "sum_t(", "sum(", ", axis=1", ")", "@", "+", "-", "*", "(1 - ", "**2", "=", "[", "]", "t", "T", "0", "1"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(CLAIM_TOKENS), min_size=1, max_size=14))
def test_fuzz_claims_end_in_a_verdict_or_a_located_error(tokens: list[str]) -> None:
    """Any claim text about a loop is judged or refused with a located error: never a traceback."""
    report, errors = check_time_claims(_MODEL, claim_sources([" ".join(tokens)]), judge=_judge())
    (result,) = report.results
    assert result.status in ("correct", "wrong", "unusable")
    for err in errors:
        assert err.line == 1 and err.col >= 1 and "\n" not in err.message


_MODEL = load("rnn_tanh")


@cache
def _judge() -> TimeClaims:
    """One judge for the fuzz: its points drawn once."""
    return TimeClaims(derive_through_time(_MODEL))

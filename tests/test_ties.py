"""Kinks and ties against PyTorch 2.13's autograd, at the tie itself.

Finite differences say nothing at a kink (the one-sided slopes differ), so the operations whose
derivative jumps are checked where it jumps: the generated module and the derivation (evaluated
by the reference evaluator) must give PyTorch's gradient there, entry for entry. The conventions,
measured in torch 2.13 and documented in docs/operations.md:

- ``maximum(A, B)``/``minimum(A, B)`` at A = B: half the gradient to each;
- ``max(E, axis=k)``/``min`` (and over every entry) with repeated extremes: split evenly among
  them, as ``torch.amax``/``amin`` and ``torch.max(E)`` do (not ``max(dim)``, which picks one);
- ``clip(E, lo, hi)`` (``torch.clamp``): E on the boundary receives the gradient; a bound only
  where it strictly is the result (lo where E < lo < hi, hi where max(E, lo) > hi);
- ``abs`` and ``sign`` at 0: 0; ``relu′(0) = 0``; ``leaky_relu′(0)`` is the slope;
- comparisons are masks (no gradient), ``where`` gives the chosen branch all of it;
- ``stop_gradient`` is ``detach``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sympy
from torch_reference import torch_loss_and_grads

import backprop
from backprop import codegen
from backprop.expr.evaluate import evaluate
from backprop.present.text import to_text

G23 = np.array([[0.3, -1.1, 0.7], [1.9, 0.2, -0.5]])
TIES = np.array([[1.0, 2.0, -1.0], [0.0, 0.5, 0.5]])
OTHER = np.array([[1.0, 1.5, -1.0], [0.0, 0.5, 2.0]])  # equal to TIES at four entries
ROWS = np.array([[2.0, 2.0, -1.0], [0.5, 0.5, 0.5]])  # every row's maximum repeated
COLS = np.array([[-1.0, 3.0, 3.0], [-1.0, 3.0, 1.0]])
BOUNDARY = np.array([[-1.0, 1.0, 0.0], [2.0, -2.0, 1.0]])
HEAD = "input G[2, 3]\n"

#: (id, spec, values of the declarations besides G)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("maximum", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * maximum(A, B))", {"A": TIES, "B": OTHER}),
    ("minimum", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * minimum(A, B))", {"A": TIES, "B": OTHER}),
    ("maximum-broadcast", "param A[2, 3]\nparam b[2, 1]\nloss = sum(G * maximum(A, b))",
     {"A": TIES, "b": np.array([[1.0], [0.5]])}),
    ("maximum-scalar", "param A[2, 3]\nparam s\nloss = sum(G * minimum(A, s))", {"A": TIES, "s": 0.5}),
    ("maximum-relu-zero", "param A[2, 3]\nloss = sum(G * maximum(relu(A), 0))", {"A": BOUNDARY - 1}),
    ("max-rows", "input g[2, 1]\nparam A[2, 3]\nloss = sum(g * max(A, axis=1))",
     {"A": ROWS, "g": np.array([[0.7], [-1.3]])}),
    ("max-columns", "input g[1, 3]\nparam A[2, 3]\nloss = sum(g * max(A, axis=0))",
     {"A": COLS, "g": np.array([[0.7, -1.3, 2.1]])}),
    ("min-rows", "input g[2, 1]\nparam A[2, 3]\nloss = sum(g * min(-A, axis=1))",
     {"A": ROWS, "g": np.array([[0.7], [-1.3]])}),
    ("max-all", "param A[2, 3]\nloss = 3 * max(A) + sum(G * A)", {"A": COLS}),
    ("min-all", "param A[2, 3]\nloss = 3 * min(A) + sum(G * A)", {"A": COLS}),
    ("clip-boundary", "param A[2, 3]\nloss = sum(G * clip(A, -1, 1))", {"A": BOUNDARY}),
    ("clip-bounds", "param A[2, 3]\nparam lo\nparam hi\nloss = sum(G * clip(A, lo, hi))",
     {"A": BOUNDARY, "lo": -1.0, "hi": 1.0}),
    ("clip-equal-bounds", "param A[2, 3]\nparam lo\nparam hi\nloss = sum(G * clip(A, lo, hi))",
     {"A": BOUNDARY, "lo": 1.0, "hi": 1.0}),
    ("clip-crossed-bounds", "param A[2, 3]\nparam lo\nparam hi\nloss = sum(G * clip(A, lo, hi))",
     {"A": BOUNDARY, "lo": 1.0, "hi": -1.0}),
    ("abs-zero", "param A[2, 3]\nloss = sum(G * abs(A))", {"A": BOUNDARY - 1}),
    ("sign-zero", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * sign(A) * B) + sum(A**2)",
     {"A": BOUNDARY - 1, "B": OTHER}),
    ("relu-zero", "param A[2, 3]\nloss = sum(G * relu(A))", {"A": BOUNDARY - 1}),
    ("leaky-relu-zero", "param A[2, 3]\nloss = sum(G * leaky_relu(A, 0.1))", {"A": BOUNDARY - 1}),
    ("where-tie", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * where(A >= B, A, B))", {"A": TIES, "B": OTHER}),
    ("where-strict-tie", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * where(A > B, A, 2 * B))", {"A": TIES, "B": OTHER}),
    ("mask-factor", "param A[2, 3]\nparam B[2, 3]\nloss = sum(G * (A <= B) * A) + sum(G * (A < B) * B)",
     {"A": TIES, "B": OTHER}),
    ("logsumexp-equal", "input g[2, 1]\nparam A[2, 3]\nloss = sum(g * logsumexp(A, axis=1))",
     {"A": ROWS, "g": np.array([[0.7], [-1.3]])}),
    ("stop-gradient", "param A[2, 3]\nloss = sum(G * A * stop_gradient(A))", {"A": TIES}),
]


def _model(case_id: str, spec: str) -> backprop.Model:
    return backprop.parse_spec(HEAD + spec + "\n", path=f"<{case_id}>", name=case_id.replace("-", "_"))


@pytest.mark.parametrize(("case_id", "spec", "values"), CASES, ids=[c[0] for c in CASES])
def test_generated_module_and_derivation_match_pytorch_at_ties(case_id: str, spec: str, values: dict[str, Any]) -> None:
    model = _model(case_id, spec)
    values = {"G": G23, **values}
    dims: dict[sympy.Symbol, int] = {}
    loss_ref, grads_ref = torch_loss_and_grads(model, values, dims)

    module = codegen.load_module(model)
    params = {p.name: values[p.name] for p in model.params}
    inputs = {x.name: values[x.name] for x in model.inputs}
    loss, grads = module.loss_and_grads(params, inputs)
    assert loss == pytest.approx(loss_ref, rel=1e-12)

    d = backprop.get_derivation(model)
    env: dict[Any, Any] = dict(values)
    for eq in d.equations:
        env[eq.name] = evaluate(eq.expr, env)
    for step in d.steps:
        env["d" + step.target] = evaluate(step.result, env)
    for p in d.params:
        want = np.reshape(grads_ref[p], np.shape(values[p]))
        np.testing.assert_allclose(np.reshape(grads[p], np.shape(want)), want, rtol=1e-12, atol=1e-15,
                                   err_msg=f"{case_id}: generated ∂L/∂{p}")
        np.testing.assert_allclose(np.reshape(env["d" + p], np.shape(want)), want, rtol=1e-12, atol=1e-15,
                                   err_msg=f"{case_id}: derived ∂L/∂{p}")


def test_the_cases_sit_on_the_ties() -> None:
    """The values really tie: the one-sided slopes differ there, so these are not smooth points."""
    assert (TIES == OTHER).sum() == 4
    assert all(np.sum(r == r.max()) > 1 for r in ROWS) and all(np.sum(c == c.max()) > 1 for c in COLS.T[1:2])
    assert {-1.0, 1.0} <= set(BOUNDARY.ravel()) and 0.0 in set((BOUNDARY - 1).ravel())


def test_a_cut_is_stated_in_the_notes() -> None:
    """stop_gradient and a mask over param-dependent values are named where they cut a path."""
    d = backprop.get_derivation(backprop.parse_spec(
        "input X[n, m]\ninput Y[1, m]\nparam W[1, n]\nparam V[1, n]\nT = stop_gradient(V @ X)\n"
        "Z = W @ X\nloss = mean((Z - T)**2) + mean(where(Z > 0, Z, 0) * Y) + mean(V**2)\n", name="cut"))
    text = " ".join(to_text(d).split())
    assert "No gradient flows through stop_gradient(V X) (in T)." in text
    assert "No gradient flows through [Z > 0] (in L)." in text
    assert [c.via for c in d.cuts] == ["T", "loss"]


@pytest.mark.parametrize(("spec", "claim", "correct"), [
    ("param A[2, 3]\nparam B[2, 3]\nloss = sum(G * maximum(A, B))", "dA = G * (A > B)", False),
    ("param A[2, 3]\nparam B[2, 3]\nloss = sum(G * maximum(A, B))", "dB = G * (B >= A)", False),
    ("param A[2, 3]\nparam B[2, 3]\nloss = sum(G * maximum(A, B))", "dA = G * ((A > B) + (A >= B)) / 2", True),
    ("param A[2, 3]\nloss = sum(G * clip(A, -1, 1))", "dA = G * (A > -1) * (A < 1)", False),
    ("param A[2, 3]\nloss = sum(G * clip(A, -1, 1))", "dA = G * (A >= -1) * (A <= 1)", True),
    ("input g[1, 3]\nparam A[2, 3]\nloss = sum(g * max(A, axis=0))", "dA = g * (A >= max(A, axis=0))", False),
    ("input g[1, 3]\nparam A[2, 3]\nloss = sum(g * max(A, axis=0))",
     "dA = g * (A >= max(A, axis=0)) / sum(A >= max(A, axis=0), axis=0)", True),
    ("param A[2, 3]\nloss = sum(G * relu(A))", "dA = G * (A > 0)", True),
])
def test_verify_diagnoses_a_claim_that_forgets_the_tie_convention(spec: str, claim: str, correct: bool) -> None:
    """Random points never tie, so a claim is compared again where values do: a claim that forgets the
    convention is wrong there, and the diagnosis cites the rule it broke."""
    report = backprop.verify(backprop.parse_spec(HEAD + spec + "\n", name="tie"), [claim])
    (r,) = report.results
    assert r.verdict == correct, r.diagnosis
    if not correct:
        assert r.mistake == "tie" and "wrong where values tie or sit on a kink" in (r.diagnosis or "")
        assert "PyTorch" in (r.diagnosis or "") and "docs/operations.md" in (r.diagnosis or "")


def test_verify_on_the_maxout_example_knows_its_ties() -> None:
    """The bundled maxout network: a dZ1 that routes the gradient to every tied piece in full is
    wrong where pieces tie; shared evenly, it is right."""
    forgot = "dZ1 = reshape(dA1, [1, h, m]) * (Z1 >= max(Z1, axis=0))"
    right = forgot + " / sum(Z1 >= max(Z1, axis=0), axis=0)"
    report = backprop.verify(backprop.load("maxout"), [forgot, right])
    assert [r.verdict for r in report.results] == [False, True]
    assert report.results[0].mistake == "tie"

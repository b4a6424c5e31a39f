"""No recursion limit a user can meet (issue 11).

Ordinary specs are deep: a loss summing 1,000 regularizers is a 1,000-level tree,
an unrolled recurrence is a 1,000-step chain, a weight tied across 150 layers has
a 150-term gradient. Every stage runs on the deep stack (derive/deepstack.py);
what lies past the stated bound is a compiler-style error, exit 2, never a
traceback. The 1,000-step chain is derived here at 300 steps (and parsed at
1,000): its full derivation takes 10-20 s, measured outside the unit suite.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import backprop
from backprop import codegen
from backprop.cli import main
from backprop.codegen.printer import SUM_GROUP, NumpyPrinter
from backprop.engine.chain import forward_equations
from backprop.expr import ir
from backprop.present.render import FORMATS, render
from backprop.support.deepstack import MAX_CLAIM_NESTING, MAX_NESTING, RECURSION_LIMIT, deep_stack, on_deep_stack, run_deep
from backprop.support.naming import CodeNames


def sum_spec(n: int) -> str:
    """loss = sum(W1**2) + 2 * sum(W2**2) - sum(W3**2) + ...: n terms, both signs."""
    lines = ["input X[n, m]"] + [f"param W{i}[k, n]" for i in range(1, n + 1)]
    expr = "sum(W1 @ X)"
    for i in range(2, n + 1):
        expr += (" - " if i % 3 == 0 else " + ") + f"{i % 4 + 1} * sum(W{i}**2)"
    return "\n".join(lines + ["loss = " + expr]) + "\n"


def chain_spec(n: int, tied: bool) -> str:
    """A_i = tanh(W @ A_{i-1}) for n steps: one weight (tied) or one per step."""
    lines = ["input X[n, m]"] + (["param W[n, n]"] if tied else [f"param W{i}[n, n]" for i in range(1, n + 1)])
    prev = "X"
    for i in range(1, n + 1):
        lines.append(f"A{i} = tanh({'W' if tied else f'W{i}'} @ {prev})")
        prev = f"A{i}"
    return "\n".join(lines + [f"loss = sum({prev}**2) / m"]) + "\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --- the runner ----------------------------------------------------------------------


def test_deep_stack_runs_on_a_worker_and_gives_the_limit_back() -> None:
    before = sys.getrecursionlimit()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller's")

    @deep_stack
    def inner() -> tuple[str, int, str]:
        return threading.current_thread().name, sys.getrecursionlimit(), var.get()

    @deep_stack
    def outer() -> tuple[bool, str, tuple[str, int, str]]:
        return on_deep_stack(), threading.current_thread().name, inner()

    deep, name, (inner_name, limit, value) = outer()
    assert deep and name == inner_name != threading.current_thread().name  # nested: one thread
    assert limit >= RECURSION_LIMIT and value == "caller's"
    assert sys.getrecursionlimit() == before and not on_deep_stack()


def test_deep_stack_passes_exceptions_to_the_caller() -> None:
    def fail() -> None:
        raise backprop.SpecError("boom", 1, 2)

    with pytest.raises(backprop.SpecError, match="boom"):
        run_deep(fail)

    def recurse(n: int) -> int:
        return 0 if n == 0 else 1 + recurse(n - 1)

    assert run_deep(recurse, 50_000) == 50_000  # 50 times Python's default limit


# --- a 1,000-term sum ----------------------------------------------------------------


def test_sum_of_1000_terms_derives_renders_and_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = write(tmp_path, "sum1000.spec", sum_spec(1000))
    assert main(["derive", spec]) == 0
    out = capsys.readouterr().out
    assert "∂L/∂W₁₀₀₀" in out and "Traceback" not in out
    d = backprop.get_derivation(spec)
    mod = codegen.load_module(codegen.generate(d))
    params = mod.init_params({"k": 2, "n": 3}, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 4))
    loss, grads = mod.loss_and_grads(params, {"X": x})
    want = x.sum(axis=1)[None, :] * np.ones((2, 1))
    assert np.allclose(grads["W1"], want)
    for i in (2, 3, 999, 1000):  # ±c sum(Wi**2) has gradient ±2c Wi
        sign = -1 if i % 3 == 0 else 1
        assert np.allclose(grads[f"W{i}"], sign * 2 * (i % 4 + 1) * params[f"W{i}"])
    ref = np.sum(params["W1"] @ x) + sum(
        (-1 if i % 3 == 0 else 1) * (i % 4 + 1) * np.sum(params[f"W{i}"] ** 2) for i in range(2, 1001))
    assert np.isclose(loss, ref, rtol=1e-12)


def test_a_long_sum_prints_as_groups_python_compiles() -> None:
    """3,000 terms would be 3,000 levels for Python's compiler, past its limit at import."""
    xs = [ir.node("exp", ir.node("neg", ir.node("exp", __import__("sympy").MatrixSymbol(f"x{i}", 1, 1))))
          for i in range(3000)]
    e = xs[0]
    for i, x in enumerate(xs[1:], 1):
        e = ir.node("sub" if i % 5 == 0 else "add", e, x)
    names = CodeNames()
    for i in range(3000):
        names.var(f"x{i}")
    code = run_deep(NumpyPrinter(names, set()).doprint, e)
    assert code.count("(") > 3000 / SUM_GROUP
    vals = {f"x{i}": np.float64(0.001 * i) for i in range(3000)}
    got = eval(compile(code, "<sum>", "eval"), {"np": np, **vals})  # compiled at the default limit
    want = sum((-1 if i % 5 == 0 and i else 1) * np.exp(-np.exp(0.001 * i)) for i in range(3000))
    assert np.isclose(got, want, rtol=1e-12)


# --- chains of assignments -------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_chain_of_1000_assignments_parses(tied: bool) -> None:
    model = backprop.parse_spec(chain_spec(1000, tied), path="chain.spec")
    assert len(model.assigns) == 1001
    assert len(forward_equations(model)) == 2001  # each Z_i = W A_{i-1} named


@pytest.mark.parametrize("tied", [True, False])
def test_chain_of_300_assignments_derives_and_checks(tied: bool, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    n = 300 if not tied else 150  # 150 tied layers: the weight's gradient sums 150 paths
    spec = write(tmp_path, "chain.spec", chain_spec(n, tied))
    assert main(["derive", spec, "--param", "W" if tied else "W1"]) == 0
    assert "∂L/∂W" in capsys.readouterr().out
    if tied:
        # unit weights: at the initializer's spread 150 tanh layers shrink A to ~0 and the loss with it, and
        # the differences could not check W to 1e-7 (an honest "too noisy")
        assert main(["check", spec, "--dims", "n=2,m=3", "--scale", "unit"]) == 0
        assert "ok: every gradient" in capsys.readouterr().out


# --- --expanded at 100 layers ---------------------------------------------------------


@pytest.fixture(scope="module")
def deep100() -> backprop.Derivation:
    return backprop.get_derivation(backprop.parse_spec(chain_spec(100, False), path="deep100.spec"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_expanded_at_100_layers(deep100: backprop.Derivation, fmt: str) -> None:
    out = render(deep100, fmt, param="W1", expanded=True)
    if fmt == "json":
        grads = json.loads(out)["gradients"]
        assert grads[0]["param"] == "W1" and len(grads[0]["expanded"]["text"]) > 1000
    else:
        assert "fully expanded" in out


# --- claims ---------------------------------------------------------------------------


CLAIM_SPEC = "input X[n, m]\nparam W[k, n]\nloss = sum(W**2) + sum(W @ X)\n"


@pytest.mark.parametrize(("extra", "status", "verdict"), [(0, 0, "correct"), (1, 1, "wrong")])
def test_claim_with_3000_terms_is_judged(extra: int, status: int, verdict: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """W + W + ... - W - ... adds up to 2W (or 3W): depth is never a verdict."""
    plus = ["W"] * 1500
    minus = ["W"] * (1498 - extra)
    claim = "dW = " + " + ".join(plus) + " - " + " - ".join(minus) + " + ones(k, m) @ X.T"
    spec = write(tmp_path, "net.spec", CLAIM_SPEC)
    claims = write(tmp_path, "claims.txt", claim + "\n")
    assert main(["verify", spec, "--claims", claims, "--format", "json"]) == status
    (result,) = json.loads(capsys.readouterr().out)["claims"]
    assert result["verdict"] == verdict
    if extra:
        assert "3/2" in result["diagnosis"]


# --- past the bound: a message, exit 2, soon ------------------------------------------------


@pytest.mark.parametrize("expr", [
    " + ".join(["sum(W)"] * 100_000),
    "(" * 100_000 + "sum(W)" + ")" * 100_000,
    "- " * 100_000 + "sum(W)",
    "sum(W" + ".T" * 100_000 + ")",
])
def test_pathological_nesting_is_a_clean_error(expr: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, "deep.spec", "input X[n, m]\nparam W[k, n]\nloss = " + expr + "\n")
    out = tmp_path / "out.txt"
    start = time.perf_counter()
    assert main(["derive", spec, "-o", str(out)]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:3:") and ": error: " in err and "Traceback" not in err
    assert "too deeply nested" in err or "too many nested parentheses" in err
    assert not out.exists()


def test_the_bounds_are_stated() -> None:
    with pytest.raises(backprop.SpecError, match=f"the limit is {MAX_NESTING} levels"):
        backprop.parse_spec(sum_spec(MAX_NESTING + 1), path="big.spec")
    assert MAX_CLAIM_NESTING > MAX_NESTING >= 2000

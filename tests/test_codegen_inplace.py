"""Products computed in place and intermediates dropped early must not change any value.

The generated backward computes ``dZ = dA * A * (1 - A)`` in the array of ``dA``
(``dZ = dA``, ``dZ *= A``, ...). That is safe only when ``dA`` is a fresh gradient
read for the last time and no other factor reads it; these tests check the rule
and that nothing a caller can see is ever overwritten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backprop
from backprop import codegen
from backprop.codegen.lower import lower
from backprop.language.domains import domain, onehot, sample
from backprop.language.model import class_axis

BENCH_SPECS = sorted(str(p) for p in (Path(__file__).resolve().parent.parent / "bench" / "specs").glob("*.spec"))
SPECS = backprop.example_names() + BENCH_SPECS


def _arrays(mod, seed: int = 0) -> tuple[dict, dict]:
    dims = {d: 3 + i for i, d in enumerate(mod.DIMS)}
    rng = np.random.default_rng(seed)
    params = mod.init_params({d: v for d, v in dims.items() if d in mod.DIMS}, seed=seed)
    params = {k: (v + 0.1 if np.ndim(v) == 0 else v + 0.1 * rng.standard_normal(np.shape(v))) for k, v in params.items()}
    inputs = {}
    for name in mod.INPUTS:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in mod.SHAPES[name])
        value = rng.uniform(0.1, 0.9, shape) if shape else 0.3
        if mod.DOMAINS[name] == "onehot":
            value = onehot(shape, rng, class_axis(len(shape), mod.EXAMPLE_AXES.get(name)))
        elif mod.DOMAINS[name] is not None and domain(mod.DOMAINS[name]).argument:  # labels(c)
            value = sample(mod.DOMAINS[name], shape, rng, 0, dims)
        inputs[name] = value
    return params, inputs


@pytest.mark.parametrize("spec", SPECS)
def test_backward_leaves_the_cache_and_the_callers_arrays_untouched(spec: str) -> None:
    mod = codegen.load_module(spec)
    params, inputs = _arrays(mod)
    before = {k: np.copy(v) for k, v in (params | inputs).items()}
    args = [inputs[n] if n in inputs else params[n] for n in mod.SHAPES]
    _, cache = mod.forward(*args)
    cached = {k: np.copy(v) for k, v in cache.items()}
    grads = mod.backward(**cache)
    for k, v in cached.items():
        np.testing.assert_array_equal(cache[k], v, err_msg=f"backward overwrote the cached {k}")
    for k, v in before.items():
        np.testing.assert_array_equal((params | inputs)[k], v, err_msg=f"the caller's {k} changed")
    _, again = mod.loss_and_grads(params, inputs)
    for k in grads:
        np.testing.assert_allclose(np.asarray(again[k], dtype=float), np.asarray(grads[k], dtype=float), rtol=1e-12)


def test_products_are_computed_in_place_only_of_a_gradient_read_for_the_last_time() -> None:
    program = lower(backprop.get_derivation("two_layer_sigmoid"))
    (target, (seed, factors)), = program.inplace.items()
    assert (program.name(target), program.name(seed)) == ("dZ", "dA")
    assert seed in program.frees[target]  # dropped right after: nothing reads it again
    assert all(seed not in f.atoms() for f in factors)
    src = codegen.generate("two_layer_sigmoid")
    assert "    dZ = dA  # computed in place: dA is not needed again\n    dZ *= A\n    dZ *= 1.0 - A\n    del dA\n" in src


def test_a_gradient_read_again_later_is_not_overwritten() -> None:
    """B = A ⊙ C: ∂L/∂B is a factor of both ∂L/∂A and ∂L/∂C, so the first of them needs a new array."""
    net = backprop.NetworkBuilder("shared")
    net.input("X", "n", "m").param("W", "k", "n").param("U", "k", "n")
    net.assign("A", "W @ X").assign("C", "U @ X").assign("B", "A * C").assign("loss", "sum(B * B) / m")
    model = net.build()
    report = codegen.gradcheck(model)
    assert not report.failed, report.errors
    program = lower(backprop.get_derivation(model))
    for target, (seed, _) in program.inplace.items():
        assert seed in program.frees.get(target, []), program.name(target)


def test_a_factor_read_again_in_another_factor_is_not_overwritten() -> None:
    """dZ = dA ⊙ (dA + 1)-like products: a seed read by another factor would be read overwritten."""
    net = backprop.NetworkBuilder("square")
    net.input("X", "n", "m").param("W", "k", "n").param("V", 1, "k")
    net.assign("A", "W @ X").assign("B", "V @ (A * A + A)").assign("loss", "sum(B) / m")
    program = lower(backprop.get_derivation(net.build()))
    for target, (seed, factors) in program.inplace.items():
        assert all(seed not in f.atoms() for f in factors), program.name(target)
    report = codegen.gradcheck(net.build())
    assert not report.failed, report.errors


def test_sums_start_in_a_new_matrix_product_or_a_value_read_for_the_last_time() -> None:
    program = lower(backprop.get_derivation("two_layer_sigmoid"))
    sums = {program.name(t): (program.code(seed), [(s, program.code(x)) for s, x in rest])
            for t, (seed, rest) in program.sums.items()}
    assert sums == {"Z": ("W1 @ X", [("+", "b1")]), "yhat": ("w2 @ A", [("+", "b2")]), "t1": ("yhat", [("-", "y")])}
    assert {program.name(t): code for t, code in program.activations.items()} == {"A": "_sigmoid_(Z)"}
    src = codegen.generate("two_layer_sigmoid")
    assert "    Z = W1 @ X\n    Z += b1\n    # A = σ(Z)\n" in src
    assert "    A = _sigmoid_(Z)  # computed in place: Z is not needed again\n" in src
    assert "    t1 = yhat  # computed in place: yhat is not needed again\n    t1 -= y\n    del yhat\n" in src


def test_no_input_param_or_cached_value_starts_a_sum_or_feeds_an_activation_in_place() -> None:
    """y − ŷ starts in an input; A₁ (cached for backward) is read again; X + W @ X reads X twice."""
    net = backprop.NetworkBuilder("kept")
    net.input("X", "n", "m").input("y", "n", "m").param("W", "n", "n")
    net.assign("Z", "W @ X").assign("A", "tanh(Z)").assign("B", "X + W @ A - A").assign("D", "y - B")
    net.assign("loss", "sum(D * D) / m")
    model = net.build()
    program = lower(backprop.get_derivation(model))
    given = {d.symbol for d in program.decls}
    cached = set(program.cache)
    for target, (seed, _) in program.sums.items():
        assert seed not in given and program.name(seed) not in cached, program.name(target)
    for target, code in program.activations.items():
        arg = code[code.index("(") + 1:code.index(",") if "," in code else code.index(")")]
        assert arg not in cached, program.name(target)
    src = codegen.generate(model)
    assert "D = y - B" in src  # y is the caller's: never written into
    assert "A = np.tanh(Z, out=Z)" in src  # Z is read no more
    assert "    B = W @ A\n    B += X\n    B -= A\n" in src  # X is the caller's: the product's new array takes it in
    report = codegen.gradcheck(model)
    assert not report.failed, report.errors


def test_a_sum_in_place_takes_the_dtype_of_its_new_first_term() -> None:
    """The documented semantics: ``yhat = w2 @ A; yhat += b2`` computes in the product's dtype,
    so float32 params and inputs with a float64 ``y`` give float32 values (as float32 in,
    float32 out wants), equal to the float64 result at float32 precision."""
    mod = codegen.load_module("two_layer_sigmoid")
    params, inputs = _arrays(mod)
    exact, exact_grads = mod.loss_and_grads(params, inputs)
    p32 = {k: (v if np.ndim(v) == 0 else v.astype(np.float32)) for k, v in params.items()}
    mixed = {"X": inputs["X"].astype(np.float32), "y": inputs["y"]}
    loss, cache = mod.forward(mixed["X"], mixed["y"], *(p32[k] for k in mod.PARAMS))
    assert cache["t1"].dtype == np.float32
    loss, grads = mod.loss_and_grads(p32, mixed)
    assert np.isclose(loss, exact, rtol=1e-5)
    for k, g in grads.items():
        assert np.asarray(g).dtype == np.float32 or type(g) is float, k
        np.testing.assert_allclose(g, exact_grads[k], rtol=1e-4, atol=1e-6)


def _program(spec: str):
    return lower(backprop.get_derivation(backprop.parse_spec(spec, name="net")))


def test_an_array_another_name_still_holds_is_not_written_into() -> None:
    """dP = dH returns dH's array as ∂L/∂P: ∂L/∂Z₁ = ∂L/∂H ⊙ [Z₁ > 0] must not be computed in it."""
    spec = "input X[n, m]\nparam W[k, n]\nparam P[k, m]\nH = relu(W @ X) + P\nloss = sum(H * H)\n"
    program = _program(spec)
    assert not program.inplace
    src = codegen.generate(backprop.parse_spec(spec, name="net"))
    assert "    dP = dH\n" in src and "    dZ1 = dH * (t1 > 0)\n" in src  # a new array; the mask stays boolean


def test_masks_stay_boolean_only_where_they_multiply_a_number() -> None:
    """[x > 0] is the fast boolean mask in dZ *= (A > 0); alone, negated or added it is a number."""
    assert "    dZ1 *= (A1 > 0)\n" in codegen.generate("deep_relu")
    src = codegen.generate(backprop.parse_spec("input X[n, m]\nparam W[k, n]\nloss = -sum(relu(W @ X))\n", name="neg"))
    assert "dZ1 = -np.heaviside(t1, 0)" in src
    spec = "input X[n, m]\nparam s\nloss = sum(leaky_relu(X, s))\n"  # 1 − [X > 0] as the mask [X ≤ 0]
    assert "ds = (X * (X <= 0)).sum()" in codegen.generate(backprop.parse_spec(spec, name="prelu"))


def test_only_new_floating_arrays_are_written_into() -> None:
    """Neither a gradient that may be an int array (∂L/∂T = X ⊙ X) nor a scalar is a seed."""
    ints = _program("input X[n, m]\nparam W[n, m]\nT = tanh(W)\nloss = sum(T * X * X)\n")
    assert not ints.inplace
    scalar = _program("input X[n, m]\nparam W[k, n]\nloss = exp(tanh(abs(sum(W @ X))))\n")
    assert not (scalar.inplace or scalar.sums or scalar.activations)


def test_gradients_equal_to_a_callers_array_or_to_each_other_are_copies() -> None:
    program = _program("input X[n, m]\nparam P[n, m]\nparam Q[n, m]\nloss = sum((P + Q) * X)\n")
    assert {program.name(g) for g in program.copies} == {"dP", "dQ"}
    shared = _program("input X[n, m]\nparam P[n, m]\nparam Q[n, m]\nloss = sum(tanh(P + Q))\n")
    assert {program.name(g) for g in shared.copies} == {"dQ"}  # dP holds the array, dQ a copy


def test_a_product_is_fresh_floating_only_when_its_value_is() -> None:
    """[W > 0] @ X reads the float W but, for an int X, makes an int array: no float is written into it."""
    from backprop.codegen.inplace import is_floating
    from backprop.expr import ir

    w, x = ir.symbol("W", (3, 4)), ir.symbol("X", (4, 5))
    assert is_floating(ir.node("matmul", w, x), {w})
    assert not is_floating(ir.node("matmul", ir.node("step", w), x), {w})
    assert is_floating(ir.node("matmul", ir.node("step", w), x), {w, x})


def test_softmax_backward_is_computed_in_the_spent_gradient() -> None:
    """dZ = P ⊙ (dP − Σ(dP ⊙ P)): the difference in dP's array (its first term may read dP: it is
    computed before dP is written), then scaled by P, and the gradients still match finite differences."""
    from backprop.language.parse import parse_spec

    src = codegen.generate("self_attention")
    assert ("    dZ = dP  # computed in place: dP is not needed again\n"
            '    dZ -= np.einsum("abm,abm->am", dP, P, optimize=["einsum_path", (0, 1)]).reshape(T, 1, m)\n'
            "    dZ *= P\n") in src
    spec = parse_spec("input X[d, m]\ninput Y[c, m]\nparam W[c, d]\nP = softmax(W @ X, axis=0)\n"
                      "loss = -sum(Y * log(P)) + sum(P ** 3)")
    assert "dZ -= (dP * P).sum(axis=0, keepdims=True)" in codegen.generate(spec)
    assert codegen.gradcheck(spec).ok

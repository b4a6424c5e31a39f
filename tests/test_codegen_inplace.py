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

import codegen
import derive
from codegen.lower import lower

BENCH_SPECS = sorted(str(p) for p in (Path(__file__).resolve().parent.parent / "bench" / "specs").glob("*.spec"))
SPECS = derive.example_names() + BENCH_SPECS


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
            value = np.eye(shape[0])[:, rng.integers(0, shape[0], shape[1])]
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
    program = lower(derive.get_derivation("two_layer_sigmoid"))
    (target, (seed, factors)), = program.inplace.items()
    assert (program.name(target), program.name(seed)) == ("dZ", "dA")
    assert seed in program.frees[target]  # dropped right after: nothing reads it again
    assert all(seed not in f.atoms() for f in factors)
    src = codegen.generate("two_layer_sigmoid")
    assert "    dZ = dA  # computed in place: dA is not needed again\n    dZ *= A\n    dZ *= 1 - A\n    del dA\n" in src


def test_a_gradient_read_again_later_is_not_overwritten() -> None:
    """B = A ⊙ C: ∂L/∂B is a factor of both ∂L/∂A and ∂L/∂C, so the first of them needs a new array."""
    net = derive.NetworkBuilder("shared")
    net.input("X", "n", "m").param("W", "k", "n").param("U", "k", "n")
    net.assign("A", "W @ X").assign("C", "U @ X").assign("B", "A * C").assign("loss", "sum(B * B) / m")
    model = net.build()
    report = codegen.gradcheck(model)
    assert not report.failed, report.errors
    program = lower(derive.get_derivation(model))
    for target, (seed, _) in program.inplace.items():
        assert seed in program.frees.get(target, []), program.name(target)


def test_a_factor_read_again_in_another_factor_is_not_overwritten() -> None:
    """dZ = dA ⊙ (dA + 1)-like products: a seed read by another factor would be read overwritten."""
    net = derive.NetworkBuilder("square")
    net.input("X", "n", "m").param("W", "k", "n").param("V", 1, "k")
    net.assign("A", "W @ X").assign("B", "V @ (A * A + A)").assign("loss", "sum(B) / m")
    program = lower(derive.get_derivation(net.build()))
    for target, (seed, factors) in program.inplace.items():
        assert all(seed not in f.atoms() for f in factors), program.name(target)
    report = codegen.gradcheck(net.build())
    assert not report.failed, report.errors

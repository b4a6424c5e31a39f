"""Every bundled example's generated JAX module against ``jax.grad`` of the same loss written by hand in
``jax.numpy`` (tests/jax_reference.py): loss and every gradient, float64, to 1e-9 relative to each
gradient's scale, at random points. The module is also held to the NumPy module and to ``jax.grad``
of its own forward (tests/test_jax_backend.py); the hand-written loss is the check that does not
share the spec's reading with the code generator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("CI"):
    import jax  # CI installs the test extra, which has jax: a missing jax is a failure there
else:
    jax = pytest.importorskip("jax", reason="jax is not installed (pip install '.[jax]'; CI fails instead of skipping)")
import jax.numpy as jnp  # noqa: E402
from helpers import FLAT_EXAMPLES
from jax_reference import REFERENCES  # noqa: E402

from backprop.codegen.emit import generate  # noqa: E402
from backprop.codegen.gradcheck import random_point, resolve_dims  # noqa: E402
from backprop.codegen.loader import load_source  # noqa: E402

TOL = 1e-9
_MODULES: dict[str, object] = {}


def jax_module(name: str):
    if name not in _MODULES:
        _MODULES[name] = load_source(generate(name, backend="jax"), f"{name}_jax_ref")
    return _MODULES[name]


def close(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, the reference's {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL * scale, err_msg=what)


def test_every_bundled_example_has_a_hand_written_loss():
    assert sorted(REFERENCES) == sorted(FLAT_EXAMPLES)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_generated_jax_module_matches_jax_grad_of_the_loss_by_hand(name, seed, x64):
    mod = jax_module(name)
    rng = np.random.default_rng(seed)
    params, inputs = random_point(mod, resolve_dims(mod, None, rng), rng)
    loss, grads = mod.loss_and_grads(params, inputs)
    jparams = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
    jinputs = {k: jnp.asarray(v) for k, v in inputs.items()}
    want_loss, want = jax.value_and_grad(REFERENCES[name])(jparams, jinputs)
    assert want_loss.dtype == jnp.float64
    close(loss, want_loss, f"{name}: loss")
    assert sorted(grads) == sorted(want)
    for p in want:
        close(grads[p], want[p], f"{name}: ∂L/∂{p}")

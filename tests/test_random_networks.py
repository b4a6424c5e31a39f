"""Random networks nobody wrote by hand: the chain rule against finite differences.

``random_specs.random_spec`` grows a spec from a random shape through every
kind of operation the language has -- broadcasting scalars, columns and rows,
matrix products through fresh dimensions, transposes, reductions with axes,
softmax along either axis, named values used more than once. Each seed's
network is parsed, derived, and every param gradient compared with central
finite differences at a random point. This is the test that found the lost
broadcast copies (a 1/m cotangent reaching a column bias through a sum).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, backward, clear_point, fd_gradient, random_sizes
from random_specs import random_spec

import backprop

SEEDS = range(60)


def test_generator_is_deterministic_and_varied() -> None:
    assert random_spec(3) == random_spec(3)
    specs = {random_spec(s) for s in SEEDS}
    assert len(specs) >= 0.9 * len(SEEDS)
    text = "".join(specs)
    for needle in ("@", ".T", "axis=0", "axis=1", "softmax", "leaky_relu", "**", " / ", "mean(", "V0 = "):
        assert needle in text, f"no random network uses {needle!r}"


@pytest.mark.parametrize("depth", (2, 3))
@pytest.mark.parametrize("seed", SEEDS)
def test_random_network_gradients(seed: int, depth: int) -> None:
    spec = random_spec(seed, depth)
    deriv = backprop.backpropagate(backprop.parse_spec(spec, path=f"<random {seed}>", name=f"random{seed}"))
    rng = np.random.default_rng([seed, depth])
    env = clear_point(deriv, random_sizes(deriv.model, rng, lo=2, hi=3), rng)
    grads = backward(deriv, env)
    for p in deriv.params:
        assert_close(p, grads[p], fd_gradient(deriv, env, p))

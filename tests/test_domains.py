"""The domain table: every row's samples satisfy its own check, and its check catches a value
outside it (the data check of ``train --data`` and the samplers of every stage read the same row)."""

from __future__ import annotations

import numpy as np
import pytest

from backprop.language.domains import DOMAINS, REAL, domain, sample, violation

SHAPES = [(3, 5), (1, 4), (4, 1), (2, 3, 4)]
#: Each domain as a spec declares it: labels with its number of classes.
DECLARED = [f"{n}(3)" if row.argument else n for n, row in DOMAINS.items()]


@pytest.mark.parametrize("name", DECLARED)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_samples_lie_in_their_domain(name: str, shape: tuple[int, ...]) -> None:
    rule = domain(name).shape_rule
    if rule is not None and rule(shape):  # spd: square matrices only, refused at parse time otherwise
        shape = (shape[0], shape[0])
    rng = np.random.default_rng(0)
    for axis in range(len(shape)):
        x = sample(name, shape, rng, axis)
        assert x.shape == shape
        assert violation(name, x, axis) is None
        row = domain(name)
        if row.exact_sample is not None:
            assert violation(name, row.exact_sample(shape, rng, axis), axis) is None


@pytest.mark.parametrize("name", DECLARED)
def test_a_value_outside_is_named(name: str) -> None:
    x = sample(name, (3, 3), np.random.default_rng(1)).astype(float)  # labels: integers, made to hold -0.5
    x[1, 2] = -0.5  # negative: outside every named domain (and not symmetric)
    wrong = violation(name, x)
    assert wrong and "declared" not in wrong


def test_spd_is_checked_for_symmetry_and_definiteness() -> None:
    assert violation("spd", np.array([[1.0, 2.0], [2.0, 1.0]])) == "is not positive definite (its Cholesky factorization fails)"
    assert violation("spd", np.array([[2.0, 1.0], [0.0, 2.0]])) == "is not symmetric"
    assert violation("spd", np.ones((2, 3))) == "is (2, 3), not a square matrix"  # the end of a sentence the caller begins


def test_no_domain_is_any_real() -> None:
    assert domain(None) is REAL
    assert violation(None, np.array([[-1e9, np.pi]])) is None


def test_binary_draws_both_values_when_there_is_room() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = sample("binary", (2, 3), rng)
        assert 0 < x.sum() < x.size

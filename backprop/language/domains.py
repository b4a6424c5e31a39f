"""The input domains: what values an input may hold, one row per domain.

``input Y[c, m] onehot`` says more than a shape: it lets the simplifier use that each column sums
to 1, the derivation name the input's role, and every stage that needs values of the input draw
them (the numerical and exact checks, the generated module's gradient check, synthetic training
data) or check them (``train --data``). Each of those reads the domain's row here, so a new domain
is one row, not a branch in five places.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

#: A random value of a shape, given the class axis (one-hot) and the number of classes (labels).
Sampler = Callable[..., np.ndarray]
#: What is wrong with an array for a domain (``None``: nothing), given the array, its class axis and
#: the number of classes.
Checker = Callable[..., "str | None"]


@dataclass(frozen=True)
class Domain:
    """One input domain and every form of it the stages use."""

    name: str | None
    #: The role in the derivation's table of variables ("input, one-hot columns").
    role: str
    #: A random value of a shape, the class axis given (for one-hot); entries clear of the edges.
    sample: Sampler
    #: What is wrong with an array declared in this domain, as the end of a sentence
    #: ("holds values other than 0 and 1"), or ``None``.
    violation: Checker
    #: Exact checks: entries are SymPy symbols with these assumptions, or (``None``) a rational
    #: point drawn from :attr:`exact_sample` with denominator :attr:`exact_den`.
    symbol: dict[str, bool] | None
    exact_den: int = 97
    #: Values for a rational exact point: the sampler's, moved further from the edges.
    exact_sample: Sampler | None = None
    #: Its values are labels (a classifier's target), not features: a hint for finding targets.
    label: bool = False
    #: One value for every example (a covariance, a kernel), not one per example: the examples axis is
    #: never found from it, and training passes it whole to every mini-batch.
    shared: bool = False
    #: Its values are symmetric matrices: the simplifier may write Sᵀ as S (and S⁻ᵀ as S⁻¹).
    symmetric: bool = False
    #: What is wrong with a declared shape for the domain (spd: not square), or ``None``: checked
    #: when the spec is parsed.
    shape_rule: Callable[[tuple], str | None] | None = None
    #: What the domain's argument means, for a domain declared with one (``labels(c)``: the number
    #: of classes, a dim or a whole number); ``None``: it takes none.
    argument: str | None = None
    #: What simplification uses about the values, said of an input for the notes, given how the notes
    #: print it (``w.name``, ``w.top`` its transpose, ``w.math(s)`` a formula in the sentence), its class
    #: axis and its rank; ``None``: simplification uses nothing of the domain.
    fact: Callable[..., str] | None = None


# ---------------------------------------------------------------------------
# Samplers and checks
# ---------------------------------------------------------------------------


def onehot(shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0, n: int = 0) -> np.ndarray:
    """Random one-hot labels: along ``axis`` (the classes) exactly one 1 at every other index."""
    classes = np.moveaxis(rng.integers(0, shape[axis], size=shape[:axis] + (1,) + shape[axis + 1:]), axis, 0)
    out = np.zeros(shape)
    np.put_along_axis(out, np.moveaxis(classes, 0, axis), 1.0, axis=axis)
    return out


def _binary(shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0, n: int = 0) -> np.ndarray:
    """0s and 1s, both values when there is room: a constant label hides terms."""
    size = math.prod(shape)
    for _ in range(20):
        out = rng.integers(0, 2, size=shape).astype(float)
        if size < 2 or 0 < out.sum() < size:
            break
    return out


def _uniform(lo: float, hi: float) -> Sampler:
    return lambda shape, rng, axis=0, n=0: rng.uniform(lo, hi, size=shape)


def _normal(shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0, n: int = 0) -> np.ndarray:
    return rng.normal(size=shape)


def _spd(shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0, n: int = 0) -> np.ndarray:
    """B Bᵀ/n + I: symmetric, positive definite, its eigenvalues at least 1 (well conditioned)."""
    n = shape[-1]
    b = rng.normal(size=shape)
    a = b @ np.swapaxes(b, -1, -2) / n + np.eye(n)
    return (a + np.swapaxes(a, -1, -2)) / 2  # symmetric to the last bit


def _not_spd(x: np.ndarray, axis: int = 0, n: int = 0) -> str | None:
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        return f"is {x.shape}, not a square matrix"
    if not np.allclose(x, x.T, rtol=1e-10, atol=1e-12 * (float(np.abs(x).max()) or 1.0)):
        return "is not symmetric"
    try:
        np.linalg.cholesky(x)
    except np.linalg.LinAlgError:
        return "is not positive definite (its Cholesky factorization fails)"
    return None


def _square_shape(shape: tuple) -> str | None:
    if len(shape) != 2 or shape[0] != shape[1]:
        return "spd (symmetric positive definite) needs a square matrix, e.g. S[n, n]"
    return None


def _not_onehot(x: np.ndarray, axis: int, n: int = 0) -> str | None:
    x = np.moveaxis(x, axis, 0)  # the classes first: each x[:, j] is one example's labels
    ok = np.isin(x, (0.0, 1.0)).all(axis=0) & (x.sum(axis=0) == 1)
    if ok.all():
        return None
    j = np.unravel_index(int(np.argmin(ok)), ok.shape)
    where = f"column {j[0]}" if len(j) == 1 and axis == 0 else \
        f"the labels at {tuple(int(k) for k in j)} (along axis {axis})"
    return f"{where} is not one-hot: {x[(slice(None), *j)].tolist()[:12]}"


def _labels(shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0, n: int = 2) -> np.ndarray:
    """Whole numbers 0..n−1 (an integer array, as a data set's labels), each class met when there is room."""
    for _ in range(20):
        out = rng.integers(0, n, size=shape)
        if len(np.unique(out)) == min(n, out.size):
            break
    return out


def _not_labels(x: np.ndarray, axis: int = 0, n: int = 2) -> str | None:
    if x.dtype.kind not in "biuf":
        return f"holds {x.dtype} values, not class labels"
    if x.dtype.kind == "f" and not np.all(np.isfinite(x) & (x == np.round(x))):
        return "holds values that are not whole numbers (class labels are 0, 1, ...)"
    bad = (x < 0) | (x >= n)
    if bad.any():
        return f"holds labels outside 0..{n - 1}: {x[bad][:8].astype(np.int64).tolist()}"
    return None


def parse(text: str) -> tuple[str, str | None]:
    """A declared domain as (name, argument): ``labels(c)`` -> (labels, c); ``onehot`` -> (onehot, None)."""
    name, _, arg = text.partition("(")
    return name, (arg[:-1].strip() if arg.endswith(")") else arg) if _ else None


def classes(text: str | None, sizes: Mapping[str, int]) -> int:
    """The number of classes of a ``labels(c)`` domain: a whole number, or the size of the dim ``c``."""
    arg = parse(text)[1] if text else None
    if arg is None:
        return 0
    return int(arg) if arg.isdigit() else int(sizes[arg])


def _outside(test: Callable[[np.ndarray], np.ndarray], what: str) -> Checker:
    return lambda x, axis=0, n=0: None if test(x).all() else what


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

REAL = Domain(None, "input", _normal, lambda x, axis=0, n=0: None, symbol={})

_ROWS = (
    Domain("onehot", "input, one-hot columns", onehot, _not_onehot, symbol=None, exact_den=1, label=True,
           fact=lambda w, axis, rank: (f"each {('column', 'row')[axis]} of the one-hot {w.math(w.name)} sums to 1"
                                       if rank == 2 else f"the one-hot {w.math(w.name)} sums to 1 along axis {axis}")),
    Domain("binary", "input, entries 0 or 1", _binary,
           _outside(lambda x: np.isin(x, (0.0, 1.0)), "holds values other than 0 and 1"),
           symbol=None, exact_den=1, label=True),
    Domain("positive", "input, positive entries", _uniform(0.5, 2.0),
           _outside(lambda x: x > 0, "holds values <= 0"), symbol={"positive": True},
           exact_sample=lambda shape, rng, axis=0, n=0: np.maximum(rng.uniform(0.5, 2.0, size=shape), 0.25)),
    Domain("prob", "input, probabilities", _uniform(0.05, 0.95),
           _outside(lambda x: (x >= 0) & (x <= 1), "holds values outside [0, 1]"), symbol=None,
           exact_sample=lambda shape, rng, axis=0, n=0: np.clip(rng.uniform(0.05, 0.95, size=shape), 0.1, 0.9)),
    Domain("spd", "input, symmetric positive definite", _spd, _not_spd, symbol=None, shape_rule=_square_shape,
           shared=True, symmetric=True,
           fact=lambda w, axis, rank: f"{w.math(w.name)} is symmetric: {w.math(w.top + ' = ' + w.name)}"),
    Domain("labels", "input, integer labels", _labels, _not_labels, symbol=None, exact_den=1, label=True,
           argument="the number of classes",
           fact=lambda w, axis, rank: (f"each label in {w.math(w.name)} is one class, so onehot of it sums "
                                       "to 1 over the classes")),
)

#: Every named domain, in the order the docs and errors list them.
DOMAINS: dict[str, Domain] = {d.name: d for d in _ROWS if d.name is not None}


def domain(name: str | None) -> Domain:
    """The row of a declared domain (``labels(c)``: the labels row); no domain is :data:`REAL`."""
    return REAL if name is None else DOMAINS[parse(name)[0]]


def sample(name: str | None, shape: tuple[int, ...], rng: np.random.Generator, class_axis: int = 0,
           sizes: Mapping[str, int] | None = None) -> np.ndarray:
    """A random value from a declared input domain (params and plain inputs: normal); ``sizes``
    gives the dims a domain's argument may name (the classes of ``labels(c)``)."""
    return domain(name).sample(shape, rng, class_axis, classes(name, sizes or {}))


def violation(name: str | None, x: np.ndarray, class_axis: int = 0, sizes: Mapping[str, int] | None = None) -> str | None:
    """What is wrong with ``x`` for the domain, or ``None``."""
    return domain(name).violation(np.asarray(x), class_axis, classes(name, sizes or {}))

"""Random points at which gradients are checked: sizes, params and inputs.

Params are normal with the spread the module's own initializer gives them,
capped at 1 (``scale="unit"``: standard normal). A 256-wide layer of unit
weights saturates every softmax after it: a point where no network is trained
and where finite differences measure little but rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from backprop.language.domains import sample
from backprop.language.model import class_axis

DIM_RANGE = (2, 6)  # random dims are drawn from [2, 6)


def resolve_dims(module: ModuleType, dims: Mapping[str, int] | None, rng: np.random.Generator) -> dict[str, int]:
    """Given dims checked (known names, positive ints); the rest drawn at random, in DIMS order."""
    dims = dict(dims or {})
    unknown = [d for d in dims if d not in module.DIMS]
    if unknown:
        raise ValueError(f"unknown dim {', '.join(unknown)} (this network's dims: {', '.join(module.DIMS) or 'none'})")
    for d, v in dims.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"dim {d} must be a positive integer, got {v!r}")
    return {d: int(dims[d]) if d in dims else int(rng.integers(*DIM_RANGE)) for d in module.DIMS}


def _concrete(shape: tuple, dims: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(dims[d] if isinstance(d, str) else int(d) for d in shape)


def draw(shape: tuple[int, ...], domain: str | None, rng: np.random.Generator, axis: int = 0,
         sizes: Mapping[str, int] | None = None) -> Any:
    """A value of ``shape`` from ``domain`` (see :mod:`backprop.language.domains`; ``sizes``: the
    dims its argument may name); a scalar as a Python float."""
    x = sample(domain, shape, rng, axis, sizes)
    return float(x) if shape == () else x


SCALES = ("init", "unit")


def param_spreads(module: ModuleType, dims: Mapping[str, int], scale: str = "init") -> dict[str, float]:
    """Each param's standard deviation: its initializer's RMS, at most 1 (a bias the initializer
    zeroes is drawn standard normal), or 1 for every param with ``scale="unit"``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    init = getattr(module, "init_params", None)
    if scale == "unit" or init is None:
        return {n: 1.0 for n in module.PARAMS}
    fresh = init(dict(dims), seed=0)
    rms = {n: float(np.sqrt(np.mean(np.square(fresh[n])))) for n in module.PARAMS}
    return {n: min(1.0, r) if r > 0 else 1.0 for n, r in rms.items()}


def random_point(module: ModuleType, dims: Mapping[str, int], rng: np.random.Generator,
                 scale: str = "init") -> tuple[dict, dict]:
    """(params, inputs) at random: params normal with :func:`param_spreads`, inputs from their domains."""
    inputs = {n: draw(_concrete(module.SHAPES[n], dims), module.DOMAINS.get(n), rng,
                      class_axis(len(module.SHAPES[n]), module.EXAMPLE_AXES.get(n)), dims) for n in module.INPUTS}
    spreads = param_spreads(module, dims, scale)
    params = {n: _spread(draw(_concrete(module.SHAPES[n], dims), None, rng), spreads[n]) for n in module.PARAMS}
    return params, inputs


def _spread(x: Any, s: float) -> Any:
    return x if s == 1.0 else x * s


__all__ = ["DIM_RANGE", "SCALES", "draw", "param_spreads", "random_point", "resolve_dims"]

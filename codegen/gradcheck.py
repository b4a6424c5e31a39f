"""Check a generated module's gradients against central finite differences.

``gradcheck(spec)`` generates and imports the module, draws params (standard
normal) and inputs from their declared domains, and compares every entry of
every gradient with ((L(θ + ε) − L(θ − ε)) / 2ε) in float64. The error
reported per param is the largest entry-wise difference relative to the
gradient's own scale, max|g − g_fd| / max(max|g|, max|g_fd|), so entries that
are (nearly) zero do not blow it up. When the spec is known, the module's loss
is also compared with the reference evaluator (:func:`derive.evaluate.evaluate`)
on the derivation's textbook forms, which checks the stable rewrites.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from derive.deepstack import deep_stack
from derive.derivation import Derivation
from derive.evaluate import evaluate
from derive.model import Model

from .emit import derivation_of
from .loader import load_module

TOLERANCE = 1e-7
EPS = 1e-6
DIM_RANGE = (2, 6)  # random dims are drawn from [2, 6)
#: Reference loss and module loss may differ by rounding only.
LOSS_TOLERANCE = 1e-10


@dataclass(frozen=True)
class GradcheckReport:
    """The result of one gradient check: max relative error per param, and the loss."""

    name: str
    dims: dict[str, int]
    seed: int
    tol: float
    eps: float
    loss: float
    errors: dict[str, float]
    shapes: dict[str, tuple[int, ...]]
    reference_loss: float | None = None
    loss_error: float | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def format(self) -> str:
        """The report as the ``backprop check`` command prints it."""
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "none"
        lines = [
            f"gradcheck {self.name}: dims {dims}; seed {self.seed}; "
            f"central differences (eps {self.eps:g}) in float64",
            f"  {'param':<10} {'shape':>10}  {'max rel. error':>14}",
        ]
        for p, err in self.errors.items():
            shape = "×".join(str(s) for s in self.shapes[p]) or "scalar"
            verdict = "ok" if err <= self.tol else "FAIL"
            lines.append(f"  {p:<10} {shape:>10}  {err:>14.2e}  {verdict}")
        if self.reference_loss is not None:
            lines.append(
                f"loss {self.loss:.10g}; reference evaluator {self.reference_loss:.10g} "
                f"(rel. diff {self.loss_error:.1e})"
            )
        else:
            lines.append(f"loss {self.loss:.10g}")
        if self.ok:
            lines.append(f"ok: every gradient within {self.tol:g}")
        else:
            lines.append(f"FAIL: {', '.join(self.failed)} above tolerance {self.tol:g}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Random points
# ---------------------------------------------------------------------------


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


def draw(shape: tuple[int, ...], domain: str | None, rng: np.random.Generator) -> Any:
    """A value of ``shape`` from ``domain``: onehot columns, binary, positive, prob, or any real."""
    if domain == "onehot":
        rows, cols = shape
        out = np.zeros(shape)
        out[rng.integers(0, rows, cols), np.arange(cols)] = 1.0
        return out
    size = shape or None
    if domain == "binary":
        x = rng.integers(0, 2, size).astype(float)
    elif domain == "positive":
        x = rng.uniform(0.5, 2.0, size)
    elif domain == "prob":
        x = rng.uniform(0.05, 0.95, size)
    else:
        x = rng.standard_normal(size)
    return float(x) if shape == () else x


def random_point(module: ModuleType, dims: Mapping[str, int], rng: np.random.Generator) -> tuple[dict, dict]:
    """(params, inputs) at random: params standard normal, inputs from their domains."""
    inputs = {n: draw(_concrete(module.SHAPES[n], dims), module.DOMAINS.get(n), rng) for n in module.INPUTS}
    params = {n: draw(_concrete(module.SHAPES[n], dims), None, rng) for n in module.PARAMS}
    return params, inputs


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


def _loss(module: ModuleType, values: Mapping[str, Any]) -> float:
    """The module's loss, calling forward with arguments in declaration (SHAPES) order."""
    return float(module.forward(*(values[n] for n in module.SHAPES))[0])


def numeric_gradient(module: ModuleType, values: dict[str, Any], name: str, eps: float = EPS) -> Any:
    """Central finite differences of the loss with respect to ``values[name]``."""
    x = values[name]
    if np.ndim(x) == 0:
        plus = _loss(module, {**values, name: x + eps})
        minus = _loss(module, {**values, name: x - eps})
        return (plus - minus) / (2 * eps)
    x = np.array(x, dtype=float)
    out = np.zeros_like(x)
    trial = {**values, name: x}
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + eps
        plus = _loss(module, trial)
        x[idx] = keep - eps
        minus = _loss(module, trial)
        x[idx] = keep
        out[idx] = (plus - minus) / (2 * eps)
    return out


def relative_error(g: Any, fd: Any) -> float:
    """max|g − fd| relative to the larger of the two gradients' largest entries."""
    g, fd = np.asarray(g, dtype=float), np.asarray(fd, dtype=float)
    scale = max(np.max(np.abs(g), initial=0.0), np.max(np.abs(fd), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(g - fd)) / scale)


def reference_loss(d: Derivation, values: Mapping[str, Any], dims: Mapping[str, int]) -> float:
    """The loss by the reference evaluator, equation by equation, in textbook form."""
    env: dict[Any, Any] = dict(values)
    env.update({sym: dims[name] for name, sym in d.model.dims.items()})
    for eq in d.equations:
        env[eq.name] = evaluate(eq.expr, env)
    return float(np.asarray(env[d.loss.name]).reshape(()))


@deep_stack
def gradcheck(spec: str | Path | Model | Derivation | ModuleType, dims: Mapping[str, int] | None = None,
              seed: int = 0, tol: float = TOLERANCE, eps: float = EPS,
              reference: str | Model | Derivation | None = None) -> GradcheckReport:
    """Check every gradient of ``spec``'s generated module (or of a module, or a ``.py`` file)
    at one random point.

    ``dims`` fixes some sizes (e.g. ``{"m": 5}``); the others are drawn from
    ``seed``. The loss is compared with the reference evaluator on the spec's
    textbook forms -- ``spec`` itself, or ``reference`` when checking a module.
    Raises ValueError for an unknown dim or a non-positive size.
    """
    if isinstance(spec, ModuleType) or isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(".py")):
        module = load_module(spec)
        d = derivation_of(reference) if reference is not None else None
        name = d.model.name if d is not None else Path(getattr(module, "__file__", "module")).stem
    else:
        d = derivation_of(spec)
        module = load_module(d)
        name = d.model.name
    rng = np.random.default_rng(seed)
    sizes = resolve_dims(module, dims, rng)
    params, inputs = random_point(module, sizes, rng)
    loss, grads = module.loss_and_grads(params, inputs)
    values = {n: (params | inputs)[n] for n in module.SHAPES}
    errors = {p: relative_error(grads[p], numeric_gradient(module, values, p, eps)) for p in module.PARAMS}
    failed = [p for p, e in errors.items() if not e <= tol]
    ref = loss_err = None
    if d is not None:
        ref = reference_loss(d, values, sizes)
        loss_err = abs(loss - ref) / max(abs(ref), 1.0)
        if not loss_err <= LOSS_TOLERANCE:
            failed.append("loss")
    shapes = {p: tuple(np.shape(params[p])) for p in module.PARAMS}
    return GradcheckReport(name, sizes, seed, tol, eps, float(loss), errors, shapes, ref, loss_err, failed)


__all__ = ["GradcheckReport", "gradcheck", "numeric_gradient", "relative_error", "random_point"]

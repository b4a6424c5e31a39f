"""Gradient norms at initialization, layer by layer -- and the same network with other activations.

``backprop gradflow deep_relu --compare-activation sigmoid`` shows what
courses call vanishing gradients: each sigmoid layer multiplies the gradient
flowing back by σ′ ≤ 1/4, so the first layers of a deep sigmoid network get a
far smaller gradient than its last ones, while ReLU layers (derivative 1 where
active) pass it on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.language.model import Model
from backprop.train.loop import grad_norm

#: Activations a hidden layer may use; ``--compare-activation`` swaps one for another.
HIDDEN = ("relu", "sigmoid", "tanh", "softplus", "leaky_relu")
CHOICES = ("relu", "sigmoid", "tanh", "softplus")


def _feeds_a_product(model: Model) -> set[str]:
    """Assigned names some later equation multiplies by a matrix (hidden layers, not outputs)."""
    out: set[str] = set()
    for a in model.assigns:
        for node in [a.expr, *a.expr.atoms(OpNode)]:
            if isinstance(node, OpNode) and node.op.name == "matmul":
                out |= {s.name for s in node.children if isinstance(s, MatrixSymbol)}
    return out


def hidden_activations(model: Model) -> list[tuple[str, str]]:
    """(assigned name, activation) of every hidden layer: NAME = act(...) whose value feeds a matrix product."""
    hidden = _feeds_a_product(model)
    return [(a.name, a.expr.op.name) for a in model.assigns
            if a.name in hidden and isinstance(a.expr, OpNode) and a.expr.op.name in HIDDEN]


def with_activation(model: Model, act: str) -> Model:
    """The model with every hidden layer's activation replaced by ``act`` (outputs and loss untouched)."""
    hidden = {n for n, _ in hidden_activations(model)}
    assigns = []
    for a in model.assigns:
        expr: Basic = a.expr
        if a.name in hidden:
            expr = ir.node(act, expr.children[0])  # type: ignore[attr-defined]
        assigns.append(dataclasses.replace(a, expr=expr))
    return dataclasses.replace(
        model, assigns=assigns, name=f"{model.name}_{act}",
        source=f"# {model.name} with {act} hidden layers (backprop gradflow --compare-activation {act})\n",
    )


@dataclass(frozen=True)
class Variant:
    label: str
    norms: dict[str, float]


def norms_at_init(module: ModuleType, inputs: Mapping[str, Any], dims: Mapping[str, int], seed: int) -> dict[str, float]:
    """‖∂L/∂θ‖ for every param θ at ``init_params(dims, seed)``, on all of ``inputs``."""
    params = module.init_params(dict(dims), seed=seed)
    _, grads = module.loss_and_grads(params, dict(inputs))
    return {p: grad_norm(grads[p]) for p in module.PARAMS}


def weights(module: ModuleType) -> list[str]:
    """Params that are weights (drawn at random, not started at zero), input side first."""
    init = getattr(module, "INIT", {})
    return [p for p in module.PARAMS if init.get(p) in ("he", "glorot", "embedding")]


#: A first-to-last ratio below this is called vanishing gradients (in the table and on the chart).
VANISHING = 0.05


def first_last_ratios(variants: list[Variant], first_last: tuple[str, str]) -> dict[str, float]:
    """‖∂L/∂first‖ / ‖∂L/∂last‖ per variant: one number for how much the gradient fades on its way back.

    The table and the chart both show it, from this one function, so they cannot disagree.
    """
    a, b = first_last
    return {v.label: (v.norms[a] / v.norms[b] if v.norms[b] > 0 else float("inf")) for v in variants}


def table(variants: list[Variant], shapes: Mapping[str, str], first_last: tuple[str, str] | None) -> str:
    """The norms as a text table, and how much smaller the first layer's gradient is than the last's."""
    params = list(variants[0].norms)
    heads = [f"‖∂L/∂θ‖ {v.label}" for v in variants]
    width = max(12, *(len(h) for h in heads))
    lines = [f"  {'param':<8} {'shape':>9}  " + "  ".join(f"{h:>{width}}" for h in heads)]
    for p in params:
        cells = "  ".join(f"{v.norms[p]:>{width}.3e}" for v in variants)
        lines.append(f"  {p:<8} {shapes[p]:>9}  {cells}")
    if first_last is not None:
        a, b = first_last
        for label, ratio in first_last_ratios(variants, first_last).items():
            lines.append(f"  {label}: ‖∂L/∂{a}‖ / ‖∂L/∂{b}‖ = {ratio:.3g}"
                         + ("  (the first layer learns far more slowly: vanishing gradients)" if ratio < VANISHING else ""))
    return "\n".join(lines)


def fmt_shape(shape: tuple, dims: Mapping[str, int]) -> str:
    return "×".join(str(dims[d] if isinstance(d, str) else d) for d in shape) or "scalar"


__all__ = ["hidden_activations", "with_activation", "norms_at_init", "table", "first_last_ratios", "Variant", "CHOICES",
           "VANISHING"]

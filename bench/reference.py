"""Hand-written NumPy: the 1.0 baseline every other implementation is measured against.

Written the way a careful practitioner writes a perceptron by hand: one
matrix product per layer and direction, the bias added in place, activations
applied in place on the pre-activation (which nothing needs afterwards), the
fused softmax-cross-entropy gradient ``(softmax(Z) - Y) / m``, bias gradients
as row sums, and nothing computed that no gradient needs (no gradient for the
inputs). The sigmoid is ``(1 + tanh(z/2)) / 2``, in place: it cannot overflow
for any input and costs one transcendental call per entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .cases import Case

LossAndGrads = Callable[[dict, dict], tuple[float, dict[str, Any]]]


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    """Apply the activation to ``z`` in place (z is a fresh product, owned here)."""
    if activation == "sigmoid":
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
    elif activation == "relu":
        np.maximum(z, 0.0, out=z)
    return z


def _through_activation(g: np.ndarray, a: np.ndarray, activation: str) -> None:
    """Turn dL/dA into dL/dZ in place, from the layer's output A alone."""
    if activation == "sigmoid":
        t = 1.0 - a
        t *= a
        g *= t
    elif activation == "relu":
        g *= a > 0


def _mse(a: np.ndarray, y: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """L = ||A - Y||² / m and dL/dA = 2 (A - Y) / m, sharing the difference."""
    d = a - y
    loss = float(np.vdot(d, d)) / m
    d *= 2.0 / m
    return loss, d


def _softmax_ce(z: np.ndarray, y: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """L = -Σ Y ⊙ log softmax(Z) / m and the fused dL/dZ = (softmax(Z) - Y) / m.

    ``z`` (the logits, owned here) is shifted by its column maxima in place.
    """
    z -= z.max(axis=0, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=0, keepdims=True)
    loss = -float(np.vdot(y, z - np.log(s))) / m
    e /= s
    e -= y
    e *= 1.0 / m
    return loss, e


def cs230_two_layer(params: dict, inputs: dict) -> tuple[float, dict[str, Any]]:
    """The CS230 network written out line by line, as one writes a two-layer net by hand.

    On this tiny network (3 -> 4 -> 1) call overhead is most of the cost, and the
    generic layer loop below would add about a microsecond of its own: the
    baseline would then flatter every other implementation.
    """
    x, y = inputs["X"], inputs["y"]
    w1, b1, w2, b2 = params["W1"], params["b1"], params["w2"], params["b2"]
    m = x.shape[1]
    a = w1 @ x
    a += b1
    _activate(a, "sigmoid")
    d = w2 @ a
    d += b2
    d -= y
    loss = float(np.vdot(d, d)) / m
    d *= 2.0 / m
    dw2 = d @ a.T
    db2 = float(d.sum())
    g = w2.T @ d
    t = 1.0 - a
    t *= a
    g *= t
    return loss, {"W1": g @ x.T, "b1": g.sum(axis=1, keepdims=True), "w2": dw2, "b2": db2}


#: Cases written out by hand rather than through the layer loop.
STRAIGHT = {"cs230_two_layer": cs230_two_layer}


def make_reference(case: Case) -> LossAndGrads:
    """``loss_and_grads(params, inputs)`` for ``case``, written by hand."""
    if case.name in STRAIGHT:
        return STRAIGHT[case.name]
    layers = case.layers
    x_name, y_name = case.x_name, case.y_name
    loss_fn = _mse if case.loss == "mse" else _softmax_ce

    def loss_and_grads(params: dict, inputs: dict) -> tuple[float, dict[str, Any]]:
        x = inputs[x_name]
        m = x.shape[1]
        acts = [x]
        for layer in layers:
            z = params[layer.weight] @ acts[-1]
            z += params[layer.bias]
            acts.append(_activate(z, layer.activation))
        loss, g = loss_fn(acts[-1], inputs[y_name], m)
        grads: dict[str, Any] = {}
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            _through_activation(g, acts[i + 1], layer.activation)
            grads[layer.weight] = g @ acts[i].T
            grads[layer.bias] = float(g.sum()) if layer.scalar_bias else g.sum(axis=1, keepdims=True)
            if i:
                g = params[layer.weight].T @ g
        return loss, grads

    return loss_and_grads

"""Synthetic integer labels from a teacher network.

A one-hot target's teacher value comes from the gradient of the loss in the target (see
:mod:`backprop.train.data`); labels have no gradient (they are indices), so the teacher asks the
loss directly: for each example and each class, the loss the teacher network's params give when
that example is labelled with that class. The example's label is the class with the smallest loss
-- the teacher's most likely class -- after the classes' shares are balanced as for one-hot targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

#: Above this many (example, class) pairs the teacher labels a sample of the examples' classes by
#: the batch loss instead of one call per pair (kept so synthetic data stays quick to make).
MAX_CALLS = 20_000


def _example(inputs: Mapping[str, Any], axes: Mapping[str, int], i: int) -> dict[str, Any]:
    """Every input's slice for example ``i`` (a batch of one); shared inputs whole."""
    return {n: (np.take(v, [i], axis=axes[n]) if n in axes else v) for n, v in inputs.items()}


def teacher_labels(module: ModuleType, teacher: Mapping[str, Any], inputs: Mapping[str, Any], t: str, classes: int,
                   examples: int, balance: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, str]:
    """Labels for target ``t``: each example's class of smallest teacher loss, balanced by ``balance``
    (classes × examples losses -> one class per example)."""
    axes = dict(module.EXAMPLE_AXES)
    if t not in axes or examples * classes > MAX_CALLS:
        return np.asarray(inputs[t]), "random labels (too many examples × classes to ask the teacher one by one)"
    losses = np.empty((classes, examples))
    shape = np.shape(np.take(inputs[t], [0], axis=axes[t]))
    with np.errstate(all="ignore"):
        for i in range(examples):
            one = _example(inputs, axes, i)
            for k in range(classes):
                one[t] = np.full(shape, k, dtype=np.int64)
                losses[k, i], _ = module.loss_and_grads(dict(teacher), one)
    if not np.all(np.isfinite(losses)):
        return np.asarray(inputs[t]), "random labels (the teacher's loss is not finite)"
    labels = balance(losses)
    out = np.moveaxis(np.broadcast_to(labels.reshape((1,) * (len(shape) - 1) + (examples,)),
                                      np.moveaxis(np.empty(np.shape(inputs[t])), axes[t], -1).shape), -1, axes[t])
    return np.ascontiguousarray(out, dtype=np.int64), (
        "labels: the teacher network's most likely class (its class biases shifted to balance the classes)")

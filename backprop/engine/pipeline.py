"""One function per use, each reading as the pipeline it runs.

parse (:mod:`backprop.language.parse`) -> model (:mod:`backprop.language.model`) -> chain rule
(:mod:`backprop.engine.chain`) -> derivation steps (:mod:`backprop.engine.derivation`) ->
renderers / emitter.
"""

from __future__ import annotations

from backprop.engine.chain import derive as backpropagate
from backprop.engine.derivation import Derivation
from backprop.engine.optim import get_optimizer
from backprop.engine.through_time import TimeDerivation, derive_through_time
from backprop.language.model import Model
from backprop.language.parse import load
from backprop.support.deepstack import deep_stack


def get_model(spec: str | Model) -> Model:
    """A model from a spec path, a bundled example's name, or a model."""
    return spec if isinstance(spec, Model) else load(spec)


@deep_stack
def get_derivation(spec: str | Model, optimizer: str = "sgd") -> Derivation:
    """Parse (if needed), then backpropagate: the derivation as data, ending with ``optimizer``'s updates."""
    d = backpropagate(get_model(spec))
    d.optimizer = get_optimizer(optimizer).name
    return d


@deep_stack
def get_notes_derivation(spec: str | Model, optimizer: str = "sgd") -> Derivation | TimeDerivation:
    """What ``backprop derive`` presents: the derivation, or for a model with loops the derivation
    through time (backpropagation through time at a general t). The commands that generate or check
    code take :func:`get_derivation`, which refuses a loop until the loop is generated."""
    model = get_model(spec)
    if not model.loops:
        return get_derivation(model, optimizer)
    td = derive_through_time(model)
    td.optimizer = get_optimizer(optimizer).name
    return td

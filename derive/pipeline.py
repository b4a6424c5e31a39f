"""One function per use, each reading as the pipeline it runs.

parse (:mod:`derive.parse`) -> model (:mod:`derive.model`) -> chain rule
(:mod:`derive.chain`) -> derivation steps (:mod:`derive.derivation`) ->
renderers / emitter.
"""

from __future__ import annotations

from .chain import derive as backpropagate
from .deepstack import deep_stack
from .derivation import Derivation
from .model import Model
from .parse import load


def get_model(spec: str | Model) -> Model:
    """A model from a spec path, a bundled example's name, or a model."""
    return spec if isinstance(spec, Model) else load(spec)


@deep_stack
def get_derivation(spec: str | Model, optimizer: str = "sgd") -> Derivation:
    """Parse (if needed), then backpropagate: the derivation as data, ending with ``optimizer``'s updates."""
    from .optim import get_optimizer

    d = backpropagate(get_model(spec))
    d.optimizer = get_optimizer(optimizer).name
    return d

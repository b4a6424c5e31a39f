"""The notes of a derivation of either kind, chosen by its type: a :class:`Derivation` is laid out by
:func:`backprop.present.layout.layout`, a :class:`TimeDerivation` (a model with loops) by
:func:`backprop.present.through_time.time_layout`. Every format asks here, so it writes both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.present.layout import Notes, layout
from backprop.present.through_time import time_layout


def _plain(d: Derivation, *, unroll: int = 0, **options: Any) -> Notes:
    """A derivation without loops: nothing to unroll."""
    del unroll
    return layout(d, **options)


#: Each kind of derivation and the function that lays it out.
LAYOUTS: dict[type, Callable[..., Notes]] = {Derivation: _plain, TimeDerivation: time_layout}

AnyDerivation = Derivation | TimeDerivation


def notes_of(d: AnyDerivation, **options: Any) -> Notes:
    """What the notes say, for ``d``'s kind."""
    return LAYOUTS[type(d)](d, **options)


__all__ = ["LAYOUTS", "AnyDerivation", "notes_of"]

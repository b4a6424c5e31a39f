"""Run the symbolic stages with Python's cyclic garbage collector paused.

Deriving a network builds and drops many small SymPy trees. Reference
counting frees nearly all of them; the cyclic collector still runs, and its
full collections walk every object the process holds, SymPy's and NumPy's
own (about 60,000 once both are imported): 15 to 50 ms each. One fires
whenever enough objects have survived, so it lands in one depth and not the
next, and makes derivation time jump rather than grow with the network
(measured in ``bench/derive_speed.py``: a 100-layer network paid one, a
50-layer network none). Paused, a 100-layer derivation leaves about 3 MB of
cyclic garbage, which the first collection after it frees.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, then restore it as it was.

    Nested uses are safe: only the outermost, which found it enabled, enables it again.
    The switch is process-wide, so cycles other threads make meanwhile also wait for
    the next collection; none is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_cyclic_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run inside :func:`cyclic_gc_paused`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cyclic_gc_paused():
            return fn(*args, **kwargs)

    return wrapper

"""Run the symbolic stages on a stack sized for deep networks.

Every stage walks expressions recursively: our own visitors and printers, and
SymPy's (construction, hashing, ``xreplace``, printing). Ordinary specs make
those walks deep -- a loss summing 1,000 regularizers is a left-deep tree of
1,000 additions, a weight tied across 150 layers has a 150-term gradient --
and Python's default limit of 1,000 frames on the main thread's 8 MB stack
cannot hold them. Rewriting SymPy's walks is not an option, so the whole
pipeline runs here instead: on a worker thread whose stack is
:data:`STACK_BYTES` (reserved address space; only the pages a walk touches
are ever committed), with the recursion limit raised to
:data:`RECURSION_LIMIT` frames while it runs. Measured on CPython 3.11, a
frame that recurses through C (a generator in ``str.join``, ``__hash__`` via
a tuple) costs about 450 bytes of C stack; the budget allows over 2.5 KB a
frame, so the raised limit is reached long before the stack is exhausted:
depth past the budget is a ``RecursionError``, never a segfault.

What the budget holds is bounded up front: the parsers reject an expression
nested more than :data:`MAX_NESTING` levels (a compiler-style error), far
below what the budget allows, so a ``RecursionError`` does not reach users.

One place applies it: :func:`deep_stack` decorates the public entry points
and the CLI. A call already on the deep stack runs directly, so entry points
that call each other start one thread, not one each.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: The worker's stack: address space reserved, committed only as used.
STACK_BYTES = 512 * 2**20
#: Python frames allowed while a deep run is active (≈ 2.6 KB of stack per frame).
RECURSION_LIMIT = 200_000
#: The deepest spec expression the parser accepts (levels of operators and calls; a
#: 1,000-term sum is 1,000 levels). Below Python's own compiler limit (about 3,000
#: levels at import), so a generated module's lines stay compilable too.
MAX_NESTING = 2_500
#: The deepest claim accepted: claims are evaluated, never compiled, so only the budget
#: bounds them (the deepest walk costs about 10 frames a level).
MAX_CLAIM_NESTING = 10_000

_local = threading.local()
_limit_lock = threading.Lock()
_start_lock = threading.Lock()
_active = 0
_saved_limit = 0


def on_deep_stack() -> bool:
    """True on a :func:`deep_stack` worker thread."""
    return bool(getattr(_local, "deep", False))


def _raise_limit() -> None:
    """The recursion limit is process-wide: raise it while any deep run is active."""
    global _active, _saved_limit
    with _limit_lock:
        if _active == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, RECURSION_LIMIT))
        _active += 1


def _restore_limit() -> None:
    global _active
    with _limit_lock:
        _active -= 1
        if _active == 0:
            sys.setrecursionlimit(_saved_limit)


def run_deep(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` on a deep-stack worker thread; its result or its exception.

    The caller's context variables (e.g. NumPy's ``errstate``) go with it.
    """
    if on_deep_stack():
        return fn(*args, **kwargs)
    result: list[R] = []
    error: list[BaseException] = []
    ctx = contextvars.copy_context()

    def work() -> None:
        _local.deep = True
        try:
            result.append(ctx.run(fn, *args, **kwargs))
        except BaseException as e:  # handed to the caller, re-raised there
            error.append(e)

    worker = threading.Thread(target=work, name="backprop-deep-stack", daemon=True)
    _raise_limit()
    try:
        with _start_lock:  # the stack size is process-wide too: set it for this one start
            old = threading.stack_size()
            try:
                threading.stack_size(STACK_BYTES)
                worker.start()
            except (RuntimeError, MemoryError):  # no address space for it: run here, at the usual depth
                worker = None
            finally:
                threading.stack_size(old)
        if worker is not None:
            worker.join()
    finally:
        _restore_limit()
    if worker is None:
        return fn(*args, **kwargs)
    if error:
        raise error[0].with_traceback(error[0].__traceback__)
    return result[0]


def deep_stack(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run by :func:`run_deep`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_deep(fn, *args, **kwargs)

    return wrapper

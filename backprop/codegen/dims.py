"""``--dims n=3,m=5``: parsed strictly, and sized against the machine before anything is allocated.

Sizes come from the command line, so they are checked like any untrusted
number: ASCII digits only, a bounded length (Python refuses to convert
strings past 4,300 digits), and the memory the network's arrays would take at
those sizes -- estimated from the shapes before one array exists -- must fit
in the memory available.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping

import sympy

from backprop.language.expression import suggest
from backprop.support.errors import UsageError

_ITEM = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*(\S+)\s*")
#: No dim is larger than this (a trillion examples would not fit in any memory anyway).
MAX_DIM = 10**12
#: Arrays per value the estimate counts: the value, its gradient, a working copy.
COPIES = 3


def parse_dims(text: str, option: str = "--dims") -> dict[str, int]:
    """``n=3,m=5`` -> {"n": 3, "m": 5}; UsageError naming the bad item."""
    dims: dict[str, int] = {}
    if not text.strip():
        return dims
    for item in text.split(","):
        if not item.strip():
            raise UsageError(f"{option}: an empty item between commas in {_short(text)!r} "
                             "(expected NAME=SIZE items, e.g. n=3,m=5)")
        m = _ITEM.fullmatch(item)
        if not m:
            raise UsageError(f"{option}: expected NAME=SIZE items separated by commas (e.g. n=3,m=5), "
                             f"got {_short(item.strip())!r}")
        name, size = m.groups()
        digits = size.lstrip("0")
        if not re.fullmatch(r"[0-9]+", size) or not digits:
            raise UsageError(f"{option}: {name} must be a positive integer, got {_short(size)!r}")
        if len(digits) > len(str(MAX_DIM)) or int(digits) > MAX_DIM:
            raise UsageError(f"{option}: {name}={_short(size)} is too large (a dim is at most {MAX_DIM:.0e}, "
                             "and its arrays must fit in memory)")
        if name in dims:
            raise UsageError(f"{option}: {name} is given twice")
        dims[name] = int(digits)
    return dims


def _short(s: str) -> str:
    """A user's string, cut to a readable length (a 5,000-digit number is named by its length)."""
    return s if len(s) <= 24 else f"{s[:12]}...({len(s)} characters)"


def check_known_dims(given: dict[str, int], known: list[str]) -> None:
    """UsageError for a --dims name the network does not have, with the closest one."""
    unknown = [n for n in given if n not in known]
    if unknown:
        n = unknown[0]
        raise UsageError(f"--dims: unknown dimension {n!r}{suggest(n, known)} "
                         f"(this network's dims: {', '.join(known) or 'none'})")


def available_memory() -> int:
    """Bytes this process can expect to allocate: MemAvailable, the physical memory, a cgroup limit (the least)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit.isdigit():
            found.append(int(limit))
    except OSError:
        pass
    return min(found) if found else 2**63


def entries(shape: Iterable[object], dims: Mapping[str, int]) -> int:
    """How many numbers an array of a symbolic shape (dims, integers, expressions of dims such as
    ``T*d`` or ``n + k``) holds at ``dims``."""
    def size(d: object) -> int:
        e = sympy.sympify(d)
        return int(e.xreplace({s: dims[s.name] for s in e.free_symbols}))

    return math.prod(size(d) for d in shape)


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


def estimate_bytes(shapes: Iterable[Iterable[object]], dims: Mapping[str, int], itemsize: int = 8,
                   copies: int = COPIES) -> int:
    """About what the arrays of these shapes take at ``dims``: entries × itemsize × ``copies``."""
    return sum(entries(s, dims) for s in shapes) * itemsize * copies


def check_memory(shapes: Iterable[Iterable[object]], dims: Mapping[str, int], given: Mapping[str, int],
                 what: str = "the network's arrays", itemsize: int = 8, copies: int = COPIES) -> None:
    """UsageError, before anything is allocated, when the arrays at ``dims`` would not fit in memory.

    The message names the largest dim (the one to make smaller) and the estimate.
    """
    need = estimate_bytes(list(shapes), dims, itemsize, copies)
    have = available_memory()
    if need <= have:
        return
    big = max(dims, key=lambda k: dims[k])
    origin = "--dims " if big in given else "dim "
    raise UsageError(f"{origin}{big}={dims[big]}: {what} would take about {fmt_bytes(need)}, more than the "
                     f"{fmt_bytes(have)} of memory available; use smaller sizes")


def network_shapes(d: object) -> list[tuple[object, ...]]:
    """The shapes of a derivation's inputs, params and forward values (each with a gradient counted by COPIES)."""
    model = d.model  # type: ignore[attr-defined]
    shapes = [tuple(x.shape) for x in model.decls.values()]
    shapes += [tuple(e.shape) for e in d.equations]  # type: ignore[attr-defined]
    return shapes


def check_sizes(target: object, given: Mapping[str, int], default: int) -> None:
    """:func:`check_memory` for a derivation or a generated module, the dims not given at ``default``.

    A module lists only its inputs and params (not the forward values), so
    those count three times over.
    """
    if hasattr(target, "SHAPES"):
        shapes, copies = list(target.SHAPES.values()), 3 * COPIES  # type: ignore[attr-defined]
        known = list(target.DIMS)  # type: ignore[attr-defined]
    else:
        shapes, copies = network_shapes(target), COPIES
        known = list(target.model.dims)  # type: ignore[attr-defined]
    check_memory(shapes, {k: given.get(k, default) for k in known}, given, copies=copies)

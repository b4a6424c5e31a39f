"""Resident-memory growth of one call, for every implementation alike, in a fresh process.

tracemalloc (used for the targets) sees only NumPy's and Python's
allocations, so it cannot measure PyTorch or JAX. This second measure can: a
child process builds the implementation, warms it up (JAX compiles), resets
the kernel's peak-RSS mark (``/proc/self/clear_refs``), and reports the peak
resident set during one call minus the resident set just before it.

glibc's allocator keeps freed memory for reuse, which would hide the
working memory of a warmed-up call; the child therefore runs with a fixed
mmap threshold of 64 KiB (``MALLOC_MMAP_THRESHOLD_``), so every block at
least that large is mapped for the call and unmapped after it. Blocks
below that size are reused from the heap and go unseen: the figure is a lower
bound that is close for cases with large arrays and says little for tiny ones.
Linux only; elsewhere the figure is absent.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from .cases import CASES
from .impls import by_name

ROOT = Path(__file__).resolve().parent.parent
MMAP_THRESHOLD = 64 * 1024


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _child(case_name: str, impl_name: str) -> int:
    case = CASES[case_name]
    params, inputs = case.data(0)
    prepared = by_name(impl_name).build(case, params, inputs)
    prepared.call()
    prepared.call()
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    out = prepared.call()
    peak = _status("VmHWM")
    del out
    return peak - before


def supported() -> bool:
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/clear_refs")


def rss_growth(case_name: str, impl_name: str) -> int | None:
    """Peak RSS growth of one warmed-up call, in bytes (None if it cannot be measured here)."""
    if not supported():
        return None
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-m", "bench.memory", case_name, impl_name],
                         env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return int(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(_child(sys.argv[1], sys.argv[2]))

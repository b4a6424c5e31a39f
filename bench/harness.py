"""Agreement first, then interleaved timing, then peak memory -- for one case.

Timing: every implementation runs a short burst of calls (sized to about
``burst`` seconds), all implementations take turns within a round, the order
rotates from round to round, and the garbage collector is off during a burst
(as in :mod:`timeit`). A ratio to the reference is taken within each round,
so drifts in clock speed or machine load hit both sides of the ratio; the
reported numbers are medians over rounds.

Peak memory: for implementations whose arrays are NumPy's, :mod:`tracemalloc`
sees every array buffer (NumPy reports its allocations to it), so the peak
of traced memory during one call, above what was allocated before it, is the
exact working memory of that call, results included. A second, coarser
measure that covers PyTorch and JAX too is in :mod:`bench.memory`.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cases import Case
from .impls import REFERENCE, Implementation, NotApplicableError, Prepared
from .memory import rss_growth

#: Agreement tolerance with the hand-written reference (float64).
TOLERANCE = 1e-8


@dataclass
class ImplResult:
    """What one implementation did on one case."""

    name: str
    label: str
    agreement: float  # worst relative error of loss or any gradient vs the reference
    agrees: bool
    times: list[float] = field(default_factory=list)  # seconds per call, one per round
    ratios: list[float] = field(default_factory=list)  # time / reference time, same round
    calls_per_burst: int = 0
    peak_bytes: int | None = None  # tracemalloc, NumPy-based implementations
    rss_bytes: int | None = None  # RSS growth in a fresh process (bench.memory), every implementation
    compile_seconds: float | None = None
    threads: str = ""

    @property
    def median_time(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def median_ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


@dataclass
class CaseResult:
    """Every implementation's result on one case."""

    name: str
    title: str
    dims: dict[str, int]
    impls: list[ImplResult]
    left_out: dict[str, str] = field(default_factory=dict)  # implementations that cannot take part, and why

    def get(self, name: str) -> ImplResult | None:
        return next((r for r in self.impls if r.name == name), None)

    @property
    def disagreeing(self) -> list[str]:
        return [r.name for r in self.impls if not r.agrees]


def relative_error(got: tuple[float, dict], want: tuple[float, dict]) -> float:
    """Worst of ``max|got - want| / max|want|`` over the loss and every gradient.

    A missing or misshapen gradient counts as an infinite error.
    """
    (loss, grads), (ref_loss, ref_grads) = got, want
    worst = abs(loss - ref_loss) / max(abs(ref_loss), np.finfo(float).tiny)
    if set(grads) != set(ref_grads):
        return float("inf")
    for name, ref in ref_grads.items():
        g, r = np.asarray(grads[name], dtype=float), np.asarray(ref, dtype=float)
        if g.shape != r.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(r))), np.finfo(float).tiny)
        worst = max(worst, float(np.max(np.abs(g - r))) / scale)
    return worst


def check_agreement(prepared: dict[str, Prepared], tolerance: float = TOLERANCE) -> dict[str, float]:
    """Each implementation's worst relative error against the reference's result."""
    ref = prepared[REFERENCE]
    want = ref.to_numpy(ref.call())
    return {name: relative_error(p.to_numpy(p.call()), want) for name, p in prepared.items()}


def _per_call(fn: Callable[[], Any], budget: float) -> float:
    """A rough time per call: repeat until ``budget`` seconds have passed."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / n


def interleaved_times(
    calls: dict[str, Callable[[], Any]], rounds: int, burst: float
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call, per implementation and round; and the calls per burst."""
    for fn in calls.values():
        fn()  # warm caches, allocator and lazy initialisation
    counts = {name: max(1, round(burst / _per_call(fn, burst / 2))) for name, fn in calls.items()}
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        gc.collect()
        gc.disable()
        try:
            for name in order:
                fn, k = calls[name], counts[name]
                start = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[name].append((time.perf_counter() - start) / k)
        finally:
            gc.enable()
    return samples, counts


def peak_traced_bytes(fn: Callable[[], Any]) -> int:
    """Peak NumPy/Python memory one call allocates beyond what existed before it."""
    fn()
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - before


def run_case(
    case: Case,
    implementations: list[Implementation],
    rounds: int = 20,
    burst: float = 0.05,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = lambda s: None,
    rss: bool = False,
) -> CaseResult:
    """Check agreement, then time and measure the implementations that agree (those that cannot take
    part in the case are left out of its result, named in ``left_out``)."""
    params, inputs = case.data(seed)
    prepared: dict[str, Prepared] = {}
    left_out: dict[str, str] = {}
    for impl in implementations:
        log(f"  {case.name}: preparing {impl.name}")
        try:
            prepared[impl.name] = impl.build(case, params, inputs)
        except NotApplicableError as exc:
            log(f"  {case.name}: {impl.name} left out: {exc}")
            left_out[impl.name] = str(exc)
    implementations = [impl for impl in implementations if impl.name in prepared]
    errors = check_agreement(prepared, tolerance)
    results = {
        impl.name: ImplResult(
            impl.name, impl.label, errors[impl.name], errors[impl.name] <= tolerance,
            compile_seconds=prepared[impl.name].compile_seconds, threads=prepared[impl.name].threads,
        )
        for impl in implementations
    }
    timed = {name: p.call for name, p in prepared.items() if results[name].agrees}
    for name in set(prepared) - set(timed):
        log(f"  {case.name}: {name} DISAGREES with the reference (relative error {errors[name]:.2e}); not timed")
    if REFERENCE in timed:
        log(f"  {case.name}: timing {', '.join(timed)} ({rounds} rounds)")
        samples, counts = interleaved_times(timed, rounds, burst)
        for name, times in samples.items():
            res = results[name]
            res.times, res.calls_per_burst = times, counts[name]
            res.ratios = [t / r for t, r in zip(times, samples[REFERENCE])]
    for impl in implementations:
        if impl.numpy_memory and results[impl.name].agrees:
            results[impl.name].peak_bytes = peak_traced_bytes(prepared[impl.name].call)
    if rss:
        for impl in implementations:
            if results[impl.name].agrees:
                results[impl.name].rss_bytes = rss_growth(case.name, impl.name)
    return CaseResult(case.name, case.title, dict(case.dims), [results[i.name] for i in implementations], left_out)

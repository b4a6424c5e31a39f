"""Run records -> the Markdown tables and the plot in ``docs/``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .impls import REFERENCE

#: Targets for the generated module, as ratios to hand-written NumPy in the same run.
TIME_TARGET = 1.10
MEMORY_TARGET = 1.10
#: The generated JAX module against the hand-written ``jax.jit(jax.value_and_grad(...))``: the
#: same compiler on the same program should tie.
JAX_TIME_TARGET = 1.05
#: Implementations compiled on their first call, whose compile time is reported apart.
JIT_IMPLS = ("jax", "generated_jax")
HEADER = "<!-- written by `python -m bench`; do not edit by hand -->"


def fmt_time(seconds: float | None) -> str:
    """A duration with a unit that keeps three significant digits."""
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def kernel(run: dict[str, Any]) -> str:
    """Which BLAS ran, from threadpoolctl: internal_api, architecture, threads."""
    blas = [b for b in run["blas"] if b.get("user_api") == "blas"]
    if not blas:
        return "unknown (threadpoolctl not installed)"
    return "; ".join(f"{b['internal_api']} {b.get('version') or ''}, {b['architecture']} kernel, {b['num_threads']} threads"
                     for b in blas)


def settings(run: dict[str, Any]) -> str:
    env = run["env"]
    return ", ".join(f"`{k}={v}`" if v is not None else f"`{k}` unset" for k, v in env.items())


def _impl_names(run: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["name"], i["label"]) for i in run["implementations"]]


def _get(case: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in case["impls"] if r["name"] == name), None)


def memory_ratio(case: dict[str, Any], name: str = "generated") -> float | None:
    got, ref = _get(case, name), _get(case, REFERENCE)
    if not got or not ref or got["peak_bytes"] is None or not ref["peak_bytes"]:
        return None
    return got["peak_bytes"] / ref["peak_bytes"]


def jax_ratio(case: dict[str, Any]) -> list[float]:
    """Per round, the generated JAX module's time over the hand-written JAX's (both ratios share the round's reference)."""
    gen, ref = _get(case, "generated_jax"), _get(case, "jax")
    if not gen or not ref or not gen["agrees"] or not ref["agrees"]:
        return []
    return [g / r for g, r in zip(gen["ratios"], ref["ratios"])]


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def _time_cell(res: dict[str, Any] | None) -> str:
    if res is None:
        return "—"
    if not res["agrees"]:
        return f"disagrees ({res['agreement']:.1e})"
    return f"{fmt_time(res['median_time'])} ({res['median_ratio']:.2f}×)"


def _memory_cell(res: dict[str, Any] | None) -> str:
    if res is None:
        return "—"
    rss = res.get("rss_bytes")
    return fmt_bytes(res["peak_bytes"]) + ("" if rss is None else f" (RSS {fmt_bytes(rss)})")


def summary_table(runs: list[dict[str, Any]]) -> list[str]:
    """The generated module against the targets, per BLAS configuration and case."""
    lines = [
        "| BLAS configuration | case | time ratio (median, quartiles) | peak-memory ratio | targets met |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        for case in run["cases"]:
            gen = _get(case, "generated")
            if gen is None or not gen["ratios"]:
                lines.append(f"| {run['label']} | {case['title']} | — | — | no generated module |")
                continue
            lo, hi = _quartiles(gen["ratios"])
            mem = memory_ratio(case)
            ok = gen["median_ratio"] <= TIME_TARGET and mem is not None and mem <= MEMORY_TARGET
            mem_text = "—" if mem is None else f"{mem:.2f}×"
            lines.append(
                f"| {run['label']} | {case['title']} | {gen['median_ratio']:.2f}× ({lo:.2f}–{hi:.2f}) "
                f"| {mem_text} | {'yes' if ok else '**no**'} |"
            )
    return lines


def run_section(run: dict[str, Any]) -> list[str]:
    """Tables for one BLAS configuration: time, memory, compile, agreement."""
    impls = _impl_names(run)
    out = [
        f"## {run['label'] or 'run'}",
        "",
        f"Environment: {settings(run)}. Kernel that ran (threadpoolctl): {kernel(run)}.",
        f"Load average (1 min) before / after the run: {run.get('load_before')} / {run.get('load_after')} "
        f"on {run['machine']['cores']} cores.",
        f"Threads: {', '.join(sorted({r['threads'] for c in run['cases'] for r in c['impls'] if r['threads']}))}.",
        "",
        "Median time per call of loss plus all gradients, and in parentheses the median over rounds of "
        "its ratio to hand-written NumPy in the same round:",
        "",
        "| case | " + " | ".join(label for _, label in impls) + " |",
        "|---|" + "---|" * len(impls),
    ]
    for case in run["cases"]:
        out.append(f"| {case['title']} | " + " | ".join(_time_cell(_get(case, n)) for n, _ in impls) + " |")
    labels = dict(impls)
    left = [f"{labels.get(n, n)} on {case['title']}: {why}"
            for case in run["cases"] for n, why in case.get("left_out", {}).items()]
    if left:
        out += ["", "Left out (cannot take part in the case, so — above): " + "; ".join(left) + "."]
    out += [
        "",
        "Peak memory of one call: tracemalloc (NumPy-based implementations; the targets use it), and in "
        "parentheses the resident-memory growth in a fresh process (every implementation; a lower bound, see "
        "above), with the generated / hand-written ratio of the tracemalloc figures:",
        "",
        "| case | " + " | ".join(lab for _, lab in impls) + " | generated / hand-written |",
        "|---|" + "---|" * (len(impls) + 1),
    ]
    for case in run["cases"]:
        cells = [_memory_cell(_get(case, n)) for n, _ in impls]
        mem = memory_ratio(case)
        out.append(f"| {case['title']} | " + " | ".join(cells) + f" | {'—' if mem is None else f'{mem:.2f}×'} |")
    jit = [(n, lab) for n, lab in impls if n in JIT_IMPLS]
    if jit:
        out += ["", "JAX: first call (trace + compile + one run), reported apart from the timings above, and the "
                "steady-state call:", "",
                "| case | " + " | ".join(f"{lab}: first call | {lab}: steady state" for _, lab in jit) + " |",
                "|---|" + "---|---|" * len(jit)]
        for case in run["cases"]:
            cells = [(f"{fmt_time(r['compile_seconds'])} | {fmt_time(r['median_time'])}" if (r := _get(case, n))
                      else "— | —") for n, _ in jit]
            out.append(f"| {case['title']} | " + " | ".join(cells) + " |")
    if any(jax_ratio(c) for c in run["cases"]):
        out += ["", f"The generated JAX module (its jitted `loss_and_grads`) against `jax.jit(jax.value_and_grad(...))` "
                f"of the same network written by hand, time ratio per round (target ≤ {JAX_TIME_TARGET:.2f}×):", "",
                "| case | generated (JAX) / JAX jit, median (quartiles) |", "|---|---|"]
        for case in run["cases"]:
            ratios = jax_ratio(case)
            if ratios:
                lo, hi = _quartiles(ratios)
                out.append(f"| {case['title']} | {statistics.median(ratios):.2f}× ({lo:.2f}–{hi:.2f}) |")
    out += ["", "Agreement with hand-written NumPy before timing (worst relative error of the loss or any gradient; "
            "tolerance 1e-8):", "",
            "| case | " + " | ".join(lab for _, lab in impls) + " |", "|---|" + "---|" * len(impls)]
    for case in run["cases"]:
        cells = [("—" if (r := _get(case, n)) is None else f"{r['agreement']:.1e}") for n, _ in impls]
        out.append(f"| {case['title']} | " + " | ".join(cells) + " |")
    return out + [""]


def markdown(runs: list[dict[str, Any]], plot_name: str | None = "benchmarks.png") -> str:
    """The whole benchmark page."""
    first = runs[0]
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    lines = [
        HEADER,
        "# Benchmarks: generated code against hand-written NumPy, PyTorch, JAX and autograd",
        "",
        "Regenerate with `python -m bench` (see the README). Every case is checked first: each "
        "implementation's loss and gradients must agree with the hand-written NumPy reference to a relative "
        "1e-8 in float64; only then is it timed. Implementations take turns in short bursts "
        f"(about {first['burst'] * 1000:.0f} ms of calls each, {first['rounds']} rounds, order rotated every round, "
        "garbage collector off during a burst); each round gives a ratio to the reference measured within that "
        "round, and the tables show medians over rounds.",
        "",
        f"Machine: {first['machine']['cpu']}, {first['machine']['cores']} cores. Versions: {versions}.",
        "",
        "Peak memory is measured with tracemalloc, which NumPy reports every array buffer to: the peak of traced "
        "memory during one call minus what was allocated before it (results included). PyTorch and JAX allocate "
        "outside tracemalloc's view; for them, and for every other implementation alike, a second figure is the "
        "growth of the resident set during one warmed-up call in a fresh process (`bench/memory.py`: peak RSS "
        "reset through /proc/self/clear_refs, glibc's mmap threshold fixed at 64 KiB so that large blocks are "
        "returned to the system after each call). It misses blocks under 64 KiB reused from the heap, so it is a "
        "lower bound: close on the large cases, uninformative on the tiny ones.",
        "",
        f"## Targets: the generated module against hand-written NumPy (time ≤ {TIME_TARGET:.2f}×, "
        f"peak memory ≤ {MEMORY_TARGET:.2f}×)",
        "",
        *summary_table(runs),
        "",
    ]
    if plot_name:
        lines += [f"![time ratio to hand-written NumPy]({plot_name})", ""]
    for run in runs:
        lines += run_section(run)
    return "\n".join(lines).rstrip() + "\n"


def targets_met(runs: list[dict[str, Any]]) -> bool:
    """Whether the generated module meets both targets on every case of every run."""
    for run in runs:
        for case in run["cases"]:
            gen, mem = _get(case, "generated"), memory_ratio(case)
            if not gen or gen["median_ratio"] is None or gen["median_ratio"] > TIME_TARGET:
                return False
            if mem is None or mem > MEMORY_TARGET:
                return False
    return True


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars of the median time ratio to hand-written NumPy, one panel per BLAS configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.8), squeeze=False, sharey=True)
    for ax, run in zip(axes[0], runs):
        impls = _impl_names(run)
        width = 0.8 / len(impls)
        for j, (name, label) in enumerate(impls):
            ratios = [(_get(c, name) or {}).get("median_ratio") for c in run["cases"]]
            xs = [i + (j - (len(impls) - 1) / 2) * width for i in range(len(run["cases"]))]
            bars = ax.bar(xs, [r or 0 for r in ratios], width, label=label)
            for bar, r in zip(bars, ratios):
                if r:
                    ax.annotate(f"{r:.2f}", (bar.get_x() + bar.get_width() / 2, r), ha="center", va="bottom",
                                fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(TIME_TARGET, color="red", lw=0.8, ls="--", label=f"target {TIME_TARGET:.2f}×")
        ax.set_yscale("log")
        ax.set_xticks(range(len(run["cases"])))
        ax.set_xticklabels([c["name"] for c in run["cases"]], fontsize=8)
        ax.set_title(f"{run['label']}\n{kernel(run)}", fontsize=8)
        ax.set_ylabel("time / hand-written NumPy (median over rounds)")
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

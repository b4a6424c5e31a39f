"""How derivation and code generation scale with depth: ReLU MLPs of 10 to 100 layers.

Each measurement runs in a fresh Python process (the packages already
imported, so import time is excluded) so that SymPy's caches hold nothing from
an earlier, shallower network: what is timed is what a user waits for. A
depth is measured ``repeats`` times and the median is reported.

- **derive**: parse the spec text and run the chain rule (``backprop.parse_spec``
  then ``backprop.get_derivation``);
- **codegen**: ``codegen.generate`` of the same spec, end to end (it derives
  again inside, so it includes the derivation).

Targets: 50 layers under 2 s; 100 layers at most 2.2× the time of 50.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

DEPTHS = (10, 25, 50, 100)
LIMIT_50 = 2.0
GROWTH_LIMIT = 2.2
ROOT = Path(__file__).resolve().parent.parent


def relu_mlp_spec(layers: int) -> str:
    """A spec with ``layers`` weight layers: ``layers - 1`` ReLU hidden layers, a softmax output."""
    if layers < 2:
        raise ValueError("a ReLU MLP here has at least one hidden layer and the output layer")
    lines = [f"# {layers - 1} ReLU hidden layers and a softmax output layer (generated for the depth benchmark).",
             "input X[n, m]", "input Y[c, m] onehot"]
    for i in range(1, layers + 1):
        rows, cols = ("c" if i == layers else "h"), ("n" if i == 1 else "h")
        lines += [f"param W{i}[{rows}, {cols}]", f"param b{i}[{rows}, 1]"]
    prev = "X"
    for i in range(1, layers):
        lines.append(f"A{i} = relu(W{i} @ {prev} + b{i})")
        prev = f"A{i}"
    lines.append(f"loss = -sum(Y * log_softmax(W{layers} @ {prev} + b{layers}, axis=0)) / m")
    return "\n".join(lines) + "\n"


def _child(layers: int, stage: str) -> float:
    """Run in the child process: seconds for one stage at one depth."""
    import time

    import backprop
    from backprop import codegen  # every stage imported before the clock starts

    parse_spec, get_derivation = backprop.parse_spec, backprop.get_derivation  # the API is lazy (PEP 562)
    text = relu_mlp_spec(layers)
    name = f"relu_mlp_{layers}"
    if stage == "derive":
        start = time.perf_counter()
        get_derivation(parse_spec(text, path=f"{name}.spec", name=name))
        return time.perf_counter() - start
    start = time.perf_counter()
    codegen.generate(parse_spec(text, path=f"{name}.spec", name=name))
    return time.perf_counter() - start


def _time_in_child(layers: int, stage: str) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, "-m", "bench.derive_speed", "--child", str(layers), stage],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def codegen_available() -> bool:
    try:
        from backprop import codegen
    except ImportError:
        return False
    return callable(getattr(codegen, "generate", None))


def measure(depths: tuple[int, ...] = DEPTHS, repeats: int = 9) -> dict[str, Any]:
    """Median seconds per stage and depth, each from ``repeats`` fresh processes.

    The repeats go round all depths in turn, so a burst of load on the machine
    lands on every depth alike rather than on one of them.
    """
    stages = ["derive"] + (["codegen"] if codegen_available() else [])
    samples: dict[tuple[int, str], list[float]] = {(d, s): [] for d in depths for s in stages}
    for r in range(repeats):
        for layers in depths:
            for stage in stages:
                samples[layers, stage].append(_time_in_child(layers, stage))
        print(f"derive_speed: round {r + 1} of {repeats} done", file=sys.stderr, flush=True)
    rows = []
    for layers in depths:
        row: dict[str, Any] = {"layers": layers}
        for stage in stages:
            row[stage] = statistics.median(samples[layers, stage])
            row[stage + "_samples"] = samples[layers, stage]
        rows.append(row)
    return {"stages": stages, "rows": rows, "repeats": repeats, "load": _load()}


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _row(result: dict[str, Any], layers: int) -> dict[str, Any] | None:
    return next((r for r in result["rows"] if r["layers"] == layers), None)


def checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(stage, statement, met) for each target that the measured depths allow checking."""
    out = []
    r50, r100 = _row(result, 50), _row(result, 100)
    for stage in result["stages"]:
        if r50:
            out.append((stage, f"50 layers: {r50[stage]:.2f} s (target < {LIMIT_50:.0f} s)", r50[stage] < LIMIT_50))
        if r50 and r100:
            growth = r100[stage] / r50[stage]
            out.append((stage, f"100 / 50 layers: {growth:.2f}× (target ≤ {GROWTH_LIMIT}×)", growth <= GROWTH_LIMIT))
    return out


def targets_met(result: dict[str, Any]) -> bool:
    return all(ok for _, _, ok in checks(result))


def markdown(result: dict[str, Any], plot_name: str | None = "derive_speed.png") -> str:
    stages = result["stages"]
    heads = {"derive": "derive (parse + chain rule)", "codegen": "codegen (generate, end to end)"}
    lines = [
        "<!-- written by `python -m bench`; do not edit by hand -->",
        "# Derivation and code-generation speed at depth",
        "",
        "ReLU perceptrons with L weight layers (L − 1 ReLU hidden layers, softmax cross-entropy output), "
        "generated programmatically (`bench.derive_speed.relu_mlp_spec`). Each time is the median of "
        f"{result['repeats']} fresh Python processes (imports excluded, SymPy caches empty), the repeats taken "
        f"round all depths in turn; 1-minute load average at the end: {result.get('load')} on {os.cpu_count()} cores.",
        "",
        "| layers | " + " | ".join(heads[s] for s in stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for row in result["rows"]:
        lines.append(f"| {row['layers']} | " + " | ".join(f"{row[s]:.3f} s" for s in stages) + " |")
    lines += ["", "Targets:", ""]
    lines += [f"- {heads[s]}: {text} — {'met' if ok else '**missed**'}" for s, text, ok in checks(result)]
    if plot_name:
        lines += ["", f"![time against depth]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["layers"] for r in result["rows"]]
    for stage in result["stages"]:
        ax.plot(xs, [r[stage] for r in result["rows"]], "o-", label=stage)
    ax.axhline(LIMIT_50, color="red", ls="--", lw=0.8, label=f"{LIMIT_50:.0f} s (target at 50 layers)")
    ax.set_xlabel("layers")
    ax.set_ylabel("seconds (median of fresh processes)")
    ax.set_xticks(xs)
    ax.legend(fontsize=8)
    ax.set_title("derivation and code generation against depth", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: dict[str, Any], out: Path) -> None:
    plot(result, out / "derive_speed.png")
    (out / "derive_speed.md").write_text(markdown(result), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(f"{_child(int(argv[1]), argv[2]):.6f}")
        return 0
    out = Path(argv[0]) if argv else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    result = measure()
    write(result, out)
    print(markdown(result, plot_name=None))
    return 0 if targets_met(result) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long one ``backprop verify`` of one claim takes from the shell: start-up, imports, judging.

A student or a grading script checking one answer pays for a whole Python process each time, so
what matters is the wall time of the command, not the judging alone. Measured, each the median of
``--repeats`` fresh processes (the commands take turns, the order rotated every round, so that a
load on the machine falls on all of them alike):

- **verify**: ``python -m backprop verify two_layer_sigmoid 'dW1 = dZ @ X.T'``, with Python's
  bytecode cached as an installed package has it;
- **verify, backprop compiled every run**: the same with ``PYTHONDONTWRITEBYTECODE=1`` and no
  cached bytecode for backprop (NumPy's and SymPy's still cached): an environment that never
  writes ``__pycache__``, as this machine's default one;
- the floor any run pays: ``python -c 'import numpy, sympy'``; the same with the imported objects
  frozen out of the garbage collector before exit, as the command line does (a plain interpreter
  spends about 0.05 s at exit collecting them); and ``python -c pass``;
- where the time goes, inside one process: importing NumPy and SymPy, importing the stages
  ``verify`` uses, and running it (the derivation, the random points, the numeric and exact checks).

The bytecode lives in a temporary ``PYTHONPYCACHEPREFIX``, so nothing is written into the tree.
``python -m bench.verify_startup`` prints the table and writes it into ``docs/benchmarks.md`` and
``docs/grading.md`` (between their ``<!-- verify-startup -->`` markers; ``python -m bench`` keeps
the block when it rewrites ``docs/benchmarks.md``). Target: the command answers in under 0.5 s on
2 cores. Exit status 1 when it does not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "grading.md")
MARK = "verify-startup"
TARGET_SECONDS = 0.5
SPEC, CLAIM = "two_layer_sigmoid", "dW1 = dZ @ X.T"

#: what is timed -> its command line (``python`` is this interpreter)
COMMANDS: dict[str, list[str]] = {
    "verify": [sys.executable, "-m", "backprop", "verify", SPEC, CLAIM],
    "verify_compiled": [sys.executable, "-m", "backprop", "verify", SPEC, CLAIM],
    "floor": [sys.executable, "-c", "import numpy, sympy"],
    "floor_frozen": [sys.executable, "-c", "import numpy, sympy, gc; gc.freeze()"],
    "python": [sys.executable, "-c", "pass"],
}


def _env(prefix: Path, write: bool) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(prefix))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _cached(prefix: Path) -> Path:
    """Where the bytecode of backprop's own modules is cached under ``prefix`` (it mirrors the tree)."""
    return prefix / (ROOT / "backprop").resolve().relative_to(ROOT.anchor)


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def time_commands(repeats: int, tmp: Path) -> dict[str, list[float]]:
    """Wall seconds of each command, ``repeats`` fresh processes each, taking turns."""
    warm, cold = tmp / "warm", tmp / "cold"
    for prefix in (warm, cold):  # write the bytecode of everything the commands import
        _run(COMMANDS["verify"], _env(prefix, write=True))
    shutil.rmtree(_cached(cold))  # backprop's own: compiled from source on every run from here on
    envs = {name: _env(cold, write=False) if name == "verify_compiled" else _env(warm, write=True) for name in COMMANDS}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for i in range(repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            times[name].append(_run(COMMANDS[name], envs[name]))
    if _cached(cold).exists():
        raise RuntimeError("backprop's bytecode was written during the uncached runs: they were not uncached")
    return times


def _stages_child() -> dict[str, float]:
    """Run in a child process: seconds of each stage of one verify, in this process."""
    start = time.perf_counter()
    import numpy  # noqa: F401
    import sympy  # noqa: F401

    floor = time.perf_counter()
    from backprop.cli import build_parser, main

    build_parser("verify")  # imports what the verify subcommand uses, as main() does first
    imported = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["verify", SPEC, CLAIM])
    done = time.perf_counter()
    if status != 0:
        raise RuntimeError(f"backprop verify {SPEC} {CLAIM!r} exited {status}, expected 0 (correct)")
    return {"numpy_sympy": floor - start, "imports": imported - floor, "run": done - imported}


def time_stages(repeats: int, tmp: Path) -> dict[str, float]:
    """Median seconds of each stage over ``repeats`` child processes (bytecode cached)."""
    env = _env(tmp / "warm", write=True)
    runs = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-m", "bench.verify_startup", "--child"], check=True, env=env,
                           capture_output=True, text=True, cwd=ROOT)
        runs.append(json.loads(r.stdout))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def table(times: dict[str, list[float]], stages: dict[str, float]) -> str:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    n = len(times["verify"])
    ok = "met" if med["verify"] < TARGET_SECONDS else "MISSED"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        f"`backprop verify {SPEC} '{CLAIM}'` in a fresh process, median of {n} (quartiles), on "
        f"{os.cpu_count()} cores, 1-minute load average {load:.2f} at the end:",
        "",
        "| what | seconds |",
        "|:---|---:|",
        f"| `backprop verify`, one claim | **{med['verify']:.2f}** ({_quartiles(times['verify'])}; target < "
        f"{TARGET_SECONDS}: {ok}) |",
        f"| the same, backprop's modules compiled every run (no cached bytecode) | {med['verify_compiled']:.2f} "
        f"({_quartiles(times['verify_compiled'])}) |",
        f"| the floor: `python -c 'import numpy, sympy'` | {med['floor']:.2f} ({_quartiles(times['floor'])}) |",
        f"| the floor, exiting as `backprop` does (`gc.freeze()` first) | {med['floor_frozen']:.2f} "
        f"({_quartiles(times['floor_frozen'])}) |",
        f"| `python -c pass` | {med['python']:.2f} |",
        "",
        "Inside one process (medians; a process's start and exit are the rest):",
        "",
        "| stage | seconds |",
        "|:---|---:|",
        f"| importing NumPy and SymPy | {stages['numpy_sympy']:.3f} |",
        f"| importing the stages `verify` uses, building its parser | {stages['imports']:.3f} |",
        f"| judging the claim: derivation, random points, numeric and exact checks | {stages['run']:.3f} |",
    ])


def _quartiles(ts: list[float]) -> str:
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0], ts[0], ts[0]]
    return f"{q[0]:.2f}–{q[2]:.2f}"


def splice(doc: str, text: str) -> str:
    """``doc`` with the text between its verify-startup markers replaced by ``text``."""
    pattern = rf"(<!-- {MARK} -->\n)(?:.*?\n)?(<!-- /{MARK} -->)"
    if not re.search(pattern, doc, flags=re.S):
        raise ValueError(f"no <!-- {MARK} --> ... <!-- /{MARK} --> block")
    return re.sub(pattern, lambda m: m.group(1) + text + "\n" + m.group(2), doc, flags=re.S)


def block(doc: str) -> str | None:
    """The verify-startup section of ``doc`` (from its heading to its closing marker), or None."""
    m = re.search(rf"\n## [^\n]*\n(?:(?!\n## ).)*?<!-- /{MARK} -->\n", doc, flags=re.S)
    return m.group(0) if m else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.verify_startup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--no-write", action="store_true", help="print only; do not update the docs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_stages_child()))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        times = time_commands(args.repeats, Path(tmp))
        stages = time_stages(max(3, args.repeats // 3), Path(tmp))
    text = table(times, stages)
    print(text)
    if not args.no_write:
        for doc in DOCS:
            doc.write_text(splice(doc.read_text(encoding="utf-8"), text), encoding="utf-8")
    return 0 if statistics.median(times["verify"]) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())

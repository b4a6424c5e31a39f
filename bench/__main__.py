"""``python -m bench``: the whole benchmark, written to ``docs/``.

Runs :mod:`bench.run` in a child process once per BLAS configuration -- the
environment as it is, and with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
removed (they force a slower OpenBLAS kernel on these machines) -- then renders
``docs/benchmarks.md`` and ``docs/benchmarks.png``; then times derivation and
code generation at depth (:mod:`bench.derive_speed`) into
``docs/derive_speed.md`` and ``docs/derive_speed.png``. The start-up section
of ``docs/benchmarks.md`` is :mod:`bench.verify_startup`'s (``python -m
bench.verify_startup``): it is kept as it is when the page is rewritten.
Exit status 1 when an implementation disagrees with the reference or a target
is missed (the outputs are still written).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import derive_speed, report, verify_startup
from .cases import CASES
from .run import BLAS_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "as-is": "OpenBLAS settings as the machine sets them",
    "unset": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
}


def config_env(config: str) -> dict[str, str]:
    """The child's environment for one BLAS configuration (only the child's: ours is untouched)."""
    env = dict(os.environ)
    if config == "unset":
        for var in BLAS_VARIABLES:
            env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_config(config: str, args: argparse.Namespace) -> dict:
    """One child run of :mod:`bench.run`; its record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "bench.run", "--json", str(out), "--label", CONFIGS[config],
               "--rounds", str(args.rounds), "--burst", str(args.burst), "--cases", *args.cases]
        if not args.no_rss:
            cmd.append("--rss")
        if args.impls:
            cmd += ["--impls", *args.impls]
        subprocess.run(cmd, env=config_env(config), check=True, cwd=ROOT)
        return json.loads(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blas", choices=["both", *CONFIGS], default="both", help="BLAS configurations to run")
    parser.add_argument("--cases", nargs="*", default=[n for n in CASES if n != "tiny"], choices=sorted(CASES))
    parser.add_argument("--impls", nargs="*", default=None, help="implementations (default: every available one)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burst", type=float, default=0.03, help="seconds per burst of calls")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="directory for the tables and plots")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process RSS measurement")
    parser.add_argument("--skip-cases", action="store_true", help="only time derivation and code generation")
    parser.add_argument("--skip-derive", action="store_true", help="only run the cases")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    if not args.skip_cases:
        configs = list(CONFIGS) if args.blas == "both" else [args.blas]
        runs = [run_config(c, args) for c in configs]
        report.plot(runs, args.out / "benchmarks.png")
        page = args.out / "benchmarks.md"
        kept = verify_startup.block(page.read_text(encoding="utf-8")) if page.exists() else None
        page.write_text(report.markdown(runs) + (kept or ""), encoding="utf-8")
        print(report.markdown(runs, plot_name=None))
        if any(r["agrees"] is False for run in runs for c in run["cases"] for r in c["impls"]):
            print("bench: an implementation disagrees with the reference", file=sys.stderr)
            status = 1
        if not report.targets_met(runs):
            print("bench: the generated module misses a target", file=sys.stderr)
            status = 1
    if not args.skip_derive:
        result = derive_speed.measure()
        derive_speed.write(result, args.out)
        print(derive_speed.markdown(result))
        if not derive_speed.targets_met(result):
            print("bench: derivation speed misses a target", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

"""One benchmark run in this process, with the BLAS settings it was started with.

``python -m bench.run --json FILE`` writes the run's record (environment, BLAS
kernel, every case's results) as JSON; ``python -m bench`` starts it once per
BLAS configuration and renders the records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from typing import Any

from . import cases as cases_mod
from .cases import CASES
from .harness import CaseResult, run_case
from .impls import available

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_info() -> list[dict[str, Any]]:
    """Which BLAS kernel NumPy runs: threadpoolctl's internal_api, architecture, threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "architecture", "num_threads", "version", "prefix")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> float | None:
    """The 1-minute load average: a busy machine makes every timing suspect."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def versions() -> dict[str, str]:
    """Versions of everything whose speed is measured."""
    out = {"python": platform.python_version()}
    for dist in ("numpy", "sympy", "torch", "jax", "jaxlib", "autograd"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def case_record(result: CaseResult) -> dict[str, Any]:
    """A case result as JSON-ready data, medians included."""
    rec = asdict(result)
    for impl, res in zip(rec["impls"], result.impls):
        impl["median_time"], impl["median_ratio"] = res.median_time, res.median_ratio
    return rec


def collect(
    cases: list[cases_mod.Case],
    impl_names: list[str] | None = None,
    rounds: int = 20,
    burst: float = 0.05,
    label: str = "",
    log: Callable[[str], None] = lambda s: None,
    rss: bool = False,
) -> dict[str, Any]:
    """Run every case with every available implementation: the run's record."""
    impls = available(impl_names)
    record: dict[str, Any] = {
        "label": label,
        "env": {k: os.environ.get(k) for k in BLAS_VARIABLES},
        "blas": blas_info(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
        "load_before": _load(),
        "versions": versions(),
        "implementations": [{"name": i.name, "label": i.label} for i in impls],
        "rounds": rounds,
        "burst": burst,
        "cases": [],
    }
    for case in cases:
        log(f"{label or 'run'}: case {case.name}")
        record["cases"].append(case_record(run_case(case, impls, rounds, burst, log=log, rss=rss)))
    record["load_after"] = _load()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--json", required=True, help="where to write the run's record")
    parser.add_argument("--label", default="", help="name of this BLAS configuration")
    parser.add_argument("--cases", nargs="*", default=[c.name for c in cases_mod.reported_cases()], choices=sorted(CASES))
    parser.add_argument("--impls", nargs="*", default=None, help="implementations (default: every available one)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=float, default=0.05, help="seconds per burst of calls")
    parser.add_argument("--rss", action="store_true", help="also measure RSS growth per call in fresh processes")
    args = parser.parse_args(argv)
    record = collect(
        [CASES[c] for c in args.cases], args.impls, args.rounds, args.burst, args.label,
        rss=args.rss,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

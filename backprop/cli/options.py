"""Argument types shared by several subcommands, so a bad value is refused by argparse itself.

argparse turns an ``ArgumentTypeError`` into ``backprop CMD: error: argument --seed: ...`` with exit
status 2 before any work starts; a seed NumPy cannot take would otherwise end in a traceback deep in
the random generator.
"""

from __future__ import annotations

import argparse

#: NumPy seeds its generators from non-negative integers; 2**32 - 1 keeps every seed portable.
MAX_SEED = 2**32 - 1


def seed(text: str) -> int:
    """A random seed: an integer from 0 to MAX_SEED."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED}, got {text[:40]!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {text[:40]}")
    return value


def add_seed(p: argparse.ArgumentParser, help: str) -> None:
    """The --seed option, the same in every subcommand that draws random numbers."""
    p.add_argument("--seed", type=seed, default=0, metavar="S", help=help)


def add_backend(p: argparse.ArgumentParser, help: str) -> None:
    """The --backend option: the array library a generated module computes with."""
    p.add_argument("--backend", choices=("numpy", "jax"), default="numpy", help=help)


def require_backend(what: str, backend: str) -> None:
    """Before any work: JAX is an extra (``pip install 'backprop-toolkit[jax]'``), said in one line if missing."""
    if backend == "jax":
        from backprop.support.extras import require

        require(what, "jax")


def path(text: str) -> str:
    """A path option's value: never empty (``-o ''`` would otherwise mean "no file" and print instead)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text

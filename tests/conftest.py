"""Fixtures several test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def x64() -> Iterator[None]:
    """float64 in JAX for one test (the flag is global: restored after). Only JAX tests ask for it, and
    they import jax themselves (failing under CI, skipping elsewhere, when it is missing)."""
    import jax

    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)

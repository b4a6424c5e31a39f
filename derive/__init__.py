"""backprop's derivation side: spec language, symbolic model, chain rule, renderers."""

from __future__ import annotations

from . import ops  # noqa: F401  (registers every operation)
from .chain import derive as backpropagate
from .derivation import Derivation, Equation, Path, Step
from .errors import ShapeError, SpecError, UnsupportedError
from .model import Assign, Decl, Model, NetworkBuilder
from .parse import example_names, load, parse_spec
from .pipeline import get_derivation, get_model
from .pyfunc import network
from .verify import ClaimResult, VerifyReport, verify

__all__ = [
    "Assign", "Decl", "Model", "NetworkBuilder", "ShapeError", "SpecError", "UnsupportedError",
    "example_names", "load", "parse_spec", "get_derivation", "get_model", "backpropagate",
    "Derivation", "Equation", "Path", "Step",
    "verify", "VerifyReport", "ClaimResult",
    "network",
]

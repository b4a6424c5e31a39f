"""Verification: hand-derived gradients (claims) judged right or wrong, with a diagnosis."""

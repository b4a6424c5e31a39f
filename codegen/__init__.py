"""backprop code generation: NumPy modules from derivations, and gradient checks."""

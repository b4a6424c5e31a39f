"""Training with a generated module: data, the mini-batch loop, plots, gradient flow."""

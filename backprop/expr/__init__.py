"""Expressions: the IR nodes, the operation registry (one row per operation, all its forms), the printers, evaluation."""

"""Leaf utilities every stage uses: errors, escaping, files, names and notation, the deep stack.

They import nothing of backprop's outside this package.
"""

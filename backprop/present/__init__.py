"""Presentations: a derivation as lecture notes (text, LaTeX, Markdown, JSON) and in index notation."""

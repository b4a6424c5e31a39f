"""Bundled example specs (shipped in the wheel as package data)."""

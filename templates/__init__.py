"""jinja2 templates for generated files (shipped in the wheel as package data)."""

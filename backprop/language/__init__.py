"""The spec language: spec text and Python functions -> a shape-checked :class:`~backprop.language.model.Model`."""

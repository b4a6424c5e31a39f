"""The engine: the chain rule over a model, simplification to textbook form, the derivation as data, optimizers' equations."""

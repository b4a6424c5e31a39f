"""The convolution and pooling helpers as a generated JAX module carries them (:mod:`backprop.expr.ops_conv`
holds the NumPy forms and the rows).

JAX's arrays have no window views and are never written in place, so where a NumPy helper writes
into a view (max pooling, its route, col2im, the input gradient's per-offset accumulation) the JAX
module carries the form here instead. Each loop runs over kernel offsets while tracing, so the
jitted program holds no loop at all.
"""

from __future__ import annotations

#: Max pooling reduces the gathered windows, and its route scatters one-hot shares of the first
#: maximum (the NumPy forms write into views).
MAX_POOL_JAX = '''\
def _max_pool(x, size, stride, batch):
    """The largest entry of every window."""
    nd = x.ndim - 2
    win = _windows(x, (size,) * nd, stride, 0, batch)
    return jnp.moveaxis(win.max(axis=tuple(range(nd + 2, 2 * nd + 2))), -1, batch)
'''

MAX_POOL_ROUTE_JAX = '''\
def _max_pool_route(g, x, size, stride, batch):
    """δ routed to each window's largest entry (the first in row-major order on a tie, as PyTorch)."""
    nd = x.ndim - 2
    win = _windows(x, (size,) * nd, stride, 0, batch)
    first = win.reshape(win.shape[:nd + 2] + (-1,)).argmax(axis=-1)  # (c, o..., m)
    g = jnp.moveaxis(g, batch, -1)
    parts = jnp.stack([jnp.where(first == n, g, 0) for n in range(size ** nd)], axis=1)
    parts = parts.reshape(parts.shape[:1] + (size,) * nd + parts.shape[2:])
    x_size = jnp.moveaxis(x, batch, -1).shape[1:nd + 1]
    return jnp.moveaxis(_scatter_windows(parts, x_size, stride, 0, parts.dtype), -1, batch)
'''

#: The two primitives: the windows as one strided slice per kernel offset, stacked; col2im through
#: ``.at[...].add``.
OFFSETS_JAX = '''\
def _offsets(kernel):
    """Every offset in a window of shape kernel, in C order: a loop run while tracing, on the host."""
    offsets = [()]
    for k in kernel:
        offsets = [at + (i,) for at in offsets for i in range(k)]
    return offsets
'''

WINDOWS_JAX = '''\
def _windows(x, kernel, stride, pad, batch):
    """x as (channels, positions..., examples, kernel...): one strided slice per kernel offset, stacked."""
    nd = len(kernel)
    x = jnp.moveaxis(x, batch, -1)
    if pad:
        x = jnp.pad(x, [(0, 0)] + [(pad, pad)] * nd + [(0, 0)])
    positions = tuple((s - k) // stride + 1 for s, k in zip(x.shape[1:nd + 1], kernel))
    slices = [x[(slice(None),) + tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, positions))]
              for at in _offsets(kernel)]
    return jnp.stack(slices, axis=-1).reshape(slices[0].shape + tuple(kernel))
'''

SCATTER_JAX = '''\
def _scatter_windows(parts, size, stride, pad, dtype):
    """Each window's share parts[:, k..., o..., m] added back where the window was read (col2im)."""
    nd = len(size)
    kernel, positions = parts.shape[1:nd + 1], parts.shape[nd + 1:2 * nd + 1]
    out = jnp.zeros((parts.shape[0],) + tuple(s + 2 * pad for s in size) + (parts.shape[-1],), dtype=dtype)
    for at in _offsets(kernel):
        region = tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, positions))
        out = out.at[(slice(None),) + region].add(parts[(slice(None),) + at])
    return out[(slice(None),) + tuple(slice(pad, pad + s) for s in size)] if pad else out
'''

#: The input gradient as every window's share at once, then col2im (the NumPy form accumulates one
#: kernel offset's product at a time, in place).
CONV_INPUT_JAX = '''\
def _conv_input(g, w, stride, pad, batch):
    """∂L/∂X: the full convolution of δ (dilated by the stride) with the flipped filters, as col2im."""
    nd = w.ndim - 2
    g = jnp.moveaxis(g, batch, -1)  # (f, o..., m)
    size = tuple(stride * (o - 1) + k - 2 * pad for o, k in zip(g.shape[1:nd + 1], w.shape[2:]))
    parts = jnp.tensordot(w, g, axes=((0,), (0,)))  # (c, k..., o..., m)
    return jnp.moveaxis(_scatter_windows(parts, size, stride, pad, parts.dtype), -1, batch)
'''

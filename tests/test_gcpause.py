"""The symbolic stages pause the cyclic collector and always give it back as they found it."""

from __future__ import annotations

import gc

import pytest

import backprop
from backprop import codegen
from backprop.support.gcpause import cyclic_gc_paused, without_cyclic_gc


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_restored_after_even_on_error():
    gc.enable()
    with pytest.raises(RuntimeError):
        with cyclic_gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_nested_pauses_and_a_disabled_collector_stay_as_they_were():
    gc.enable()
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause found it off: it leaves it off
    assert gc.isenabled()
    gc.disable()
    with cyclic_gc_paused():
        pass
    assert not gc.isenabled()  # a caller's own gc.disable() is kept


def test_decorated_function_keeps_its_name_and_result():
    @without_cyclic_gc
    def f(x: int) -> bool:
        """Doc."""
        return x == 1 and not gc.isenabled()

    gc.enable()
    assert f(1) and f.__name__ == "f" and f.__doc__ == "Doc."
    assert gc.isenabled()


def test_derive_and_generate_leave_the_collector_on():
    gc.enable()
    codegen.generate(backprop.get_derivation("two_layer_sigmoid"))
    assert gc.isenabled()
    assert backprop.backpropagate.__name__ == "derive" and codegen.generate.__name__ == "generate"

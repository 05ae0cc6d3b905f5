"""The suite runs twice in CI: compiled, and PYBROKER_PURE=1. Each run must load what it expects."""
import importlib

from pbtest import PURE


def test_expected_implementation_loaded():
    import pybroker.codec
    from pybroker import _impl
    for name in ("crc32c", "records", "protocol"):
        try:
            importlib.import_module(f"pybroker.codec.{name}")
        except ImportError:
            pass  # a facade not written yet; loading is still checked below for what exists
    assert _impl.fallbacks() == [], f"compiled modules failed to load: {_impl.fallbacks()}"
    assert pybroker.codec.IMPLEMENTATION == ("pure" if PURE else "compiled")
    mod = pybroker.codec._crc
    expected = "pybroker.codec._pure.crc32c" if PURE else "pybroker_core.crc32c"
    assert mod.__name__ == expected

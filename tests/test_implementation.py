"""The suite runs twice in CI: compiled, and PYBROKER_PURE=1. Each run must load what it expects:
every compiled module has a twin, and in a compiled run none may have silently fallen back."""
import pathlib

import pytest

from pbtest import PURE, REPO
from pybroker import _impl

COMPILED = sorted(p.stem for p in (REPO / "core" / "pybroker_core").glob("*.pyx"))


def test_every_compiled_module_has_a_twin():
    assert {"buffer", "crc32c", "records", "protocol", "index"} <= set(COMPILED)
    twins = REPO / "pybroker" / "codec" / "_pure"
    missing = [m for m in COMPILED if not (twins / f"{m}.py").exists()]
    # uring has no pure twin by design: without it the log uses the threaded writer
    assert missing in ([], ["uring"]), f"compiled modules without a pure twin: {missing}"


@pytest.mark.parametrize("name", [m for m in COMPILED if m != "uring"])
def test_expected_implementation_loaded(name):
    mod = _impl.load(name)
    expected = f"pybroker.codec._pure.{name}" if PURE else f"pybroker_core.{name}"
    assert mod.__name__ == expected
    if not PURE:
        assert pathlib.Path(mod.__file__).suffix == ".so"


def test_no_silent_fallback():
    import pybroker.codec
    import pybroker.codec.protocol  # noqa: F401
    import pybroker.codec.records  # noqa: F401
    import pybroker.log.index  # noqa: F401
    assert _impl.fallbacks() == [], f"compiled modules failed to load: {_impl.fallbacks()}"
    assert pybroker.codec.IMPLEMENTATION == ("pure" if PURE else "compiled")

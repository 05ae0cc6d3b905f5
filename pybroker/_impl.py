"""The one place that chooses compiled modules (pybroker_core) or their pure-Python twins.

Set PYBROKER_PURE=1 to force the twins. Otherwise the compiled module is used; if it cannot be
imported we fall back to the twin with a warning, and `IMPLEMENTATION` says which one loaded
(the test suite fails when it is not the one it expects).
"""
import importlib
import os
import warnings

PURE = os.environ.get("PYBROKER_PURE", "") not in ("", "0")
IMPLEMENTATION = "pure" if PURE else "compiled"
_fallbacks = []


def load(name):
    """Return pybroker_core.<name>, or pybroker.codec._pure.<name> when pure or unavailable."""
    global IMPLEMENTATION
    if not PURE:
        try:
            return importlib.import_module(f"pybroker_core.{name}")
        except ImportError as exc:
            _fallbacks.append((name, exc))
            IMPLEMENTATION = "pure"
            warnings.warn(f"pybroker: compiled module {name!r} unavailable ({exc}); "
                          "using the pure-Python twin", RuntimeWarning, stacklevel=2)
    return importlib.import_module(f"pybroker.codec._pure.{name}")


def fallbacks():
    """(module name, ImportError) for every compiled module that failed to load."""
    return list(_fallbacks)

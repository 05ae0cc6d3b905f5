"""Constants shared by the test suite (imported as `from pbtest import ...`; a unique module name,
so it never collides with the per-directory conftest modules)."""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PURE = os.environ.get("PYBROKER_PURE", "") not in ("", "0")

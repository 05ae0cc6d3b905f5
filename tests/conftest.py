import pytest

from pbtest import PURE, REPO, SHARED  # noqa: F401  (re-exported for older imports)


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED

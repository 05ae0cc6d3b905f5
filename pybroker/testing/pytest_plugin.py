"""pytest plugin (registered as `pybroker` via the pytest11 entry point).

Fixtures:
  pybroker_broker       a fresh in-memory broker per test (pybroker.testing.Broker)
  pybroker_disk_broker  the same with on-disk storage in a temporary directory
"""
import pytest

from pybroker.testing import Broker


@pytest.fixture
def pybroker_broker():
    with Broker() as b:
        yield b


@pytest.fixture
def pybroker_disk_broker(tmp_path):
    with Broker(storage="disk", data_dir=str(tmp_path / "data")) as b:
        yield b

"""A real Kafka-protocol broker for other projects' tests, in-process and fast.

    from pybroker.testing import Broker
    with Broker() as b:                      # ephemeral port, in-memory storage by default
        producer = Producer({"bootstrap.servers": b.bootstrap_servers})

    async with AsyncBroker() as b: ...       # on the running event loop

Pass `storage="disk"` (optionally `data_dir=...`) for the on-disk log, and any Kafka config key
as a keyword via `config={"num.partitions": 3}`.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from typing import Optional

from pybroker.config import BrokerConfig

__all__ = ["Broker", "AsyncBroker", "make_config"]


def make_config(storage="memory", data_dir=None, config=None, host="127.0.0.1", port=0):
    values = {
        "listeners": f"PLAINTEXT://{host}:{port}",
        "storage.type": storage,
        "log.dir": data_dir,
        "group.initial.rebalance.delay.ms": "0",
        "shutdown.timeout.ms": "2000",
    }
    values.update({k: str(v) for k, v in (config or {}).items()})
    return BrokerConfig({k: v for k, v in values.items() if v is not None})


class AsyncBroker:
    """Runs a broker on the current event loop: `async with AsyncBroker() as b`."""

    def __init__(self, storage="memory", data_dir=None, config=None, port=0):
        self._tmp = None
        if storage == "disk" and data_dir is None:
            self._tmp = data_dir = tempfile.mkdtemp(prefix="pybroker-test-")
        self.data_dir = data_dir
        self.config = make_config(storage, data_dir, config, port=port)
        self.broker = None

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers()

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.rsplit(":", 1)[1])

    async def start(self):
        from pybroker.broker import Broker as _Broker
        self.broker = _Broker(self.config)
        await self.broker.start()
        return self

    async def stop(self):
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


class Broker:
    """Runs a broker on its own event-loop thread: `with Broker() as b: b.bootstrap_servers`."""

    def __init__(self, storage="memory", data_dir=None, config=None, port=0):
        self._async = AsyncBroker(storage, data_dir, config, port)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def bootstrap_servers(self) -> str:
        return self._async.bootstrap_servers

    @property
    def port(self) -> int:
        return self._async.port

    @property
    def broker(self):
        return self._async.broker

    @property
    def data_dir(self):
        return self._async.data_dir

    def call(self, fn, *args):
        """Run fn(*args) on the broker's loop thread and return its result (for test hooks)."""
        async def wrapper():
            res = fn(*args)
            return await res if asyncio.iscoroutine(res) else res
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    def start(self):
        ready = threading.Event()
        self._loop = _new_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="pybroker-test-broker", daemon=True)
        self._thread.start()
        ready.wait()
        asyncio.run_coroutine_threadsafe(self._async.start(), self._loop).result(30)
        return self

    def stop(self):
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._async.stop(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _new_loop():
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()

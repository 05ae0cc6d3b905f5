"""The broker process: wires config, storage, metadata, the network layer and the API handlers."""
from __future__ import annotations

import asyncio
import logging
import os
import time

import pybroker
from pybroker.network.server import NetworkServer

log = logging.getLogger("pybroker")


class BrokerStartError(RuntimeError):
    pass


class Broker:
    """One broker node. `await start()`, `await stop()`; `endpoints()` lists bound listeners."""

    version = pybroker.__version__

    def __init__(self, config):
        self.config = config
        self.node_id = config.node_id
        self.started_at = None
        self.network = NetworkServer(config, self._dispatch)
        self.state = None  # BrokerState, built in start()

    def _dispatch(self, conn, frame):
        return self.state.dispatch(conn, frame)

    async def start(self):
        from pybroker.log.errors import LogError
        from pybroker.state import BrokerState
        t0 = time.monotonic()
        try:
            self.state = BrokerState(self.config, self)
            await self.state.start()
        except OSError as exc:
            raise BrokerStartError(f"cannot open data directory: {exc}") from exc
        except LogError as exc:  # corrupt log, locked or offline log dir: named, not a traceback
            raise BrokerStartError(f"storage error at start-up: {exc}") from exc
        await self.network.start()
        self.started_at = time.time()
        log.info("broker %d started in %.0f ms", self.node_id, (time.monotonic() - t0) * 1000)

    async def stop(self):
        timeout = self.config["shutdown.timeout.ms"] / 1000
        await self.network.stop_accepting()
        await self.network.drain(timeout)
        if self.state is not None:
            await self.state.stop()

    def endpoints(self):
        return [f"{name}://{host}:{port}" for name, (host, port) in self.network.bound.items()]

    def bootstrap_servers(self, listener: str = None) -> str:
        name = listener or next(iter(self.network.bound))
        host, port = self.network.advertised(name)
        return f"{host}:{port}"

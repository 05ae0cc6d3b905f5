"""Listeners: bind each configured listener and reap idle connections."""
from __future__ import annotations

import asyncio
import errno
import logging

from pybroker.config import ConfigError, parse_listener
from pybroker.network.connection import Connection

log = logging.getLogger("pybroker.network")


class ListenerError(RuntimeError):
    pass


class NetworkServer:
    """Owns the listening sockets of one broker. `dispatch(conn, frame)` handles each request."""

    def __init__(self, config, dispatch):
        self.config = config
        self.dispatch = dispatch
        self.connections = set()
        self.servers = []
        self.bound = {}  # listener name -> (host, port) actually bound
        self._reaper = None

    async def start(self):
        loop = asyncio.get_running_loop()
        for uri in self.config.listeners:
            lst = parse_listener(uri)
            host = lst.host or None
            try:
                srv = await loop.create_server(lambda name=lst.name: Connection(self, name),
                                               host, lst.port, reuse_address=True, backlog=1024)
            except OSError as exc:
                await self.stop()
                if exc.errno == errno.EADDRINUSE:
                    raise ListenerError(f"cannot listen on {uri}: address already in use") from exc
                raise ListenerError(f"cannot listen on {uri}: {exc.strerror or exc}") from exc
            self.servers.append(srv)
            sockname = srv.sockets[0].getsockname()
            self.bound[lst.name] = (lst.host or sockname[0], sockname[1])
            log.info("listening on %s://%s:%d", lst.name, *self.bound[lst.name])
        self._reaper = asyncio.ensure_future(self._reap_idle())

    async def _reap_idle(self):
        idle_ms = self.config["connections.max.idle.ms"]
        if idle_ms <= 0:
            return
        period = max(0.05, min(idle_ms / 1000 / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            for conn in list(self.connections):
                if conn.idle_for * 1000 > idle_ms:
                    log.info("closing idle connection %s", conn.peer)
                    conn.close()

    async def stop_accepting(self):
        for srv in self.servers:
            srv.close()
        if self._reaper is not None:
            self._reaper.cancel()

    async def drain(self, timeout: float):
        """Wait (bounded) until no connection has a request in flight, then close them all."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(c.busy or c.pending for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.close()

    async def stop(self, timeout: float = 0.0):
        await self.stop_accepting()
        await self.drain(timeout)
        self.servers.clear()

    def advertised(self, listener_name: str):
        """(host, port) clients should use for this listener."""
        adv = self.config.advertised_listeners
        if adv:
            for uri in adv:
                lst = parse_listener(uri)
                if lst.name == listener_name:
                    port = lst.port or self.bound[listener_name][1]
                    return lst.host or "localhost", port
        host, port = self.bound[listener_name]
        if host in ("", "0.0.0.0", "::"):
            import socket
            host = socket.getfqdn()
        return host, port

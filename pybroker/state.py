"""Everything one broker node holds, and the request dispatcher.

dispatch(conn, frame): decode the header and body (compiled codec), route to the handler of that
API key, encode the response. Kafka's rules: an unknown API key, a version we don't serve or a
body that fails to parse closes the connection without a response — except ApiVersions, which is
answered (v0 body, UNSUPPORTED_VERSION) for any version (KIP-511).
"""
from __future__ import annotations

import inspect
import logging
import os

from pybroker.api import load_handlers
from pybroker.api import api_versions
from pybroker.api.context import RequestContext
from pybroker.api.fetch_session import FetchSessionCache
from pybroker.coordinator import broker as coordinator_broker
from pybroker.codec.errors import DecodeError, UnsupportedVersionError
from pybroker.codec.protocol import decode_request, encode_response, encode_response_parts
from pybroker.metadata.store import MetadataStore
from pybroker.network.connection import CloseConnection
from pybroker.replica.manager import ReplicaManager
from pybroker.replica.purgatory import Purgatory

log = logging.getLogger("pybroker.api")
FETCH_KEY = 1


class BrokerState:
    def __init__(self, config, broker):
        self.config = config
        self.broker = broker
        self.node_id = config.node_id
        self.handlers = load_handlers()
        self.advertised = {key: mod.VERSIONS for key, mod in self.handlers.items()}
        self.purgatory = Purgatory()
        self.fetch_sessions = FetchSessionCache(config["max.incremental.fetch.session.cache.slots"])
        self.memory = config["storage.type"] == "memory"
        meta_dir = None if self.memory else os.path.join(config.log_dirs[0], "__pybroker_metadata")
        self.metadata = MetadataStore(meta_dir)
        self.replicas = ReplicaManager(config, self.metadata, self.purgatory, memory=self.memory)
        self.group_coordinator = coordinator_broker.create(self)
        self.cluster_id = None

    @property
    def producer_ids(self):
        return self.replicas.producer_ids

    async def start(self):
        await self.replicas.start()
        self.cluster_id = self.replicas.cluster_id
        await coordinator_broker.start(self.group_coordinator, self)

    async def stop(self):
        await self.group_coordinator.stop()
        await self.replicas.stop()
        self.metadata.close()

    # -- dispatch -----------------------------------------------------------------------------
    def dispatch(self, conn, frame):
        try:
            header, body = decode_request(frame)
        except UnsupportedVersionError as exc:
            return self._unsupported(exc, frame)
        except DecodeError as exc:
            raise CloseConnection(f"malformed request: {exc}") from exc
        key, version = header.request_api_key, header.request_api_version
        handler = self.handlers.get(key)
        if handler is None:
            raise CloseConnection(f"unsupported API key {key}")
        lo, hi = handler.VERSIONS
        if not lo <= version <= hi:
            if key == api_versions.API_KEY:
                return self._encode(key, 0, header.correlation_id,
                                    api_versions.unsupported_response(self))
            raise CloseConnection(f"unsupported version {version} of API key {key}")
        ctx = RequestContext(self, conn, header, key, version)
        try:
            result = handler.handle(ctx, body)
            if inspect.isawaitable(result):
                return self._finish(result, key, version, header.correlation_id)
            if result is None:
                return None
            return self._encode(key, version, header.correlation_id, result)
        except CloseConnection:
            raise
        except Exception as exc:
            return self._failed(exc, key, version)

    async def _finish(self, awaitable, key, version, correlation_id):
        try:
            result = await awaitable
            return None if result is None else self._encode(key, version, correlation_id, result)
        except CloseConnection:
            raise
        except Exception as exc:
            return self._failed(exc, key, version)

    def _failed(self, exc, key, version):
        """The one place an unexpected handler error ends up: logged with its traceback, and the
        connection closed (the client reconnects and retries); every other client is unaffected."""
        log.error("internal error handling API key %d v%d", key, version, exc_info=exc)
        raise CloseConnection(f"internal error: {exc}") from exc

    def _encode(self, key, version, correlation_id, body):
        if key == FETCH_KEY:
            parts = encode_response_parts(key, version, correlation_id, body)
            return parts[0] if len(parts) == 1 else parts
        return encode_response(key, version, correlation_id, body)

    def _unsupported(self, exc, frame):
        header = getattr(exc, "header", None)
        if header is not None and header.request_api_key == api_versions.API_KEY:
            return self._encode(api_versions.API_KEY, 0, header.correlation_id,
                                api_versions.unsupported_response(self))
        raise CloseConnection(str(exc))

"""What a handler sees of one request."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RequestContext:
    state: Any            # pybroker.state.BrokerState
    conn: Any             # pybroker.network.connection.Connection
    header: Any           # RequestHeader
    api_key: int
    api_version: int

    @property
    def client_id(self) -> str:
        return self.header.client_id or ""

    @property
    def listener(self) -> str:
        return self.conn.listener

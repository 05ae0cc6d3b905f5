"""The API table, built once from `defs/*.txt`.

    from pybroker.protocol.apis import API_BY_KEY, API_BY_NAME
    produce = API_BY_KEY[0]            # Api(key=0, name="Produce", request=..., response=..., ...)
    API_BY_NAME["Produce"] is produce

`API_BY_KEY`, `API_BY_NAME`, `HEADERS` (RequestHeader/ResponseHeader) and `DATA` (standalone
schemas such as ConsumerProtocolSubscription) are parsed on first access, not at import, and then
kept (`load()` is cached). Parsing every definition takes a few milliseconds.

Versions are the full `validVersions` of the spec. If `unstable` is set, the highest version is
Kafka's `latestVersionUnstable`: only advertised with `unstable.api.versions.enable=true`
(`max_stable_version` is the one to advertise by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from .schema import DEFS_DIR, Message, SchemaError, load_all

API_VERSIONS_KEY = 18  # its response always uses response header v0 (KIP-511)


@dataclass(frozen=True, eq=False)
class Api:
    key: int
    name: str                       # e.g. "Produce"
    request: Message
    response: Message
    min_version: int
    max_version: int
    flexible_from: Optional[int]    # first flexible version, None if never flexible
    listeners: tuple                # ("broker", "controller")
    unstable: bool                  # latestVersionUnstable

    @property
    def max_stable_version(self) -> int:
        return self.max_version - 1 if self.unstable else self.max_version

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version

    def is_flexible(self, version: int) -> bool:
        return self.flexible_from is not None and version >= self.flexible_from

    def request_header_version(self, version: int) -> int:
        return 2 if self.is_flexible(version) else 1

    def response_header_version(self, version: int) -> int:
        if self.key == API_VERSIONS_KEY:
            return 0
        return 1 if self.is_flexible(version) else 0


@dataclass(frozen=True)
class Table:
    by_key: dict
    by_name: dict
    headers: dict
    data: dict


def _make_api(req: Message, resp: Message) -> Api:
    if req.api_key is None or (resp.api_key, resp.versions) != (req.api_key, req.versions):
        raise SchemaError(f"{req.name}: request and response disagree on key or versions")
    if resp.flexible != req.flexible:
        raise SchemaError(f"{req.name}: request and response disagree on flexible versions")
    if req.versions is None:
        raise SchemaError(f"{req.name}: no valid versions")
    return Api(
        key=req.api_key, name=req.name, request=req, response=resp,
        min_version=req.versions[0], max_version=req.versions[1],
        flexible_from=req.flexible[0] if req.flexible else None,
        listeners=req.listeners, unstable=req.unstable,
    )


def build(messages: dict) -> Table:
    """The table for messages keyed by (kind, name), as `schema.load_all` returns them."""
    by_key, by_name = {}, {}
    for (kind, name), req in sorted(messages.items(), key=lambda kv: kv[0]):
        if kind != "request":
            continue
        resp = messages.get(("response", name))
        if resp is None:
            raise SchemaError(f"{name}: request without response")
        api = _make_api(req, resp)
        if api.key in by_key:
            raise SchemaError(f"{name}: api key {api.key} used by {by_key[api.key].name} too")
        by_key[api.key] = by_name[name] = api
    orphans = [n for (k, n) in messages if k == "response" and n not in by_name]
    if orphans:
        raise SchemaError(f"responses without request: {sorted(orphans)}")
    by_key = dict(sorted(by_key.items()))
    return Table(
        by_key=by_key, by_name=by_name,
        headers={n: m for (k, n), m in messages.items() if k == "header"},
        data={n: m for (k, n), m in messages.items() if k == "data"},
    )


@lru_cache(maxsize=None)
def load(defs_dir: str = DEFS_DIR) -> Table:
    return build(load_all(defs_dir))


_LAZY = {"API_BY_KEY": "by_key", "API_BY_NAME": "by_name", "HEADERS": "headers", "DATA": "data"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(load(), _LAZY[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

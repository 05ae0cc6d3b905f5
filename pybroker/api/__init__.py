"""One module per API key. Each states its contract in its docstring and exports:

    API_KEY   the Kafka API key
    VERSIONS  (min, max) advertised in ApiVersions and accepted
    handle(ctx, request) -> response | None | awaitable of either   (None: no response, acks=0)

`HANDLERS` maps API key -> module for every API this broker serves.
"""
from importlib import import_module

_MODULES = [
    "api_versions", "metadata", "produce", "fetch", "list_offsets", "create_topics",
    "delete_topics", "create_partitions", "init_producer_id", "offset_for_leader_epoch",
    "describe_cluster", "describe_configs",
    # log lifecycle: configs, records deletion, log dirs
    "alter_configs", "incremental_alter_configs", "delete_records", "describe_log_dirs",
    # consumer groups (pybroker.coordinator)
    "find_coordinator", "join_group", "sync_group", "heartbeat", "leave_group", "offset_commit",
    "offset_fetch", "offset_delete", "describe_groups", "list_groups", "delete_groups",
    "consumer_group_heartbeat", "consumer_group_describe",
]


def load_handlers() -> dict:
    handlers = {}
    for name in _MODULES:
        mod = import_module(f"pybroker.api.{name}")
        handlers[mod.API_KEY] = mod
    return handlers

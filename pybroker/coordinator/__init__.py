"""The group coordinator: consumer groups (classic rebalance protocol and KIP-848's consumer
protocol) and committed offsets, persisted in __consumer_offsets.

Modules: coordinator (service, routing), shard (one __consumer_offsets partition), classic and
classic_ops (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), consumer, consumer_ops, reconciliation and
assignors (ConsumerGroupHeartbeat), offsets (OffsetCommit/Fetch/Delete, expiry), records and
records.txt (the __consumer_offsets record schemas), storage (the log interface), clock (time and
timers), topics (group -> partition, topic metadata view), config, errors.
"""
from pybroker.coordinator.config import GroupCoordinatorConfig
from pybroker.coordinator.coordinator import GroupCoordinator, RequestInfo
from pybroker.coordinator.storage import MemoryOffsetsLog
from pybroker.coordinator.topics import MetadataTopics, StaticTopics, partition_for

__all__ = ["GroupCoordinator", "GroupCoordinatorConfig", "RequestInfo", "MemoryOffsetsLog",
           "MetadataTopics", "StaticTopics", "partition_for"]
